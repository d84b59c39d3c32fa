"""Predictors: the part of a model that guesses the next integer of a channel from its past.

Every predictor has a one-byte `predictor_id`, serialises to bytes, and is fitted on the encoder side
(floats are allowed there); what a decoder runs is integer-only. The linear predictor is the one the
codec kernel runs today; LSTM and TAAF predictors register new ids later.

LinearPredictor: Q16.16 weights on lags. A *short* part uses lags 1..p and serves from row p on; an
optional *full* part adds up to two seasonal lag pairs (a daily and a weekly cycle, say) and
serves once the longest lag is available. Rows 1..p-1 use *warm-up* predictors of order min(row, W) (W <= 3; the previous value
when there are none), and the very first value is predicted as `level`. With `integer_weights` the weights are whole numbers applied modulo 2^64, for channels
whose integers are too wide for exact Q16.16 products.
"""

from __future__ import annotations

import abc
from dataclasses import dataclass, field

import numpy as np

from ..fixed import Q16_ONE, to_q16
from .varint import Reader, put_svarint, put_uvarint

MAX_ORDER = 16
MAX_WARM = 3  # low-order predictors for the first rows of a frame, before the short part applies
MAX_LAGS = 24
MAX_LAG = 4096
MAX_WEIGHT = 2**23  # |w| < 128 in Q16.16
NARROW_LIMIT = 2**36  # |z| below this keeps Q16.16 products inside int64


class Predictor(abc.ABC):
    """Interface of every predictor a model can hold.

    A predictor kind registers itself with `register_predictor` under its one-byte id, so genes
    can name it. (The codec kernel runs linear predictors; a new kind brings its own kernel path.)
    """

    predictor_id: int

    @abc.abstractmethod
    def to_bytes(self) -> bytes:
        """The predictor's state, as stored in a model (gene)."""

    @classmethod
    def from_bytes(cls, data: bytes) -> "Predictor":
        """Parse `to_bytes` output; raises QresFormatError on anything malformed."""
        r = Reader(data, what=f"{cls.__name__}")
        pred = cls.read(r)
        if r.remaining():
            raise r.fail("trailing bytes")
        return pred

    @classmethod
    @abc.abstractmethod
    def read(cls, r: Reader) -> "Predictor":
        """Parse one predictor from a Reader positioned at its bytes (QresFormatError if malformed)."""


PREDICTORS: dict[int, type[Predictor]] = {}


def register_predictor(cls: type[Predictor]) -> type[Predictor]:
    """Class decorator: make a predictor kind readable from genes under its predictor_id."""
    pid = cls.predictor_id
    if pid in PREDICTORS and PREDICTORS[pid] is not cls:
        raise ValueError(f"predictor id {pid} is taken by {PREDICTORS[pid].__name__}")
    PREDICTORS[pid] = cls
    return cls


@register_predictor
@dataclass(frozen=True)
class LinearPredictor(Predictor):
    """Fixed-point linear prediction over lags (see module doc). Weights are Q16.16 int32 raws."""

    level: int = 0
    short_weights: tuple[int, ...] = ()  # lags 1..p
    full_lags: tuple[int, ...] = ()
    full_weights: tuple[int, ...] = ()
    integer_weights: bool = False
    warm_weights: tuple[tuple[int, ...], ...] = ()  # orders 1..W (W <= MAX_WARM), for rows 1..p-1
    predictor_id: int = field(default=1, init=False)

    @property
    def order(self) -> int:
        return len(self.short_weights)

    def to_bytes(self) -> bytes:
        # u8: integer weights (bit 0), warm-up orders (bits 1-2), full lags (bits 3-7); then u8 order
        out = bytearray([int(self.integer_weights) | len(self.warm_weights) << 1 | len(self.full_lags) << 3, self.order])
        put_svarint(out, self.level)
        for w in self.short_weights:
            put_svarint(out, w)
        for ws in self.warm_weights:
            for w in ws:
                put_svarint(out, w)
        for lag, w in zip(self.full_lags, self.full_weights):
            put_uvarint(out, lag)
            put_svarint(out, w)
        return bytes(out)

    @classmethod
    def read(cls, r: Reader) -> "LinearPredictor":
        """Parse one predictor from a Reader (raises QresFormatError on anything out of range)."""
        head, p = r.u8(), r.u8()
        intw, nwarm, q = head & 1, head >> 1 & 3, head >> 3
        if p > MAX_ORDER:
            raise r.fail(f"order {p} exceeds {MAX_ORDER}")
        if nwarm > min(MAX_WARM, max(p - 1, 0)):
            raise r.fail(f"{nwarm} warm-up orders for order {p}")
        if q > MAX_LAGS:
            raise r.fail(f"{q} lags exceed {MAX_LAGS}")
        level = r.svarint()
        short = tuple(r.svarint() for _ in range(p))
        warm = tuple(tuple(r.svarint() for _ in range(order)) for order in range(1, nwarm + 1))
        lags, full = [], []
        for _ in range(q):
            lags.append(r.uvarint(MAX_LAG))
            full.append(r.svarint())
        if any(abs(w) >= MAX_WEIGHT for w in short + tuple(full) + sum(warm, ())):
            raise r.fail("weight out of range")
        if any(lag < 1 for lag in lags):
            raise r.fail("lag 0")
        return cls(level, short, tuple(lags), tuple(full), bool(intw), warm)

    def warm_array(self) -> np.ndarray:
        """Warm-up weights for the kernel: (MAX_WARM, MAX_WARM), row q-1 holding order q."""
        out = np.zeros((MAX_WARM, MAX_WARM), np.int64)
        for q, ws in enumerate(self.warm_weights, start=1):
            out[q - 1, :q] = ws
        return out

    def kernel_arrays(self, max_lags: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """(lags_a, w_a, lags_b, w_b) rows for the codec kernel, zero-padded to max_lags."""
        la = np.zeros(max_lags, np.int64)
        wa = np.zeros(max_lags, np.int64)
        lb = np.zeros(max_lags, np.int64)
        wb = np.zeros(max_lags, np.int64)
        p = self.order
        la[:p] = np.arange(1, p + 1)
        wa[:p] = self.short_weights
        q = len(self.full_lags)
        lb[:q] = self.full_lags
        wb[:q] = self.full_weights
        return la, wa, lb, wb


# --- fitting (encoder side) -------------------------------------------------------------------

FIT_WINDOW = 1 << 13
FIT_WINDOWS = 4
ORDERS = (1, 2, 3, 4, 6, 8, 12, 16)


def _windows(z: np.ndarray, size: int = FIT_WINDOW, count: int = FIT_WINDOWS) -> list[np.ndarray]:
    """Up to `count` evenly spread windows of `size` samples (the whole stream if it is short)."""
    n = len(z)
    if n <= size * count:
        return [z]
    starts = np.linspace(0, n - size, count).astype(int)
    return [z[s : s + size] for s in starts]


def _design(parts: list[np.ndarray], lags: list[int]) -> tuple[np.ndarray, np.ndarray]:
    """Least-squares design matrix (one column per lag) and targets, over every window."""
    maxlag = max(lags)
    xs, ys = [], []
    for w in parts:
        if len(w) <= maxlag + 1:
            continue
        wf = w.astype(np.float64)
        xs.append(np.stack([wf[maxlag - lag : len(w) - lag] for lag in lags], axis=1))
        ys.append(wf[maxlag:])
    if not xs:
        return np.zeros((0, len(lags))), np.zeros(0)
    return np.concatenate(xs), np.concatenate(ys)


def _solve(a: np.ndarray, b: np.ndarray) -> np.ndarray | None:
    reg = 1e-9 * (np.trace(a) / max(len(a), 1) + 1.0)
    try:
        return np.linalg.solve(a + reg * np.eye(len(a)), b)
    except np.linalg.LinAlgError:
        return None


def _quantise(w: np.ndarray) -> tuple[int, ...]:
    q = np.clip(to_q16(np.clip(w, -127.0, 127.0)), -(MAX_WEIGHT - 1), MAX_WEIGHT - 1)
    return tuple(int(v) for v in np.atleast_1d(q))


def _cost_bits(resid: np.ndarray) -> float:
    """Rough coded size of residuals in bits (Laplacian estimate), for choosing among candidates."""
    if len(resid) == 0:
        return 0.0
    # in float: abs() of the most negative int64 is itself; overflowed residuals cost infinity
    mad = float(np.mean(np.abs(np.asarray(resid, dtype=np.float64)))) + 0.5
    if not np.isfinite(mad):
        return float("inf")
    return len(resid) * (np.log2(mad) + 1.44)


def seasonal_periods(parts: list[np.ndarray], max_period: int = 1024, count: int = 4) -> list[int]:
    """Lags (>= 3) at which the first differences correlate strongly (local peaks above 0.3),
    strongest first: a daily cycle, a weekly one."""
    scores: dict[int, float] = {}
    for w in parts:
        d = np.diff(w.astype(np.float64))
        if len(d) < 64:
            continue
        d = d - d.mean()
        n = len(d)
        lim = min(max_period, n // 3)
        if lim < 5:
            continue
        size = 1 << (2 * n - 1).bit_length()  # a power of two, for a fast FFT
        spec = np.fft.rfft(d, size)
        ac = np.fft.irfft(spec * np.conj(spec), size)[: lim + 1]
        if ac[0] <= 0:
            continue
        ac = ac / ac[0]
        mid = ac[3:-1]
        peaks = np.flatnonzero((mid > 0.3) & (mid >= ac[2:-2]) & (mid >= ac[4:])) + 3
        for lag in peaks.tolist():
            scores[lag] = max(scores.get(lag, 0.0), float(ac[lag]))
    return sorted(scores, key=lambda lag: -scores[lag])[:count]


def _seasonal(parts: list[np.ndarray], first: LinearPredictor, n: int) -> list[LinearPredictor]:
    """`first` with one, then two seasonal lag pairs (P, P + 1) added, each kept only if it pays
    (fewest lags first: trial coding picks among them)."""
    parts = parts[:2]  # two windows decide well enough, at half the cost
    short = list(range(1, first.order + 1))
    x, y = _design(parts, short)
    if not len(y):
        return []
    best_cost = _cost_bits(y - x @ (np.array(first.short_weights) / Q16_ONE)) / len(y)
    lags: list[int] = []
    found: list[LinearPredictor] = []
    for period in seasonal_periods(parts, count=3):
        if len(lags) == 4 or period <= first.order + 1 or period + 1 >= n // 4 or period in lags or period + 1 in lags:
            continue
        cand = short + lags + [period, period + 1]
        x, y = _design(parts, cand)
        if len(y) <= 8 * len(cand):
            continue
        w = _solve(x.T @ x, x.T @ y)
        if w is None:
            continue
        wq = _quantise(w)
        cost = (_cost_bits(y - x @ (np.array(wq) / Q16_ONE)) + 40) / len(y)
        if cost < best_cost:
            best_cost, lags = cost, lags + [period, period + 1]
            found.append(LinearPredictor(first.level, first.short_weights, tuple(short + lags), wq, warm_weights=first.warm_weights))
    return found


def fit_linear(z: np.ndarray, *, max_order: int = MAX_ORDER, seasonal: bool = True) -> list[LinearPredictor]:
    """Candidate linear predictors for int64 stream z, best first by a residual-size estimate."""
    n = len(z)
    parts = _windows(z)
    level = int(np.median(np.concatenate(parts))) if n else 0
    wide = n > 0 and max(int(z.max()), -int(z.min())) >= NARROW_LIMIT
    if wide or n < 8:
        # whole-number weights, exact modulo 2^64: previous value, and linear extrapolation
        cands = [
            LinearPredictor(level, (Q16_ONE,), integer_weights=True),
            LinearPredictor(level, (2 * Q16_ONE, -Q16_ONE), integer_weights=True),
        ]
        if n >= 8:
            cands.sort(key=lambda p: _cost_bits(np.diff(z, p.order)))
        return cands
    top = max([p for p in ORDERS if p <= max_order and p * 4 <= n], default=0)
    scored: list[tuple[float, LinearPredictor]] = []
    zc = np.concatenate(parts).astype(np.float64)
    scored.append((_cost_bits(zc - level) + 64, LinearPredictor(level)))
    solved: dict[int, tuple[int, ...]] = {}
    if top:
        x, y = _design(parts, list(range(1, top + 1)))
        a, b = x.T @ x, x.T @ y
        for p in ORDERS:
            if p > top:
                break
            w = _solve(a[:p, :p], b[:p])
            if w is None:
                continue
            wq = _quantise(w)
            solved[p] = wq
            res = y - x[:, :p] @ (np.array(wq) / Q16_ONE)
            warm = tuple(solved[q] for q in range(1, min(MAX_WARM, p - 1) + 1) if q in solved)
            scored.append((_cost_bits(res) + 20 * p, LinearPredictor(level, wq, warm_weights=warm)))
    scored.sort(key=lambda s: s[0])
    best = [s[1] for s in scored[:3]]
    if seasonal and best and best[0].order > 0:
        best = _seasonal(parts, best[0], n)[::-1] + best
    return best
