"""BFP-16 vectors: exponent choice, rounding, round trips, wire format and hostile bytes."""

import math
from fractions import Fraction

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from qres.errors import QresFormatError
from qres.fixed import (
    Q16_MAX,
    Q16_MIN,
    Bfp16,
    bfp16_encode,
    bfp16_from_float,
    bfp16_from_q16,
    bfp16_to_float,
    bfp16_to_q16,
    to_q16,
)

raws = st.integers(Q16_MIN, Q16_MAX)
raw_vectors = st.lists(raws, min_size=1, max_size=40)


def round_half_away(x: Fraction) -> int:
    mag = math.floor(abs(x) + Fraction(1, 2))
    return -mag if x < 0 else mag


def fits16(values) -> bool:
    return all(-32768 <= v <= 32767 for v in values)


# ---------------------------------------------------------------- golden vectors


def test_golden_bytes():
    b = bfp16_from_q16(to_q16([1.0, -0.5, 0.25]))
    assert b.exponent == -14  # 65536 needs a shift of 2 to fit int16
    assert b.mantissas.tolist() == [16384, -8192, 4096]
    assert b.to_bytes() == b"\x03\x00\xf2\x00\x40\x00\xe0\x00\x10"
    assert Bfp16.from_bytes(b"\x03\x00\xf2\x00\x40\x00\xe0\x00\x10") == b
    assert bfp16_to_float(b).tolist() == [1.0, -0.5, 0.25]


@pytest.mark.parametrize(
    "raw, exponent, mantissas",
    [
        ([0], -16, [0]),
        ([], -16, []),
        ([32767, -32768], -16, [32767, -32768]),  # fits exactly
        ([32768], -15, [16384]),
        ([65533], -15, [32767]),  # 32766.5 -> 32767 (tie away from zero)
        ([65535], -14, [16384]),  # 32767.5 would round to 32768: use the next exponent
        ([-65535], -15, [-32768]),  # -32767.5 -> -32768 still fits
        ([-65537], -14, [-16384]),  # -32768.5 -> -32769 does not fit
        ([2, 65536], -14, [1, 16384]),  # 2/4 = 0.5 -> 1
        ([-2, 65536], -14, [-1, 16384]),
        ([1, 65536], -14, [0, 16384]),
        ([Q16_MAX], 1, [16384]),
        ([Q16_MIN], 0, [-32768]),
        ([Q16_MIN, Q16_MAX], 1, [-16384, 16384]),
    ],
)
def test_exponent_choice(raw, exponent, mantissas):
    e, m = bfp16_encode(np.array(raw, dtype=np.int64))
    assert (e, m.tolist()) == (exponent, mantissas)
    assert m.dtype == np.int16


def test_to_q16_rounds_and_saturates():
    assert bfp16_to_q16(Bfp16(127, np.array([1, -1, 0]))).tolist() == [Q16_MAX, Q16_MIN, 0]
    assert bfp16_to_q16(Bfp16(1, np.array([16384]))).tolist() == [Q16_MAX]  # 2**31 saturates
    assert bfp16_to_q16(Bfp16(-128, np.array([32767, -32768]))).tolist() == [0, 0]
    assert bfp16_to_q16(Bfp16(-32, np.array([-32768, 32767, 0]))).tolist() == [-1, 0, 0]  # -0.5 -> -1
    out = bfp16_to_q16(Bfp16(-17, np.array([3, -3, 5])))  # 1.5 -> 2, -1.5 -> -2, 2.5 -> 3
    assert out.tolist() == [2, -2, 3] and out.dtype == np.int32


# ---------------------------------------------------------------- properties


@given(raw_vectors)
def test_q16_round_trip(raw):
    r = np.array(raw, dtype=np.int32)
    b = bfp16_from_q16(r)
    back = bfp16_to_q16(b)
    assert back.dtype == np.int32
    step = 2 ** (b.exponent + 16)  # mantissa step in raw units
    if fits16(raw):
        assert b.exponent == -16 and np.array_equal(back, r)
    assert all(2 * abs(int(x) - y) <= step for x, y in zip(back, raw))
    # Mantissas are the exactly rounded quotients, and the exponent is minimal.
    assert b.mantissas.tolist() == [round_half_away(Fraction(x, step)) for x in raw]
    if b.exponent > -16:
        assert not fits16([round_half_away(Fraction(2 * x, step)) for x in raw])


@given(st.lists(st.integers(-(2**15), 2**15 - 1), min_size=1, max_size=30), st.integers(0, 15))
def test_exact_when_representable(mant, shift):
    # Raws that are multiples of 2**shift with int16 mantissas come back exactly.
    r = np.array(mant, dtype=np.int64) << shift
    assert np.array_equal(bfp16_to_q16(bfp16_from_q16(r)), r)


@given(st.lists(st.floats(allow_nan=False, allow_infinity=False, max_value=1e40, min_value=-1e40), min_size=1, max_size=30))
def test_from_float_properties(xs):
    b = bfp16_from_float(xs)
    step = Fraction(2) ** b.exponent
    assert b.mantissas.tolist() == [round_half_away(Fraction(x) / step) for x in xs]
    if b.exponent > -128:
        assert not fits16([round_half_away(Fraction(x) / (step / 2)) for x in xs])
    back = bfp16_to_float(b)
    assert all(abs(Fraction(float(y)) - Fraction(x)) <= step / 2 for x, y in zip(xs, back))


def test_from_float_golden_and_errors():
    b = bfp16_from_float([1.0, -0.5, 0.25])
    assert (b.exponent, b.mantissas.tolist()) == (-14, [16384, -8192, 4096])
    assert bfp16_from_float([0.0, -0.0]).exponent == -128
    assert bfp16_from_float(np.zeros(0)).exponent == -128
    tiny = bfp16_from_float([3.0e-30])  # float input can go far below 2**-16
    assert tiny.exponent < -16 and 16384 <= tiny.mantissas[0] <= 32767
    assert bfp16_from_float([1e-50]).mantissas.tolist() == [0]  # below 2**-129: rounds to zero at e = -128
    with pytest.raises(ValueError):
        bfp16_from_float([math.nan])
    with pytest.raises(ValueError):
        bfp16_from_float([math.inf])
    with pytest.raises(ValueError):
        bfp16_from_float([1e43])
    with pytest.raises(ValueError):
        bfp16_from_float(np.zeros((2, 2)))


# ---------------------------------------------------------------- dataclass and wire format


def test_bfp16_validates_and_is_immutable():
    b = Bfp16(3, [1, 2, 3])
    assert b.mantissas.dtype == np.int16 and len(b) == 3
    with pytest.raises(ValueError):
        b.mantissas[0] = 5
    with pytest.raises(AttributeError):
        b.exponent = 4
    assert b == Bfp16(3, np.array([1, 2, 3], dtype=np.int64))
    assert b != Bfp16(4, [1, 2, 3])
    assert hash(b) == hash(Bfp16(3, [1, 2, 3]))
    with pytest.raises(ValueError):
        Bfp16(128, [0])
    with pytest.raises(ValueError):
        Bfp16(0, [32768])
    with pytest.raises(ValueError):
        Bfp16(0, np.zeros((2, 2), dtype=np.int16))
    with pytest.raises(TypeError):
        Bfp16(0, [0.5])
    with pytest.raises(TypeError):
        Bfp16(1.0, [0])
    with pytest.raises(ValueError):
        bfp16_from_q16(np.zeros(65536, dtype=np.int32))


@given(st.integers(-128, 127), st.lists(st.integers(-(2**15), 2**15 - 1), max_size=50))
def test_bytes_round_trip(e, mant):
    b = Bfp16(e, np.array(mant, dtype=np.int16))
    data = b.to_bytes()
    assert len(data) == 3 + 2 * len(mant)
    assert Bfp16.from_bytes(data) == b
    assert Bfp16.from_bytes(bytearray(data)) == b
    assert Bfp16.from_bytes(memoryview(data)) == b


def test_from_bytes_errors_name_offsets():
    with pytest.raises(QresFormatError, match="offset 0.*truncated header"):
        Bfp16.from_bytes(b"")
    with pytest.raises(QresFormatError, match="truncated header"):
        Bfp16.from_bytes(b"\x01\x00")
    with pytest.raises(QresFormatError, match="count 2 needs 4 mantissa bytes at offset 3, only 2 available"):
        Bfp16.from_bytes(b"\x02\x00\x00\x01\x00\x02\x00"[:5])
    with pytest.raises(QresFormatError, match="1 trailing bytes at offset 5"):
        Bfp16.from_bytes(b"\x01\x00\x00\x01\x00\xff")


def test_from_prefix_back_to_back():
    a = bfp16_from_q16(to_q16([1.0, 2.0]))
    b = bfp16_from_float([-3.5, 0.125, 7.0])
    buf = b"\xaa\xbb" + a.to_bytes() + b.to_bytes() + b"tail"
    got_a, off = Bfp16.from_prefix(buf, 2)
    assert got_a == a and off == 2 + 3 + 4
    got_b, off2 = Bfp16.from_prefix(buf, off)
    assert got_b == b and off2 == off + 3 + 6 and buf[off2:] == b"tail"
    with pytest.raises(QresFormatError, match=f"offset {off}"):
        Bfp16.from_prefix(buf[: off + 5], off)
    with pytest.raises(QresFormatError, match=f"offset {len(buf)}"):
        Bfp16.from_prefix(buf, len(buf))
    with pytest.raises(QresFormatError):
        Bfp16.from_prefix(buf, len(buf) + 10)
    with pytest.raises(ValueError):
        Bfp16.from_prefix(buf, -1)


# Random bytes, plus headers whose count is near the real length so that both branches are hit.
wire_like = st.one_of(
    st.binary(max_size=40),
    st.builds(
        lambda n, e, body: n.to_bytes(2, "little") + e.to_bytes(1, "little", signed=True) + body,
        st.integers(0, 20),
        st.integers(-128, 127),
        st.binary(max_size=42),
    ),
)


@given(wire_like)
def test_from_bytes_fuzz(data):
    try:
        b = Bfp16.from_bytes(data)
    except QresFormatError:
        n = int.from_bytes(data[:2], "little") if len(data) >= 2 else None
        assert n is None or len(data) != 3 + 2 * n
        return
    assert b.to_bytes() == data  # accepted input is canonical: re-encodes to the same bytes
    bfp16_to_q16(b)
    bfp16_to_float(b)


@given(wire_like, st.integers(0, 45))
def test_from_prefix_fuzz(data, offset):
    try:
        b, end = Bfp16.from_prefix(data, offset)
    except QresFormatError:
        return
    assert data[offset:end] == b.to_bytes()
