"""Averaged readings: floats that are fractions n / (10^d * L) printed with P significant digits.

Loggers often store the mean of a few readings per interval. The mean of m values on a 0.01 grid
is a multiple of 0.01 / m, and a tool such as R writes it with 15 significant digits
(27.3566666666667). As decimals such a column needs 13 digits and looks like noise; as the integer
n = x * 10^d * L (L a multiple of every m) it is exact and small. Most means are of the usual count,
so n splits into a quotient q = n // L (the reading on the base grid) and a remainder n % L that is
nearly always the same few values: two integer columns that the codec compresses well.

`find` proposes (d, L, P) for a float column; `split` / `join` convert, with the values that the
rule does not reproduce returned as exact patches. P = 0 means x is the double nearest n / (10^d L).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

MULTIPLIERS = (1, 2, 3, 4, 5, 6, 8, 10, 12, 20, 24, 30, 60, 120, 240, 360, 720, 840, 2520)
DIGITS = (0, 15, 16, 17)
MAX_PATCH_FRACTION = 0.01
SAMPLE = 512


@dataclass(frozen=True)
class Rational:
    """x = n / (10^decimals * multiplier), written with `digits` significant digits (0: exact double)."""

    decimals: int
    multiplier: int
    digits: int

    @property
    def denominator(self) -> int:
        return 10**self.decimals * self.multiplier

    def values(self, n: np.ndarray) -> np.ndarray:
        """The float64 values for integers n (vectorised, exact integer rounding)."""
        n = np.asarray(n, dtype=np.int64)
        den = self.denominator
        if self.digits == 0:
            return n.astype(np.float64) / np.float64(den)
        out = np.empty(len(n), np.float64)
        for i, v in enumerate(n.tolist()):  # exact big-integer arithmetic; columns here are small
            out[i] = _round_sig(v, den, self.digits)
        return out

    def to_list(self) -> list[int]:
        return [self.decimals, self.multiplier, self.digits]


def _round_sig(num: int, den: int, digits: int) -> float:
    """The double nearest to num/den rounded (half to even) to `digits` significant decimal digits."""
    if num == 0:
        return 0.0
    sign = -1 if num < 0 else 1
    num = abs(num)

    def at_least(e: int) -> bool:  # num/den >= 10^e ?
        return num * 10 ** max(-e, 0) >= den * 10 ** max(e, 0)

    e = len(str(num)) - len(str(den))
    while not at_least(e):
        e -= 1
    while at_least(e + 1):
        e += 1
    keep = digits - 1 - e  # decimals kept
    scaled_den = den if keep >= 0 else den * 10**-keep
    q, r = divmod(num * 10 ** max(keep, 0), scaled_den)
    if 2 * r > scaled_den or (2 * r == scaled_den and q % 2):
        q += 1
    return sign * (q / 10**keep if keep >= 0 else float(q * 10**-keep))


def misses(x: np.ndarray, rule: Rational) -> np.ndarray:
    """Mask of the values `rule` does not reproduce exactly (they become patches)."""
    n = np.rint(x * float(rule.denominator))
    ok = np.isfinite(n) & (np.abs(n) < 2**53)
    n = np.where(ok, n, 0).astype(np.int64)
    return ~ok | (rule.values(n) != x) | ((x == 0) & np.signbit(x))


def find(x: np.ndarray, decimals: int) -> Rational | None:
    """A rule for a float64 column whose decimal form needs `decimals` digits (worth it from 6 up)."""
    if x.dtype != np.float64 or decimals < 6 or len(x) < 32:
        return None
    finite = x[np.isfinite(x)]
    if not len(finite) or np.abs(finite).max() >= 1e12:
        return None
    sample = finite[:: max(1, len(finite) // SAMPLE)][:SAMPLE]
    # printed with P significant digits only if the longest values have about that many
    sig = decimals + int(np.floor(np.log10(max(float(np.abs(finite).max()), 1e-300)))) + 1
    digit_options = DIGITS if sig >= 14 else (0,)
    for d in range(0, 5):
        for mult in MULTIPLIERS:
            if 10**d * mult >= 10**decimals:
                return None
            for digits in digit_options:
                rule = Rational(d, mult, digits)
                if misses(sample[:32], rule).mean() <= 0.1 and misses(sample, rule).mean() <= MAX_PATCH_FRACTION:
                    if misses(x, rule).mean() <= MAX_PATCH_FRACTION:
                        return rule
    return None


def split(x: np.ndarray, rule: Rational) -> tuple[np.ndarray, np.ndarray, list[list]]:
    """(quotient, remainder, patches [[row, hex bits], ...]) of a column under `rule`."""
    bad = misses(x, rule)
    n = np.rint(np.where(bad, 0.0, x) * float(rule.denominator)).astype(np.int64)
    if bad.any():
        idx = np.where(bad, 0, np.arange(len(n)))
        np.maximum.accumulate(idx, out=idx)
        n = np.where(bad, n[idx], n)
    q = n // rule.multiplier
    patches = [[int(i), format(int(b), "016x")] for i, b in zip(np.flatnonzero(bad), x[bad].view(np.uint64))]
    return q, n - q * rule.multiplier, patches


def join(q: np.ndarray, rem: np.ndarray, rule: Rational, patches: list[list]) -> np.ndarray:
    """Inverse of split."""
    out = rule.values(q.astype(np.int64) * rule.multiplier + rem.astype(np.int64))
    if patches:
        rows = np.array([p[0] for p in patches], np.int64)
        bits = np.array([int(p[1], 16) for p in patches], np.uint64)
        out.view(np.uint64)[rows] = bits
    return out
