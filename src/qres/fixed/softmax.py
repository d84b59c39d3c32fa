"""Integer-only softmax on Q16.16 logits.

Algorithm (int64 arithmetic only, bit-identical on every platform):

1. ``d = x - max(x)`` along the axis (``d <= 0``), clamped to ``d >= -32.0``
   (``exp(-32) < 2**-46``, far below anything that survives step 3).
2. ``exp(d)`` in Q40 (value ``v / 2**40``): write ``-d = k*ln2 + rem`` with integer
   ``k`` and ``0 <= rem < ln2`` (``ln2`` is a Q40 constant); then
   ``exp(d) = exp(ln2 - rem) * 2**-(k+1)`` where ``g = ln2 - rem`` lies in
   ``(0, ln2]``; ``exp(g)`` is a degree-12 Taylor polynomial evaluated by Horner
   in Q31 (coefficients ``round(2**31 / j!)``), then shifted right by ``k+1``
   with rounding.  Relative error of each ``exp`` < 2e-9, plus 2**-41 absolute.
3. ``q_i = 65536 * e_i / sum(e)``: the integer parts ``floor(q_i)`` sum to
   ``65536 - R`` with ``0 <= R < n``; the ``R`` missing units go one each to the
   entries with the largest fractional parts (largest-remainder method), ties
   broken by lowest index.  So the output sums to exactly 65536 and every entry
   is within 1 of the exact quotient ``q_i``.

Accuracy: ``|p_i - 65536 * softmax(x / 65536)_i| < 1 + 2**-10`` (in raw units,
i.e. about 1.001 / 65536 in value) for any int32 logits and axis length n up to
2**14: < 1 from step 3, plus ``65536 * 4e-9 + (n + 1) * 2**-25`` from the exp
errors, which is the term that grows for longer axes.  Axis length is limited to
2**22 so that the int64 sums cannot overflow.
"""

from __future__ import annotations

import math

import numpy as np

from .q16 import Q16_FRAC_BITS, Q16_ONE, _as_int

_LN2_Q40 = 762123384786  # round(ln(2) * 2**40)
_EXP_DEGREE = 12
_INV_FACT_Q31 = [((1 << 31) + math.factorial(j) // 2) // math.factorial(j) for j in range(_EXP_DEGREE + 1)]
_D_MIN = -32 * Q16_ONE  # clamp for d = x - max (Q16.16)
_MAX_AXIS_LEN = 1 << 22


def _exp_neg_q40(u: np.ndarray) -> np.ndarray:
    """``exp(-u / 65536)`` in Q40 for int64 Q16.16 ``0 <= u <= 32 * 65536``."""
    u40 = u << 24  # Q40, <= 2**45
    k = u40 // _LN2_Q40
    rem = u40 - k * _LN2_Q40  # [0, ln2) in Q40
    g = (_LN2_Q40 - rem + 256) >> 9  # (0, ln2] in Q31, < 2**31
    acc = np.full_like(g, _INV_FACT_Q31[_EXP_DEGREE])
    for c in reversed(_INV_FACT_Q31[:_EXP_DEGREE]):
        acc = c + ((acc * g + (1 << 30)) >> 31)  # acc <= ~2**32, so acc*g < 2**63
    # exp(g) * 2**-(k+1) in Q40: acc is Q31, so shift (acc << 9) right by k+1, rounding.
    return ((acc << 9) + (np.int64(1) << k)) >> (k + 1)


def q16_softmax(raw, axis: int = -1):
    """Softmax of Q16.16 logits along ``axis``; Q16.16 int32 probabilities summing to exactly 65536.

    ``raw``: integer array (int32 range) with at least one dimension.  See the
    module docstring for the algorithm, the rounding (largest remainder, ties to
    the lowest index) and the accuracy bound.  An empty axis gives an empty result.
    """
    x = _as_int(raw, "q16_softmax")
    if x.ndim == 0:
        raise ValueError("q16_softmax: input needs at least one dimension")
    x = np.moveaxis(x, axis, -1)
    n = x.shape[-1]
    if n > _MAX_AXIS_LEN:
        raise ValueError(f"q16_softmax: axis length {n} exceeds {_MAX_AXIS_LEN}")
    if n == 0 or x.size == 0:
        return np.moveaxis(np.zeros(x.shape, dtype=np.int32), -1, axis)
    shape = x.shape
    x = x.reshape(-1, n)
    d = np.maximum(x - x.max(axis=1, keepdims=True), _D_MIN)
    e = _exp_neg_q40(-d)  # the max entry is ~2**40, so the sum is >= 2**40 - 1
    s = e.sum(axis=1, keepdims=True)
    q, r = np.divmod(e << Q16_FRAC_BITS, s)
    short = Q16_ONE - q.sum(axis=1, keepdims=True)  # R in [0, n)
    order = np.argsort(-r, axis=1, kind="stable")  # largest remainder first, then lowest index
    rank = np.empty_like(order)
    np.put_along_axis(rank, order, np.broadcast_to(np.arange(n), order.shape), axis=1)
    p = q + (rank < short)
    return np.moveaxis(p.astype(np.int32).reshape(shape), -1, axis)
