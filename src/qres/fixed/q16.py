"""Q16.16 fixed point, vectorised over numpy integer arrays.

A Q16.16 number is an int32 ``raw``; its value is ``raw / 65536``.  The range
is ``[-32768, 32768 - 2**-16]`` in steps of ``2**-16``.

Rounding rule, used everywhere in :mod:`qres.fixed`: **round to nearest, ties
away from zero** (``2.5 -> 3``, ``-2.5 -> -3``).  Results outside the int32 range
**saturate** to ``Q16_MIN`` / ``Q16_MAX``; nothing wraps around.

Arguments may be numpy arrays of any integer dtype (values must lie in the int32
range, otherwise ``ValueError``), Python ints, or 0-d arrays; non-integer arrays
raise ``TypeError``.  Arrays broadcast as in numpy.  A 0-d result is returned as
a numpy scalar (``np.int32``, ``np.int64`` or ``np.float64``), otherwise as an
array.  Apart from :func:`to_q16` and :func:`from_q16` all arithmetic is exact
integer arithmetic in int64 (no float anywhere), hence bit-identical on every
platform.
"""

from __future__ import annotations

import numpy as np

Q16_FRAC_BITS = 16
Q16_ONE = 1 << Q16_FRAC_BITS  # raw value of 1.0
Q16_MAX = (1 << 31) - 1  # raw int32 maximum, value 32767.9999847...
Q16_MIN = -(1 << 31)  # raw int32 minimum, value -32768.0

_I64_MAX = (1 << 63) - 1
_ISQRT_MAX = 3037000499  # isqrt(2**63 - 1)


def _ret(a):
    """0-d array -> numpy scalar, otherwise the array itself."""
    return np.asarray(a)[()]


def _as_int(a, name: str, lo: int = Q16_MIN, hi: int = Q16_MAX) -> np.ndarray:
    """Check that ``a`` is integer-valued with every element in [lo, hi]; return it as int64."""
    arr = np.asarray(a)
    if arr.dtype.kind not in "iu":
        raise TypeError(f"{name}: expected integers, got dtype {arr.dtype}")
    info = np.iinfo(arr.dtype)
    if arr.size and (info.min < lo or info.max > hi):
        amin, amax = int(arr.min()), int(arr.max())
        if amin < lo or amax > hi:
            raise ValueError(f"{name}: values must lie in [{lo}, {hi}], got range [{amin}, {amax}]")
    return arr.astype(np.int64)


def _saturate32(x: np.ndarray) -> np.ndarray:
    return np.clip(x, Q16_MIN, Q16_MAX).astype(np.int32)


def _round_shift(x: np.ndarray, s) -> np.ndarray:
    """round(x / 2**s), ties away from zero, for int64 ``x`` with |x| < 2**62 and 0 <= s <= 62.

    ``s`` may be an int or an int64 array broadcastable against ``x``.
    """
    x = np.asarray(x, dtype=np.int64)
    s = np.asarray(s, dtype=np.int64)
    half = np.left_shift(np.int64(1), s) >> 1  # 2**(s-1), or 0 when s == 0
    mag = (np.abs(x) + half) >> s
    return np.where(x < 0, -mag, mag)


def _round_half_away_f(y: np.ndarray) -> np.ndarray:
    """Round float64 values to the nearest integer, ties away from zero (as float64).

    Exact for every finite input (no ``floor(y + 0.5)`` double rounding).
    """
    a = np.abs(y)
    n = np.floor(a)
    n = n + ((a - n) >= 0.5)
    return np.copysign(n, y)


def to_q16(x):
    """Convert real number(s) to Q16.16 raw int32: ``round(x * 65536)``.

    Rounding: to nearest, ties away from zero, computed exactly from the float64
    value of ``x`` (``0.1 -> 6554``, ``0.2 -> 13107``, ``0.3 -> 19661``,
    ``-0.1 -> -6554``).  Saturates at ``Q16_MIN``/``Q16_MAX`` (so ``+-inf`` maps to
    the limits).  NaN raises ``ValueError``.
    """
    f = np.asarray(x, dtype=np.float64)
    if np.isnan(f).any():
        raise ValueError("to_q16: NaN has no Q16.16 value")
    with np.errstate(over="ignore"):
        y = np.clip(f * Q16_ONE, -(2.0**32), 2.0**32)  # exact scaling; clip keeps inf out
    return _ret(_saturate32(_round_half_away_f(y)))


def from_q16(raw):
    """Q16.16 raw -> float64 value ``raw / 65536`` (exact)."""
    return _ret(_as_int(raw, "from_q16").astype(np.float64) / Q16_ONE)


def q16_add(a, b):
    """``a + b`` on Q16.16 raws, exact then saturated to int32."""
    return _ret(_saturate32(_as_int(a, "q16_add") + _as_int(b, "q16_add")))


def q16_sub(a, b):
    """``a - b`` on Q16.16 raws, exact then saturated to int32."""
    return _ret(_saturate32(_as_int(a, "q16_sub") - _as_int(b, "q16_sub")))


def q16_mul(a, b):
    """``a * b`` on Q16.16 raws: ``round(a * b / 65536)``, ties away from zero, saturated.

    The product is exact in int64 (|a*b| <= 2**62) before the single rounding.
    """
    p = _as_int(a, "q16_mul") * _as_int(b, "q16_mul")
    return _ret(_saturate32(_round_shift(p, Q16_FRAC_BITS)))


def q16_div(a, b):
    """``a / b`` on Q16.16 raws: ``round(a * 65536 / b)``, ties away from zero, saturated.

    Division by zero saturates: ``Q16_MAX`` if ``a > 0``, ``Q16_MIN`` if ``a < 0``,
    and ``0 / 0 -> 0``.  Never raises for in-range inputs.
    """
    a = _as_int(a, "q16_div")
    b = _as_int(b, "q16_div")
    num = a << Q16_FRAC_BITS  # |num| <= 2**47
    den = np.abs(b)
    safe = np.where(den == 0, 1, den)
    mag = (2 * np.abs(num) + safe) // (2 * safe)  # floor(|num|/|b| + 1/2)
    q = np.where((num < 0) != (b < 0), -mag, mag)
    q = np.where(b == 0, np.sign(a) << 32, q)  # saturates below
    return _ret(_saturate32(q))


def isqrt(n):
    """Integer square root ``floor(sqrt(n))`` of non-negative integers up to 2**63 - 1 (int64 result).

    Exact: a float64 estimate (within +-1 of the answer, since sqrt of a float64
    has relative error < 2**-52 and the answer is < 2**31.5) is corrected by one
    exact integer step in each direction, using uint64 squares that cannot
    overflow.  (In practice the estimate is never low for n < 2**63; the upward
    step is a cheap guard.)  Negative input raises ``ValueError``.
    """
    arr = _as_int(n, "isqrt", 0, _I64_MAX)
    r = np.floor(np.sqrt(arr.astype(np.float64)))
    r = np.clip(r, 0, _ISQRT_MAX).astype(np.uint64)
    u = arr.astype(np.uint64)
    r = r - (r * r > u).astype(np.uint64)
    r = r + ((r + 1) * (r + 1) <= u).astype(np.uint64)
    return _ret(r.astype(np.int64))


def q16_sqrt(raw):
    """Square root of Q16.16 raw(s), in Q16.16: ``isqrt(raw << 16)``.

    Rounding: **down** (truncation), i.e. the largest ``q`` with ``q*q <= raw*65536``.
    Always fits (``q16_sqrt(Q16_MAX) == 11863283``).  Negative input raises ``ValueError``.
    """
    a = _as_int(raw, "q16_sqrt")
    if a.size and int(a.min()) < 0:
        raise ValueError("q16_sqrt: negative input")
    return _ret(np.asarray(isqrt(a << Q16_FRAC_BITS)).astype(np.int32))
