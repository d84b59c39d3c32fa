"""Hostile input: random bytes, truncations and mutations of valid files, frames and model genes.

The decoders may only fail with QRES's own errors (QresFormatError, QresModelMismatch,
QresAuthError); a mutated input that happens to decode must still give an ndarray (or a Model).
A header that claims a huge amount of data must fail fast, without reserving memory for it.
"""

from __future__ import annotations

import os
import time
import tracemalloc
from functools import lru_cache

import numpy as np
import pytest
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

import qres
from qres import datasets
from qres.codec import container as ct

ALLOWED = (qres.QresFormatError, qres.QresModelMismatch, qres.QresAuthError)
KEY = bytes(range(32))

PHASES = tuple(Phase) if os.environ.get("QRES_SHRINK") else (Phase.explicit, Phase.reuse, Phase.generate)
# QRES_FUZZ_EXAMPLES=20000 for a longer hunt; QRES_SHRINK=1 to get minimal failing examples.
FUZZ = settings(
    max_examples=int(os.environ.get("QRES_FUZZ_EXAMPLES", 300)),
    deadline=None,
    derandomize=True,
    database=None,
    phases=PHASES,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)


# ------------------------------------------------------------------------------ valid samples


@lru_cache(maxsize=None)
def files() -> dict[str, bytes]:
    rng = np.random.default_rng(1)
    walk = np.cumsum(rng.integers(-5, 6, 300)).astype(np.int32)
    dec = np.round(np.cumsum(rng.normal(size=200)), 2)
    dec[[3, 50, 51]] = [np.nan, -np.inf, 0.123456789]  # patches
    two = np.stack([walk[:150].astype(np.int16), (walk[150:] * 3).astype(np.int16)], axis=1)
    return {
        "int32": qres.compress(walk),
        "float_patches": qres.compress(dec),
        "bits": qres.compress(rng.normal(size=120).astype(np.float32)),
        "2d": qres.compress(two),
        "lossy": qres.compress(dec, max_error=0.01),
        "lossy_int": qres.compress(walk, max_error=2),
        "no_checksum": qres.compress(walk[:100], checksum=False),
        "fallback": qres.compress(np.tile(rng.integers(0, 10**9, 1500), 2), checksum=False),  # a period no predictor sees
        "uint64": qres.compress(np.array([0, 2**64 - 1, 2**63, 5, 7] * 10, np.uint64)),
        "empty": qres.compress(np.zeros(0, np.float64)),
        "encrypted": qres.compress(walk[:80], key=KEY),
    }


@lru_cache(maxsize=None)
def codecs() -> dict[str, tuple[qres.Codec, list[bytes]]]:
    """Frame codecs and some of their frames (with and without patches)."""
    out = {}
    ppg = datasets.channels("heartpy_ppg")[0].values
    temps = datasets.channels("seattle_temps")[0].values
    daph = datasets.values("daphnet_accel")
    for name, v in (("int", ppg[:8000]), ("decimal", temps[:4000]), ("2d", daph[:3000])):
        cut = len(v) // 5
        codec = qres.Codec(qres.Model.fit(v[:cut]))
        frames = [codec.encode_frame(v[s : s + 64]) for s in range(cut, cut + 64 * 4, 64)]
        frames.append(codec.encode_frame(v[cut : cut + 3]))
        if v.dtype.kind == "f":
            p = v[cut : cut + 40].copy()
            p[[0, 7, 39]] = [np.nan, np.inf, 0.123456789]
            frames.append(codec.encode_frame(p))
        out[name] = (codec, frames)
    return out


@lru_cache(maxsize=None)
def genes() -> list[bytes]:
    g = [codec.model.to_bytes() for codec, _ in codecs().values()]
    rng = np.random.default_rng(2)
    g.append(qres.Model.fit(rng.normal(size=300), tables=False).to_bytes())
    g.append(qres.Model.fit(np.round(rng.normal(size=(200, 3)), 3)).to_bytes())
    return g


def frame_samples() -> list[tuple[str, int]]:
    return [(name, i) for name, (_, frames) in codecs().items() for i in range(len(frames))]


# ------------------------------------------------------------------------------ checks


def check_decompress(data: bytes, key: bytes | None = None) -> None:
    try:
        out = qres.decompress(data, key=key)
    except ALLOWED:
        return
    assert isinstance(out, np.ndarray)
    assert out.ndim in (1, 2)


def check_frame(codec: qres.Codec, data: bytes) -> None:
    try:
        out = codec.decode_frame(data)
    except ALLOWED:
        return
    assert isinstance(out, np.ndarray)
    assert out.ndim == (1 if codec.model.n_channels == 1 else 2)


def check_gene(data: bytes, frames: list[bytes] = ()) -> None:
    try:
        model = qres.Model.from_bytes(data)
    except ALLOWED:
        return
    assert isinstance(model, qres.Model)
    # a damaged gene that still parses must not break the decoder either
    codec = qres.Codec(model)
    for f in frames:
        check_frame(codec, f)


def mutate(data: bytes, ops: list[tuple[int, int, int, bytes]]) -> bytes:
    """Apply (kind, position, value, bytes) edits: flip bits, set a byte, delete, insert, duplicate."""
    b = bytearray(data)
    for kind, pos, val, ins in ops:
        if not b:
            b += ins
            continue
        p = pos % len(b)
        if kind == 0:
            b[p] ^= 1 << (val % 8)
        elif kind == 1:
            b[p] = val % 256
        elif kind == 2:
            del b[p : p + 1 + val % 8]
        elif kind == 3:
            b[p:p] = ins
        else:
            b[p:p] = b[p : p + 1 + val % 32]
    return bytes(b)


edits = st.lists(
    st.tuples(st.integers(0, 4), st.integers(0, 2**20), st.integers(0, 255), st.binary(min_size=1, max_size=8)),
    min_size=1,
    max_size=4,
)


# ------------------------------------------------------------------------------ the valid samples are valid


def test_samples_are_valid():
    for name, data in files().items():
        out = qres.decompress(data, key=KEY if name == "encrypted" else None)
        assert isinstance(out, np.ndarray)
    for codec, frames in codecs().values():
        for f in frames:
            codec.decode_frame(f)
    for g in genes():
        assert qres.Model.from_bytes(g).to_bytes() == g


# ------------------------------------------------------------------------------ random bytes


@FUZZ
@given(st.binary(max_size=600))
def test_random_bytes(data):
    check_decompress(data)
    check_gene(data)
    for codec, _ in codecs().values():
        check_frame(codec, data)


@FUZZ
@given(st.binary(max_size=400))
def test_random_bytes_behind_valid_prefixes(tail):
    """Get past the magic numbers so the fuzz reaches deeper parsers."""
    header = files()["int32"][:24]
    check_decompress(header + tail)
    check_gene(b"QG\x01" + tail, codecs()["int"][1][:2])
    check_gene(genes()[0][:8] + tail, codecs()["int"][1][:2])
    for codec, frames in codecs().values():
        check_frame(codec, frames[0][:3] + tail)


# ------------------------------------------------------------------------------ truncations


@pytest.mark.parametrize("name", ["int32", "float_patches", "2d", "lossy", "no_checksum", "fallback", "uint64", "encrypted"])
def test_every_prefix_of_a_file_fails_cleanly(name):
    data = files()[name]
    key = KEY if name == "encrypted" else None
    decoded = []
    for n in range(len(data)):
        try:
            qres.decompress(data[:n], key=key)
            decoded.append(n)
        except ALLOWED:
            pass
    assert not decoded, f"prefixes of length {decoded[:10]} of a {len(data)}-byte file decoded without error"


def test_every_prefix_of_a_frame_fails_cleanly():
    for name, (codec, frames) in codecs().items():
        for f in frames:
            for n in range(len(f)):
                check_frame(codec, f[:n])


def test_every_prefix_of_a_gene_fails_cleanly():
    for g in genes():
        for n in range(len(g)):
            with pytest.raises(qres.QresFormatError):
                qres.Model.from_bytes(g[:n])


# ------------------------------------------------------------------------------ mutations


@FUZZ
@given(st.sampled_from(sorted(files())), edits)
def test_mutated_files(name, ops):
    data = mutate(files()[name], ops)
    key = KEY if name == "encrypted" else None
    check_decompress(data, key=key)
    if name == "encrypted" and data != files()[name]:
        # any change is caught: by the header CRC, or by the GCM tag (header, nonce, ciphertext, tag)
        with pytest.raises((qres.QresAuthError, qres.QresFormatError)):
            qres.decompress(data, key=key)


@FUZZ
@given(st.sampled_from(sorted(k for k in files() if k != "encrypted")), st.integers(0, 3), edits)
def test_mutated_block_payloads_behind_valid_framing(name, which, ops):
    """Mutate one block's payload and re-frame it (fresh CRCs), so the damage reaches the codec layer."""
    header, blocks = ct.read_container(files()[name])
    blocks = list(blocks)
    i = which % len(blocks)
    b = blocks[i]
    if isinstance(b, ct.EpiphanyBlock):
        blocks[i] = ct.EpiphanyBlock(b.id, b.predictor_id, mutate(b.model, ops)[:0xFFFF])
    elif isinstance(b, ct.ResidualBlock):
        blocks[i] = ct.ResidualBlock(b.id, mutate(b.payload, ops))
    else:
        return
    data = ct.write_container(blocks, total_size=header.total_size, solid=header.solid, block_crc=True)
    check_decompress(data)


@FUZZ
@given(st.sampled_from(frame_samples()), edits)
def test_mutated_frames(sample, ops):
    name, i = sample
    codec, frames = codecs()[name]
    check_frame(codec, mutate(frames[i], ops))


@FUZZ
@given(st.integers(0, 10**6), edits)
def test_mutated_genes(which, ops):
    g = genes()[which % len(genes())]
    frames = next(fr for c, fr in codecs().values() if c.model.to_bytes() == g) if which % len(genes()) < 3 else []
    check_gene(mutate(g, ops), frames[:3])


# ------------------------------------------------------------------------------ hostile headers


def _uvarint(v: int) -> bytes:
    out = bytearray()
    while v >= 0x80:
        out.append((v & 0x7F) | 0x80)
        v >>= 7
    out.append(v)
    return bytes(out)


def _hostile_files() -> list[bytes]:
    """Valid framing, absurd row counts: in the manifest, in a Residual block, in the patch count."""
    header, blocks = ct.read_container(files()["int32"])
    manifest, epiphany, residual = blocks[0].manifest, blocks[1], blocks[2]
    assert manifest["n"] == 300, "FORMAT.md: manifest key n is the row count"
    words = residual.payload[-8:]
    max_rows = 1 << 22
    out = []
    for n_manifest, n_block, patch_count in (
        (2**62, max_rows, 0),
        (max_rows, max_rows, 0),
        (max_rows, max_rows, max_rows),
        (2**40, 2**40, 0),
        (10**15, max_rows - 1, 1),
    ):
        payload = _uvarint(n_block) + _uvarint(patch_count) + words
        m = dict(manifest, n=n_manifest)
        blocks2 = [ct.ManifestBlock(m), epiphany, ct.ResidualBlock(residual.id, payload)]
        out.append(ct.write_container(blocks2, total_size=header.total_size, block_crc=False))
        # many such blocks in a row
        many = [ct.ManifestBlock(m)] + [epiphany, ct.ResidualBlock(residual.id, payload)] * 50
        out.append(ct.write_container(many, total_size=header.total_size, block_crc=False))
    wide = dict(manifest, n=max_rows, t=["<i8"] * 4096)
    out.append(ct.write_container([ct.ManifestBlock(wide), epiphany, residual], total_size=2**48, block_crc=False))
    return out


def _bounded(fn, *args) -> tuple[float, int]:
    tracemalloc.start()
    t0 = time.perf_counter()
    try:
        fn(*args)
        raised = None
    except ALLOWED as exc:
        raised = exc
    finally:
        dt = time.perf_counter() - t0
        _, peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
    assert raised is not None, "a hostile input decoded without error"
    return dt, peak


@pytest.mark.parametrize("idx", range(11))
def test_hostile_row_counts_fail_fast_without_allocating(idx):
    data = _hostile_files()[idx]
    dt, peak = _bounded(qres.decompress, data)
    assert peak < 64 << 20, f"peak {peak / 2**20:.0f} MiB for a {len(data)}-byte file"
    assert dt < 5, f"{dt:.1f} s"


def test_hostile_frame_header_fails_fast():
    codec, frames = codecs()["2d"]
    for n in (127, 65535, 65536, 65537, 2**40):
        head = bytes([0]) + _uvarint(n) if n >= 128 else bytes([n])
        dt, peak = _bounded(codec.decode_frame, head + b"\x00\x00\x01\x00")
        assert peak < 64 << 20 and dt < 5


def test_hostile_gene_fails_fast():
    g = bytearray(b"QG\x01") + _uvarint(4096) + bytes([2])  # 4096 channels with tables, then nothing
    dt, peak = _bounded(qres.Model.from_bytes, bytes(g) + bytes(64))
    assert peak < 64 << 20 and dt < 5
