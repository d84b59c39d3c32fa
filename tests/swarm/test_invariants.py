"""Invariants INV-1..INV-3 at the aggregation rule (DESIGN.md): influence bounded by weight share.

Each test measures how far one node, k Sybils or a cartel can move the reputation-weighted
consensus, and checks it against the bound the design states; a rule that gave attackers more
(no cap, weights not falling with reputation, Sybils counted at full weight) fails them.
"""

import numpy as np
import pytest

from qres.fixed import Q16_ONE, to_q16
from qres.swarm.aggregate import ReputationWeighted, reputation_weights

N = 100  # swarm size (exponent 3.5)
DIM = 16


def _honest(k: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return rng.integers(-5000, 5000, size=(k, DIM)).astype(np.int64)


def _share(weights: np.ndarray, idx) -> float:
    return float(weights[idx].sum()) / float(weights.sum())


@pytest.mark.parametrize("rep", [1.0, 0.9, 0.5, 0.2, 0.05, 0.0])
def test_inv1_one_node_moves_the_consensus_by_at_most_its_weight_share(rep):
    agg = ReputationWeighted(N)
    updates = _honest(20)
    reps = np.full(20, to_q16(0.9), np.int64)
    reps[0] = to_q16(rep)
    base = agg(updates, reps)
    push = updates.copy()
    push[0] += 1_000_000  # node 0 pushes as hard as it can
    moved = np.abs(agg(push, reps) - base).max()
    share = _share(reputation_weights(reps, N), 0)
    assert moved <= share * 1_000_000 + 1  # + one unit of rounding
    if rep == 0.0:
        assert moved == 0


def test_inv1_influence_falls_continuously_to_zero_with_reputation():
    agg = ReputationWeighted(N)
    updates = _honest(20)
    updates[0] += 1_000_000
    moves = []
    for rep in np.linspace(1.0, 0.0, 21):
        reps = np.full(20, to_q16(0.9), np.int64)
        reps[0] = to_q16(float(rep))
        moves.append(int(np.abs(agg(updates, reps) - agg(updates[1:], reps[1:])).max()))
    assert all(a >= b for a, b in zip(moves, moves[1:]))  # never rises as reputation falls
    assert moves[-1] <= 1 and moves[0] > 0
    assert max(np.diff(moves[::-1])) < 0.6 * moves[0]  # no jump: the weight is continuous


@pytest.mark.parametrize("sybils", [1, 5, 20, 80])
def test_inv2_sybils_add_at_most_their_diluted_share(sybils):
    agg = ReputationWeighted(N)
    honest = _honest(30)
    reps_h = np.full(30, to_q16(0.9), np.int64)
    target = np.full(DIM, 1_000_000, np.int64)
    fresh = np.full(sybils, Q16_ONE // 2, np.int64)  # new identities start at 0.5
    updates = np.concatenate([honest, np.tile(target, (sybils, 1))])
    reps = np.concatenate([reps_h, fresh])
    moved = np.abs(agg(updates, reps) - agg(honest, reps_h)).max()
    w = reputation_weights(reps, N)
    diluted = _share(w, slice(30, None))
    assert moved <= diluted * 1_100_000 + 1
    # fresh identities are cheap but light: 0.5^3.5 is about a tenth of a trusted node's weight
    assert w[-1] * 7 < w[0]


@pytest.mark.parametrize("colluders", [3, 6, 10])
def test_inv3_cartel_drift_is_bounded_by_its_weight_share_times_the_bias(colluders):
    agg = ReputationWeighted(N)
    honest = _honest(40)
    bias = 20_000
    cartel = honest[:colluders] + bias  # same data as honest peers, plus a shared bias
    updates = np.concatenate([honest, cartel])
    reps = np.concatenate([np.full(40, to_q16(0.9)), np.full(colluders, to_q16(0.6))]).astype(np.int64)
    drift = np.abs(agg(updates, reps) - agg(honest, reps[:40])).max()
    share = _share(reputation_weights(reps, N), slice(40, None))
    assert drift <= share * (bias + 10_000) + 1  # their share of (bias + their data's spread)
    # no superlinear gain: doubling the cartel at most doubles the drift
    bigger = np.concatenate([honest, cartel, cartel])
    reps2 = np.concatenate([reps, reps[40:]])
    drift2 = np.abs(agg(bigger, reps2) - agg(honest, reps[:40])).max()
    assert drift2 <= 2 * drift + 1
