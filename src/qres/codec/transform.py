"""Channel transforms: turn one channel of any dtype into an int64 stream the predictor can use, exactly.

- ``int``: integer dtypes. z = (x - offset) / step, with the common divisor `step` of all differences.
- ``decimal``: floats that are decimal-quantised (each value is the float nearest to k / 10^d, as when
  parsed from text). z = (k - offset) / step. Values off the grid (NaN, +-inf, -0.0, strays) become
  *patches*: their exact bits are stored aside and z repeats the previous value there.
- ``bits``: floats on no decimal grid. z is the float's bit pattern mapped to an integer that orders
  like the float, so nearby values stay nearby; bit-exact by construction.
- ``binary`` (error-bounded mode only): z = round(x * 2^m), so x is within 2^-m / 2 of z * 2^-m, and
  the inverse is an exact power-of-two scaling. `decimals` holds m.
- ``rational`` (models for frames): averaged readings, x = n / (10^d L) printed with P significant
  digits (see rational.py); z = n - offset, `decimals` holds d, `step` L and `digits` P. (Array
  files split such a column in two instead, which codes better over long streams.)

A transform is data-fitted on the encoder side and written into the model; the decoder only applies
`inverse`. Error-bounded mode needs a uniform integer grid: `quantum` is the size in the channel's
units of one integer step of z (None for ``bits``).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..errors import QresFormatError
from . import rational

KINDS = ("int", "decimal", "bits", "binary", "rational")
LATTICE_INDEX_LIMIT = 2**24  # |lattice index| bound, so index * step stays inside int64
LATTICE_MAX_SHIFT = 36
MAX_SLIP = 2  # a lattice point's slip a table may record
MAX_CODED_SLIP = 100  # how far off the straight line a value may sit (coded in-band); further: a patch
MAX_TABLE = 1 << 14  # entries of a lattice's slip table
MAX_BINARY_EXPONENT = 1100
MAX_DECIMALS = 18
EXACT_FLOAT_INT = 2**53  # integers up to this are exact in float64
_F32_EXACT_INT = 2**24


def float_bits_to_ordered(x: np.ndarray) -> np.ndarray:
    """Map float32/float64 bit patterns to int64 that sort like the floats (NaNs sort beyond inf)."""
    if x.dtype == np.float32:
        b = x.view(np.int32).astype(np.int64)
        return np.where(b < 0, np.int64(-(2**31)) - b - 1, b)
    b = x.view(np.int64)
    return np.where(b < 0, np.int64(-(2**63)) - b - 1, b)


def ordered_to_float_bits(z: np.ndarray, dtype: np.dtype) -> np.ndarray:
    """Inverse of float_bits_to_ordered."""
    if np.dtype(dtype) == np.float32:
        b = np.where(z < 0, np.int64(-(2**31)) - z - 1, z).astype(np.int32)
        return b.view(np.float32)
    b = np.where(z < 0, np.int64(-(2**63)) - z - 1, z)
    return b.astype(np.int64).view(np.float64)


@dataclass(frozen=True)
class Transform:
    """How one channel maps to integers: kind, source dtype, decimals, offset and step (see module doc)."""

    kind: str
    dtype: str  # numpy dtype string of the source channel, e.g. "<f8", "<i2"
    decimals: int = 0
    offset: int = 0
    step: int = 1
    shift: int = 0  # > 0: a lattice, k = ((z * step + offset) >> shift) + correction(z) (see fit_lattice)
    corrections: tuple[tuple[int, int], ...] = ()  # lattice points (z, slip) off the straight line
    complete: bool = True  # corrections list every slip (else: every lattice point seen, see module doc)
    digits: int = 0  # rational kind: significant digits P of the printed values (0: nearest double)

    @property
    def quantum(self) -> float | None:
        """Size in channel units of one integer step of z (None when the map is not a uniform grid)."""
        if self.kind in ("bits", "rational") or self.shift:
            return None
        if self.kind == "binary":
            return self.step * 2.0**-self.decimals
        return self.step / 10**self.decimals

    def forward(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """Channel values -> (z int64, patch positions int64, patch bit patterns uint64, slips int64).

        A value the transform cannot map exactly (off the decimal grid or the common step, NaN,
        +-inf, -0.0) becomes a patch: its bits are returned aside and z repeats the previous value.
        Slips (lattices only, else zeros): value minus the lattice's straight line, |slip| <= MAX_CODED_SLIP.
        """
        slips = np.zeros(len(x), np.int64)
        if self.kind == "bits":
            return float_bits_to_ordered(x), np.zeros(0, np.int64), np.zeros(0, np.uint64), slips
        if self.kind == "rational":
            rule = self._rule
            bad = rational.misses(x, rule)
            k = np.rint(np.where(bad, 0.0, x) * float(rule.denominator)).astype(np.int64)
        elif self.kind == "int":
            k = _as_int64(x)
            bad = np.zeros(len(k), bool)
        elif self.kind == "binary":
            with np.errstate(invalid="ignore", over="ignore"):
                kf = np.rint(np.ldexp(x.astype(np.float64), self.decimals))
                # a value whose grid point is beyond the dtype's range (rounding up near its maximum) is kept exactly
                back = np.ldexp(kf, -self.decimals).astype(x.dtype)
            bad = ~(np.abs(kf) < EXACT_FLOAT_INT) | ~np.isfinite(back)
            k = np.where(bad, 0.0, kf).astype(np.int64)
        else:
            k, bad = _decimal_ints(x, self.decimals)
        if self.shift:
            d = self._lattice_index(k)
            slips = k - self._lattice_line(d)
            bad |= np.abs(slips) > MAX_CODED_SLIP
            slips[bad] = 0
        else:
            d = k.view(np.uint64)
            if np.shares_memory(k, x):  # a view of the caller's array: do not modify it
                d = d - np.uint64(self.offset % 2**64)
            else:
                d -= np.uint64(self.offset % 2**64)
            d = d.view(np.int64)
            if self.step != 1 and self.kind != "rational":  # a rational's step is its multiplier
                bad |= (d % np.int64(self.step)) != 0
                d //= np.int64(self.step)
        if not bad.any():
            return d, np.zeros(0, np.int64), np.zeros(0, np.uint64), slips
        pos = np.flatnonzero(bad).astype(np.int64)
        bits = _as_int64(x[pos]).view(np.uint64) if self.kind == "int" else x[pos].view(np.uint32 if x.dtype == np.float32 else np.uint64).astype(np.uint64)
        # repeat the previous good value at a patch, so the predictor sees a smooth stream
        idx = np.where(bad, 0, np.arange(len(d)))
        np.maximum.accumulate(idx, out=idx)
        good = np.flatnonzero(~bad)
        d = np.where(bad, d[idx], d)
        d[: good[0] if len(good) else len(d)] = d[good[0]] if len(good) else 0
        return d, pos, bits, slips

    def inverse(
        self, z: np.ndarray, patch_pos: np.ndarray, patch_bits: np.ndarray, slips: np.ndarray | None = None, *, overwrite: bool = False
    ) -> np.ndarray:
        """int64 stream (+ patches, + lattice slips) -> channel values of the source dtype.

        `overwrite` lets the inverse reuse z's memory (for a freshly decoded stream)."""
        dtype = np.dtype(self.dtype)
        if self.kind == "bits":
            return ordered_to_float_bits(z, dtype)
        if self.kind == "rational":
            k = z.astype(np.int64) + np.int64(self.offset)
            out = self._rule.values(k).astype(dtype)
            return self._patch(out, patch_pos, patch_bits, dtype)
        if self.shift:
            k = self._lattice_line(z.astype(np.int64)) + (0 if slips is None else slips)
        else:
            k = z.astype(np.int64, copy=not overwrite).view(np.uint64)
            if self.step != 1:
                k *= np.uint64(self.step)
            k += np.uint64(self.offset % 2**64)
            k = k.view(np.int64)
        if self.kind == "int":
            out = _from_int64(k, dtype)
        elif self.kind == "binary":
            out = np.ldexp(k.astype(np.float64), -self.decimals).astype(dtype)
        else:
            out = (k.astype(np.float64) / np.float64(10.0**self.decimals)).astype(dtype)
        return self._patch(out, patch_pos, patch_bits, dtype)

    def _patch(self, out: np.ndarray, patch_pos: np.ndarray, patch_bits: np.ndarray, dtype: np.dtype) -> np.ndarray:
        if len(patch_pos):
            if patch_pos.min() < 0 or patch_pos.max() >= len(out):
                raise QresFormatError(f"patch position out of range 0..{len(out) - 1}")
            if self.kind == "int":
                out[patch_pos] = _from_int64(patch_bits.view(np.int64), dtype)
            else:
                view = out.view(np.uint32 if dtype == np.float32 else np.uint64)
                view[patch_pos] = patch_bits.astype(view.dtype)
        return out

    @property
    def _rule(self) -> rational.Rational:
        return rational.Rational(self.decimals, self.step, self.digits)

    def stream_range(self) -> tuple[int, int]:
        """(lowest, highest) z whose value fits the dtype: what error-bounded decoding may produce."""
        lo, hi = -(2**63), 2**63 - 1
        dtype = np.dtype(self.dtype)
        if self.kind == "int" and not self.shift:
            info = np.iinfo(dtype)
            dmin, dmax = int(info.min), min(int(info.max), 2**63 - 1)  # uint64 above 2^63 is not bounded here
            lo = max(lo, -((self.offset - dmin) // self.step))  # ceil((dmin - offset) / step)
            hi = min(hi, (dmax - self.offset) // self.step)
        return lo, hi

    def _lattice_index(self, k: np.ndarray) -> np.ndarray:
        est = (k.astype(np.float64) * 2.0**self.shift - self.offset) / self.step
        return np.rint(np.clip(est, -LATTICE_INDEX_LIMIT, LATTICE_INDEX_LIMIT)).astype(np.int64)

    def _lattice_line(self, z: np.ndarray) -> np.ndarray:
        limit = min(LATTICE_INDEX_LIMIT, 2**62 // self.step)  # keeps z * step + offset inside int64
        zc = np.clip(z, -limit, limit)
        return (zc * np.int64(self.step) + np.int64(self.offset)) >> np.int64(self.shift)

    def slip_table(self, size: int) -> tuple[np.ndarray, np.ndarray, int]:
        """(lattice points, slips, mode) for the codec kernel, padded to `size`; mode 0: no lattice,
        1: the table lists every slip (others are 0), 2: it lists the points seen (others unknown)."""
        at = np.zeros(size, np.int64)
        sl = np.zeros(size, np.int64)
        if not self.shift:
            return at, sl, 0
        at[: len(self.corrections)] = [c[0] for c in self.corrections]
        sl[: len(self.corrections)] = [c[1] for c in self.corrections]
        return at, sl, 1 if self.complete else 2



def _as_int64(x: np.ndarray) -> np.ndarray:
    if x.dtype == np.uint64:
        return x.view(np.int64)
    return x.astype(np.int64)


def _from_int64(k: np.ndarray, dtype: np.dtype) -> np.ndarray:
    if dtype == np.uint64:
        return k.view(np.uint64)
    return k.astype(dtype)


def _decimal_ints(x: np.ndarray, d: int) -> tuple[np.ndarray, np.ndarray]:
    """k = round(x * 10^d) and a mask of values that are not exactly the float nearest k / 10^d."""
    scale = np.float64(10.0**d)
    with np.errstate(invalid="ignore", over="ignore"):
        kf = np.rint(x.astype(np.float64) * scale)
        ok = np.isfinite(kf) & (np.abs(kf) < EXACT_FLOAT_INT)
        kf = np.where(ok, kf, 0.0)
        back = (kf / scale).astype(x.dtype)
        same = (back == x) & ~((x == 0) & np.signbit(x))
    bad = ~(ok & same)
    return kf.astype(np.int64), bad


def _common_step(k: np.ndarray) -> tuple[int, int]:
    """(offset, step): step = gcd of all differences, offset near the middle and on the grid."""
    if len(k) == 0:
        return 0, 1
    base = int(k[0])
    # the gcd of a prefix is a multiple of the whole gcd; 1 (the usual case) ends the search early
    step = 0
    for stop in (4096, len(k)):
        diffs = np.abs(k[:stop] - k[0])
        step = int(np.gcd.reduce(np.append(diffs[diffs > 0], step)))
        if step == 1:
            break
        if not np.any((k - base) % max(step, 1)):
            break
    step = max(step, 1)
    sample = np.sort(k[:: max(1, len(k) // 65536)])
    mid = int(sample[len(sample) // 2])  # centre the stream on its typical value (exact: no float median)
    offset = base + step * ((mid - base) // step)
    return offset, step


def fit_transform(
    x: np.ndarray, *, max_patch_fraction: float = 0.02, lattice: bool = True, complete: bool = True, averages: bool = False
) -> Transform:
    """Choose the transform of one channel (1-D array of an integer or float dtype).

    `lattice` allows a non-integer grid (see fit_lattice); error-bounded coding turns it off.
    `complete=False` fits a lattice for data not seen yet (frames): its table lists every point seen.
    `averages` allows the rational kind for averaged readings (models for frames).
    """
    dtype = x.dtype.str
    if np.issubdtype(x.dtype, np.integer):
        k = _as_int64(x)
        if x.dtype == np.uint64 and len(k) and (x > np.uint64(2**63 - 1)).any():
            return Transform("int", dtype)  # full 64-bit range: no offset or step, wrapping arithmetic
        found = fit_lattice(k, complete=complete) if lattice else None
        if found:
            return Transform("int", dtype, 0, found[1], found[0], found[2], found[3], complete)
        offset, step = _common_step(k)
        return Transform("int", dtype, 0, offset, step)
    if not np.issubdtype(x.dtype, np.floating) or x.dtype not in (np.float32, np.float64):
        raise TypeError(f"unsupported dtype {x.dtype}: use an integer dtype, float32 or float64")
    if len(x) == 0:
        return Transform("decimal", dtype)
    finite = np.isfinite(x)
    limit = max(1, int(max_patch_fraction * len(x)))
    absmax = float(np.abs(x[finite]).max()) if finite.any() else 0.0
    exact_limit = _F32_EXACT_INT if x.dtype == np.float32 else EXACT_FLOAT_INT
    for d in range(MAX_DECIMALS + 1):
        if absmax * 10.0**d >= exact_limit:
            break
        k, bad = _decimal_ints(x, d)
        if int(bad.sum()) <= limit:
            rule = rational.find(x, d) if averages and x.dtype == np.float64 else None
            if rule is not None:
                n = np.rint(x[~rational.misses(x, rule)] * float(rule.denominator)).astype(np.int64)
                mid = int(np.sort(n)[len(n) // 2]) if len(n) else 0
                return Transform("rational", dtype, rule.decimals, mid, rule.multiplier, digits=rule.digits)
            good = k[~bad]
            found = fit_lattice(good, complete=complete) if lattice else None
            if found:
                return Transform("decimal", dtype, d, found[1], found[0], found[2], found[3], complete)
            offset, step = _common_step(good)
            return Transform("decimal", dtype, d, offset, step)
    return Transform("bits", dtype)


def transform_from_dict(d: dict) -> Transform:
    """Validate and build a Transform from its model-file form."""
    try:
        kind = d["kind"]
        dtype = np.dtype(d["dtype"])
        decimals, offset, step = int(d["decimals"]), int(d["offset"]), int(d["step"])
        shift = int(d.get("shift", 0))
        digits = int(d.get("digits", 0))
        corrections = tuple((int(n), int(c)) for n, c in d.get("corrections", ()))
        complete = bool(d.get("complete", True))
    except (KeyError, TypeError, ValueError) as exc:
        raise QresFormatError(f"invalid channel transform {d!r}: {exc}") from None
    if kind not in KINDS:
        raise QresFormatError(f"unknown channel transform kind {kind!r}")
    if not (np.issubdtype(dtype, np.integer) or dtype in (np.float32, np.float64)):
        raise QresFormatError(f"unsupported channel dtype {dtype}")
    dec_lo, dec_hi = (-MAX_BINARY_EXPONENT, MAX_BINARY_EXPONENT) if kind == "binary" else (0, MAX_DECIMALS)
    if kind in ("binary", "decimal") and not np.issubdtype(dtype, np.floating):
        raise QresFormatError(f"a {kind} transform needs a float dtype, not {dtype}")
    if not dec_lo <= decimals <= dec_hi or not 1 <= step < 2**63 or not -(2**63) <= offset < 2**64:
        raise QresFormatError(f"channel transform out of range: decimals={decimals} step={step} offset={offset}")
    if shift and (not 0 < shift <= LATTICE_MAX_SHIFT or kind not in ("int", "decimal") or step >= 2**62 or abs(offset) >= 2**62):
        raise QresFormatError(f"channel lattice out of range: step={step} offset={offset} shift={shift}")
    at = [n for n, _ in corrections]
    if corrections and (not shift or at != sorted(set(at)) or len(at) > MAX_TABLE or any(abs(n) > LATTICE_INDEX_LIMIT or abs(c) > MAX_SLIP for n, c in corrections)):
        raise QresFormatError("channel lattice corrections out of range or out of order")
    if kind == "rational" and (dtype != np.float64 or not 0 <= decimals <= 9 or step > 10**6 or digits not in (0, 15, 16, 17)):
        raise QresFormatError(f"rational transform out of range: decimals={decimals} multiplier={step} digits={digits}")
    return Transform(kind, dtype.str, decimals, offset, step, shift, corrections, complete, digits if kind == "rational" else 0)


def binary_transform(x: np.ndarray, max_error: float) -> Transform:
    """An error-bounded grid for floats on no decimal grid: step 2^-m with 2^-m <= max_error / 16."""
    m = -int(np.floor(np.log2(max_error / 16.0)))
    return Transform("binary", x.dtype.str, max(-MAX_BINARY_EXPONENT, min(MAX_BINARY_EXPONENT, m)))



def fit_lattice(k: np.ndarray, *, complete: bool = True) -> tuple[int, int, int, tuple[tuple[int, int], ...]] | None:
    """A non-integer grid under integer data: (A, B, S, corrections) with
    k = ((A * n + B) >> S) + correction(n) for integers n.

    Sensors often report readings as round(a * count + b): an ADC count through a calibration.
    The values then sit on a lattice of spacing a (say 9.8 mg), and coding the count n instead of
    k saves about log2(a) bits per value. Calibration chains rarely round exactly once, so a few
    lattice points sit a unit or two off the straight line (a *slip*): `corrections` lists those
    (n, slip) pairs, or with complete=False every point seen (a frame may meet points not seen in
    training; their slips are coded in-band).
    Found from the distinct values: the small gaps give a, least squares refines a and b. None
    when there is no such lattice, or it would not pay for its correction table.
    """
    if len(k) < 64:
        return None
    # quick look at a sample: the smallest gaps give the spacing; on a lattice, (nearly) every gap
    # is a whole multiple of it
    sample_gaps = np.diff(np.unique(k[:: max(1, len(k) // 8192)]))
    if len(sample_gaps) < 7:
        return None
    a0 = float(np.median(sample_gaps[sample_gaps <= 1.5 * np.percentile(sample_gaps, 5)]))
    if a0 < 1.5:
        return None  # the smallest spacing is about 1: plain integers
    ratio = sample_gaps / a0
    if np.mean(np.abs(ratio - np.rint(ratio)) < 0.1 + 0.02 * ratio) < 0.8:
        return None  # gaps of any size: no lattice
    u, counts = np.unique(k, return_counts=True)
    if len(u) < 8 or (u[-1] - u[0]) / len(u) < 2.5:
        return None
    gaps = np.diff(u)
    a = float(np.median(gaps[gaps <= 1.5 * np.percentile(gaps, 5)]))
    if a < 1.5:
        return None
    n = np.zeros(len(u))
    b = float(u[0])
    for _ in range(3):
        n = np.concatenate([[0], np.cumsum(np.rint(gaps / a))])
        if n[-1] >= LATTICE_INDEX_LIMIT:
            return None
        a, b = np.polyfit(n, u.astype(np.float64), 1)
        if not a >= 1.5:
            return None
    if abs(a - round(a)) < 1e-6:
        return None  # an integer spacing: the plain common step does it
    centre = float(np.rint(np.median(np.repeat(n, counts))))
    n_int = (n - centre).astype(np.int64)
    b += a * centre
    span = int(np.abs(n_int).max()) + 1
    shift = min(LATTICE_MAX_SHIFT, 61 - int(np.ceil(np.log2(a * span + abs(b) + 2))))
    if shift < 12:
        return None
    step = int(round(a * 2**shift))
    offset = int(round(b * 2**shift)) + 2 ** (shift - 1)  # + 1/2: round to nearest
    base = (n_int * np.int64(step) + np.int64(offset)) >> np.int64(shift)
    corr = u - base
    # a point of the table holds one small slip; values off by more, or sharing a point with a more
    # frequent value, have their slips coded in-band (they must stay rare to pay)
    first = np.ones(len(u), bool)
    first[1:] = n_int[1:] != n_int[:-1]  # u is sorted, so values of one point are adjacent
    keep = first & (np.abs(corr) <= MAX_SLIP)
    if counts[~keep].sum() > 0.02 * len(k):
        return None
    listed = np.flatnonzero(keep & (corr != 0)) if complete else np.flatnonzero(keep)
    if len(listed) > MAX_TABLE:
        return None
    # a stream pays for its table once per block: it must be worth it; a frame model's table is shared in advance
    if complete and (np.log2(a) * len(k) < 2 * (24 * len(listed) + 64) or len(listed) > len(u) // 3):
        return None
    return step, offset, shift, tuple(zip(n_int[listed].tolist(), corr[listed].tolist()))
