"""Damage never decodes silently beyond the rates docs/FORMAT.md states.

- Files from `qres.compress` (checksum on by default) end with a CRC32 of their blocks: every
  single-bit flip, every burst of up to 32 bits and every truncation is refused.
- Files with `checksum=False` and frames rely on each block's 16-bit check: a damaged block
  decodes silently with probability about 2^-16. Over the few thousand damaged copies tried here
  that allows at most a couple of misses (the expected number is far below 1); the benchmark
  (bench/codec_bench.py --modes integrity) measures the rate over a million.
"""

from __future__ import annotations

import importlib.util
from functools import lru_cache
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import qres
from qres import datasets
from qres.codec import container as ct

MISS_RATE = 2.0**-16  # what docs/FORMAT.md states for a damaged block without the CRC32


@lru_cache(maxsize=None)
def arrays() -> dict[str, np.ndarray]:
    occ = datasets.values("occupancy")
    return {
        "float64_3ch": occ[:300, :3],  # averaged columns, patches
        "int_ppg": datasets.channels("heartpy_ppg")[0].exact_integers[:800],
        "int16_2d": datasets.values("daphnet_accel")[:400, :2].astype(np.int16),
        "decimal": datasets.channels("seattle_temps")[0].values[:500],
    }


def _flip(data: bytes, start_bit: int, pattern: int, width: int) -> bytes:
    """`data` with the `width` bits from `start_bit` on XORed with `pattern` (a burst)."""
    as_int = int.from_bytes(data, "little") ^ ((pattern & ((1 << width) - 1)) << start_bit)
    return as_int.to_bytes(len(data), "little")


def _load_bench():
    """bench/integrity_bench.py, whose `outcome` classifies a decode here as in the benchmark."""
    spec = importlib.util.spec_from_file_location("integrity_bench", Path(__file__).resolve().parents[2] / "bench" / "integrity_bench.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


_outcome = _load_bench().outcome


@pytest.mark.parametrize("name", sorted(arrays()))
def test_every_single_bit_flip_of_a_checksummed_file_is_refused(name):
    x = arrays()[name]
    data = qres.compress(x)
    assert ct.read_header(data).body_crc
    for bit in range(8 * len(data)):
        with pytest.raises(qres.QresFormatError):
            qres.decompress(_flip(data, bit, 1, 1))


@settings(max_examples=300, deadline=None, derandomize=True, database=None)
@given(name=st.sampled_from(sorted(arrays())), where=st.floats(0, 1, exclude_max=True), width=st.integers(1, 32), pattern=st.integers(1, 2**32 - 1))
def test_bursts_of_up_to_32_bits_in_a_checksummed_file_are_refused(name, where, width, pattern):
    x = arrays()[name]
    data = qres.compress(x)
    pattern |= 1 << (width - 1)  # the burst really spans `width` bits
    start = int(where * (8 * len(data) - width))
    with pytest.raises(qres.QresFormatError):
        qres.decompress(_flip(data, start, pattern, width))


@pytest.mark.parametrize("name", sorted(arrays()))
def test_truncation_anywhere_is_refused_even_at_a_block_boundary(name):
    data = qres.compress(arrays()[name])
    cuts = {b["offset"] + b["size"] for b in ct.describe(data)} | set(range(0, len(data), 7))
    for cut in sorted(cuts - {len(data)}):
        with pytest.raises(qres.QresFormatError):
            qres.decompress(data[:cut])


def _miss_budget(trials: int) -> int:
    """Misses allowed in `trials` damaged copies at MISS_RATE: the expectation plus a wide margin
    (for a few thousand trials the expectation is below 0.1, and 3 misses would have odds < 1e-4)."""
    return int(trials * MISS_RATE * 4) + 2


def test_single_bit_flips_without_the_crc32_miss_at_most_the_stated_rate():
    counts = {"refused": 0, "same": 0, "silent": 0}
    for name, x in arrays().items():
        data = qres.compress(x, checksum=False)
        assert not ct.read_header(data).body_crc
        for bit in range(8 * len(data)):
            counts[_outcome(qres.decompress, _flip(data, bit, 1, 1), x)] += 1
    trials = sum(counts.values())
    assert counts["silent"] <= _miss_budget(trials), counts
    assert counts["same"] < trials * 0.01, counts  # only ignored fields (e.g. the predictor id byte)


@lru_cache(maxsize=None)
def frame_samples() -> list[tuple[qres.Codec, bytes, np.ndarray]]:
    out = []
    ppg = datasets.channels("heartpy_ppg")[0].exact_integers
    light = datasets.values("occupancy")[:, 2]  # long constant stretches: the coder's state can fall back into step
    accel = datasets.values("daphnet_accel")[:, :3]
    for v, cut in ((ppg, 4000), (light, 200), (accel, 2000)):
        codec = qres.Codec(qres.Model.fit(v[:cut]))
        for s in range(cut, cut + 64 * 6, 64):
            block = v[s : s + 64]
            if len(block) == 64:
                out.append((codec, codec.encode_frame(block), block))
    return out


def test_frame_single_bit_flips_and_bursts_miss_at_most_the_stated_rate():
    rng = np.random.default_rng(7)
    counts = {"refused": 0, "same": 0, "silent": 0}
    for codec, frame, block in frame_samples():
        for bit in range(8 * len(frame)):  # every single-bit flip
            counts[_outcome(codec.decode_frame, _flip(frame, bit, 1, 1), block)] += 1
        for _ in range(200):  # random bursts of 2..32 bits
            width = int(rng.integers(2, 33))
            pattern = int(rng.integers(1, 2**width)) | 1 << (width - 1) | 1
            start = int(rng.integers(0, max(1, 8 * len(frame) - width)))
            counts[_outcome(codec.decode_frame, _flip(frame, start, pattern, width), block)] += 1
    trials = sum(counts.values())
    assert trials > 10_000
    assert counts["silent"] <= _miss_budget(trials), counts


def test_a_damaged_coder_state_that_falls_back_into_step_is_still_caught():
    """On low-entropy data a damaged rANS word can leave the coder's final state intact while the
    values in between changed; the check hashes the decoded values, so that is refused too."""
    x = datasets.values("occupancy")[:200]
    data = qres.compress(x, checksum=False)
    residual = next(b for b in ct.describe(data) if b["type"] == "Residual")
    start = residual["offset"] + 6  # the payload
    outcomes = [_outcome(qres.decompress, _flip(data, 8 * pos + bit, 1, 1), x) for pos in range(start, start + 80) for bit in range(8)]
    assert outcomes.count("silent") == 0  # 640 trials: 0.01 misses expected (a state-only check missed one here)


def test_a_header_whose_total_size_disagrees_with_the_manifest_is_refused():
    """The header's size is what a reader may trust to bound memory before decoding (numcodecs'
    max_buffer_size): a forged one, with a valid header CRC, must not decode."""
    x = arrays()["float64_3ch"]
    header, blocks = ct.read_container(qres.compress(x))
    assert header.total_size == x.nbytes
    for forged in (x.nbytes - 8, x.nbytes * 1000, 0):
        data = ct.write_container(blocks, total_size=forged, solid=header.solid, block_crc=False, body_crc=True)
        with pytest.raises(qres.QresFormatError, match="total size"):
            qres.decompress(data)


def test_the_format_version_is_said_by_the_crc_flag_or_by_the_manifest():
    x = arrays()["int_ppg"]
    plain = ct.read_container(qres.compress(x))[1][0].manifest
    bare = ct.read_container(qres.compress(x, checksum=False))[1][0].manifest
    sealed = ct.read_container(qres.compress(x, key=bytes(32)), key=bytes(32))[1][0].manifest
    assert "q" not in plain and bare["q"] == 2 and sealed["q"] == 2
    # a version-2 file stripped of its "q" key reads as version 1, whose check then fails
    header, blocks = ct.read_container(qres.compress(x, checksum=False))
    stripped = [ct.ManifestBlock({k: v for k, v in blocks[0].manifest.items() if k != "q"}), *blocks[1:]]
    with pytest.raises(qres.QresFormatError, match="16-bit check"):
        qres.decompress(ct.write_container(stripped, total_size=header.total_size, solid=header.solid, block_crc=False))
