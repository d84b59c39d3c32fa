"""The node state machine (sans-I/O), vectorised over a leading node axis: one round of the protocol.

A round, for every node at once:

1. `propose`: a local Newton step (`learn.local_step`) on the node's recent readings gives its
   proposed weights, its entropy, residual error and accuracy gain; `gossip_decision` says whether
   it spreads them (the gain passes the cure threshold, energy is above the reserve, and in Calm the
   utility gate of `energy.gossip_allowed`).
2. The caller delivers what arrived before the round's deadline: an inbox of peer proposals
   (nodes, slots, ORDER) with a presence mask, the peers' regime votes and ban reports. (The
   simulator builds these from arrays, the daemon from packets; what travels is BFP-16.)
3. `receive`: evidence (a Grubbs outlier test of each received proposal's distance to the inbox
   median, and the cartel check), reputation, own and spread bans, the robust aggregate of the own
   proposal and the accepted inbox, the regime step with Storm confirmation (INV-4), and the
   fallback to the last verified model when a round ends without a quorum of peers (INV-7).

Each node keeps a peer table of `slots` entries: peer ids (-1 for an empty slot), its own
reputation score of each (Q16.16) and its ban flags. Weights are Q16.16 integers; everything a
peer or an audit must reproduce is integer arithmetic (INV-6). The evidence statistics are float64
(IEEE operations, identical everywhere) and act only with a margin.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..fixed import Q16_ONE, to_q16
from . import learn, regime
from .learn import clip_rows
from .aggregate import Adaptive, Aggregator
from .energy import gossip_allowed
from .packets import NODE_ID_LEN, epidemic_priority
from .reputation import CARTEL_MIN, PENALTY, START, TRUSTED_ABOVE, Reputation, cartel_groups, grubbs_outlier_rows

ANNEAL_ROUNDS = 8  # Calm halves the learning rate after this many rounds ...
ANNEAL_FLOOR = 8  # ... and lowers it to at most an eighth
STORM_RATE_FACTOR = 5  # Storm learns 5x faster (DESIGN.md: 0.2 instead of 0.04)
QUORUM = 3  # peer proposals a round needs before its aggregate counts as verified (INV-7)
CURE_Q16 = int(to_q16(0.001))  # an update spreads only when it improves the window by more than 0.1%
RESERVE_Q16 = int(to_q16(0.2))  # no gossip below 20% charge
GATE_COST_Q16 = int(to_q16(0.001))  # Calm gate: gossip when entropy x reputation > cost x bias
GATE_BIAS_Q16 = Q16_ONE
RECEIVE_LIMIT = learn.STEP_LIMIT  # a received proposal moves the aggregate input by at most this (L2) from own weights
OUTLIER_DISTANCE = 4 * learn.STEP_LIMIT  # a proposal this far (L2, Q16.16 raw) from both the median and own weights breaks the protocol
VIOLATION_LOSS = (11, 10)  # a far proposal violates when 10% worse on the own window than the own proposal
WORSE_LOSS = (3, 2)  # a proposal 50% worse on the own window than the best received one sits out the round
LOSS_ROWS = 32  # the newest window rows every received proposal is tried on
ASTRAY_DISTANCE = 3 * learn.STEP_LIMIT  # from the inbox median and the own weights: beyond an honest step plus early disagreement
UNUSUAL_PENALTY = PENALTY // 4  # a statistical outlier within honest reach costs a quarter of a violation ...
UNUSUAL_FLOOR = int(to_q16(0.3))  # ... and never more than down to 0.3: statistics cut influence, only violations ban


@dataclass
class RoundResult:
    """What `receive` decided, per node (and per peer slot where the shape is (nodes, slots))."""

    accepted: np.ndarray  # (n, slots) proposals that entered the aggregate
    outliers: np.ndarray  # (n, slots) Grubbs outliers or protocol violations this round (left out of the aggregate)
    new_bans: np.ndarray  # (n, slots) bans decided this round (own evidence, cartel or spread)
    verified: np.ndarray  # (n,) the round had a quorum: its aggregate became the verified model
    confirmations: np.ndarray  # (n,) trusted Storm votes this node counted (itself included)


class NodeState:
    """Protocol state of n nodes: weights, last verified model, peer table, regime detector.

    `peers` (n, slots) holds peer ids (ints; -1 = empty slot); `base` (ORDER,) is the genesis
    model every update is expressed against. `nodes_in_swarm` sets the reputation exponent.
    """

    def __init__(self, peers: np.ndarray, base: np.ndarray, nodes_in_swarm: int, aggregator: Aggregator | None = None):
        self.peers = np.asarray(peers, np.int32)
        n = len(self.peers)
        self.base = np.asarray(base, np.int32)
        self.weights = np.tile(self.base, (n, 1))
        self.verified = self.weights.copy()
        self.rep = Reputation(self.peers.shape)
        self.regime = regime.RegimeState(n)
        self.stale_rounds = np.zeros(n, np.int32)
        self.calm_rounds = np.zeros(n, np.int32)  # rounds since the node last left Calm
        self.curvature = np.zeros((n, learn.ORDER, learn.ORDER), np.int32)  # running X^T X / s of its windows
        self.aggregator = aggregator if aggregator is not None else Adaptive(nodes_in_swarm)

    @property
    def n(self) -> int:
        return len(self.peers)

    def state_bytes_per_node(self) -> float:
        """Protocol state per node in bytes, counting each peer id as a 32-byte node id."""
        arrays = (self.weights, self.verified, self.peers, self.rep.score, self.rep.banned, self.stale_rounds, self.calm_rounds)
        arrays += (self.curvature[:, np.triu_indices(learn.ORDER)[0], np.triu_indices(learn.ORDER)[1]],)  # symmetric: 36 values
        arrays += tuple(vars(self.regime).values())
        total = sum(a.nbytes for a in arrays) + self.peers.size * (NODE_ID_LEN - self.peers.itemsize)
        return total / max(self.n, 1)

    def replace_peers(self, mask: np.ndarray, ids: np.ndarray) -> None:
        """Give the slots in `mask` new peer ids (fresh identities start from scratch: score 0.5, not banned)."""
        fresh = np.asarray(mask, bool) & (np.asarray(ids) != self.peers)
        self.peers = np.where(mask, ids, self.peers).astype(np.int32)
        self.rep.score = np.where(fresh, START, self.rep.score).astype(np.int32)
        self.rep.banned &= ~fresh

    def vote(self) -> np.ndarray:
        """Each node's regime vote (int8): Storm when its detector holds or wants Storm."""
        wants = self.regime.high_run >= regime.STORM_ENTER_STEPS
        return np.where(wants | (self.regime.regime == regime.STORM), regime.STORM, self.regime.regime).astype(np.int8)


def learning_rate(state: NodeState, calm_rate_q16: int) -> np.ndarray:
    """Per node learning rate (Q16.16). Calm anneals it as rate x 8 / (8 + rounds in Calm), down to
    an eighth, so honest nodes settle on one model; PreStorm re-arms the full rate and Storm learns
    5x faster (at most 1.0)."""
    calm = (calm_rate_q16 * ANNEAL_ROUNDS) // (ANNEAL_ROUNDS + state.calm_rounds.astype(np.int64))
    calm = np.maximum(calm, calm_rate_q16 // ANNEAL_FLOOR)
    rate = np.where(state.regime.regime == regime.CALM, calm, calm_rate_q16)
    return np.where(state.regime.regime == regime.STORM, min(calm_rate_q16 * STORM_RATE_FACTOR, Q16_ONE), rate).astype(np.int64)


def propose(state: NodeState, windows: np.ndarray, calm_rate_q16: int) -> learn.LocalStep:
    """Each node's local update on its window of recent readings (int64 (n, L)); the node's running
    curvature takes the window in."""
    step = learn.local_step(state.weights, windows, learning_rate(state, calm_rate_q16), state.curvature)
    state.curvature = step.curvature.astype(np.int32)
    return step


def gossip_decision(
    state: NodeState, step: learn.LocalStep, self_reputation_q16: np.ndarray, charge_q16: np.ndarray
) -> np.ndarray:
    """Whether each node spreads its update this round (bool (n,)): the accuracy gain passes the cure
    threshold and the energy gate allows it (never below the reserve; in Calm only when useful)."""
    cured = step.accuracy_delta <= CURE_Q16
    gate = gossip_allowed(
        state.regime.regime, step.entropy, self_reputation_q16, GATE_COST_Q16, GATE_BIAS_Q16, charge_q16, RESERVE_Q16
    )
    return gate & ~cured


@dataclass
class Evidence:
    """What one round's inbox says about each peer slot (arrays (n, slots) unless noted)."""

    unusual: np.ndarray  # sits out the round
    violating: np.ndarray  # breaks the protocol: penalised, a cartel suspect
    deviation: np.ndarray  # (n, slots, dim) float: proposal minus the inbox median


def relay_priority(state: NodeState, accepted: np.ndarray, residual_error: np.ndarray, accuracy_delta: np.ndarray) -> np.ndarray:
    """Epidemic priority (Q16.16, (n, slots)) of each accepted proposal as this node would pass it on:
    residual_error x accuracy_delta x the sender's reputation here, as `GhostUpdate.priority`
    rounds it; 0 for proposals not accepted or whose gain is below the cure threshold."""
    prio = epidemic_priority(residual_error, accuracy_delta, state.rep.score)
    return np.where(accepted & (np.asarray(accuracy_delta) > CURE_Q16), np.asarray(prio, np.int64), 0)


def relay_choice(state: NodeState, accepted: np.ndarray, residual_error: np.ndarray, accuracy_delta: np.ndarray, slots: slice) -> tuple[np.ndarray, np.ndarray]:
    """What each node passes on next round: the peer id (int64 (n,), -1 for none) of its
    highest-priority accepted update among `slots` (its own peers: relays are not relayed again),
    and that priority."""
    prio = relay_priority(state, accepted, residual_error, accuracy_delta)[:, slots]
    best = np.argmax(prio, axis=1)
    rows = np.arange(state.n)
    top = prio[rows, best]
    return np.where(top > 0, state.peers[:, slots][rows, best].astype(np.int64), -1), top


def pick_relays(origins: np.ndarray, priorities: np.ndarray, known: np.ndarray, k: int) -> np.ndarray:
    """Which passed-on updates each node takes: the origin ids (int64 (n, k), -1 for none) of the
    k best by priority among `origins` (n, c) with `priorities` (n, c), skipping empty entries
    (-1), origins in `known` (n, m: the node itself and the peers it hears directly) and repeats.
    Ties go to the earlier candidate."""
    origins = np.asarray(origins, np.int64)
    prio = np.where((origins >= 0) & ~(origins[:, :, None] == np.asarray(known)[:, None, :]).any(axis=2), priorities, -1)
    order = np.argsort(-prio, axis=1, kind="stable")
    ranked = np.take_along_axis(origins, order, axis=1)
    ok = np.take_along_axis(prio, order, axis=1) > 0
    for j in range(1, ranked.shape[1]):  # the same origin passed on by two peers counts once
        ok[:, j] &= ~(ranked[:, j : j + 1] == ranked[:, :j]).any(axis=1)
    order = np.argsort(~ok, axis=1, kind="stable")[:, :k]  # the k best that remain, in priority order
    return np.where(np.take_along_axis(ok, order, axis=1), np.take_along_axis(ranked, order, axis=1), -1)


def _evidence(weights: np.ndarray, step: learn.LocalStep, inbox: np.ndarray, usable: np.ndarray) -> Evidence:
    """Evidence on the usable inbox entries (see `Evidence`). No honest proposal lies farther than
    an honest step (STEP_LIMIT) plus the swarm's small disagreement from both the inbox median and
    this node's own weights; but either reference can mislead (attackers crowding an inbox move
    the median; a node dragged off moves its own weights), so the node's own data have the last word:

    - `unusual` (sits out the round; a mild penalty that cannot ban): a Grubbs outlier
      (alpha = 0.01) in distance to the median of own + usable proposals; a proposal WORSE_LOSS
      worse on the node's newest LOSS_ROWS readings than the best received one that is no Grubbs
      outlier; or, while the
      node's own proposal agrees with the median, one beyond ASTRAY_DISTANCE from both.
    - `violating` (penalised, bans, a cartel suspect): beyond OUTLIER_DISTANCE from both, and worse
      than the own proposal on the whole own window by VIOLATION_LOSS.
    """
    own = step.proposal
    x = np.concatenate([own[:, None], inbox], axis=1).astype(np.float64)
    mask = np.concatenate([np.ones((len(own), 1), bool), usable], axis=1)
    med = np.nanmedian(np.where(mask[..., None], x, np.nan), axis=1)
    dev = x - med[:, None]
    from_median = np.sqrt((dev[:, 1:] ** 2).sum(axis=2))
    gap = inbox.astype(np.float64) - weights[:, None]
    from_own = np.sqrt((gap * gap).sum(axis=2))
    unusual = grubbs_outlier_rows(np.sqrt((dev * dev).sum(axis=2)), mask)[:, 1:] & usable
    loss = step.candidate_loss(inbox, LOSS_ROWS)
    top = np.iinfo(np.int64).max  # the best loss among the proposals that are no statistical outlier:
    best = np.where(usable & ~unusual, loss, top).min(axis=1, keepdims=True, initial=top)  # a far-off lucky guess sets no bar
    slack = LOSS_ROWS * (Q16_ONE // 2)  # half a (scaled) count per reading: a flat window makes no peer "worse"
    unusual |= usable & (loss * WORSE_LOSS[1] > best * WORSE_LOSS[0] + slack * WORSE_LOSS[1])
    far = usable & (from_median > ASTRAY_DISTANCE) & (from_own > ASTRAY_DISTANCE)
    anchored = np.sqrt((dev[:, 0] ** 2).sum(axis=1)) <= learn.STEP_LIMIT  # the own proposal agrees with the inbox
    unusual |= far & anchored[:, None]
    violating = usable & (from_median > OUTLIER_DISTANCE) & (from_own > OUTLIER_DISTANCE)
    rows, cols = np.nonzero(violating)
    if len(rows):  # only the few far entries are tried on the whole own window
        theirs = step.window_loss(rows, inbox[rows, cols])
        mine = step.window_loss(rows, own[rows])
        violating[rows, cols] = theirs * VIOLATION_LOSS[1] > mine * VIOLATION_LOSS[0]
    return Evidence(unusual, violating, dev[:, 1:])


def _cartels(dev: np.ndarray, suspects: np.ndarray) -> np.ndarray:
    """Bans for suspects whose deviations point the same way, > 3 linked in one node's inbox."""
    out = np.zeros(suspects.shape, bool)
    for i in np.flatnonzero(suspects.sum(axis=1) >= CARTEL_MIN):
        for group in cartel_groups(dev[i] + 0.0, suspects[i]):  # deviations are already from the median
            out[i, group] = True
    return out


def spread_bans(state: NodeState, reporters: np.ndarray, targets: np.ndarray, quorum: int = 3) -> np.ndarray:
    """Adopt bans reported by peers (ban spreading). Returns the newly banned slots (n, slots).

    A node bans peer t when at least `quorum` distinct peers it trusts (score > 0.8, not banned)
    report t and its own evidence is already against t (score below the 0.5 start): hearsay alone
    never bans a peer. A report against a peer whose record here is good (score above the start)
    costs the reporter trust (a penalty, but never below the start): a slanderer's reports stop
    counting, while an honest reporter that merely sees more than this node is not banned for it.
    """
    n, slots = state.peers.shape
    if len(reporters) == 0:
        return np.zeros((n, slots), bool)
    big = np.int64(1) << 32
    codes = np.unique(np.asarray(reporters, np.int64) * big + np.asarray(targets, np.int64))
    p = state.peers.astype(np.int64)
    query = p[:, :, None] * big + p[:, None, :]  # [i, m, t]: did peer m report peer t?
    hit = np.isin(query, codes) & (p[:, :, None] >= 0) & (p[:, None, :] >= 0)
    trusted = state.rep.trusted()
    counts = (hit & trusted[:, :, None]).sum(axis=1)
    new = (counts >= quorum) & (state.rep.score < START) & ~state.rep.banned
    state.rep.ban(new)
    slander = (hit & (state.rep.score > START)[:, None, :]).any(axis=2)
    state.rep.penalise(slander, PENALTY, START)
    return new


def receive(
    state: NodeState,
    step: learn.LocalStep,
    inbox: np.ndarray,
    present: np.ndarray,
    votes: np.ndarray,
    quorum: int = QUORUM,
) -> RoundResult:
    """Close a round for every node: evidence, reputation, aggregation, regime, fallback.

    `inbox` (n, slots, ORDER) int64 holds the proposals received from each peer slot (as BFP-16
    delivered them), `present` (n, slots) which arrived in time, `votes` (n, slots) the peers'
    regime votes (-1 for none). Updates `state` in place.
    """
    own = step.proposal
    banned_before = state.rep.banned.copy()
    score_before = state.rep.score.copy()  # votes count with the trust held when the round began
    usable = present & ~banned_before & (state.peers >= 0)
    ev = _evidence(state.weights, step, inbox, usable)
    outliers = ev.unusual | ev.violating
    inbox = state.weights[:, None].astype(np.int64) + clip_rows(
        (inbox - state.weights[:, None]).reshape(-1, own.shape[1]), RECEIVE_LIMIT
    ).reshape(inbox.shape)
    state.rep.penalise(ev.violating)
    state.rep.penalise(ev.unusual & ~ev.violating, UNUSUAL_PENALTY, UNUSUAL_FLOOR)
    state.rep.reward(usable & ~outliers)
    # cartel suspects: violators and peers with violations on record (below the floor only violations
    # bring a score); more than 3 of them pointing one way are banned together
    suspects = ev.violating | (usable & (state.rep.score < UNUSUAL_FLOOR))
    cartel = _cartels(ev.deviation, suspects)
    state.rep.ban(cartel)
    accepted = usable & ~outliers & ~state.rep.banned
    starved = accepted.sum(axis=1) < quorum  # statistics alone never cut a node off its peers:
    accepted |= starved[:, None] & usable & ev.unusual & ~ev.violating & ~state.rep.banned  # readmit the merely unusual
    # the aggregate: own proposal (trusted fully) and the accepted inbox; other slots repeat the own proposal
    values = np.concatenate([own[:, None], np.where(accepted[..., None], inbox, own[:, None])], axis=1)
    rep = np.concatenate([np.full((state.n, 1), Q16_ONE), np.where(accepted, state.rep.score, 0)], axis=1)
    if isinstance(state.aggregator, Adaptive):
        agg = state.aggregator(values, rep, regime=state.regime.regime.astype(np.int64))
    else:
        agg = state.aggregator(values, rep)
    verified = accepted.sum(axis=1) >= quorum
    state.verified = np.where(verified[:, None], agg, state.verified).astype(np.int32)
    state.weights = state.verified.copy()  # no quorum: fall back to the last verified model
    state.stale_rounds = np.where(verified, 0, state.stale_rounds + 1).astype(np.int32)
    # regime: the detector, then Storm only with 3 distinct trusted confirmations (INV-4)
    before = state.regime.regime.copy()
    own_vote = state.vote()
    detector = regime.step(state.regime, step.entropy)
    peer_votes = regime.trusted_storm_votes(np.where(usable, votes, -1), score_before).sum(axis=1)
    confirmations = peer_votes + (own_vote == regime.STORM)
    enter = ((detector == regime.STORM) | (peer_votes >= regime.STORM_MIN_CONFIRMATIONS)) & (before != regime.STORM)
    allowed = confirmations >= regime.STORM_MIN_CONFIRMATIONS
    held = np.where(detector == regime.STORM, regime.PRESTORM, detector)  # an unconfirmed Storm stays PreStorm
    new = np.where(enter, np.where(allowed, regime.STORM, held), detector).astype(np.int8)
    state.regime.regime = new
    state.regime.storm_steps = np.where(new == regime.STORM, np.where(before == regime.STORM, state.regime.storm_steps, 1), 0).astype(np.int32)
    state.calm_rounds = np.where(new == regime.CALM, np.minimum(state.calm_rounds + 1, 2**30), 0).astype(np.int32)
    new_bans = state.rep.banned & ~banned_before
    return RoundResult(accepted, outliers, new_bans, verified, confirmations)
