"""BFP-16: block floating point vectors with one shared exponent.

A vector is one signed 8-bit exponent ``e`` (-128..127) and ``n`` signed 16-bit
mantissas ``m[i]``; its real values are ``m[i] * 2**e``.  A Q16.16 raw ``r``
(value ``r / 65536``) therefore corresponds to mantissa ``r * 2**-(e + 16)``.

Exponent choice (both encoders): the **smallest** exponent ``e >= e_min`` such
that every rounded mantissa fits int16 (-32768..32767).  ``e_min`` is -16 for
Q16.16 input (a lower exponent only appends zero bits; so from Q16.16 the
exponent is always in -16..1, and ``e == -16`` means exact) and -128 for float
input.  An all-zero or empty vector gets ``e_min``.  Mantissas are rounded to
nearest, ties away from zero; if rounding pushes one past int16 (e.g. 32767.5
-> 32768) the next exponent is used.  Error per element is therefore at most
half a mantissa step, ``2**(e-1)``.

Wire format (``Bfp16.to_bytes``): ``u16`` little-endian count ``n``, ``i8``
exponent, then ``n`` little-endian ``int16`` mantissas: exactly ``3 + 2n`` bytes.
Every i8 value is a legal exponent, so the exponent needs no range check.
"""

from __future__ import annotations

import operator
import struct
from dataclasses import dataclass

import numpy as np

from qres.errors import QresFormatError

from .q16 import Q16_FRAC_BITS, _as_int, _round_half_away_f, _round_shift, _saturate32

BFP16_EXP_MIN = -128
BFP16_EXP_MAX = 127
BFP16_MAX_LEN = 0xFFFF  # the count is a u16
_M_MIN, _M_MAX = -(1 << 15), (1 << 15) - 1
_HEADER = struct.Struct("<Hb")  # count, exponent


@dataclass(frozen=True, eq=False)
class Bfp16:
    """One BFP-16 vector: values ``mantissas[i] * 2**exponent``.

    ``exponent`` is an int in -128..127; ``mantissas`` is stored as a read-only
    1-d int16 array (copied on construction) of length <= 65535.
    """

    exponent: int
    mantissas: np.ndarray

    def __post_init__(self) -> None:
        e = self.exponent
        if isinstance(e, (bool, np.bool_)) or not isinstance(e, (int, np.integer)):
            raise TypeError(f"Bfp16: exponent must be an int, got {type(e).__name__}")
        if not BFP16_EXP_MIN <= int(e) <= BFP16_EXP_MAX:
            raise ValueError(f"Bfp16: exponent {int(e)} outside [{BFP16_EXP_MIN}, {BFP16_EXP_MAX}]")
        m = np.asarray(self.mantissas)
        if m.ndim != 1:
            raise ValueError(f"Bfp16: mantissas must be 1-d, got shape {m.shape}")
        if m.dtype.kind not in "iu":
            raise TypeError(f"Bfp16: mantissas must be integers, got dtype {m.dtype}")
        if m.size > BFP16_MAX_LEN:
            raise ValueError(f"Bfp16: {m.size} mantissas, at most {BFP16_MAX_LEN}")
        if m.size and (int(m.min()) < _M_MIN or int(m.max()) > _M_MAX):
            raise ValueError("Bfp16: mantissas must fit int16")
        m = m.astype(np.int16)  # always a copy
        m.flags.writeable = False
        object.__setattr__(self, "exponent", int(e))
        object.__setattr__(self, "mantissas", m)

    def __len__(self) -> int:
        return int(self.mantissas.size)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Bfp16):
            return NotImplemented
        return self.exponent == other.exponent and np.array_equal(self.mantissas, other.mantissas)

    def __hash__(self) -> int:
        return hash((self.exponent, self.mantissas.tobytes()))

    def to_bytes(self) -> bytes:
        """Wire format: u16 LE count, i8 exponent, count x int16 LE mantissas."""
        return _HEADER.pack(len(self), self.exponent) + self.mantissas.astype("<i2").tobytes()

    @classmethod
    def from_prefix(cls, data, offset: int = 0) -> tuple["Bfp16", int]:
        """Parse one vector starting at byte ``offset`` of ``data``; return it and the offset just past it.

        Bytes after the vector are ignored (for blocks holding several vectors).
        Truncation raises ``QresFormatError`` naming the offsets; a negative
        ``offset`` is a caller bug and raises ``ValueError``.
        """
        buf = memoryview(data).cast("B")
        offset = operator.index(offset)
        if offset < 0:
            raise ValueError(f"Bfp16.from_prefix: negative offset {offset}")
        avail = len(buf) - offset
        if avail < _HEADER.size:
            raise QresFormatError(
                f"BFP16 vector at offset {offset}: truncated header, need {_HEADER.size} bytes, "
                f"{max(avail, 0)} available (buffer is {len(buf)} bytes)"
            )
        n, e = _HEADER.unpack_from(buf, offset)
        start = offset + _HEADER.size
        end = start + 2 * n
        if end > len(buf):
            raise QresFormatError(
                f"BFP16 vector at offset {offset}: count {n} needs {2 * n} mantissa bytes at offset "
                f"{start}, only {len(buf) - start} available"
            )
        m = np.frombuffer(buf, dtype="<i2", count=n, offset=start)
        return cls(e, m), end

    @classmethod
    def from_bytes(cls, data) -> "Bfp16":
        """Parse exactly one vector: ``data`` must be exactly ``3 + 2n`` bytes, else ``QresFormatError``."""
        vec, end = cls.from_prefix(data, 0)
        size = memoryview(data).nbytes
        if end != size:
            raise QresFormatError(
                f"BFP16 vector: {size - end} trailing bytes at offset {end} "
                f"(count {len(vec)} means exactly {end} bytes, got {size})"
            )
        return vec


def _as_vector(a: np.ndarray, name: str) -> np.ndarray:
    a = np.atleast_1d(a)
    if a.ndim != 1:
        raise ValueError(f"{name}: expected a 1-d vector, got shape {a.shape}")
    if a.size > BFP16_MAX_LEN:
        raise ValueError(f"{name}: {a.size} values, at most {BFP16_MAX_LEN}")
    return a


def _fits(m: np.ndarray) -> bool:
    return bool(np.all((m >= _M_MIN) & (m <= _M_MAX)))


def bfp16_row_shifts(raw_rows) -> np.ndarray:
    """Per row of Q16.16 raws (int64 array (rows, n)), the shift s = exponent + 16 (0..17) of its BFP-16 vector."""
    r = np.asarray(raw_rows, dtype=np.int64)
    ext = np.stack([r.min(axis=1), r.max(axis=1)], axis=1) if r.shape[1] else np.zeros((len(r), 2), np.int64)
    shift = np.full(len(r), 17, np.int64)  # s = 17 always fits
    for s in range(16, -1, -1):  # rounding is monotone: the extreme raws give the extreme mantissas
        m = _round_shift(ext, s)
        shift = np.where(np.all((m >= _M_MIN) & (m <= _M_MAX), axis=1), s, shift)
    return shift


def bfp16_quantise_rows(raw_rows) -> np.ndarray:
    """What each row of Q16.16 raws (rows, n) becomes after a BFP-16 round trip (int64, same shape).

    The vectorised equivalent of ``bfp16_to_q16(bfp16_from_q16(row))`` for every row: what a peer
    receives when an update travels as BFP-16.
    """
    r = np.asarray(raw_rows, dtype=np.int64)
    s = bfp16_row_shifts(r)[:, None]
    return _round_shift(r, s) << s


def bfp16_encode(values_q16) -> tuple[int, np.ndarray]:
    """Q16.16 raws (1-d, int32 range) -> ``(exponent, int16 mantissas)``.

    ``mantissa[i] = round(raw[i] / 2**(exponent + 16))``, ties away from zero,
    with the smallest exponent in -16..1 that makes every mantissa fit int16.
    """
    r = _as_vector(_as_int(values_q16, "bfp16_encode"), "bfp16_encode").astype(np.int64)
    shift = int(bfp16_row_shifts(r[None])[0])
    return shift - Q16_FRAC_BITS, _round_shift(r, shift).astype(np.int16)


def bfp16_from_q16(raw) -> Bfp16:
    """Q16.16 raws (1-d) -> :class:`Bfp16`, as :func:`bfp16_encode`."""
    return Bfp16(*bfp16_encode(raw))


def bfp16_to_q16(b: Bfp16):
    """:class:`Bfp16` -> Q16.16 raw int32 array: ``round(m * 2**(e + 16))``, ties away from zero, saturated.

    Exact whenever ``e >= -16`` and the value is in the Q16.16 range.
    """
    m = b.mantissas.astype(np.int64)
    sh = b.exponent + Q16_FRAC_BITS
    if sh >= 0:
        r = m << min(sh, 32)  # |m| <= 2**15; any nonzero m shifted by 32 saturates anyway
    else:
        r = _round_shift(m, min(-sh, 20))  # |m| <= 2**15: shifting by >= 17 already gives 0
    return _saturate32(r)


def bfp16_from_float(x) -> Bfp16:
    """Real values (1-d float array) -> :class:`Bfp16`, for reports and tests.

    Smallest exponent in -128..127 such that every ``round(x[i] / 2**e)`` (ties
    away from zero, computed exactly) fits int16.  NaN/inf, or magnitudes
    needing an exponent above 127 (beyond about 5.6e42), raise ``ValueError``.
    """
    f = _as_vector(np.asarray(x, dtype=np.float64), "bfp16_from_float")
    if not np.all(np.isfinite(f)):
        raise ValueError("bfp16_from_float: NaN or infinite value")
    ext = np.array([f.min(), f.max()] if f.size else [0.0, 0.0])
    big = float(np.max(np.abs(ext)))
    # big < 2**top, so exponents below top - 16 give |mantissa| >= 2**15 for the largest value.
    start = BFP16_EXP_MIN if big == 0.0 else max(BFP16_EXP_MIN, int(np.frexp(big)[1]) - 16)
    for e in range(start, BFP16_EXP_MAX + 1):
        if _fits(_round_half_away_f(np.ldexp(ext, -e))):
            return Bfp16(e, _round_half_away_f(np.ldexp(f, -e)).astype(np.int16))
    raise ValueError(f"bfp16_from_float: magnitude {big!r} too large for a BFP-16 exponent <= 127")


def bfp16_to_float(b: Bfp16):
    """:class:`Bfp16` -> float64 array ``m * 2**e`` (exact)."""
    return np.ldexp(b.mantissas.astype(np.float64), b.exponent)
