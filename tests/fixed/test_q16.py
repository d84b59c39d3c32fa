"""Q16.16 arithmetic: golden values, saturation, and exact Fraction references."""

import math
from fractions import Fraction

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from qres.fixed import (
    Q16_MAX,
    Q16_MIN,
    Q16_ONE,
    from_q16,
    isqrt,
    q16_add,
    q16_div,
    q16_mul,
    q16_sqrt,
    q16_sub,
    to_q16,
)

raws = st.integers(Q16_MIN, Q16_MAX)


def round_half_away(x: Fraction) -> int:
    """Independent reference: nearest integer, ties away from zero."""
    mag = math.floor(abs(x) + Fraction(1, 2))
    return -mag if x < 0 else mag


def sat(v: int) -> int:
    return max(Q16_MIN, min(Q16_MAX, v))


# ---------------------------------------------------------------- to_q16 / from_q16


def test_golden_decimals():
    assert Q16_ONE == 65536
    assert to_q16(0.1) == 6554
    assert to_q16(0.2) == 13107
    assert to_q16(0.3) == 19661
    assert to_q16(0.1) + to_q16(0.2) == 19661
    assert to_q16(-0.1) == -6554
    assert to_q16(1.0) == 65536
    assert to_q16(-32768.0) == Q16_MIN


def test_to_q16_ties_away_from_zero():
    lsb = 1 / 65536
    assert to_q16(0.5 * lsb) == 1
    assert to_q16(-0.5 * lsb) == -1
    assert to_q16(1.5 * lsb) == 2
    assert to_q16(2.5 * lsb) == 3  # not banker's rounding (which would give 2)
    assert to_q16(-2.5 * lsb) == -3
    # Just below a tie: floor(y + 0.5) would wrongly round this up.
    assert to_q16(np.nextafter(0.5, 0.0) * lsb) == 0
    assert to_q16(-np.nextafter(0.5, 0.0) * lsb) == 0


def test_to_q16_saturates():
    assert to_q16(32768.0) == Q16_MAX
    assert to_q16(32767.99999) == Q16_MAX
    assert to_q16(1e300) == Q16_MAX
    assert to_q16(math.inf) == Q16_MAX
    assert to_q16(-32768.00001) == Q16_MIN
    assert to_q16(-math.inf) == Q16_MIN
    out = to_q16([1e10, -1e10, 0.25])
    assert out.dtype == np.int32
    assert out.tolist() == [Q16_MAX, Q16_MIN, 16384]


def test_to_q16_nan_raises():
    with pytest.raises(ValueError):
        to_q16(math.nan)
    with pytest.raises(ValueError):
        to_q16([0.0, math.nan])


def test_to_q16_shapes_and_types():
    x = np.linspace(-2, 2, 12).reshape(3, 4)
    out = to_q16(x)
    assert out.shape == (3, 4) and out.dtype == np.int32
    assert isinstance(to_q16(0.5), np.int32)
    assert to_q16(3) == 3 * 65536  # Python int


@given(st.floats(allow_nan=False))
def test_to_q16_matches_exact_rounding(x):
    if math.isinf(x):
        expected = Q16_MAX if x > 0 else Q16_MIN
    else:
        expected = sat(round_half_away(Fraction(x) * 65536))
    assert to_q16(x) == expected


@given(raws)
def test_from_q16_round_trip(r):
    v = from_q16(r)
    assert v == r / 65536 and isinstance(v, np.float64)
    assert to_q16(v) == r


def test_integer_functions_reject_bad_input():
    with pytest.raises(TypeError):
        q16_add(1.5, 2)
    with pytest.raises(ValueError):
        q16_add(2**31, 0)
    with pytest.raises(ValueError):
        q16_mul(np.array([Q16_MIN - 1], dtype=np.int64), 1)
    with pytest.raises(TypeError):
        from_q16(np.array([0.5]))


# ---------------------------------------------------------------- add / sub / mul / div


def test_add_sub_saturate():
    assert q16_add(Q16_MAX, 1) == Q16_MAX
    assert q16_add(Q16_MIN, -1) == Q16_MIN
    assert q16_sub(Q16_MIN, 1) == Q16_MIN
    assert q16_sub(Q16_MAX, Q16_MIN) == Q16_MAX
    assert q16_sub(0, Q16_MIN) == Q16_MAX
    assert q16_add(to_q16(0.1), to_q16(0.2)) == 19661
    assert q16_add(np.int32(Q16_MAX), np.int32(Q16_MAX)) == Q16_MAX  # no int32 wrap-around


@given(raws, raws)
def test_add_sub_exact(a, b):
    assert q16_add(a, b) == sat(a + b)
    assert q16_sub(a, b) == sat(a - b)


def test_mul_golden():
    assert q16_mul(to_q16(1.5), to_q16(2.25)) == to_q16(3.375) == 221184
    assert q16_mul(to_q16(-1.5), to_q16(2.25)) == -221184
    assert q16_mul(1, 32768) == 1  # 0.5 lsb rounds away from zero
    assert q16_mul(-1, 32768) == -1
    assert q16_mul(3, 32768) == 2  # 1.5 lsb -> 2
    assert q16_mul(1, 32767) == 0
    assert q16_mul(Q16_MAX, Q16_MAX) == Q16_MAX
    assert q16_mul(Q16_MIN, Q16_MIN) == Q16_MAX
    assert q16_mul(Q16_MIN, Q16_MAX) == Q16_MIN
    assert q16_mul(Q16_MIN, Q16_ONE) == Q16_MIN


@given(raws, raws)
def test_mul_matches_fraction(a, b):
    expected = sat(round_half_away(Fraction(a * b, 65536)))
    assert q16_mul(a, b) == expected


def test_div_golden():
    one = Q16_ONE
    assert q16_div(one, 3 * one) == 21845  # 21845.33
    assert q16_div(2 * one, 3 * one) == 43691  # 43690.67
    assert q16_div(-2 * one, 3 * one) == -43691
    assert q16_div(to_q16(3.375), to_q16(1.5)) == to_q16(2.25)
    assert q16_div(1, 2 * Q16_ONE) == 1  # 0.5 lsb, tie away from zero
    assert q16_div(-1, 2 * Q16_ONE) == -1
    assert q16_div(1, -2 * Q16_ONE) == -1
    assert q16_div(Q16_MAX, 1) == Q16_MAX
    assert q16_div(Q16_MIN, -1) == Q16_MAX
    assert q16_div(Q16_MIN, 1) == Q16_MIN


def test_div_by_zero():
    assert q16_div(5, 0) == Q16_MAX
    assert q16_div(-5, 0) == Q16_MIN
    assert q16_div(0, 0) == 0
    out = q16_div(np.array([3, -3, 0, 6]), np.array([0, 0, 0, 2 * Q16_ONE]))
    assert out.tolist() == [Q16_MAX, Q16_MIN, 0, 3]


@given(raws, raws)
def test_div_matches_fraction(a, b):
    if b == 0:
        expected = Q16_MAX if a > 0 else Q16_MIN if a < 0 else 0
    else:
        expected = sat(round_half_away(Fraction(a * 65536, b)))
    assert q16_div(a, b) == expected


@given(st.lists(st.tuples(raws, raws), min_size=1, max_size=20))
def test_vectorised_equals_scalar(pairs):
    a = np.array([p[0] for p in pairs], dtype=np.int32)
    b = np.array([p[1] for p in pairs], dtype=np.int32)
    for f in (q16_add, q16_sub, q16_mul, q16_div):
        vec = f(a, b)
        assert vec.dtype == np.int32 and vec.shape == a.shape
        assert vec.tolist() == [int(f(int(x), int(y))) for x, y in pairs]


# ---------------------------------------------------------------- isqrt / q16_sqrt


def test_isqrt_golden():
    n = [0, 1, 2, 3, 4, 8, 9, 2**62, 2**63 - 1]
    assert isqrt(n).tolist() == [0, 1, 1, 1, 2, 2, 3, 2**31, 3037000499]
    assert isqrt(2**63 - 1) == math.isqrt(2**63 - 1)
    assert isqrt(np.uint64(2**63 - 1)) == 3037000499


def test_isqrt_near_perfect_squares():
    # Every k**2 - 1, k**2, k**2 + 2k (= (k+1)**2 - 1) for many k, up to the top of int64.
    rng = np.random.default_rng(1)
    k = np.concatenate(
        [np.arange(0, 5000), rng.integers(5000, 3037000499, 20000), np.arange(3037000499 - 2000, 3037000500)]
    ).astype(np.int64)
    sq = k * k
    assert np.array_equal(isqrt(sq), k)
    top = sq.astype(np.uint64) + 2 * k.astype(np.uint64)  # (k+1)**2 - 1, may exceed int64
    ok = top <= np.uint64(2**63 - 1)
    assert np.array_equal(isqrt(top[ok].astype(np.int64)), k[ok])
    assert isqrt(2**63 - 1) == k[-1]  # the largest k**2 - 1 + 2k that would not fit
    pos = k > 0
    assert np.array_equal(isqrt(sq[pos] - 1), k[pos] - 1)


@given(st.integers(0, 2**63 - 1))
def test_isqrt_property(n):
    r = int(isqrt(n))
    assert r * r <= n < (r + 1) * (r + 1)


def test_isqrt_rejects():
    with pytest.raises(ValueError):
        isqrt(-1)
    with pytest.raises(ValueError):
        isqrt(np.uint64(2**63))
    with pytest.raises(TypeError):
        isqrt(4.0)


def test_q16_sqrt():
    assert q16_sqrt(4 * Q16_ONE) == 2 * Q16_ONE
    assert q16_sqrt(to_q16(2.25)) == to_q16(1.5)
    assert q16_sqrt(to_q16(2.0)) == 92681  # floor(sqrt(2) * 65536) = floor(92681.9)
    assert q16_sqrt(0) == 0
    assert q16_sqrt(1) == 256
    assert q16_sqrt(Q16_MAX) == 11863283
    assert q16_sqrt(np.array([Q16_ONE, 9 * Q16_ONE], dtype=np.int32)).dtype == np.int32
    with pytest.raises(ValueError):
        q16_sqrt(-1)


@given(st.integers(0, Q16_MAX))
def test_q16_sqrt_rounds_down(r):
    q = int(q16_sqrt(r))
    assert q * q <= r * 65536 < (q + 1) * (q + 1)
