"""Property tests of the public stream API: qres.compress / qres.decompress.

Lossless mode must give back the same dtype, shape and bytes (NaN payloads, -0.0 and subnormals
included); error-bounded mode must keep every finite value within max_error and NaN/inf exactly.
Data comes in two flavours: small arrays drawn element by element by hypothesis (edge values,
shrinkable), and larger arrays (up to a few thousand values) built with numpy from a drawn seed
(random walks, quantised decimals, noise with special values sprinkled in).
"""

from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
import pytest
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import qres

INT_DTYPES = [np.dtype(d) for d in ("i1", "i2", "i4", "i8", "u1", "u2", "u4", "u8")]
FLOAT_DTYPES = [np.dtype("f4"), np.dtype("f8")]
ALL_DTYPES = INT_DTYPES + FLOAT_DTYPES

# Deterministic runs (same examples every time) for CI. Shrinking a failure can take a minute, so it
# is off unless QRES_SHRINK=1 is set (do that to get a minimal failing example).
PHASES = tuple(Phase) if os.environ.get("QRES_SHRINK") else (Phase.explicit, Phase.reuse, Phase.generate)
PROPS = settings(
    max_examples=60,
    deadline=None,
    derandomize=True,
    database=None,
    phases=PHASES,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)


def assert_lossless(x: np.ndarray) -> None:
    y = qres.decompress(qres.compress(x))
    assert isinstance(y, np.ndarray)
    assert y.dtype == x.dtype, (y.dtype, x.dtype)
    assert y.shape == x.shape, (y.shape, x.shape)
    xb = np.ascontiguousarray(x).reshape(-1).view(np.uint8).reshape(x.size, x.itemsize)
    yb = np.ascontiguousarray(y).reshape(-1).view(np.uint8).reshape(y.size, y.itemsize)
    bad = np.flatnonzero(np.any(xb != yb, axis=1))
    if len(bad):
        xf, yf = x.reshape(-1), y.reshape(-1)
        raise AssertionError(f"{len(bad)} values differ, first at flat index {bad[:5].tolist()}: "
                             f"{xf[bad[:3]]!r} -> {yf[bad[:3]]!r}")


def assert_within(x: np.ndarray, y: np.ndarray, max_error: float) -> None:
    assert y.dtype == x.dtype, (y.dtype, x.dtype)
    assert y.shape == x.shape, (y.shape, x.shape)
    if x.dtype == np.uint64 or x.dtype == np.int64:
        # exact integer arithmetic: float64 cannot hold every 64-bit value
        xi = [int(v) for v in x.ravel()]
        yi = [int(v) for v in y.ravel()]
        worst = max((abs(a - b) for a, b in zip(xi, yi)), default=0)
        assert worst <= max_error, f"error {worst} > {max_error}"
        return
    with np.errstate(invalid="ignore"):  # signalling NaNs
        a = x.astype(np.float64).ravel()
        b = y.astype(np.float64).ravel()
    nan = np.isnan(a)
    np.testing.assert_array_equal(np.isnan(b), nan, err_msg="NaN positions changed")
    inf = np.isinf(a)
    np.testing.assert_array_equal(b[inf], a[inf], err_msg="infinities changed")
    fin = np.isfinite(a)
    err = np.abs(a[fin] - b[fin])
    if len(err) and err.max() > max_error:
        i = int(np.argmax(err))
        raise AssertionError(f"value {a[fin][i]!r} decoded as {b[fin][i]!r}: error {err[i]!r} > {max_error!r}")


# ------------------------------------------------------------------------------ strategies

shapes = st.one_of(
    hnp.array_shapes(min_dims=1, max_dims=1, min_side=0, max_side=64),
    hnp.array_shapes(min_dims=2, max_dims=2, min_side=1, max_side=12),
    st.tuples(st.integers(0, 3), st.integers(1, 4)),  # empty and tiny 2-D
)


@st.composite
def small_int_arrays(draw):
    dtype = draw(st.sampled_from(INT_DTYPES))
    info = np.iinfo(dtype)
    edge = st.sampled_from([info.min, info.min + 1, -1 if info.min else 0, 0, 1, info.max - 1, info.max])
    elements = st.one_of(st.integers(info.min, info.max), edge)
    return draw(hnp.arrays(dtype, draw(shapes), elements=elements, fill=st.nothing()))


@st.composite
def small_float_bit_arrays(draw):
    """Floats from arbitrary bit patterns: every NaN payload, subnormal, -0.0 and infinity is reachable."""
    dtype = draw(st.sampled_from(FLOAT_DTYPES))
    utype = np.uint32 if dtype == np.float32 else np.uint64
    bits = draw(hnp.arrays(utype, draw(shapes), elements=st.integers(0, np.iinfo(utype).max), fill=st.nothing()))
    return bits.view(dtype)


@st.composite
def small_float_value_arrays(draw):
    dtype = draw(st.sampled_from(FLOAT_DTYPES))
    width = 32 if dtype == np.float32 else 64
    special = st.sampled_from([0.0, -0.0, np.inf, -np.inf, np.nan, 5e-324 if width == 64 else 1e-45, 1e-300 if width == 64 else 1e-38])
    elements = st.one_of(st.floats(width=width), special)
    return draw(hnp.arrays(dtype, draw(shapes), elements=elements, fill=st.nothing()))


def _specials(dtype: np.dtype) -> np.ndarray:
    if dtype == np.float64:
        bits = [0x7FF8000000000000, 0xFFF8000000000000, 0x7FF0000000000001, 0x7FF4DEADBEEF0001, 0xFFFFFFFFFFFFFFFF,
                0x7FF0000000000000, 0xFFF0000000000000, 0x8000000000000000, 0x0000000000000001, 0x800FFFFFFFFFFFFF,
                0x7FEFFFFFFFFFFFFF, 0x0010000000000000]
        return np.array(bits, np.uint64).view(np.float64)
    bits = [0x7FC00000, 0xFFC00000, 0x7F800001, 0x7FA12345, 0xFFFFFFFF, 0x7F800000, 0xFF800000, 0x80000000,
            0x00000001, 0x807FFFFF, 0x7F7FFFFF, 0x00800000]
    return np.array(bits, np.uint32).view(np.float32)


def _shape(rng: np.random.Generator, n: int, two_d: bool) -> tuple[int, ...]:
    if not two_d:
        return (n,)
    cols = int(rng.integers(1, 6))
    return (max(n // cols, 0), cols)


def _int_data(rng: np.random.Generator, dtype: np.dtype, kind: str, shape: tuple[int, ...]) -> np.ndarray:
    info = np.iinfo(dtype)
    n = int(np.prod(shape))
    lo, hi = int(info.min), int(info.max)
    if kind == "uniform":
        x = rng.integers(lo, hi, n, dtype=dtype, endpoint=True)
    elif kind == "walk":
        steps = rng.integers(-3, 4, n).astype(np.int64)
        start = int(rng.integers(lo // 2, hi // 2 + 1)) if hi < 2**62 else int(rng.integers(-(2**60), 2**60))
        v = start + np.cumsum(steps)
        x = np.clip(v, max(lo, -(2**63)), min(hi, 2**63 - 1)).astype(dtype)
    elif kind == "near_max":
        x = (np.uint64(hi) - rng.integers(0, 50, n).astype(np.uint64)).astype(dtype)
    elif kind == "near_min":
        x = np.array([lo + int(v) for v in rng.integers(0, 50, n)], dtype=np.int64 if lo < 0 else np.uint64).astype(dtype)
    elif kind == "stepped":
        step = int(rng.integers(1, 1000))
        k = rng.integers(-100, 100, n)
        base = int(rng.integers(0, 100))
        x = np.clip(base + step * k, lo, min(hi, 2**63 - 1)).astype(dtype)
    elif kind == "constant":
        x = np.full(n, rng.integers(lo, hi, dtype=dtype, endpoint=True), dtype)
    else:  # spikes: smooth with rare huge jumps
        x = (np.sin(np.arange(n) / 20) * 20 + (hi // 2 if lo == 0 else 0)).astype(dtype)
        idx = rng.integers(0, max(n, 1), n // 50)
        x[idx] = rng.integers(lo, hi, len(idx), dtype=dtype, endpoint=True)
    return x.reshape(shape)


def _float_data(rng: np.random.Generator, dtype: np.dtype, kind: str, shape: tuple[int, ...], specials: bool) -> np.ndarray:
    n = int(np.prod(shape))
    if kind == "normal":
        x = rng.normal(size=n) * 10.0 ** rng.integers(-5, 6)
    elif kind == "walk":
        x = np.cumsum(rng.normal(size=n)) * 10.0 ** rng.integers(-3, 4) + rng.normal() * 1e3
    elif kind == "decimal":
        d = int(rng.integers(0, 10))
        k = np.cumsum(rng.integers(-20, 21, n)) + int(rng.integers(-(10**6), 10**6))
        x = k / 10.0**d
    elif kind == "decimal_noise":
        d = int(rng.integers(0, 7))
        x = rng.integers(-(10**7), 10**7, n) / 10.0**d
    elif kind == "huge_tiny":
        x = rng.choice([-1.0, 1.0], n) * 10.0 ** rng.uniform(-300 if dtype == np.float64 else -37, 300 if dtype == np.float64 else 37, n)
    else:  # constant
        x = np.full(n, rng.normal() * 100)
    x = x.astype(dtype)
    if specials and n:
        sp = _specials(dtype)
        idx = rng.integers(0, n, max(1, n // 40))
        x[idx] = sp[rng.integers(0, len(sp), len(idx))]
    return x.reshape(shape)


@st.composite
def large_int_arrays(draw):
    dtype = draw(st.sampled_from(INT_DTYPES))
    kind = draw(st.sampled_from(["uniform", "walk", "near_max", "near_min", "stepped", "constant", "spikes"]))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    shape = _shape(rng, draw(st.integers(0, 3000)), draw(st.booleans()))
    return _int_data(rng, dtype, kind, shape)


@st.composite
def large_float_arrays(draw, specials=st.booleans()):
    dtype = draw(st.sampled_from(FLOAT_DTYPES))
    kind = draw(st.sampled_from(["normal", "walk", "decimal", "decimal_noise", "huge_tiny", "constant"]))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    shape = _shape(rng, draw(st.integers(0, 3000)), draw(st.booleans()))
    return _float_data(rng, dtype, kind, shape, draw(specials))


# ------------------------------------------------------------------------------ lossless


@PROPS
@given(small_int_arrays())
def test_lossless_small_int_arrays(x):
    assert_lossless(x)


@PROPS
@given(large_int_arrays())
def test_lossless_large_int_arrays(x):
    assert_lossless(x)


@pytest.mark.filterwarnings("error::RuntimeWarning")
def test_lossless_int64_extremes_without_numeric_warnings():
    lo, hi = np.iinfo(np.int64).min, np.iinfo(np.int64).max
    assert_lossless(np.array([0, lo] * 20, dtype=np.int64))
    assert_lossless(np.array([lo] * 20 + [0] * 20, dtype=np.int64))
    assert_lossless(np.array([hi, lo, lo, 0, hi, -1] * 5, dtype=np.int64))


@PROPS
@given(small_float_bit_arrays())
def test_lossless_arbitrary_float_bit_patterns(x):
    assert_lossless(x)


@PROPS
@given(small_float_value_arrays())
def test_lossless_small_float_arrays(x):
    assert_lossless(x)


@PROPS
@given(large_float_arrays())
def test_lossless_large_float_arrays(x):
    assert_lossless(x)


@PROPS
@given(
    st.integers(0, 12),
    st.lists(st.integers(-(10**9), 10**9), min_size=1, max_size=400),
    st.sampled_from(FLOAT_DTYPES),
)
def test_lossless_decimal_quantised(d, ks, dtype):
    x = (np.array(ks, np.int64) / 10.0**d).astype(dtype)
    assert_lossless(x)


@PROPS
@given(st.lists(st.integers(2**63, 2**64 - 1), min_size=1, max_size=300), st.lists(st.integers(0, 2**64 - 1), max_size=300))
def test_lossless_uint64_above_2_63(high, mixed):
    assert_lossless(np.array(high, np.uint64))
    assert_lossless(np.array(high + mixed, np.uint64))


@pytest.mark.parametrize("dtype", ALL_DTYPES, ids=str)
def test_lossless_extremes_each_dtype(dtype):
    if dtype.kind == "f":
        x = np.concatenate([_specials(dtype), np.array([0.0, 1.0, -1.5, np.finfo(dtype).tiny, np.finfo(dtype).max], dtype)])
    else:
        info = np.iinfo(dtype)
        x = np.array([info.min, info.max, 0, info.max, info.min, info.max - 1, info.min + 1] * 5, dtype)
    assert_lossless(x)
    assert_lossless(x[::-1].copy())
    assert_lossless(np.repeat(x, 3))


@pytest.mark.parametrize("dtype", ALL_DTYPES, ids=str)
@pytest.mark.parametrize("shape", [(0,), (0, 1), (0, 3), (1,), (1, 1), (1, 4), (5, 2)])
def test_lossless_empty_tiny_and_constant(dtype, shape):
    assert_lossless(np.zeros(shape, dtype))
    assert_lossless(np.full(shape, 7, dtype))


@pytest.mark.parametrize("dtype", ALL_DTYPES, ids=str)
def test_lossless_constant_long(dtype):
    assert_lossless(np.full(2500, 3, dtype))
    assert_lossless(np.full((700, 3), 1, dtype))


def test_lossless_noncontiguous_input():
    rng = np.random.default_rng(5)
    base = rng.normal(size=(400, 6))
    assert_lossless(base[::2, 1::2])
    assert_lossless(np.asfortranarray(base))
    assert_lossless(base[:, 3])


def test_lossless_all_nan_and_all_inf():
    for dtype in FLOAT_DTYPES:
        assert_lossless(np.full(1000, np.nan, dtype))
        assert_lossless(np.full(1000, -np.inf, dtype))
        assert_lossless(np.full((300, 2), -0.0, dtype))


def test_lossless_non_native_byte_order():
    """README: 'same dtype, shape and bits back' -- also for a big-endian input."""
    x = np.arange(-50, 50, dtype=">i4")
    y = qres.decompress(qres.compress(x))
    np.testing.assert_array_equal(y, x)
    assert y.dtype == x.dtype


def test_no_runtime_warnings_on_extreme_integers():
    """numpy overflow warnings inside the encoder mean a heuristic computed on wrapped values."""
    import warnings

    x = np.cumsum(np.random.default_rng(0).integers(-3, 4, 100))
    x[7], x[8] = np.iinfo(np.int64).max, np.iinfo(np.int64).min
    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)
        assert_lossless(x)


def test_lossless_across_block_boundary():
    """More values than fit one block: several blocks and models in one file."""
    n = (1 << 22) + 1000  # docs/FORMAT.md: a block of rows holds at most 2^22 values
    x = (np.arange(n) % 1000).astype(np.int16)
    assert_lossless(x)


@pytest.mark.parametrize("bad", [np.zeros((2, 2, 2)), np.zeros(3, bool), np.zeros(3, complex), np.array(["a"]), np.zeros((4, 0))])
def test_rejects_unsupported_input(bad):
    with pytest.raises((TypeError, ValueError)):
        qres.compress(bad)


# ------------------------------------------------------------------------------ error-bounded


@PROPS
@given(large_float_arrays(), st.floats(1e-6, 1e3))
def test_error_bounded_floats(x, max_error):
    y = qres.decompress(qres.compress(x, max_error=max_error))
    assert_within(x, y, max_error)


@PROPS
@given(small_float_value_arrays(), st.sampled_from([1e-9, 1e-3, 0.1, 1.0, 1e3]))
def test_error_bounded_small_floats(x, max_error):
    y = qres.decompress(qres.compress(x, max_error=max_error))
    assert_within(x, y, max_error)


@PROPS
@given(large_int_arrays(), st.one_of(st.floats(0.01, 0.99), st.floats(1.0, 1e4), st.integers(1, 100).map(float)))
def test_error_bounded_ints(x, max_error):
    y = qres.decompress(qres.compress(x, max_error=max_error))
    assert_within(x, y, max_error)


@PROPS
@given(small_int_arrays(), st.sampled_from([0.5, 1.0, 2.0, 3.7, 1000.0]))
def test_error_bounded_small_ints(x, max_error):
    y = qres.decompress(qres.compress(x, max_error=max_error))
    assert_within(x, y, max_error)


def test_error_bounded_unsigned_near_zero():
    """Minimal reproducer: a decoded value below 0 must not wrap around to the dtype's maximum."""
    x = np.array([5, 0, 5, 0, 3, 0], np.uint8)
    y = qres.decompress(qres.compress(x, max_error=1))
    assert_within(x, y, 1)


def test_error_bounded_full_range_int64():
    for x in (np.array([np.iinfo(np.int64).min, np.iinfo(np.int64).max]), np.array([0, 2**64 - 1], np.uint64)):
        y = qres.decompress(qres.compress(x, max_error=1))
        assert_within(x, y, 1)


def test_error_bounded_int64_beyond_float_precision():
    """Values above 2^53 are not exact in float64: the bound must hold (and be checked) in integers."""
    x = np.array([1152921504606846950, 1152921504606846921, 1152921504606846901], np.int64)
    y = qres.decompress(qres.compress(x, max_error=100))
    assert_within(x, y, 100)


def test_error_bounded_actually_loses_and_saves():
    """Guard against a lossy mode that silently stores everything exactly (or ignores the bound)."""
    x = np.cumsum(np.random.default_rng(3).normal(size=3000))
    lossless = qres.compress(x)
    lossy = qres.compress(x, max_error=0.1)
    y = qres.decompress(lossy)
    assert len(lossy) < len(lossless) / 2
    assert not np.array_equal(y, x)
    assert_within(x, y, 0.1)


def test_error_bounded_huge_bound_finishes():
    """A bound far wider than the data's grid must not make the encoder spin (run in a subprocess with a timeout)."""
    code = (
        "import numpy as np, qres\n"
        "for e in (1e6, 1e12, 1e300):\n"
        "    x = np.array([0.5, 1.5, 2.25, 0.001])\n"
        "    y = qres.decompress(qres.compress(x, max_error=e))\n"
        "    assert np.all(np.abs(y - x) <= e), (e, y)\n"
    )
    try:
        subprocess.run([sys.executable, "-c", code], check=True, timeout=15, capture_output=True)
    except subprocess.TimeoutExpired:
        pytest.fail("qres.compress(np.array([0.5, 1.5, 2.25, 0.001]), max_error=1e300) did not finish in 15 s")


@pytest.mark.parametrize("name", ["daphnet_accel", "basicmotions", "occupancy", "seattle_temps", "waterflow"])
def test_error_bounded_not_larger_than_lossless(name):
    """Asking for less (a bound) must not cost more than lossless: at worst the encoder can code exactly.

    Bounds: 0.5 (exact for integers), and about five steps of the data's own decimal grid.
    """
    from qres import datasets

    x = datasets.values(name)
    d = max(c.decimals for c in datasets.channels(name))
    lossless = len(qres.compress(x))
    for bound in (0.5, 5 * 10.0**-d if d else 2.5):
        lossy = len(qres.compress(x, max_error=bound))
        assert lossy <= lossless * 1.05 + 64, f"{name}: max_error={bound} gives {lossy} bytes, lossless {lossless}"


@pytest.mark.parametrize("bad", [0, -1.0, float("nan"), float("inf")])
def test_error_bound_must_be_positive_finite(bad):
    with pytest.raises(ValueError):
        qres.compress(np.arange(10.0), max_error=bad)


# ------------------------------------------------------------------------------ determinism, keys


@settings(PROPS, max_examples=25)
@given(st.one_of(large_float_arrays(), large_int_arrays()), st.sampled_from([None, 0.01, 2.0]))
def test_deterministic_bytes(x, max_error):
    a = qres.compress(x, max_error=max_error)
    b = qres.compress(x.copy(), max_error=max_error)
    assert a == b


@settings(PROPS, max_examples=20)
@given(st.one_of(large_float_arrays(), large_int_arrays(), small_float_bit_arrays()), st.binary(min_size=32, max_size=32))
def test_encrypted_round_trip(x, key):
    data = qres.compress(x, key=key)
    y = qres.decompress(data, key=key)
    assert y.dtype == x.dtype and y.shape == x.shape
    assert np.array_equal(np.ascontiguousarray(y).view(np.uint8), np.ascontiguousarray(x).view(np.uint8))
    with pytest.raises(qres.QresAuthError):
        qres.decompress(data)
    wrong = bytes([key[0] ^ 1]) + key[1:]
    with pytest.raises(qres.QresAuthError):
        qres.decompress(data, key=wrong)


def test_encrypted_lossy_round_trip_and_no_plaintext():
    x = np.round(np.cumsum(np.random.default_rng(9).normal(size=2000)), 2)
    key = os.urandom(32)
    data = qres.compress(x, max_error=0.05, key=key)
    assert_within(x, qres.decompress(data, key=key), 0.05)
    assert b'"format"' not in data and b"qres-array" not in data  # the manifest is not readable
    with pytest.raises(qres.QresAuthError):
        qres.decompress(data, key=os.urandom(32))


def test_encrypted_tampering_is_an_auth_error():
    key = bytes(range(32))
    data = bytearray(qres.compress(np.arange(500, dtype=np.int32), key=key))
    data[len(data) // 2] ^= 0x40
    with pytest.raises(qres.QresAuthError):
        qres.decompress(bytes(data), key=key)


@pytest.mark.parametrize("key", [b"", b"short", bytes(31), bytes(33)])
def test_bad_key_length_rejected(key):
    with pytest.raises(ValueError):
        qres.compress(np.arange(10), key=key)


def test_extreme_int64_columns_with_a_bound_and_as_frames():
    """Regression: energies computed from wrapped int64 differences overflowed the model."""
    x = np.array([[0, 1], [-(2**63), 1], [0, 0], [1, 0], [-(2**63) + 1, 1]], np.int64)
    assert np.array_equal(qres.decompress(qres.compress(x, max_error=0.5)), x)
    codec = qres.Codec(qres.Model.fit(x))
    assert np.array_equal(codec.decode_frame(codec.encode_frame(x)), x)
