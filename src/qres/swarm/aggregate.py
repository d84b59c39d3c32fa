"""Robust aggregation of Q16.16 model updates: interchangeable aggregator objects.

Each aggregator (like a Flower strategy) has a ``name`` and is called as
``agg(updates, reputation=None) -> np.ndarray``:

- ``updates``: integer array of Q16.16 raws (values in the int32 range), shape ``(k, dim)``
  (k updates from k peers) or, batched over nodes, ``(nodes, k, dim)``.
- ``reputation``: Q16.16 raws in ``[0, 65536]`` (0.0 .. 1.0), shape ``updates.shape[:-1]``;
  used by :class:`ReputationWeighted` and :class:`Adaptive`, ignored (but checked if given)
  by the others.
- result: int64 Q16.16 raws, shape ``(dim,)`` or ``(nodes, dim)``.  A mean of int32
  values always lies in the int32 range.

Determinism: everything that decides a result is exact integer arithmetic.  Every division
rounds **to nearest, ties away from zero** (as :mod:`qres.fixed`), e.g. the median of
``[1, 2]`` raw is ``2`` and of ``[-1, -2]`` is ``-2``.  Results are bit-identical on every
platform and independent of the order of the rows (up to Krum's tie rule, which breaks
exact score ties by the lowest row index).

Krum distances are exact.  Each raw ``x`` is split into 16-bit limbs ``x = hi * 2**16 + lo``
(``hi`` in ``[-2**15, 2**15)``, ``lo`` in ``[0, 2**16)``) and the Gram matrix is assembled
from three limb products ``H H^T``, ``H L^T``, ``L L^T``.  These are computed with float64
matrix multiplication (BLAS) over chunks of at most ``2**20`` coordinates: every product of
two limbs is an integer below ``2**32`` and every partial sum stays below ``2**52``, so the
float64 results are exact integers whatever the summation order (FMA, blocking, threads),
and they are converted to int64 before anything else.  Squared distances (up to about
``2**64 * dim``) are then held exactly as two int64 words ``(high, low)`` with
``value = high * 2**32 + low``, ``0 <= low < 2**32``, and ranked lexicographically.
Limit: ``k * dim <= 2**31`` for Krum, else ``ValueError``.
"""

from __future__ import annotations

from fractions import Fraction

import numpy as np

from ..fixed import Q16_MAX, Q16_MIN, Q16_ONE, q16_mul, q16_sqrt, to_q16
from .regime import CALM, REGIME_NAMES, STORM

__all__ = [
    "WEIGHT_CAP_Q16",
    "Adaptive",
    "Aggregator",
    "Krum",
    "Mean",
    "Median",
    "MultiKrum",
    "ReputationWeighted",
    "TrimmedMean",
    "reputation_exponent",
    "reputation_weights",
    "squared_distances",
]

WEIGHT_CAP_Q16 = int(to_q16(0.8))  # 52429: no single peer weighs more than 0.8
_CHUNK = 1 << 20  # coordinates per exact float64 limb product (sums stay < 2**52)
_MASK16 = np.int64(0xFFFF)
_MASK32 = np.int64(0xFFFFFFFF)


# ----------------------------------------------------------------------------- helpers


def _div_round(num: np.ndarray, den) -> np.ndarray:
    """round(num / den), ties away from zero, for int64 ``num`` and positive int64 ``den`` (broadcast).

    Exact for |num| < 2**63 and 0 < den < 2**62 (no ``2 * num`` overflow).
    """
    num = np.asarray(num, dtype=np.int64)
    den = np.asarray(den, dtype=np.int64)
    a = np.abs(num)
    q, r = np.divmod(a, den)
    q = q + (r >= den - r)  # 2r >= den without overflow
    return np.where(num < 0, -q, q)


def _count_arg(owner: str, name: str, v, lo: int) -> int:
    """``v`` as an int >= ``lo`` (bools refused), else ``ValueError`` naming ``owner`` and ``name``."""
    if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < lo:
        kind = "non-negative" if lo == 0 else "positive"
        raise ValueError(f"{owner}: {name} must be a {kind} int, got {v!r}")
    return int(v)


def _check_updates(updates) -> tuple[np.ndarray, bool]:
    """Validate ``updates``; return it as int64 ``(nodes, k, dim)`` and whether it was batched."""
    if not isinstance(updates, np.ndarray):
        updates = np.asarray(updates)
    if updates.dtype.kind not in "iu":
        raise ValueError(f"updates: expected an integer array of Q16.16 raws, got dtype {updates.dtype}")
    if updates.ndim not in (2, 3):
        raise ValueError(f"updates: expected shape (k, dim) or (nodes, k, dim), got {updates.shape}")
    if updates.shape[-2] < 1:
        raise ValueError(f"updates: need at least one update (k >= 1), got shape {updates.shape}")
    info = np.iinfo(updates.dtype)
    if updates.size and (info.min < Q16_MIN or info.max > Q16_MAX):
        lo, hi = int(updates.min()), int(updates.max())
        if lo < Q16_MIN or hi > Q16_MAX:
            raise ValueError(
                f"updates: values must lie in the int32 range [{Q16_MIN}, {Q16_MAX}], got [{lo}, {hi}]"
            )
    batched = updates.ndim == 3
    x = updates.astype(np.int64, copy=False)
    return (x if batched else x[None]), batched


def _check_reputation(reputation, shape: tuple[int, int], batched: bool) -> np.ndarray:
    """Validate reputations (Q16.16 in [0, 65536]) against ``(nodes, k)``; return int64 ``(nodes, k)``."""
    r = np.asarray(reputation)
    want = shape if batched else shape[1:]
    if r.shape != want:
        raise ValueError(f"reputation: expected shape {want} (one per update), got {r.shape}")
    if r.dtype.kind not in "iu":
        raise ValueError(f"reputation: expected integer Q16.16 raws, got dtype {r.dtype}")
    if r.size and (int(r.min()) < 0 or int(r.max()) > Q16_ONE):
        raise ValueError(
            f"reputation: values must lie in [0, {Q16_ONE}] (0.0 .. 1.0), got [{int(r.min())}, {int(r.max())}]"
        )
    r = r.astype(np.int64)
    return r if batched else r[None]


def _mean_rows(x: np.ndarray) -> np.ndarray:
    """Rounded mean over axis -2 of int64 ``(nodes, n, dim)`` (|x| <= 2**31, n < 2**31)."""
    return _div_round(x.sum(axis=-2), x.shape[-2])


# ----------------------------------------------------------------------------- aggregators


class Aggregator:
    """Base class: validates input, handles the optional node axis, calls ``_aggregate``."""

    name = "aggregator"

    def __call__(self, updates, reputation=None) -> np.ndarray:
        x, batched = _check_updates(updates)
        rep = None if reputation is None else _check_reputation(reputation, x.shape[:2], batched)
        out = self._aggregate(x, rep)
        return out if batched else out[0]

    def _aggregate(self, x: np.ndarray, rep: np.ndarray | None) -> np.ndarray:  # (nodes, k, dim) -> (nodes, dim)
        raise NotImplementedError

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"


class Mean(Aggregator):
    """Coordinate-wise mean, rounded to nearest (ties away from zero)."""

    name = "mean"

    def _aggregate(self, x, rep):
        return _mean_rows(x)


class TrimmedMean(Aggregator):
    """Coordinate-wise trimmed mean: drop the ``t = floor(beta * k)`` smallest and largest values per coordinate.

    ``beta`` in ``[0, 0.5)``; ``floor(beta * k)`` is computed exactly from the decimal value of
    ``beta`` (``Fraction(str(beta))``, so 0.29 * 100 -> 29), a ``Fraction`` is used as given.
    The mean of the remaining ``k - 2t`` values is rounded to nearest, ties away from zero.
    """

    name = "trimmed_mean"

    def __init__(self, beta=0.2):
        b = beta if isinstance(beta, Fraction) else Fraction(str(beta))
        if not 0 <= b < Fraction(1, 2):
            raise ValueError(f"TrimmedMean: beta must lie in [0, 0.5), got {beta!r}")
        self.beta = beta
        self._beta = b

    def cut(self, k: int) -> int:
        """Number of values dropped at each end for ``k`` updates."""
        return int(self._beta * k)  # floor, since beta >= 0

    def _aggregate(self, x, rep):
        k = x.shape[1]
        t = self.cut(k)
        if t == 0:
            return _mean_rows(x)
        # After partitioning at t and k-t-1, rows t..k-t-1 hold exactly the kept multiset.
        part = np.partition(x, (t, k - t - 1), axis=1)
        return _mean_rows(part[:, t : k - t])

    def __repr__(self) -> str:
        return f"TrimmedMean(beta={self.beta!r})"


class Median(Aggregator):
    """Coordinate-wise median; for even k the mean of the two middle values, ties away from zero."""

    name = "median"

    def _aggregate(self, x, rep):
        k = x.shape[1]
        if k % 2:
            return np.partition(x, k // 2, axis=1)[:, k // 2]
        part = np.partition(x, (k // 2 - 1, k // 2), axis=1)
        s = part[:, k // 2 - 1] + part[:, k // 2]  # |s| <= 2**32
        return _div_round(s, 2)


def _gram_limbs(x: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Exact limb Gram products of int64 ``(nodes, k, dim)``: ``(H H^T, H L^T, L L^T)`` as int64."""
    nodes, k, dim = x.shape
    a = np.zeros((nodes, k, k), np.int64)
    m = np.zeros((nodes, k, k), np.int64)
    c = np.zeros((nodes, k, k), np.int64)
    for s in range(0, dim, _CHUNK):  # one pass unless dim > 2**20
        blk = x[:, :, s : s + _CHUNK]
        h = (blk >> 16).astype(np.float64)
        lo = (blk & _MASK16).astype(np.float64)
        ht = h.transpose(0, 2, 1)
        lt = lo.transpose(0, 2, 1)
        a += np.matmul(h, ht).astype(np.int64)
        m += np.matmul(h, lt).astype(np.int64)
        c += np.matmul(lo, lt).astype(np.int64)
    return a, m, c


def _normalize(high: np.ndarray, low: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Carry ``low`` into ``high`` so that ``0 <= low < 2**32`` (value ``high * 2**32 + low`` unchanged)."""
    return high + (low >> 32), low & _MASK32


def squared_distances(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Exact pairwise squared Euclidean distances of int64 ``(nodes, k, dim)`` Q16.16 rows.

    Returns ``(high, low)``, int64 ``(nodes, k, k)`` each, with distance ``high * 2**32 + low``
    and ``0 <= low < 2**32``.
    """
    a, m, c = _gram_limbs(x)
    b = m + m.transpose(0, 2, 1)  # cross term of the Gram matrix, times 2**16

    def dist(g):  # g_ii + g_jj - 2 g_ij, per limb
        d = np.diagonal(g, axis1=1, axis2=2)
        return d[:, :, None] + d[:, None, :] - 2 * g

    da, db, dc = dist(a), dist(b), dist(c)
    # value = da * 2**32 + db * 2**16 + dc = (da + db_hi) * 2**32 + (db_lo * 2**16 + dc)
    return _normalize(da + (db >> 16), ((db & _MASK16) << 16) + dc)


class Krum(Aggregator):
    """Krum (Blanchard et al. 2017): the update with the smallest sum of squared distances
    to its ``k - f - 2`` nearest other updates; exact score ties go to the lowest row index.

    Needs ``k > 2f + 2``.  The result is that update itself (int64).
    """

    name = "krum"

    def __init__(self, f: int):
        self.f = _count_arg(type(self).__name__, "f", f, 0)

    def _check_k(self, k: int, dim: int) -> None:
        if k <= 2 * self.f + 2:
            raise ValueError(
                f"{type(self).__name__}: k={k} updates is too few for f={self.f}: need k > 2f + 2 = {2 * self.f + 2}"
            )
        if k * dim > 1 << 31:
            raise ValueError(f"{type(self).__name__}: k * dim = {k * dim} exceeds 2**31 (exact int64 scoring)")

    def scores(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Exact Krum scores of int64 ``(nodes, k, dim)``: ``(high, low)`` int64 ``(nodes, k)``, value ``high * 2**32 + low``."""
        _, k, dim = x.shape
        self._check_k(k, dim)
        high, low = squared_distances(x)
        idx = np.arange(k)
        high[:, idx, idx] = np.iinfo(np.int64).max  # never one's own neighbour
        order = np.lexsort((low, high), axis=-1)[:, :, : k - self.f - 2]
        sh = np.take_along_axis(high, order, axis=-1).sum(axis=-1)
        sl = np.take_along_axis(low, order, axis=-1).sum(axis=-1)
        return _normalize(sh, sl)

    def ranking(self, x: np.ndarray) -> np.ndarray:
        """Row indices of int64 ``(nodes, k, dim)`` from best (lowest score) to worst, ties by index."""
        sh, sl = self.scores(x)
        idx = np.broadcast_to(np.arange(x.shape[1]), sh.shape)
        return np.lexsort((idx, sl, sh), axis=-1)

    def select(self, updates) -> np.ndarray:
        """Index of the row Krum picks: a 0-d array for ``(k, dim)``, ``(nodes,)`` for batched input."""
        x, batched = _check_updates(updates)
        sel = self.ranking(x)[:, 0]
        return sel if batched else sel[0]

    def _aggregate(self, x, rep):
        best = self.ranking(x)[:, 0]
        return x[np.arange(x.shape[0]), best]

    def __repr__(self) -> str:
        return f"Krum(f={self.f})"


class MultiKrum(Krum):
    """Multi-Krum: rounded mean of the ``m`` updates with the best Krum scores (ties by lowest index).

    Needs ``k > 2f + 2`` and ``1 <= m <= k``.
    """

    name = "multi_krum"

    def __init__(self, f: int, m: int):
        super().__init__(f)
        self.m = _count_arg("MultiKrum", "m", m, 1)

    def select(self, updates) -> np.ndarray:
        """Indices of the ``m`` rows kept, best first: ``(m,)`` or ``(nodes, m)``."""
        x, batched = _check_updates(updates)
        self._check_m(x.shape[1])
        sel = self.ranking(x)[:, : self.m]
        return sel if batched else sel[0]

    def _check_m(self, k: int) -> None:
        if self.m > k:
            raise ValueError(f"MultiKrum: m={self.m} exceeds the number of updates k={k}")

    def _aggregate(self, x, rep):
        self._check_m(x.shape[1])
        best = self.ranking(x)[:, : self.m]
        kept = np.take_along_axis(x, best[:, :, None], axis=1)
        return _mean_rows(kept)

    def __repr__(self) -> str:
        return f"MultiKrum(f={self.f}, m={self.m})"


def reputation_exponent(nodes_in_swarm: int) -> float:
    """The exponent g for a swarm of this size: 2.0 below 20 nodes, 3.0 for 20..50, 3.5 above 50."""
    if nodes_in_swarm < 20:
        return 2.0
    if nodes_in_swarm <= 50:
        return 3.0
    return 3.5


def reputation_weights(reputation, nodes_in_swarm: int) -> np.ndarray:
    """Weights ``min(rep**g, 0.8)`` in Q16.16 (int64) for reputations in Q16.16 ``[0, 65536]``.

    g = 2: ``round(rep**2 / 2**16)``; g = 3: ``round(rep**3 / 2**32)`` (one rounding each, exact);
    g = 3.5: ``q16_mul(round(rep**3 / 2**32), q16_sqrt(rep))`` (the square root rounds down,
    then one more rounding).  Rounding is to nearest, ties away from zero; the cap is
    ``WEIGHT_CAP_Q16`` = 52429 (0.8).
    """
    r = np.asarray(reputation, dtype=np.int64)
    g = reputation_exponent(nodes_in_swarm)
    if g == 2.0:
        w = _div_round(r * r, 1 << 16)
    else:
        w = _div_round(r * r * r, 1 << 32)  # r**3 <= 2**48
        if g == 3.5:
            w = np.asarray(q16_mul(w, np.asarray(q16_sqrt(r)))).astype(np.int64)
    return np.minimum(w, WEIGHT_CAP_Q16)


class ReputationWeighted(Aggregator):
    """Reputation-weighted mean: weights ``w_i = min(rep_i**g, 0.8)`` (see :func:`reputation_weights`),
    g chosen by the swarm size ``nodes_in_swarm`` (not by k).

    Result ``round(sum(w_i * x_i) / sum(w_i))`` per coordinate, exact in int64 (needs k < 2**16),
    ties away from zero.  If every weight is zero (all reputations too low) the result is the
    zero vector: no trusted update means no change.  ``reputation`` is required.
    """

    name = "reputation_weighted"

    def __init__(self, nodes_in_swarm: int):
        self.nodes_in_swarm = _count_arg(type(self).__name__, "nodes_in_swarm", nodes_in_swarm, 1)
        self.g = reputation_exponent(self.nodes_in_swarm)

    def _weighted(self, x, rep):
        if rep is None:
            raise ValueError(f"{type(self).__name__}: reputation is required (one Q16.16 value per update)")
        if x.shape[1] >= 1 << 16:
            raise ValueError(f"{type(self).__name__}: k={x.shape[1]} updates, at most 65535")
        w = reputation_weights(rep, self.nodes_in_swarm)  # (nodes, k), each <= 52429 < 2**16
        num = np.einsum("nk,nkd->nd", w, x)  # |w x| < 2**47, k < 2**16 -> < 2**63
        den = w.sum(axis=1)[:, None]
        out = _div_round(num, np.maximum(den, 1))
        return np.where(den > 0, out, 0)

    def _aggregate(self, x, rep):
        return self._weighted(x, rep)

    def __repr__(self) -> str:
        return f"{type(self).__name__}(nodes_in_swarm={self.nodes_in_swarm})"


class Adaptive(ReputationWeighted):
    """Reputation-weighted mean in regime "calm", ``TrimmedMean(0.2)`` in "prestorm" and "storm".

    ``regime`` is a name (``"calm"``, ``"prestorm"``, ``"storm"``, any case) or the codes
    0, 1, 2 of :mod:`qres.swarm.regime`; for batched input it may also be an int array of
    shape ``(nodes,)``.  ``reputation`` is required whenever some node is in calm.
    """

    name = "adaptive"

    def __init__(self, nodes_in_swarm: int):
        super().__init__(nodes_in_swarm)
        self.trimmed = TrimmedMean(0.2)

    def __call__(self, updates, reputation=None, regime="calm") -> np.ndarray:
        x, batched = _check_updates(updates)
        rep = None if reputation is None else _check_reputation(reputation, x.shape[:2], batched)
        codes = self._regime_codes(regime, x.shape[0], batched)
        calm = codes == CALM
        if calm.all():
            out = self._weighted(x, rep)
        elif not calm.any():
            out = self.trimmed._aggregate(x, rep)
        else:
            out = np.where(calm[:, None], self._weighted(x, rep), self.trimmed._aggregate(x, rep))
        return out if batched else out[0]

    @staticmethod
    def _regime_codes(regime, nodes: int, batched: bool) -> np.ndarray:
        if isinstance(regime, str):
            if regime.lower() not in REGIME_NAMES:
                raise ValueError(f"Adaptive: unknown regime {regime!r}, expected one of {sorted(REGIME_NAMES)}")
            return np.full(nodes, REGIME_NAMES.index(regime.lower()))
        r = np.asarray(regime)
        if r.dtype.kind not in "iu" or r.ndim > 1 or (r.ndim == 1 and (not batched or r.shape != (nodes,))):
            raise ValueError(f"Adaptive: regime must be a name, a code 0..2, or a (nodes,) code array; got {regime!r}")
        if r.size and (int(r.min()) < 0 or int(r.max()) > STORM):
            raise ValueError(f"Adaptive: regime codes must be 0 (calm), 1 (prestorm) or 2 (storm), got {regime!r}")
        return np.broadcast_to(r, (nodes,)).astype(np.int64)
