"""Who hears whom: peer tables (nodes, degree) of node indices for the simulator.

Row i lists the nodes whose gossip node i receives (its in-neighbours); -1 marks an empty slot.
Both builders take a seeded numpy Generator and give the same table for the same seed.
"""

from __future__ import annotations

import numpy as np

TOPOLOGIES = ("random_regular", "random_geometric")


def random_regular(n: int, degree: int, rng: np.random.Generator) -> np.ndarray:
    """A random directed regular graph: every node hears `degree` others and is heard by `degree`
    (a union of random derangement-like permutations; repeated or self links become empty slots)."""
    if not 1 <= degree < n:
        raise ValueError(f"random_regular: degree must be 1..{n - 1} for {n} nodes, got {degree}")
    cols = []
    for _ in range(degree):
        perm = rng.permutation(n)
        cols.append(perm)
    peers = np.stack(cols, axis=1).astype(np.int64)
    peers[peers == np.arange(n)[:, None]] = -1
    srt = np.sort(peers, axis=1)
    dup = np.zeros_like(peers, bool)
    dup[:, 1:] = (srt[:, 1:] == srt[:, :-1]) & (srt[:, 1:] >= 0)
    srt[dup] = -1
    return srt


def random_geometric(n: int, degree: int, rng: np.random.Generator) -> np.ndarray:
    """Nodes placed uniformly in the unit square; each hears its `degree` nearest neighbours
    (radio range adapted to the density). Computed in blocks, so memory stays O(n x block)."""
    if not 1 <= degree < n:
        raise ValueError(f"random_geometric: degree must be 1..{n - 1} for {n} nodes, got {degree}")
    pos = rng.random((n, 2))
    out = np.empty((n, degree), np.int64)
    block = max(1, 4_000_000 // n)
    for start in range(0, n, block):
        p = pos[start : start + block]
        d2 = ((p[:, None, :] - pos[None, :, :]) ** 2).sum(axis=2)
        d2[np.arange(len(p)), np.arange(start, start + len(p))] = np.inf
        nearest = np.argpartition(d2, degree - 1, axis=1)[:, :degree]
        out[start : start + len(p)] = np.sort(nearest, axis=1)
    return out


def build(name: str, n: int, degree: int, rng: np.random.Generator) -> np.ndarray:
    """The peer table of topology `name` (one of TOPOLOGIES)."""
    if name == "random_regular":
        return random_regular(n, degree, rng)
    if name == "random_geometric":
        return random_geometric(n, degree, rng)
    raise ValueError(f"unknown topology {name!r}; choose one of {', '.join(TOPOLOGIES)}")
