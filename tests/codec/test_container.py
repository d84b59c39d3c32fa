"""Tests of the `.qres` container (qres.codec.container)."""

from __future__ import annotations

import os
import stat
import struct
import tracemalloc
import zlib

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from qres.codec import container as c
from qres.codec.container import (
    BLOCK_CRC,
    ENCRYPTED,
    SOLID,
    EpiphanyBlock,
    Header,
    ManifestBlock,
    ResidualBlock,
    SummaryGeneBlock,
    describe,
    generate_key_file,
    load_key,
    read_container,
    read_header,
    write_container,
)
from qres.errors import QresAuthError, QresFormatError

KEY = bytes(range(32))
OTHER_KEY = bytes(range(1, 33))


def bfp16(exponent: int, mantissas: list[int]) -> bytes:
    return struct.pack("<Hb", len(mantissas), exponent) + struct.pack(f"<{len(mantissas)}h", *mantissas)


def header(major=19, minor=0, flags=0, total_size=0, crc=None) -> bytes:
    body = b"QRES" + struct.pack("<HHIQ", major, minor, flags, total_size)
    return body + struct.pack("<I", zlib.crc32(body) if crc is None else crc)


SAMPLE_BLOCKS = [
    ManifestBlock({"name": "sensor-7", "rate_hz": 50.0, "columns": ["ax", "ay"], "ok": True}),
    EpiphanyBlock(id=1, predictor_id=3, model=bytes(range(40))),
    ResidualBlock(id=1, payload=b"residual-bytes" * 3),
    SummaryGeneBlock(
        id=1,
        round=2**40 + 5,
        history_hash=bytes(range(100, 132)),
        consensus_bytes=bfp16(-3, [1, -2, 32767, -32768]),
        variance_bytes=bfp16(5, [7]),
    ),
    EpiphanyBlock(id=255, predictor_id=0, model=b""),
    ResidualBlock(id=255, payload=b""),
]


def boundaries(data: bytes) -> list[int]:
    """End offsets of the blocks of a plain container (plus the header end)."""
    return [c.HEADER_SIZE] + [d["offset"] + d["size"] for d in describe(data)]


# --------------------------------------------------------------------------- golden bytes


def test_golden_bytes_with_block_crc():
    data = write_container(
        [EpiphanyBlock(id=1, predictor_id=2, model=b"\xaa\xbb"), ResidualBlock(id=1, payload=b"xyz")],
        total_size=5,
        solid=True,
        block_crc=True,
    )
    expected = (
        b"QRES"  # magic
        + b"\x13\x00"  # major 19
        + b"\x00\x00"  # minor 0
        + b"\x05\x00\x00\x00"  # flags SOLID | BLOCK_CRC
        + b"\x05\x00\x00\x00\x00\x00\x00\x00"  # total uncompressed size 5
        + b"\xb9\x3f\x24\xcd"  # CRC32 of the 20 bytes above (0xCD243FB9)
        # Epiphany: type, id 1, length 2, predictor 2, model, CRC32 0x7710CEEF
        + b"\x0e\x01\x02\x00\x02\xaa\xbb" + b"\xef\xce\x10\x77"
        # Residual: type, id 1, length 3, payload, CRC32 0xFECB8A8F
        + b"\x0d\x01\x03\x00\x00\x00xyz" + b"\x8f\x8a\xcb\xfe"
    )
    assert data == expected
    assert zlib.crc32(expected[:20]) == 0xCD243FB9
    assert zlib.crc32(expected[24:31]) == 0x7710CEEF
    hdr, blocks = read_container(expected)
    assert hdr == Header(major=19, minor=0, flags=SOLID | BLOCK_CRC, total_size=5)
    assert blocks == [EpiphanyBlock(1, 2, b"\xaa\xbb"), ResidualBlock(1, b"xyz")]


def test_golden_bytes_all_block_types_without_crc():
    blocks = [
        EpiphanyBlock(id=1, predictor_id=2, model=b"\xaa\xbb"),
        ResidualBlock(id=1, payload=b"xyz"),
        ManifestBlock({"a": 1}),
        SummaryGeneBlock(
            id=3,
            round=7,
            history_hash=bytes(32),
            consensus_bytes=b"\x01\x00\xfe\x05\x00",  # n=1, exp=-2, [5]
            variance_bytes=b"\x00\x00\x00",  # n=0, exp=0
        ),
    ]
    expected = (
        b"QRES" + b"\x13\x00" + b"\x00\x00" + b"\x00\x00\x00\x00"
        + b"\x0a\x00\x00\x00\x00\x00\x00\x00"
        + b"\x05\x5a\xa7\x8c"  # header CRC32 0x8CA75A05
        + b"\x0e\x01\x02\x00\x02\xaa\xbb"
        + b"\x0d\x01\x03\x00\x00\x00xyz"
        + b"\x4d\x07\x00\x00\x00" + b'{"a":1}'
        + b"\x13\x03" + b"\x07\x00\x00\x00\x00\x00\x00\x00" + bytes(32)
        + b"\x01\x00\xfe\x05\x00" + b"\x00\x00\x00"
    )
    assert write_container(blocks, total_size=10, block_crc=False) == expected
    assert read_container(expected) == (Header(19, 0, 0, 10), blocks)


def test_encrypted_layout():
    plain = write_container(SAMPLE_BLOCKS, total_size=99, block_crc=True)
    enc = write_container(SAMPLE_BLOCKS, total_size=99, block_crc=True, key=KEY)
    assert enc[:24] == header(flags=BLOCK_CRC | ENCRYPTED, total_size=99)
    # nonce (12) + ciphertext (same length as the block bytes) + tag (16)
    assert len(enc) == 24 + 12 + (len(plain) - 24) + 16
    from cryptography.hazmat.primitives.ciphers.aead import AESGCM

    assert AESGCM(KEY).decrypt(enc[24:36], enc[36:], enc[:24]) == plain[24:]
    # a fresh random nonce each time
    assert write_container(SAMPLE_BLOCKS, total_size=99, key=KEY)[24:36] != enc[24:36]


# --------------------------------------------------------------------------- round trips


@pytest.mark.parametrize("block_crc", [False, True])
@pytest.mark.parametrize("key", [None, KEY])
@pytest.mark.parametrize("solid", [False, True])
def test_round_trip_every_block_type(block_crc, key, solid):
    data = write_container(SAMPLE_BLOCKS, total_size=12345, solid=solid, block_crc=block_crc, key=key)
    hdr, blocks = read_container(data, key=key)
    assert blocks == SAMPLE_BLOCKS
    assert hdr.total_size == 12345
    assert hdr.solid is solid and hdr.block_crc is block_crc and hdr.encrypted is (key is not None)
    assert read_header(data) == hdr
    # bytearray and memoryview inputs too
    assert read_container(bytearray(data), key=key)[1] == SAMPLE_BLOCKS
    assert read_container(memoryview(data), key=key)[1] == SAMPLE_BLOCKS


def test_empty_container_and_size_limits():
    for size in (0, 2**48):
        data = write_container([], total_size=size)
        assert read_container(data) == (Header(19, 0, BLOCK_CRC, size), [])
    with pytest.raises(ValueError, match="total_size"):
        write_container([], total_size=2**48 + 1)
    with pytest.raises(QresFormatError, match=r"offset 12.*2\^48"):
        read_header(header(total_size=2**48 + 1))


def test_plain_file_read_with_a_key_ignores_the_key():
    data = write_container(SAMPLE_BLOCKS, total_size=1)
    assert read_container(data, key=KEY)[1] == SAMPLE_BLOCKS


json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**70), 2**70)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=6), inner, max_size=4),
    max_leaves=12,
)
ids = st.integers(0, 255)


@st.composite
def bfp16_vectors(draw):
    n = draw(st.integers(0, 12))
    return bfp16(draw(st.integers(-128, 127)), draw(st.lists(st.integers(-32768, 32767), min_size=n, max_size=n)))


blocks_strategy = st.one_of(
    st.builds(EpiphanyBlock, id=ids, predictor_id=ids, model=st.binary(max_size=200)),
    st.builds(ResidualBlock, id=ids, payload=st.binary(max_size=200)),
    st.builds(
        SummaryGeneBlock,
        id=ids,
        round=st.integers(0, 2**64 - 1),
        history_hash=st.binary(min_size=32, max_size=32),
        consensus_bytes=bfp16_vectors(),
        variance_bytes=bfp16_vectors(),
    ),
    st.builds(ManifestBlock, manifest=st.dictionaries(st.text(max_size=8), json_values, max_size=5)),
)


@settings(max_examples=150, deadline=None)
@given(
    blocks=st.lists(blocks_strategy, max_size=6),
    total_size=st.integers(0, 2**48),
    solid=st.booleans(),
    block_crc=st.booleans(),
    encrypt=st.booleans(),
)
def test_round_trip_hypothesis(blocks, total_size, solid, block_crc, encrypt):
    key = KEY if encrypt else None
    data = write_container(blocks, total_size=total_size, solid=solid, block_crc=block_crc, key=key)
    hdr, back = read_container(data, key=key)
    assert back == blocks
    assert hdr == Header(19, 0, (SOLID * solid) | (BLOCK_CRC * block_crc) | (ENCRYPTED * encrypt), total_size)


# --------------------------------------------------------------------------- header


def test_bad_magic():
    with pytest.raises(QresFormatError, match=r"magic.*offset 0"):
        read_header(b"QREZ" + header()[4:])
    with pytest.raises(QresFormatError, match="magic"):
        read_container(b"PK\x03\x04")


def test_truncated_header_names_offset():
    with pytest.raises(QresFormatError, match="offset 10"):
        read_header(header()[:10])


def test_header_crc_mismatch():
    bad = header(crc=0x12345678)
    with pytest.raises(QresFormatError, match=r"header CRC mismatch at byte offset 20"):
        read_header(bad)


def test_major_version_mismatch_names_both_versions():
    with pytest.raises(QresFormatError) as err:
        read_header(header(major=20))
    msg = str(err.value)
    assert "20" in msg and "19" in msg and "offset 4" in msg
    with pytest.raises(QresFormatError, match="18"):
        read_header(header(major=18))


def test_higher_minor_version_accepted():
    data = header(minor=7, flags=BLOCK_CRC, total_size=3)
    assert read_container(data) == (Header(19, 7, BLOCK_CRC, 3), [])


@pytest.mark.parametrize("bit", [0x10, 0x20, 0x8000_0000])
def test_unknown_flag_bits_rejected(bit):
    with pytest.raises(QresFormatError, match=r"unknown flag bits.*offset 8"):
        read_header(header(flags=BLOCK_CRC | bit))


# --------------------------------------------------------------------------- blocks


def test_unknown_block_type():
    data = header() + b"\x0e\x00\x00\x00\x00" + b"\x42rest"
    with pytest.raises(QresFormatError, match=r"unknown block type 0x42 \(block 1\) at byte offset 29"):
        read_container(data)


def test_block_crc_mismatch_names_block_and_offset():
    data = bytearray(write_container(SAMPLE_BLOCKS, total_size=1, block_crc=True))
    info = describe(bytes(data))
    residual = info[2]
    assert residual["type"] == "Residual"
    data[residual["offset"] + 8] ^= 0x01  # a payload byte
    with pytest.raises(QresFormatError) as err:
        read_container(bytes(data))
    assert f"CRC mismatch in block 2 (Residual) at byte offset {residual['offset']}" in str(err.value)


def test_without_block_crc_payload_corruption_is_not_detected_by_the_container():
    # documents the flag's meaning: BLOCK_CRC off means payload bytes are opaque
    data = bytearray(write_container([ResidualBlock(0, b"abc")], total_size=1, block_crc=False))
    data[-1] ^= 0xFF
    assert read_container(bytes(data))[1] == [ResidualBlock(0, b"ab\x9c")]


def test_describe():
    data = write_container(SAMPLE_BLOCKS, total_size=1, block_crc=True)
    info = describe(data)
    assert [d["type"] for d in info] == ["Manifest", "Epiphany", "Residual", "SummaryGene", "Epiphany", "Residual"]
    assert info[0]["offset"] == 24
    for a, b in zip(info, info[1:]):
        assert b["offset"] == a["offset"] + a["size"]
    assert info[-1]["offset"] + info[-1]["size"] == len(data)
    assert info[1] == {
        "index": 1, "type": "Epiphany", "type_code": 0x0E, "offset": info[1]["offset"],
        "size": 5 + 40 + 4, "id": 1, "predictor_id": 3, "model_size": 40,
    }
    assert info[2]["payload_size"] == 42 and info[2]["size"] == 6 + 42 + 4
    assert info[3]["round"] == 2**40 + 5 and info[3]["consensus_count"] == 4
    assert info[3]["consensus_exponent"] == -3 and info[3]["variance_count"] == 1
    assert info[0]["manifest"]["name"] == "sensor-7"
    enc = write_container(SAMPLE_BLOCKS, total_size=1, key=KEY)
    enc_info = describe(enc, key=KEY)
    assert enc_info[0]["offset"] == 0
    assert [d["size"] for d in enc_info] == [d["size"] for d in info]
    with pytest.raises(QresAuthError):
        describe(enc)


# --------------------------------------------------------------------------- manifest


def manifest_file(raw: bytes) -> bytes:
    return header() + b"\x4d" + struct.pack("<I", len(raw)) + raw


@pytest.mark.parametrize(
    "raw, pattern",
    [
        (b'{"a": "\xff"}', r"invalid UTF-8 at byte offset 36"),
        (b'{"a": ', r"invalid JSON.* at byte offset 29"),
        (b"[1, 2]", r"must be an object, found list"),
        (b'"text"', r"must be an object, found str"),
        (b'{"a": NaN}', r"invalid JSON.*NaN"),
        (b'{"a": Infinity}', r"invalid JSON"),
        (b"[" * 100_000 + b"]" * 100_000, r"nested too deeply|invalid JSON|must be an object"),
        (b'{"a": ' + b"9" * 5000 + b"}", r"invalid JSON"),
    ],
)
def test_bad_manifest(raw, pattern):
    with pytest.raises(QresFormatError, match=pattern):
        read_container(manifest_file(raw))


def test_manifest_cap():
    data = header() + b"\x4d" + struct.pack("<I", 16 * 2**20 + 1) + b"{}"
    with pytest.raises(QresFormatError, match=r"byte offset 25.*16 MiB"):
        read_container(data)
    with pytest.raises(ValueError, match="16 MiB"):
        write_container([ManifestBlock({"x": "a" * (16 * 2**20)})], total_size=0)


# --------------------------------------------------------------------------- hostile input


@pytest.mark.parametrize(
    "block, offset",
    [
        (b"\x0d\x01" + struct.pack("<I", 2**32 - 1), 30),  # Residual: 4 GiB payload
        (b"\x0e\x01" + struct.pack("<H", 0xFFFF) + b"\x00", 29),  # Epiphany: 64 KiB model
        (b"\x4d" + struct.pack("<I", 16 * 2**20), 29),  # Manifest: exactly the cap
        (b"\x13\x01" + bytes(8) + bytes(32) + struct.pack("<Hb", 0xFFFF, 0), 66),  # SummaryGene
    ],
)
def test_huge_declared_length_fails_fast_without_allocating(block, offset):
    data = header() + block
    data += bytes(100 - len(data)) if len(data) < 100 else b""
    tracemalloc.start()
    try:
        with pytest.raises(QresFormatError) as err:
            read_container(data)
        _current, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert f"at byte offset {offset}" in str(err.value)
    assert "truncated" in str(err.value)
    assert peak < 256 * 1024, peak


@pytest.mark.parametrize("block_crc", [False, True])
def test_every_truncation_of_a_plain_file(block_crc):
    """Every prefix raises QresFormatError, except prefixes that end exactly on a block
    boundary: the format has no block count or end marker, so those are well-formed
    containers holding the first k blocks (see docs/FORMAT.md)."""
    data = write_container(SAMPLE_BLOCKS, total_size=7, block_crc=block_crc)
    ends = boundaries(data)
    assert ends[-1] == len(data) and len(ends) == len(SAMPLE_BLOCKS) + 1
    accepted = []
    for cut in range(len(data)):
        try:
            _hdr, blocks = read_container(data[:cut])
        except QresFormatError as exc:
            assert "offset" in str(exc)
            continue
        accepted.append(cut)
        assert blocks == SAMPLE_BLOCKS[: ends.index(cut)]
    assert accepted == ends[:-1]


def test_every_truncation_of_an_encrypted_file():
    data = write_container(SAMPLE_BLOCKS, total_size=7, key=KEY)
    for cut in range(len(data)):
        with pytest.raises((QresFormatError, QresAuthError)):
            read_container(data[:cut], key=KEY)
        if cut < 24 + 28:
            with pytest.raises(QresFormatError):
                read_container(data[:cut], key=KEY)


def test_trailing_garbage_is_rejected():
    data = write_container(SAMPLE_BLOCKS, total_size=7)
    for tail in (b"\x0d", b"\x00", b"\x0e\x01\x05\x00"):
        with pytest.raises(QresFormatError, match=f"offset {len(data)}"):
            read_container(data + tail)


def test_every_single_byte_change_of_a_crc_protected_file_is_detected():
    data = write_container(SAMPLE_BLOCKS[1:4], total_size=7, block_crc=True)
    for pos in range(len(data)):
        for delta in range(1, 256):
            bad = bytearray(data)
            bad[pos] ^= delta
            with pytest.raises(QresFormatError):
                read_container(bytes(bad))


def test_every_single_byte_change_of_an_encrypted_file_is_detected():
    data = write_container(SAMPLE_BLOCKS, total_size=7, key=KEY)
    for pos in range(len(data)):
        bad = bytearray(data)
        bad[pos] ^= 0x20
        expected = QresFormatError if pos < 24 else QresAuthError
        with pytest.raises(expected):
            read_container(bytes(bad), key=KEY)


def test_header_is_authenticated():
    data = write_container(SAMPLE_BLOCKS, total_size=7, key=KEY)
    forged = header(flags=BLOCK_CRC | ENCRYPTED | SOLID, total_size=7) + data[24:]
    read_header(forged)  # a valid header on its own...
    with pytest.raises(QresAuthError, match="authentication failed: wrong key or corrupted data"):
        read_container(forged, key=KEY)  # ...but not the one that was encrypted with


VALID_FILES = [
    write_container(SAMPLE_BLOCKS, total_size=7, block_crc=False),
    write_container(SAMPLE_BLOCKS, total_size=7, block_crc=True),
    write_container(SAMPLE_BLOCKS, total_size=7, key=KEY),
]


def read_or_reject(data: bytes, key) -> None:
    try:
        read_container(data, key=key)
        describe(data, key=key)
    except (QresFormatError, QresAuthError):
        pass


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    which=st.integers(0, len(VALID_FILES) - 1),
    pos=st.integers(0, 10_000),
    value=st.integers(0, 255),
    key=st.sampled_from([None, KEY, OTHER_KEY]),
)
def test_random_single_byte_mutation(which, pos, value, key):
    data = bytearray(VALID_FILES[which])
    data[pos % len(data)] = value
    read_or_reject(bytes(data), key)


@settings(max_examples=400, deadline=None)
@given(data=st.binary(max_size=300), key=st.sampled_from([None, KEY]))
def test_random_bytes(data, key):
    read_or_reject(data, key)


@settings(max_examples=600, deadline=None)
@given(
    flags=st.sampled_from([0, BLOCK_CRC, SOLID, ENCRYPTED, ENCRYPTED | BLOCK_CRC]),
    body=st.binary(max_size=300)
    | st.lists(st.sampled_from([b"\x0d", b"\x0e", b"\x13", b"\x4d", b"\x00", b"\xff", b"\x01\x00"]), max_size=40).map(b"".join),
    key=st.sampled_from([None, KEY]),
)
def test_random_bodies_behind_a_valid_header(flags, body, key):
    """Random bytes rarely get past the magic and header CRC; this drives the block parser."""
    read_or_reject(header(flags=flags, total_size=1) + body, key)


# --------------------------------------------------------------------------- keys


def test_missing_key_on_encrypted_file():
    data = write_container(SAMPLE_BLOCKS, total_size=1, key=KEY)
    with pytest.raises(QresAuthError, match="file is encrypted; a key is required"):
        read_container(data)


def test_wrong_key():
    data = write_container(SAMPLE_BLOCKS, total_size=1, key=KEY)
    with pytest.raises(QresAuthError, match="authentication failed: wrong key or corrupted data"):
        read_container(data, key=OTHER_KEY)


@pytest.mark.parametrize("bad", [b"", bytes(16), bytes(31), bytes(33)])
def test_key_must_be_32_bytes(bad):
    with pytest.raises(ValueError, match="32 bytes"):
        write_container([], total_size=0, key=bad)
    with pytest.raises(ValueError, match="32 bytes"):
        read_container(write_container([], total_size=0), key=bad)


def test_load_key_formats(tmp_path):
    raw = tmp_path / "raw.key"
    raw.write_bytes(b" \n\t" + bytes(29))  # 32 raw bytes, even if some look like whitespace
    assert load_key(raw) == b" \n\t" + bytes(29)
    hexfile = tmp_path / "hex.key"
    hexfile.write_text("  " + KEY.hex().upper() + "\r\n\n")
    assert load_key(hexfile) == KEY
    for name, content in [
        ("short", KEY.hex()[:-1].encode()),
        ("nonhex", b"zz" + KEY.hex()[2:].encode()),
        ("33", bytes(33)),
        ("empty", b""),
        ("inner-space", (KEY.hex()[:32] + " " + KEY.hex()[32:]).encode()),
        ("big", b"0" * 10_000),
    ]:
        p = tmp_path / name
        p.write_bytes(content)
        with pytest.raises(QresFormatError, match=r"32 raw bytes or 64 hex characters"):
            load_key(p)


def test_generate_key_file(tmp_path):
    path = tmp_path / "k.key"
    key = generate_key_file(path)
    text = path.read_bytes()
    assert len(text) == 65 and text.endswith(b"\n") and bytes.fromhex(text[:64].decode()) == key
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    assert load_key(path) == key
    with pytest.raises(FileExistsError):
        generate_key_file(path)
    assert load_key(path) == key  # not overwritten
    data = write_container(SAMPLE_BLOCKS, total_size=1, key=load_key(path))
    assert read_container(data, key=key)[1] == SAMPLE_BLOCKS


# --------------------------------------------------------------------------- writer validation


class HugeBytes(bytes):
    def __len__(self):
        return 2**32


@pytest.mark.parametrize(
    "block, error, pattern",
    [
        (EpiphanyBlock(256, 0, b""), ValueError, r"block 0 \(Epiphany\): id must be in 0..255"),
        (EpiphanyBlock(-1, 0, b""), ValueError, "id"),
        (EpiphanyBlock(0, 256, b""), ValueError, "predictor_id"),
        (EpiphanyBlock(0, 0, bytes(65536)), ValueError, "65535"),
        (EpiphanyBlock(True, 0, b""), TypeError, "id must be an int"),
        (EpiphanyBlock(0, 0, "text"), TypeError, "model must be bytes"),
        (ResidualBlock(300, b""), ValueError, "id"),
        (ResidualBlock(0, HugeBytes(b"x")), ValueError, "4294967295"),
        (SummaryGeneBlock(0, -1, bytes(32), bfp16(0, []), bfp16(0, [])), ValueError, "round"),
        (SummaryGeneBlock(0, 2**64, bytes(32), bfp16(0, []), bfp16(0, [])), ValueError, "round"),
        (SummaryGeneBlock(0, 0, bytes(31), bfp16(0, []), bfp16(0, [])), ValueError, "history_hash must be 32"),
        (SummaryGeneBlock(0, 0, bytes(32), bfp16(0, [1])[:-1], bfp16(0, [])), ValueError, "consensus_bytes"),
        (SummaryGeneBlock(0, 0, bytes(32), bfp16(0, []), bfp16(0, [1]) + b"\x00"), ValueError, "variance_bytes"),
        (SummaryGeneBlock(0, 0, bytes(32), bfp16(0, []), b"\x00"), ValueError, "variance_bytes"),
        (ManifestBlock(["not", "a", "dict"]), TypeError, "dict"),
        (ManifestBlock({"x": float("nan")}), ValueError, "JSON"),
        (ManifestBlock({"x": object()}), ValueError, "JSON"),
        (ManifestBlock({1: "int key"}), ValueError, "round trip"),
        (ManifestBlock({"t": (1, 2)}), ValueError, "round trip"),
        ("not a block", TypeError, "expected EpiphanyBlock"),
    ],
)
def test_writer_rejects_invalid_blocks(block, error, pattern):
    with pytest.raises(error, match=pattern):
        write_container([block], total_size=0)
