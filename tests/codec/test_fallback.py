"""The fallback guarantee: no input costs more than its generic coding plus a stated constant.

docs/FORMAT.md (Fallback blocks): for an input of up to 64 KiB, `qres.compress` is never larger than
the generic fallback's coding of its columns (the best of stored, LZMA2, delta + LZMA2) plus
FIXED bytes per file and PER_COLUMN bytes per column (header, manifest, block heads, checks).
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import qres
from qres.codec import container as ct
from qres.codec import fallback

FIXED = 96  # header 24, CRC 4, manifest head 5 and its JSON's fixed part
PER_COLUMN = 24  # a dtype and a column number in the manifest, a block head, method and check

INT_DTYPES = ["int8", "uint8", "int16", "uint16", "int32", "uint32", "int64", "uint64"]


def bound(x: np.ndarray) -> int:
    cols = x if x.ndim == 2 else x[:, None]
    return sum(len(fallback.encode(cols[:, c])[1]) for c in range(cols.shape[1])) + FIXED + PER_COLUMN * cols.shape[1]


def roundtrip(x: np.ndarray) -> bytes:
    data = qres.compress(x)
    back = qres.decompress(data)
    assert back.dtype == x.dtype and back.shape == x.shape
    assert np.array_equal(np.ascontiguousarray(back).view(np.uint8), np.ascontiguousarray(x).view(np.uint8))
    return data


SETTINGS = settings(max_examples=60, deadline=None, derandomize=True, database=None)


@SETTINGS
@given(st.binary(min_size=8, max_size=16_000), st.integers(1, 3))
def test_random_bytes_as_float64(raw, channels):
    x = np.frombuffer(raw[: len(raw) // (8 * channels) * 8 * channels], "<f8").reshape(-1, channels)
    assert len(roundtrip(x)) <= bound(x)


@SETTINGS
@given(st.sampled_from(INT_DTYPES), st.integers(1, 4000), st.integers(0, 2**32 - 1))
def test_random_integers_of_every_width(dtype, n, seed):
    info = np.iinfo(dtype)
    x = np.random.default_rng(seed).integers(info.min, info.max, n, dtype=dtype, endpoint=True)
    assert len(roundtrip(x)) <= bound(x)


def adversarial(kind: str, n: int, rng: np.random.Generator) -> np.ndarray:
    if kind == "repeated pattern":
        return np.tile(rng.integers(-(2**40), 2**40, 37), n // 37 + 1)[:n]
    if kind == "alternating extremes":
        return np.where(np.arange(n) % 2, np.iinfo(np.int64).max, np.iinfo(np.int64).min)
    if kind == "nan payloads":
        return (rng.integers(0, 2**51, n, dtype=np.uint64) | np.uint64(0x7FF8_0000_0000_0000)).view(np.float64)
    if kind == "denormals":
        return rng.integers(1, 2**52, n, dtype=np.uint64).view(np.float64)
    if kind == "steps of random height":
        return np.repeat(rng.integers(-(2**62), 2**62, n // 50 + 1), 50)[:n]
    if kind == "float32 noise":
        return rng.normal(size=n).astype(np.float32)
    raise ValueError(kind)


KINDS = ["repeated pattern", "alternating extremes", "nan payloads", "denormals", "steps of random height", "float32 noise"]


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("n", [1, 7, 500, 6000])
def test_adversarial_patterns(kind, n):
    x = adversarial(kind, n, np.random.default_rng(n))
    assert len(roundtrip(x)) <= bound(x)


def test_a_column_the_predictor_cannot_see_is_coded_by_the_fallback_beside_coded_ones():
    rng = np.random.default_rng(3)
    walk = np.cumsum(rng.integers(-3, 4, 3000))
    pattern = np.tile(rng.integers(0, 10**9, 60), 50)
    x = np.stack([walk, pattern], axis=1)
    data = roundtrip(x)
    header, blocks = ct.read_container(data)
    assert blocks[0].manifest["f"] == [1]
    assert [type(b).__name__ for b in blocks] == ["ManifestBlock", "EpiphanyBlock", "ResidualBlock", "FallbackBlock"]
    assert len(data) < len(qres.compress(x[:, :1])) + 600  # 60 distinct values repeated: hundreds of bytes, not 3000 x 30 bits


def test_damaged_fallback_columns_are_refused():
    x = np.tile(np.random.default_rng(5).integers(0, 10**9, 40), 30)
    data = qres.compress(x, checksum=False)
    assert isinstance(ct.read_container(data)[1][-1], ct.FallbackBlock)
    silent = 0
    for bit in range(8 * 24, 8 * len(data)):  # everything after the header
        damaged = bytearray(data)
        damaged[bit // 8] ^= 1 << (bit % 8)
        try:
            silent += not np.array_equal(qres.decompress(bytes(damaged)), x)
        except (qres.QresFormatError, qres.QresModelMismatch):
            pass
    assert silent <= 2  # a 16-bit check: about 2^-16 per damaged copy
