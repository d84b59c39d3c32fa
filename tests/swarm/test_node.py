"""The node state machine end to end (evidence, reputation, clipping, aggregation, regime, fallback):
the invariants INV-1..INV-4, INV-6 and INV-7 of DESIGN.md through `node.receive`, one observer at a time.

Each test builds one node with a real window of readings, hands it an inbox, and measures what the
round did to its weights; a rule that let a peer move the model further than its weight share, let
untrusted votes escalate, or applied an unverified aggregate would fail them.
"""

import hashlib

import numpy as np
import pytest

from qres.fixed import Q16_ONE, to_q16
from qres.swarm import learn, node, regime
from qres.swarm.aggregate import reputation_weights
from qres.swarm.reputation import START, grubbs_critical

N_SWARM = 100
SLOTS = 16


def _stream(seed: int = 0, n: int = 400) -> np.ndarray:
    """A synthetic sensor: an AR(2) process on the differences, integrated, in integer counts."""
    rng = np.random.default_rng(seed)
    d = np.zeros(n)
    e = rng.normal(0, 50, n)
    for t in range(2, n):
        d[t] = 1.2 * d[t - 1] - 0.5 * d[t - 2] + e[t]
    return np.round(np.cumsum(d)).astype(np.int64) + 10_000


def _node(slots: int = SLOTS, score: float = 1.0, weights=None):
    """One node hearing `slots` peers (ids 1..slots), all at reputation `score`, and its local step."""
    state = node.NodeState(np.arange(1, slots + 1)[None], np.zeros(learn.ORDER, np.int64), N_SWARM)
    state.rep.score[:] = to_q16(score)
    if weights is not None:
        state.weights[:] = weights
        state.verified[:] = weights
    step = node.propose(state, _stream()[None, :129], int(to_q16(0.25)))
    return state, step


def _honest_inbox(step, slots: int = SLOTS, seed: int = 1) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return step.proposal[:, None] + rng.integers(-4000, 4000, size=(1, slots, learn.ORDER))


def _run(state, step, inbox, present=None, votes=None):
    present = np.ones(inbox.shape[:2], bool) if present is None else present
    votes = np.full(inbox.shape[:2], regime.CALM, np.int8) if votes is None else votes
    return node.receive(state, step, inbox, present, votes)


def _copy(state):
    other = node.NodeState(state.peers, state.base, N_SWARM, state.aggregator)
    other.weights, other.verified = state.weights.copy(), state.verified.copy()
    other.rep.score, other.rep.banned = state.rep.score.copy(), state.rep.banned.copy()
    other.regime = state.regime.copy()
    return other


def _influence(state, step, inbox, slot_mask, neutral):
    """How far (L2, raw) the slots in `slot_mask` move the round's result by sending what `inbox`
    holds instead of `neutral` (what an honest peer would have sent), and the weight share
    (Calm: reputation-weighted) they had in the round."""
    pushed, honest = _copy(state), _copy(state)
    res = _run(pushed, step, inbox)
    calm = inbox.copy()
    calm[0, slot_mask] = neutral
    _run(honest, step, calm)
    moved = float(np.linalg.norm(pushed.weights[0].astype(float) - honest.weights[0]))
    reps = np.concatenate([[Q16_ONE], np.where(res.accepted[0], pushed.rep.score[0], 0)])
    w = reputation_weights(reps, N_SWARM).astype(float)
    share = w[1:][slot_mask].sum() / w.sum()
    return moved, share


def _unit(seed: int) -> np.ndarray:
    v = np.random.default_rng(seed).normal(size=learn.ORDER)
    return v / np.linalg.norm(v)


def _spread_round(push: float, score: float):
    """A node at its own least-squares model, honest peers spread across honest reach (0.05 to 0.2
    from its weights), and peer 0 (at `score`) `push` (L2) away from its weights; the round's state,
    step and inbox."""
    state, step = _node(weights=np.round(learn.least_squares([_stream()[:129]])).astype(np.int64))
    w = state.weights[0].astype(np.int64)
    inbox = np.array([w + np.round(r * Q16_ONE * _unit(100 + i)) for i, r in enumerate(np.linspace(0.05, 0.2, SLOTS))], np.int64)[None]
    inbox[0, 0] = w + np.round(push * Q16_ONE * _unit(7))
    state.rep.score[0, 0] = to_q16(score)
    return state, step, inbox


@pytest.mark.parametrize("push", [0.02, 0.08, 0.15, 0.25])
@pytest.mark.parametrize("score", [1.0, 0.6, 0.3])
def test_inv1_one_peer_moves_a_round_by_at_most_its_share_of_the_receive_limit(push, score):
    """Within honest reach (below the astray distance) the push is accepted, beyond the receive limit
    only the clip bounds it: the round moves by its weight share of the receive limit, against the
    same peer sending the node's own weights."""
    assert push * Q16_ONE < node.ASTRAY_DISTANCE
    state, step, inbox = _spread_round(push, score)
    assert _run(_copy(state), step, inbox).accepted[0, 0]  # the premise: the push counts
    moved, share = _influence(state, step, inbox, np.arange(SLOTS) == 0, state.weights[0])
    assert moved <= share * min(push * Q16_ONE, node.RECEIVE_LIMIT) + 2  # + rounding


@pytest.mark.parametrize("push", [0.5, 5.0])
def test_inv1_a_push_beyond_honest_reach_sits_out_and_moves_nothing(push):
    """Beyond the astray distance the push sits out: the round ends as if the peer had sent nothing."""
    state, step, inbox = _spread_round(push, 1.0)
    pushed, absent = _copy(state), _copy(state)
    res = _run(pushed, step, inbox)
    present = np.ones((1, SLOTS), bool)
    present[0, 0] = False
    _run(absent, step, inbox, present)
    assert not res.accepted[0, 0]
    assert (pushed.weights == absent.weights).all()


@pytest.mark.parametrize("far, alphas, outlier", [(1291, (0.05, 0.01), False), (1530, (0.01, 0.001), True)])
def test_the_node_tests_outliers_at_alpha_one_percent(far, alphas, outlier):
    """A peer whose Grubbs statistic lies between the critical values at alpha 0.05 and 0.01 is
    accepted; one between 0.01 and 0.001 is an outlier and sits out."""
    state, step = _node()
    offsets = np.array([far, -800, -700, -600, -500, -400, -300, -200, -100, 100, 200, 300, 400, 500, 600, 700])
    inbox = np.repeat(step.proposal[:, None], SLOTS, axis=1)
    inbox[0, :, 0] += offsets  # along one weight: distances to the median (the own proposal) are |offsets|
    dist = np.abs(np.concatenate([[0], offsets])).astype(float)
    g = (dist.max() - dist.mean()) / dist.std(ddof=1)
    assert grubbs_critical(SLOTS + 1, alphas[0]) < g < grubbs_critical(SLOTS + 1, alphas[1])  # the premise
    res = _run(state, step, inbox)
    assert res.outliers[0].tolist() == [outlier] + [False] * (SLOTS - 1)
    assert res.accepted[0].tolist() == [not outlier] + [True] * (SLOTS - 1)


@pytest.mark.parametrize("sybils", [1, 4, 8])
def test_inv2_fresh_identities_add_at_most_their_diluted_share(sybils):
    state, step = _node(SLOTS + sybils)
    fresh = np.arange(SLOTS + sybils) >= SLOTS
    state.replace_peers(fresh[None], np.where(fresh, 10_000 + np.arange(SLOTS + sybils), state.peers[0])[None])
    assert (state.rep.score[0, fresh] == START).all()  # a new identity starts from scratch
    inbox = _honest_inbox(step, SLOTS + sybils)
    neutral = inbox[0, fresh].copy()
    inbox[0, fresh] = step.proposal[0] + 4000  # every Sybil pushes the same way, inside honest reach
    moved, share = _influence(state, step, inbox, fresh, neutral)
    assert moved <= share * node.RECEIVE_LIMIT + 2
    assert share < sybils * 0.02  # at 0.5 against trusted peers at 1.0, each Sybil weighs about 1/9 of a peer


def test_inv3_colluders_drift_no_more_than_their_share_and_never_superlinearly():
    drift = {}
    for k in (1, 2, 4):
        state, step = _node()
        inbox = _honest_inbox(step)
        bias = np.array([2500, 1500, -1000, 500, 0, 0, 0, 0])
        neutral = inbox[0, :k].copy()
        inbox[0, :k] = step.proposal[0] + bias  # a shared bias inside honest reach
        moved, share = _influence(state, step, inbox, np.arange(SLOTS) < k, neutral)
        shift = np.linalg.norm((inbox[0, :k] - neutral).astype(float), axis=1).max()  # what each one changed
        assert moved <= share * shift + 2
        drift[k] = moved
    assert drift[1] > 0  # inside honest reach they do count ...
    assert drift[2] <= 2 * 1.1 * drift[1] + 2 and drift[4] <= 4 * 1.1 * drift[1] + 2  # ... but each no more than alone


def test_a_proposal_far_beyond_honest_reach_is_a_violation_and_sits_out():
    state, step = _node(score=0.5)
    inbox = _honest_inbox(step)
    inbox[0, 3] = step.proposal[0] + int(0.5 * Q16_ONE)  # 0.5 on every weight: far from everything
    res = _run(state, step, inbox)
    assert res.outliers[0, 3] and not res.accepted[0, 3]
    assert state.rep.score[0, 3] < START
    assert res.accepted[0, np.arange(SLOTS) != 3].all()  # the honest ones all count


def test_repeated_violations_ban_the_peer_and_honest_peers_stay():
    state, step = _node(score=0.5)
    for seed in range(4):
        inbox = _honest_inbox(step, seed=seed)
        inbox[0, 5] = step.proposal[0] - int(0.6 * Q16_ONE)
        _run(state, step, inbox)
    assert state.rep.banned[0, 5]
    assert not state.rep.banned[0, np.arange(SLOTS) != 5].any()


def _votes(storm_slots):
    v = np.full((1, SLOTS), regime.CALM, np.int8)
    v[0, storm_slots] = regime.STORM
    return v


@pytest.mark.parametrize(
    "scores, voters, counted, storm",
    [
        ((0.5,) * SLOTS, range(SLOTS), 0, False),  # the whole inbox votes Storm, nobody trusted: no escalation
        ((0.8,) * SLOTS, range(SLOTS), 0, False),  # 0.8 is not above 0.8
        ((0.95, 0.95) + (0.5,) * (SLOTS - 2), range(SLOTS), 2, False),  # two trusted voters are not enough
        ((0.95, 0.95, 0.95) + (0.5,) * (SLOTS - 3), range(3), 3, True),  # three trusted voters are
    ],
)
def test_inv4_storm_needs_three_distinct_trusted_confirmations(scores, voters, counted, storm):
    state, step = _node()
    state.rep.score[0] = [to_q16(s) for s in scores]
    res = _run(state, step, _honest_inbox(step), votes=_votes(list(voters)))
    assert res.confirmations[0] == counted
    assert (state.regime.regime[0] == regime.STORM) == storm


def test_inv4_a_node_whose_own_detector_wants_storm_still_needs_confirmation():
    state, step = _node(score=0.5)
    state.regime.regime[:] = regime.PRESTORM
    state.regime.high_run[:] = regime.STORM_ENTER_STEPS  # the detector would enter Storm now
    loud = learn.LocalStep(step.proposal, np.full(1, Q16_ONE), step.residual_error, step.accuracy_delta, step.x, step.y, step.curvature)
    _run(state, loud, _honest_inbox(step), votes=_votes(list(range(SLOTS))))
    assert state.regime.regime[0] == regime.PRESTORM  # untrusted peers cannot confirm it
    state.rep.score[0, :2] = to_q16(0.9)  # two trusted peers and itself: three distinct trusted nodes
    _run(state, loud, _honest_inbox(step), votes=_votes([0, 1]))
    assert state.regime.regime[0] == regime.STORM


def test_inv6_a_round_is_bit_identical_and_matches_its_golden_hash():
    """Same state, same round input: the same update, on any platform (integer arithmetic only).
    The golden hash pins the bytes; a change of the update rule must update it deliberately."""
    outs = []
    for _ in range(2):
        state, step = _node(score=0.7)
        _run(state, step, _honest_inbox(step))
        outs.append(np.concatenate([step.proposal.ravel(), state.weights.ravel(), state.rep.score.ravel()]).astype("<i8").tobytes())
    assert outs[0] == outs[1]
    assert hashlib.sha256(outs[0]).hexdigest() == GOLDEN_ROUND


GOLDEN_ROUND = "97bf61687eb374153a8bb99801860d84d398fd61250fb88890e82c8ecb4561dd"


def test_inv7_without_a_quorum_a_node_keeps_its_last_verified_model():
    w0 = np.array([[30000, -2000, 1000, 0, 0, 0, 0, 0]])
    state, step = _node(weights=w0)
    present = np.zeros((1, SLOTS), bool)
    present[0, : node.QUORUM - 1] = True  # one peer short of a quorum
    res = _run(state, step, _honest_inbox(step), present)
    assert not res.verified[0]
    assert (state.weights == w0).all() and (state.verified == w0).all()
    assert state.stale_rounds[0] == 1
    present[0, node.QUORUM - 1] = True
    res = _run(state, step, _honest_inbox(step), present)
    assert res.verified[0] and not (state.weights == w0).all() and state.stale_rounds[0] == 0
    assert (state.verified == state.weights).all()


def test_ban_reports_need_three_trusted_reporters_and_own_doubt():
    state, _ = _node(score=0.9)
    state.rep.score[0, 9] = to_q16(0.45)  # this node already doubts peer 10 (slot 9)
    reporters, target = np.array([1, 2]), np.array([10, 10])
    assert not node.spread_bans(state, reporters, target).any()  # two reports are not enough
    new = node.spread_bans(state, np.array([1, 2, 3]), np.array([10, 10, 10]))
    assert new[0, 9] and state.rep.banned[0, 9] and new.sum() == 1


def test_slander_against_a_trusted_peer_bans_nobody_and_costs_the_slanderers_trust():
    state, _ = _node(score=0.9)
    new = node.spread_bans(state, np.array([1, 2, 3, 4]), np.array([7, 7, 7, 7]))
    assert not new.any() and not state.rep.banned.any()
    assert (state.rep.score[0, :4] < to_q16(0.8)).all()  # their next reports no longer count
    assert (state.rep.score[0, :4] >= START).all()  # but a report alone never bans the reporter


def test_the_running_curvature_takes_each_window_in_by_an_eighth():
    """A node's Newton steps use its running X^T X / s, not just the last window's: the second step
    differs from a fresh node's on the same window, and the average moves 1/8 of the way."""
    def blank():
        return node.NodeState(np.arange(1, SLOTS + 1)[None], np.zeros(learn.ORDER, np.int64), N_SWARM)

    state = blank()
    assert not state.curvature.any()
    z = _stream(seed=3)
    node.propose(state, z[None, :129], int(to_q16(0.25)))
    c1 = state.curvature[0].astype(np.int64)
    assert (c1 == c1.T).all() and abs(int(np.trace(c1)) - learn.ORDER * Q16_ONE) <= learn.ORDER
    fresh = blank()
    step_fresh = node.propose(fresh, z[None, 200:329], int(to_q16(0.25)))
    step_warm = node.propose(state, z[None, 200:329], int(to_q16(0.25)))
    c2 = state.curvature[0].astype(np.int64)
    window = fresh.curvature[0].astype(np.int64)
    assert np.abs(c2 - (c1 + (window - c1) / 8)).max() <= 1
    assert not (step_fresh.proposal == step_warm.proposal).all()


def test_relay_priority_is_the_epidemic_product_for_accepted_useful_updates_only():
    from qres.swarm.packets import GhostUpdate
    from qres.fixed import bfp16_from_q16

    state, _ = _node(score=0.6)
    accepted = np.ones((1, SLOTS), bool)
    accepted[0, 3] = False
    residual = np.full((1, SLOTS), to_q16(0.2), np.int64)
    delta = np.full((1, SLOTS), to_q16(0.05), np.int64)
    delta[0, 4] = node.CURE_Q16  # not past the cure threshold
    prio = node.relay_priority(state, accepted, residual, delta)
    packet = GhostUpdate(bytes(32), 1, bytes(8), bfp16_from_q16(np.zeros(8, np.int64)), int(residual[0, 0]), int(delta[0, 0]))
    assert prio[0, 0] == packet.priority(int(state.rep.score[0, 0])) > 0
    assert prio[0, 3] == 0 and prio[0, 4] == 0


def test_statistics_alone_never_cut_a_node_off_its_peers(monkeypatch):
    """If every peer is merely unusual (no violation), the node readmits them rather than stall on
    its last verified model; violators stay out."""
    state, step = _node(score=0.5)
    inbox = _honest_inbox(step)
    real = node._evidence

    def everyone_unusual(*args):
        ev = real(*args)
        ev.unusual[:] = args[3]
        ev.violating[:, 0] = args[3][:, 0]
        return ev

    monkeypatch.setattr(node, "_evidence", everyone_unusual)
    res = _run(state, step, inbox)
    assert res.verified[0] and res.accepted[0, 1:].all() and not res.accepted[0, 0]


def test_pick_relays_takes_the_best_new_origins_once():
    origins = np.array([[5, 7, 5, 9, -1, 2], [3, 3, 3, -1, -1, -1]])
    prio = np.array([[40, 90, 60, 10, 99, 80], [5, 7, 9, 0, 0, 0]])
    known = np.array([[0, 2], [1, 4]])  # node 0 hears 2 itself; node 1 hears 4
    pick = node.pick_relays(origins, prio, known, 3)
    assert pick[0].tolist() == [7, 5, 9]  # 2 is known, the empty slot is skipped, 5 counts once
    assert pick[1].tolist() == [3, -1, -1]  # one origin, however many peers pass it on
    assert (node.pick_relays(origins, np.zeros_like(prio), known, 2) == -1).all()  # no priority, no relay
