"""The model a swarm learns, and a node's local update: integer gradient steps on its recent readings.

The swarm model is ORDER Q16.16 weights w predicting a stream's next *difference* from the previous
ORDER differences:  d[t] = z[t] - z[t-1],  d^[t] = sum_j w[j] * d[t-1-j].  Working on differences
makes the model independent of each site's level, and the normalised step below makes it
independent of each site's scale, so nodes watching different sensors can share one model. In the
codec's terms it is a `LinearPredictor` of order ORDER + 1 on the values (`as_predictor`).

`local_step` is integer-only (INV-6): a node's window is scaled by a power of two so that
|d| < 2**DATA_BITS, and one ridge-regularised Newton step on the window's squared error, solved by
a fixed-point Cholesky factorisation, moves the weights by `rate` times the step towards the
window's own least-squares fit; the step is then clipped to an L2 norm of STEP_LIMIT, so an honest
proposal never strays far from the model it starts from (which is what lets a receiver tell an
attacker's proposal from an unusual site's). The float least-squares fits below are baselines for
reports (local-only and central models), never part of what a peer must reproduce.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from ..codec.frame import DEFAULT_FRAME_ROWS, Codec
from ..codec.model import Model, train_tables
from ..codec.predictor import LinearPredictor
from ..codec.rows import to_streams
from ..fixed import Q16_ONE, isqrt, to_q16
from .aggregate import _div_round

ORDER = 8  # difference lags in the swarm model
DATA_BITS = 11  # windows are scaled so that |d| < 2**11
WEIGHT_LIMIT = 16 * Q16_ONE  # |w| <= 16 keeps every product inside int64
RIDGE = int(to_q16(0.1))
CURVATURE_SHIFT = 3  # the running curvature moves 1/8 of the way to each new window's  # ridge of the Newton step, relative to the mean diagonal of X^T X
STEP_LIMIT = int(to_q16(0.1))  # a local update moves the weights by at most 0.1 (L2 norm)


@dataclasses.dataclass(frozen=True)
class LocalStep:
    """What one local update gives, per node: the proposed weights (Q16.16, (n, ORDER) int64),
    the window's mean absolute residual before the step relative to its value range (`entropy`,
    Q16.16 in [0, 1]), the same after the step (`residual_error`), and the relative gain
    `accuracy_delta` = (before - after) / before (Q16.16, <= 1.0; 0 when before is 0), and the
    window's scaled lagged differences and targets (`x` (n, T, ORDER), `y` (n, T)) for `window_loss`,
    and the node's updated curvature average."""

    proposal: np.ndarray
    entropy: np.ndarray
    residual_error: np.ndarray
    accuracy_delta: np.ndarray
    x: np.ndarray
    y: np.ndarray
    curvature: np.ndarray  # (n, ORDER, ORDER) the node's running X^T X / s after this window

    def window_loss(self, rows: np.ndarray, weights: np.ndarray) -> np.ndarray:
        """Sum of |residual| (Q16.16 units) of `weights` (k, ORDER) on the windows of nodes `rows` (k,)."""
        return _abs_residual_sum(np.asarray(weights, np.int64), self.x[rows], self.y[rows])[1]

    def candidate_loss(self, candidates: np.ndarray, last: int) -> np.ndarray:
        """Sum of |residual| of each node's candidate weights (n, k, ORDER) on its last `last` window rows: (n, k)."""
        x, y = self.x[:, -last:], self.y[:, -last:]
        pred = np.einsum("ntp,nkp->nkt", x, np.asarray(candidates, np.int64))
        return np.abs((y[:, None] << 16) - pred).sum(axis=2)


def _bit_length(m: np.ndarray) -> np.ndarray:
    """Bits needed for each non-negative int64 (0 for 0)."""
    out = np.zeros(m.shape, np.int64)
    for k in range(63):
        out += (m >> k) > 0
    return out


def scaled_differences(z: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Differences of each row of z (int64 (n, L)), right-shifted per row so |d| < 2**DATA_BITS;
    also each row's value range after the same shift (at least 1)."""
    z = np.asarray(z, np.int64)
    d = np.diff(z, axis=1)
    shift = np.maximum(_bit_length(np.abs(d).max(axis=1)) - DATA_BITS, 0)[:, None]
    span = (z.max(axis=1) - z.min(axis=1))[:, None] >> shift
    return d >> shift, np.maximum(span[:, 0], 1)


def _design(d: np.ndarray, order: int) -> tuple[np.ndarray, np.ndarray]:
    """Lagged differences X (n, T, order) with X[:, t, j] = d[:, t + order - 1 - j], targets y (n, T)."""
    win = np.lib.stride_tricks.sliding_window_view(d[:, :-1], order, axis=1)  # (n, T, order), oldest first
    return win[..., ::-1], d[:, order:]


def _abs_residual_sum(w: np.ndarray, x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    r = (y << 16) - np.einsum("ntp,np->nt", x, w)
    return r, np.abs(r).sum(axis=1)


def clip_rows(delta: np.ndarray, limit: int) -> np.ndarray:
    """Scale each row of Q16.16 raws (int64 (n, dim), |raw| <= 2**26) down to an L2 norm of at most `limit`."""
    delta = np.asarray(delta, np.int64)
    norm = np.asarray(isqrt((delta * delta).sum(axis=1)), np.int64)[:, None]
    return np.where(norm > limit, _div_round(delta * limit, np.maximum(norm, 1)), delta)


def _cholesky_solve(c: np.ndarray, h: np.ndarray) -> np.ndarray:
    """Solve C v = h per node in Q16.16 integers (C (n, p, p) symmetric positive definite with
    diagonal >= 1.0, h (n, p)), by a fixed-point Cholesky factorisation; every rounding is to
    nearest, ties away from zero, so the result is the same on every platform."""
    n, p = h.shape
    low = np.zeros((n, p, p), np.int64)
    for j in range(p):
        rest = (c[:, j, j] << 16) - (low[:, j, :j] ** 2).sum(axis=1)
        low[:, j, j] = np.maximum(np.asarray(isqrt(np.maximum(rest, 1 << 32)), np.int64), Q16_ONE)
        for i in range(j + 1, p):
            num = (c[:, i, j] << 16) - (low[:, i, :j] * low[:, j, :j]).sum(axis=1)
            low[:, i, j] = _div_round(num, low[:, j, j])
    u = np.zeros((n, p), np.int64)
    for i in range(p):
        u[:, i] = _div_round((h[:, i] << 16) - (low[:, i, :i] * u[:, :i]).sum(axis=1), low[:, i, i])
    v = np.zeros((n, p), np.int64)
    for i in reversed(range(p)):
        v[:, i] = _div_round((u[:, i] << 16) - (low[:, i + 1 :, i] * v[:, i + 1 :]).sum(axis=1), low[:, i, i])
    return v


def local_step(weights: np.ndarray, z: np.ndarray, rate_q16: np.ndarray | int, curvature: np.ndarray | None = None) -> LocalStep:
    """One regularised Newton step of each node's weights (Q16.16, (n, ORDER)) on its window z
    (int64 (n, L), L > 2 x ORDER), scaled by `rate_q16` (scalar or (n,), Q16.16 in 0..1.0) and
    clipped to STEP_LIMIT.

    The step solves (C + RIDGE I) step = X^T r / s with s = trace(X^T X) / ORDER, in Q16.16, so
    the data's scale drops out. C is the window's X^T X / s, or, given the node's `curvature`
    (its running average of X^T X / s, (n, ORDER, ORDER) Q16.16, zeros before the first window),
    that average moved 1/8 of the way towards the window's: a short window then only supplies the
    gradient, and the step's fixed point over many nodes is the pooled least-squares fit. The
    updated average is returned in `LocalStep.curvature`.
    """
    w0 = np.asarray(weights, np.int64)
    n, order = w0.shape
    rate = np.broadcast_to(np.asarray(rate_q16, np.int64), (n,))[:, None]
    if rate.size and (rate.min() < 0 or rate.max() > Q16_ONE):
        raise ValueError("local_step: rate_q16 must be within 0..65536 (0..1.0)")
    d, span = scaled_differences(z)
    if d.shape[1] < 2 * order:
        raise ValueError(f"local_step: windows of {z.shape[1]} samples, need at least {2 * order + 1}")
    x, y = _design(d, order)
    gram = np.einsum("ntp,ntq->npq", x, x)  # < 2**22 per term
    scale = np.maximum(np.einsum("npp->n", gram) // order, 1)[:, None]
    c = _div_round(gram << 16, scale[:, :, None])
    if curvature is not None:
        prev = np.asarray(curvature, np.int64)
        fresh = np.einsum("npp->n", prev) == 0
        c = np.where(fresh[:, None, None], c, prev + _div_round(c - prev, 1 << CURVATURE_SHIFT))
    new_curvature = c.copy()
    c[:, np.arange(order), np.arange(order)] += RIDGE
    r, before = _abs_residual_sum(w0, x, y)
    h = _div_round(np.einsum("nt,ntp->np", r >> 8, x) << 8, scale)  # X^T r / s, Q16.16
    step = _cholesky_solve(c, np.clip(h, -WEIGHT_LIMIT, WEIGHT_LIMIT))
    step = clip_rows(_div_round(rate * step, Q16_ONE), STEP_LIMIT)
    w = np.clip(w0 + step, -WEIGHT_LIMIT, WEIGHT_LIMIT)
    _, after = _abs_residual_sum(w, x, y)
    samples = y.shape[1]
    entropy = np.minimum(_div_round(before, span * samples), Q16_ONE)
    residual = np.minimum(_div_round(after, span * samples), Q16_ONE)
    gain = np.where(before > 0, _div_round((before - after) << 16, np.maximum(before, 1)), 0)
    return LocalStep(w, entropy, residual, np.minimum(gain, Q16_ONE), x, y, new_curvature)


# ----------------------------------------------------------------------------- baselines and reports


def least_squares(streams: list[np.ndarray], order: int = ORDER) -> np.ndarray:
    """Float least-squares weights (Q16.16, (order,)) over the differences of several streams pooled
    (each scaled to unit difference energy, as the swarm's normalised steps weigh them)."""
    xs, ys = [], []
    for z in streams:
        d = np.diff(np.asarray(z, np.float64))
        scale = np.sqrt(np.mean(d * d)) if len(d) else 0.0
        if len(d) <= order or scale == 0:
            continue
        d = d / scale
        win = np.lib.stride_tricks.sliding_window_view(d[:-1], order)[:, ::-1]
        xs.append(win)
        ys.append(d[order:])
    if not xs:
        return np.zeros(order, np.int64)
    x, y = np.concatenate(xs), np.concatenate(ys)
    w = np.linalg.lstsq(x.T @ x + 1e-6 * np.eye(order), x.T @ y, rcond=None)[0]
    return np.clip(np.round(w * Q16_ONE), -WEIGHT_LIMIT, WEIGHT_LIMIT).astype(np.int64)


def as_predictor(weights, level: int = 0, warm: tuple[tuple[int, ...], ...] = ()) -> LinearPredictor:
    """The codec predictor running swarm weights (Q16.16 over differences) on values:
    a_1 = 1 + w_1, a_k = w_k - w_(k-1), a_(p+1) = -w_p, exactly."""
    w = [int(v) for v in weights]
    a = [Q16_ONE + w[0]] + [w[k] - w[k - 1] for k in range(1, len(w))] + [-w[-1]]
    return LinearPredictor(level=level, short_weights=tuple(a), warm_weights=warm)


def codec_model(train: np.ndarray, weights: np.ndarray, fitted: Model | None = None) -> Model:
    """The codec model a node codes its frames with: transform, entropy settings and tables fitted
    on `train` (its own recent int64 readings; `fitted` = Model.fit(train) when already made),
    predictor from the swarm's `weights`."""
    ch = (fitted or Model.fit(train)).channels[0]
    chw = dataclasses.replace(ch, predictor=as_predictor(weights, ch.predictor.level, ch.predictor.warm_weights))
    z, slips, _ = to_streams([chw.transform], [train])
    return Model((chw,), tables=train_tables(Model((chw,)), z, slips, np.zeros(1, np.int64)))


def frame_bits_per_value(train: np.ndarray, test: np.ndarray, weights_rows: list[np.ndarray]) -> list[float]:
    """Bits per value of coding `test` (int64 values) as frames of 64 with the codec, once per set of
    swarm weights; transform, entropy settings and tables are fitted on `train` (the node's own
    history), so only the predictor differs between the results."""
    rows = len(test) // DEFAULT_FRAME_ROWS * DEFAULT_FRAME_ROWS
    frames = np.asarray(test[:rows]).reshape(-1, DEFAULT_FRAME_ROWS)
    fitted = Model.fit(train)
    out = []
    for w in weights_rows:
        codec = Codec(codec_model(train, w, fitted))
        out.append(8.0 * sum(len(codec.encode_frame(f)) for f in frames) / max(frames.size, 1))
    return out
