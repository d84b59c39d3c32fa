"""Peer tables (`qres.swarm.topology`): well-formed, seeded, and the graphs their names promise."""

from __future__ import annotations

import numpy as np
import pytest

from qres.swarm import topology
from qres.swarm.topology import TOPOLOGIES


def table(name: str, n: int, degree: int, seed: int = 0) -> np.ndarray:
    return topology.build(name, n, degree, np.random.default_rng(seed))


@pytest.mark.parametrize("name", TOPOLOGIES)
@pytest.mark.parametrize("n,degree", [(2, 1), (10, 3), (40, 8), (300, 16)])
def test_table_is_well_formed(name, n, degree):
    """(n, degree) int64; entries are node ids or -1; no self links; no peer twice in a row."""
    t = table(name, n, degree)
    assert t.shape == (n, degree) and t.dtype == np.int64
    assert ((t == -1) | ((t >= 0) & (t < n))).all()
    assert not (t == np.arange(n)[:, None]).any()
    for i, row in enumerate(t):
        real = row[row >= 0]
        assert len(set(real.tolist())) == len(real), f"row {i} repeats a peer: {row}"


@pytest.mark.parametrize("name", TOPOLOGIES)
def test_same_seed_same_table_and_different_seeds_differ(name):
    a = table(name, 60, 6, seed=7)
    np.testing.assert_array_equal(a, table(name, 60, 6, seed=7))
    assert not np.array_equal(a, table(name, 60, 6, seed=8))


def test_random_regular_in_and_out_degrees_are_the_degree():
    """Every node hears `degree` peers and is heard by `degree`, except for the few slots lost to
    self links and repeats (a permutation column per slot: about degree + C(degree, 2) of them)."""
    n, degree = 500, 8
    t = table("random_regular", n, degree, seed=3)
    real = t >= 0
    out_deg = real.sum(axis=1)
    in_deg = np.bincount(t[real], minlength=n)
    assert out_deg.max() == degree and in_deg.max() == degree
    assert out_deg.min() >= degree - 3 and in_deg.min() >= degree - 3
    empty = int((~real).sum())
    assert empty == n * degree - int(in_deg.sum())
    assert empty <= 0.03 * n * degree, f"{empty} empty slots of {n * degree}"
    assert (out_deg == degree).mean() > 0.9
    assert (in_deg == degree).mean() > 0.9


def _positions(n: int, seed: int) -> np.ndarray:
    """The positions random_geometric draws first from a generator of this seed."""
    return np.random.default_rng(seed).random((n, 2))


@pytest.mark.parametrize("n,degree", [(15, 1), (30, 5), (80, 12), (2100, 4)])  # 2100: more than one block
def test_random_geometric_rows_are_the_nearest_neighbours(n, degree):
    """Each row is exactly the `degree` nearest other nodes (brute force over the seeded positions)."""
    seed = 11
    t = table("random_geometric", n, degree, seed=seed)
    pos = _positions(n, seed)
    d2 = ((pos[:, None, :] - pos[None, :, :]) ** 2).sum(axis=2)
    np.fill_diagonal(d2, np.inf)
    nearest = np.sort(np.argsort(d2, axis=1, kind="stable")[:, :degree], axis=1)
    np.testing.assert_array_equal(t, nearest)
    assert (t >= 0).all()  # a geometric table has no empty slots


@pytest.mark.parametrize("name", TOPOLOGIES)
@pytest.mark.parametrize("n,degree", [(10, 0), (10, 10), (10, 11), (10, -2), (1, 1)])
def test_bad_degree_raises_naming_it(name, n, degree):
    with pytest.raises(ValueError, match="degree") as e:
        table(name, n, degree)
    assert str(degree) in str(e.value)


def test_unknown_topology_is_rejected_with_the_choices():
    with pytest.raises(ValueError, match="nope") as e:
        table("nope", 10, 3)
    for name in TOPOLOGIES:
        assert name in str(e.value)
