"""Reputation: evidence-based scores in [0, 1] (Q16.16), bans, and the evidence tests.

Every node starts at 0.5; evidence raises or lowers the score and a node below 0.2 is banned.
Bans spread between nodes by `node.spread_bans`. Evidence comes from each round's updates: a
Grubbs test (alpha = 0.01) flags updates whose distance to the coordinate-wise median is an
outlier, and a cartel check groups suspects whose deviations point the same way, so that more than
three linked suspects are banned together.

Scores are integers; the statistics behind the evidence are float64 (the same IEEE operations
everywhere), and a decision is only taken with a margin, never on a tie.
"""

from __future__ import annotations

import math

import numpy as np

from ..fixed import Q16_ONE, to_q16

START = Q16_ONE // 2  # every node starts at 0.5
BAN_BELOW = int(to_q16(0.2))
TRUSTED_ABOVE = int(to_q16(0.8))  # 52429: a trusted peer (ban votes, Storm confirmation) is above this
REWARD = int(to_q16(0.02))  # per round of good evidence
PENALTY = int(to_q16(0.15))  # per round of bad evidence
CARTEL_MIN = 4  # more than three linked suspects are banned as a group
CARTEL_COSINE = 0.8


class Reputation:
    """Scores (int32 Q16.16) and bans of n nodes (or of a (nodes, peers) table: one row per observer)."""

    def __init__(self, n: int | tuple[int, ...]):
        self.score = np.full(n, START, np.int32)
        self.banned = np.zeros(n, bool)

    def trusted(self) -> np.ndarray:
        """Nodes above 0.8 and not banned."""
        return (self.score > TRUSTED_ABOVE) & ~self.banned

    def reward(self, mask: np.ndarray, amount_q16: int = REWARD) -> None:
        """Raise the scores of `mask` (saturating at 1.0); banned nodes stay banned."""
        self.score = np.minimum(self.score.astype(np.int64) + amount_q16 * np.asarray(mask), Q16_ONE).astype(np.int32)

    def penalise(self, mask: np.ndarray, amount_q16: int = PENALTY, floor_q16: int = 0) -> None:
        """Lower the scores of `mask` (not below `floor_q16`, nor raise one already below it);
        a score below 0.2 bans the node."""
        lowered = np.maximum(self.score.astype(np.int64) - amount_q16 * np.asarray(mask), floor_q16)
        self.score = np.minimum(self.score, lowered).astype(np.int32)
        self.banned |= self.score < BAN_BELOW

    def ban(self, mask: np.ndarray) -> None:
        """Ban outright (a cartel, or a ban adopted from peers)."""
        self.banned |= np.asarray(mask, bool)
        self.score = np.where(self.banned, np.minimum(self.score, BAN_BELOW - 1), self.score).astype(np.int32)


def _betacf(a: float, b: float, x: float) -> float:
    """Continued fraction of the regularised incomplete beta function (modified Lentz)."""
    tiny = 1e-300
    qab, qap, qam = a + b, a + 1.0, a - 1.0
    c, d = 1.0, 1.0 - qab * x / qap
    d = 1.0 / (d if abs(d) > tiny else tiny)
    h = d
    for m in range(1, 300):
        m2 = 2 * m
        aa = m * (b - m) * x / ((qam + m2) * (a + m2))
        d = 1.0 + aa * d
        d = 1.0 / (d if abs(d) > tiny else tiny)
        c = 1.0 + aa / c if abs(1.0 + aa / c) > tiny else tiny
        h *= d * c
        aa = -(a + m) * (qab + m) * x / ((a + m2) * (qap + m2))
        d = 1.0 + aa * d
        d = 1.0 / (d if abs(d) > tiny else tiny)
        c = 1.0 + aa / c if abs(1.0 + aa / c) > tiny else tiny
        delta = d * c
        h *= delta
        if abs(delta - 1.0) < 1e-15:
            break
    return h


def _betainc(a: float, b: float, x: float) -> float:
    if x <= 0:
        return 0.0
    if x >= 1:
        return 1.0
    front = math.exp(math.lgamma(a + b) - math.lgamma(a) - math.lgamma(b) + a * math.log(x) + b * math.log1p(-x))
    if x < (a + 1) / (a + b + 2):
        return front * _betacf(a, b, x) / a
    return 1.0 - front * _betacf(b, a, 1 - x) / b


def t_upper_quantile(p: float, dof: int) -> float:
    """t with P(T > t) = p for Student's t with `dof` degrees of freedom (bisection)."""
    lo, hi = 0.0, 1e6
    for _ in range(200):
        mid = 0.5 * (lo + hi)
        tail = 0.5 * _betainc(dof / 2.0, 0.5, dof / (dof + mid * mid))
        if tail > p:
            lo = mid
        else:
            hi = mid
    return 0.5 * (lo + hi)


def grubbs_critical(k: int, alpha: float = 0.01) -> float:
    """One-sided Grubbs critical value for the largest of k values."""
    t = t_upper_quantile(alpha / k, k - 2)
    return (k - 1) / math.sqrt(k) * math.sqrt(t * t / (k - 2 + t * t))


def deviations(updates: np.ndarray) -> np.ndarray:
    """Each update minus the coordinate-wise median (float64, shape (k, dim))."""
    u = np.asarray(updates, np.float64)
    return u - np.median(u, axis=0)


def grubbs_outliers(updates: np.ndarray, alpha: float = 0.01, max_outliers: int | None = None) -> np.ndarray:
    """Mask of updates whose distance to the coordinate-wise median is an outlier (Grubbs, repeated).

    The test is applied again after removing each outlier found, up to `max_outliers` (default:
    fewer than half of the updates), and only where at least 3 updates remain.
    """
    dist = np.linalg.norm(deviations(updates), axis=1)
    return grubbs_outlier_rows(dist[None], np.ones((1, len(dist)), bool), alpha, max_outliers)[0]


_CRITICAL: dict[tuple[int, float], float] = {}


def _critical(k: int, alpha: float) -> float:
    if (k, alpha) not in _CRITICAL:
        _CRITICAL[k, alpha] = grubbs_critical(k, alpha)
    return _CRITICAL[k, alpha]


def grubbs_outlier_rows(dist: np.ndarray, valid: np.ndarray, alpha: float = 0.01, max_outliers: int | None = None) -> np.ndarray:
    """The repeated Grubbs test on each row of distances (float64 (rows, k)) over its `valid` entries;
    returns the mask of outliers (rows, k). See `grubbs_outliers` for the rule."""
    dist = np.asarray(dist, np.float64)
    rows, k = dist.shape
    out = np.zeros((rows, k), bool)
    live = np.asarray(valid, bool).copy()
    limit = (k - 1) // 2 if max_outliers is None else max_outliers
    table = np.array([_critical(m, alpha) if m >= 3 else np.inf for m in range(k + 1)])
    for _ in range(limit):
        m = live.sum(axis=1)
        safe = np.maximum(m, 2)
        d = np.where(live, dist, 0.0)
        mean = d.sum(axis=1) / safe
        sd = np.sqrt(np.where(live, (dist - mean[:, None]) ** 2, 0.0).sum(axis=1) / (safe - 1))
        top = np.argmax(np.where(live, dist, -np.inf), axis=1)
        g = (dist[np.arange(rows), top] - mean) / np.where(sd > 0, sd, 1.0)
        hit = (m >= 3) & (sd > 0) & (g > table[m] * (1 + 1e-9))  # decide only with a margin
        if not hit.any():
            break
        out[np.flatnonzero(hit), top[hit]] = True
        live[np.flatnonzero(hit), top[hit]] = False
    return out


def cartel_groups(updates: np.ndarray, suspects: np.ndarray, min_size: int = CARTEL_MIN, cosine: float = CARTEL_COSINE) -> list[np.ndarray]:
    """Groups of suspects whose deviations from the median point the same way (pairwise cosine
    above `cosine`), each of at least `min_size` members: a coordinated cartel."""
    idx = np.flatnonzero(np.asarray(suspects, bool))
    if len(idx) < min_size:
        return []
    dev = deviations(updates)[idx]
    norms = np.linalg.norm(dev, axis=1)
    unit = dev / np.where(norms > 0, norms, 1.0)[:, None]
    linked = (unit @ unit.T) > cosine
    groups, seen = [], np.zeros(len(idx), bool)
    for i in range(len(idx)):  # connected components over the (small) suspect set
        if seen[i]:
            continue
        comp, stack = [], [i]
        seen[i] = True
        while stack:
            j = stack.pop()
            comp.append(j)
            for nxt in np.flatnonzero(linked[j] & ~seen):
                seen[nxt] = True
                stack.append(int(nxt))
        if len(comp) >= min_size:
            groups.append(np.sort(idx[comp]))
    return groups
