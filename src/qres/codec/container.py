"""The `.qres` container (protocol spec v19): a 24-byte header followed by typed blocks.

The container frames opaque payload bytes produced by the codec layer; it does not
interpret models, residuals or vectors beyond their framing.  The byte layout is
documented in docs/FORMAT.md, section "Container".

Reading is hardened against hostile input: every length is checked against the bytes
that remain before anything is sliced or allocated, and every malformed input raises
:class:`qres.errors.QresFormatError` naming what is wrong and the byte offset.  A wrong
key or tampered ciphertext raises :class:`qres.errors.QresAuthError`.
"""

from __future__ import annotations

import json
import os
import struct
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence, Union

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from qres.errors import QresAuthError, QresFormatError

__all__ = [
    "SOLID",
    "ENCRYPTED",
    "BLOCK_CRC",
    "BODY_CRC",
    "KNOWN_FLAGS",
    "MAJOR",
    "MINOR",
    "MAGIC",
    "HEADER_SIZE",
    "MAX_TOTAL_SIZE",
    "MAX_MANIFEST_SIZE",
    "KEY_SIZE",
    "NONCE_SIZE",
    "TAG_SIZE",
    "TYPE_EPIPHANY",
    "TYPE_RESIDUAL",
    "TYPE_SUMMARY_GENE",
    "TYPE_MANIFEST",
    "TYPE_FALLBACK",
    "BLOCK_TYPE_NAMES",
    "Header",
    "EpiphanyBlock",
    "ResidualBlock",
    "SummaryGeneBlock",
    "ManifestBlock",
    "FallbackBlock",
    "Block",
    "write_container",
    "read_container",
    "manifest_json",
    "read_header",
    "describe",
    "load_key",
    "generate_key_file",
]

# --------------------------------------------------------------------------- constants

SOLID, ENCRYPTED, BLOCK_CRC = 0x01, 0x02, 0x04
BODY_CRC = 0x08  # our extension: the block data ends with one CRC32 of all of it
KNOWN_FLAGS = SOLID | ENCRYPTED | BLOCK_CRC | BODY_CRC
MAJOR, MINOR = 19, 0

MAGIC = b"QRES"
HEADER_SIZE = 24
MAX_TOTAL_SIZE = 1 << 48
MAX_MANIFEST_SIZE = 16 << 20  # 16 MiB of UTF-8 JSON
MAX_MODEL_SIZE = 0xFFFF
MAX_PAYLOAD_SIZE = 0xFFFF_FFFF

KEY_SIZE = 32  # AES-256
NONCE_SIZE = 12
TAG_SIZE = 16
# cryptography's AESGCM refuses inputs longer than this (plaintext, ciphertext+tag, AAD).
_MAX_AEAD_INPUT = 2**31 - 1
# A key file is 32 bytes (raw) or 64 hex chars plus whitespace; never read more than this.
_MAX_KEY_FILE = 4096

TYPE_RESIDUAL = 0x0D
TYPE_EPIPHANY = 0x0E
TYPE_SUMMARY_GENE = 0x13
TYPE_MANIFEST = 0x4D
TYPE_FALLBACK = 0x46  # our extension: a column coded by a generic coder (see codec.fallback)
BLOCK_TYPE_NAMES = {
    TYPE_EPIPHANY: "Epiphany",
    TYPE_RESIDUAL: "Residual",
    TYPE_SUMMARY_GENE: "SummaryGene",
    TYPE_MANIFEST: "Manifest",
    TYPE_FALLBACK: "Fallback",
}

_HEADER_BODY = struct.Struct("<4sHHIQ")  # the 20 bytes the header CRC covers
_U32 = struct.Struct("<I")
_EPIPHANY_HEAD = struct.Struct("<BBHB")  # type, id, model length, predictor id
_RESIDUAL_HEAD = struct.Struct("<BBI")  # type, id, payload length
_SUMMARY_HEAD = struct.Struct("<BBQ32s")  # type, id, round, history hash
_BFP16_HEAD = struct.Struct("<Hb")  # count, exponent; then count int16 mantissas
_MANIFEST_HEAD = struct.Struct("<BI")  # type, JSON length
_FALLBACK_HEAD = struct.Struct("<BI")  # type, payload length

assert _HEADER_BODY.size + _U32.size == HEADER_SIZE


# --------------------------------------------------------------------------- data types


@dataclass(frozen=True)
class Header:
    """The fixed 24-byte header (its CRC is checked on read and computed on write)."""

    major: int
    minor: int
    flags: int
    total_size: int

    @property
    def solid(self) -> bool:
        return bool(self.flags & SOLID)

    @property
    def encrypted(self) -> bool:
        return bool(self.flags & ENCRYPTED)

    @property
    def block_crc(self) -> bool:
        return bool(self.flags & BLOCK_CRC)

    @property
    def body_crc(self) -> bool:
        return bool(self.flags & BODY_CRC)


@dataclass(frozen=True)
class EpiphanyBlock:
    """Type 0x0E: a model ("gene" bytes) for predictor `predictor_id`, known as `id`."""

    id: int
    predictor_id: int
    model: bytes  # at most 65535 bytes


@dataclass(frozen=True)
class ResidualBlock:
    """Type 0x0D: compressed residuals; `id` names the Epiphany (model) they need."""

    id: int
    payload: bytes  # fewer than 2**32 bytes


@dataclass(frozen=True)
class SummaryGeneBlock:
    """Type 0x13: a swarm summary.  The two BFP-16 vectors are kept as their wire bytes
    (u16 count n, i8 exponent, n little-endian int16 mantissas), one vector each."""

    id: int
    round: int
    history_hash: bytes  # exactly 32 bytes
    consensus_bytes: bytes
    variance_bytes: bytes


@dataclass(frozen=True)
class ManifestBlock:
    """Type 0x4D (our extension): metadata as a JSON object."""

    manifest: dict = field(hash=False)


@dataclass(frozen=True)
class FallbackBlock:
    """Type 0x46 (our extension): one column coded by a generic coder (opaque to the container)."""

    payload: bytes  # fewer than 2**32 bytes


Block = Union[EpiphanyBlock, ResidualBlock, SummaryGeneBlock, ManifestBlock, FallbackBlock]


# --------------------------------------------------------------------------- helpers


def _as_view(data: Any) -> memoryview:
    """A flat byte view of `data` (bytes, bytearray, memoryview or any buffer)."""
    if isinstance(data, str):
        raise TypeError("container data must be bytes-like, not str")
    try:
        view = memoryview(data)
    except TypeError:
        raise TypeError(f"container data must be bytes-like, not {type(data).__name__}") from None
    if view.ndim == 1 and view.itemsize == 1 and view.format in ("B", "b", "c"):
        return view.cast("B") if view.format != "B" else view
    if view.c_contiguous:
        return view.cast("B")
    return memoryview(view.tobytes())


def _check_key(key: Any) -> bytes:
    if not isinstance(key, (bytes, bytearray, memoryview)):
        raise TypeError(f"key must be {KEY_SIZE} bytes, not {type(key).__name__}")
    key = bytes(key)
    if len(key) != KEY_SIZE:
        raise ValueError(f"key must be exactly {KEY_SIZE} bytes (AES-256), got {len(key)}")
    return key


def _bfp16_span(buf: memoryview | bytes, pos: int) -> tuple[int, int, int] | None:
    """(end, count, exponent) of the BFP-16 vector starting at `pos`, or None if
    `buf` ends before the vector does."""
    if len(buf) - pos < _BFP16_HEAD.size:
        return None
    count, exponent = _BFP16_HEAD.unpack_from(buf, pos)
    end = pos + _BFP16_HEAD.size + 2 * count
    if end > len(buf):
        return None
    return end, count, exponent


def _header_bytes(major: int, minor: int, flags: int, total_size: int) -> bytes:
    body = _HEADER_BODY.pack(MAGIC, major, minor, flags, total_size)
    return body + _U32.pack(zlib.crc32(body))


# --------------------------------------------------------------------------- header


def read_header(data: bytes | bytearray | memoryview) -> Header:
    """Parse and validate the 24-byte header: magic, version, CRC, flags and size."""
    view = _as_view(data)
    n = len(view)
    if bytes(view[:4]) != MAGIC[: min(n, 4)]:
        raise QresFormatError(
            f"not a .qres file: bad magic {bytes(view[:4])!r} at byte offset 0 (expected {MAGIC!r})"
        )
    if n < HEADER_SIZE:
        raise QresFormatError(
            f"truncated header at byte offset {n}: the header needs {HEADER_SIZE} bytes, "
            f"the data has {n}"
        )
    _magic, major, minor, flags, total_size = _HEADER_BODY.unpack_from(view, 0)
    (stored_crc,) = _U32.unpack_from(view, _HEADER_BODY.size)
    computed_crc = zlib.crc32(view[: _HEADER_BODY.size])
    if major != MAJOR:
        hint = ""
        if stored_crc != computed_crc:
            hint = " (the header CRC does not match either, so the header may be corrupted)"
        raise QresFormatError(
            f"unsupported format version {major}.{minor} at byte offset 4: "
            f"this reader supports major version {MAJOR} (any {MAJOR}.x){hint}"
        )
    if stored_crc != computed_crc:
        raise QresFormatError(
            f"header CRC mismatch at byte offset {_HEADER_BODY.size}: stored 0x{stored_crc:08X}, "
            f"computed 0x{computed_crc:08X} over bytes 0..{_HEADER_BODY.size - 1}"
        )
    if flags & ~KNOWN_FLAGS:
        raise QresFormatError(
            f"unknown flag bits 0x{flags & ~KNOWN_FLAGS:08X} at byte offset 8 "
            f"(flags 0x{flags:08X}; known bits are 0x{KNOWN_FLAGS:02X})"
        )
    if total_size > MAX_TOTAL_SIZE:
        raise QresFormatError(
            f"total uncompressed size {total_size} at byte offset 12 exceeds the limit of 2^48"
        )
    return Header(major=major, minor=minor, flags=flags, total_size=total_size)


# --------------------------------------------------------------------------- reading


class _BlockParser:
    """Walks the block stream.  Offsets in messages are `origin + position`; `where`
    says which byte space they refer to (the file, or the decrypted block data)."""

    def __init__(self, buf: memoryview, *, block_crc: bool, origin: int, where: str):
        self.buf = buf
        self.n = len(buf)
        self.block_crc = block_crc
        self.origin = origin
        self.where = where

    def _fail(self, msg: str, pos: int, detail: str = "") -> QresFormatError:
        return QresFormatError(f"{msg} at byte offset {self.origin + pos}{self.where}{detail}")

    def _need(self, pos: int, count: int, what: str, index: int, name: str) -> None:
        remain = self.n - pos
        if count > remain:
            raise self._fail(
                f"truncated {name} block {index}",
                pos,
                f": {what} needs {count} bytes, {remain} remain",
            )

    def parse(self) -> list[tuple[Block, int, int]]:
        """[(block, offset, stored size incl. CRC trailer)] in stream order."""
        out: list[tuple[Block, int, int]] = []
        pos = 0
        index = 0
        while pos < self.n:
            start = pos
            btype = self.buf[pos]
            if btype == TYPE_EPIPHANY:
                block, pos = self._epiphany(pos, index)
            elif btype == TYPE_RESIDUAL:
                block, pos = self._residual(pos, index)
            elif btype == TYPE_SUMMARY_GENE:
                block, pos = self._summary(pos, index)
            elif btype == TYPE_MANIFEST:
                block, pos = self._manifest(pos, index)
            elif btype == TYPE_FALLBACK:
                block, pos = self._fallback(pos, index)
            else:
                raise self._fail(f"unknown block type 0x{btype:02X} (block {index})", pos)
            if self.block_crc:
                name = BLOCK_TYPE_NAMES[btype]
                self._need(pos, 4, "the CRC32 trailer", index, name)
                (stored,) = _U32.unpack_from(self.buf, pos)
                computed = zlib.crc32(self.buf[start:pos])
                if stored != computed:
                    raise self._fail(
                        f"CRC mismatch in block {index} ({name})",
                        start,
                        f": the trailer at byte offset {self.origin + pos} stores "
                        f"0x{stored:08X}, the block's bytes give 0x{computed:08X}",
                    )
                pos += 4
            out.append((block, self.origin + start, pos - start))
            index += 1
        return out

    def _epiphany(self, pos: int, index: int) -> tuple[Block, int]:
        name = "Epiphany"
        self._need(pos, _EPIPHANY_HEAD.size, "the 5-byte block head", index, name)
        _t, bid, length, predictor = _EPIPHANY_HEAD.unpack_from(self.buf, pos)
        pos += _EPIPHANY_HEAD.size
        self._need(pos, length, "the model", index, name)
        model = bytes(self.buf[pos : pos + length])
        return EpiphanyBlock(id=bid, predictor_id=predictor, model=model), pos + length

    def _residual(self, pos: int, index: int) -> tuple[Block, int]:
        name = "Residual"
        self._need(pos, _RESIDUAL_HEAD.size, "the 6-byte block head", index, name)
        _t, bid, length = _RESIDUAL_HEAD.unpack_from(self.buf, pos)
        pos += _RESIDUAL_HEAD.size
        self._need(pos, length, "the payload", index, name)
        payload = bytes(self.buf[pos : pos + length])
        return ResidualBlock(id=bid, payload=payload), pos + length

    def _fallback(self, pos: int, index: int) -> tuple[Block, int]:
        name = "Fallback"
        self._need(pos, _FALLBACK_HEAD.size, "the 5-byte block head", index, name)
        _t, length = _FALLBACK_HEAD.unpack_from(self.buf, pos)
        pos += _FALLBACK_HEAD.size
        self._need(pos, length, "the payload", index, name)
        return FallbackBlock(payload=bytes(self.buf[pos : pos + length])), pos + length

    def _summary(self, pos: int, index: int) -> tuple[Block, int]:
        name = "SummaryGene"
        self._need(pos, _SUMMARY_HEAD.size, "the 42-byte block head", index, name)
        _t, bid, rnd, history = _SUMMARY_HEAD.unpack_from(self.buf, pos)
        pos += _SUMMARY_HEAD.size
        vectors = []
        for label in ("consensus", "variance"):
            self._need(pos, _BFP16_HEAD.size, f"the {label} BFP-16 vector head", index, name)
            (count, _exp) = _BFP16_HEAD.unpack_from(self.buf, pos)
            size = _BFP16_HEAD.size + 2 * count
            self._need(pos, size, f"the {label} BFP-16 vector ({count} mantissas)", index, name)
            vectors.append(bytes(self.buf[pos : pos + size]))
            pos += size
        block = SummaryGeneBlock(
            id=bid,
            round=rnd,
            history_hash=history,
            consensus_bytes=vectors[0],
            variance_bytes=vectors[1],
        )
        return block, pos

    def _manifest(self, pos: int, index: int) -> tuple[Block, int]:
        name = "Manifest"
        self._need(pos, _MANIFEST_HEAD.size, "the 5-byte block head", index, name)
        _t, length = _MANIFEST_HEAD.unpack_from(self.buf, pos)
        if length > MAX_MANIFEST_SIZE:
            raise self._fail(
                f"Manifest block {index}: length field",
                pos + 1,
                f" declares {length} bytes of JSON, over the {MAX_MANIFEST_SIZE}-byte (16 MiB) cap",
            )
        pos += _MANIFEST_HEAD.size
        self._need(pos, length, "the JSON text", index, name)
        raw = bytes(self.buf[pos : pos + length])
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise self._fail(
                f"Manifest block {index}: invalid UTF-8", pos + exc.start, f" ({exc.reason})"
            ) from None
        try:
            manifest = json.loads(text, parse_constant=_reject_constant)
        except RecursionError:
            raise self._fail(
                f"Manifest block {index}: JSON text", pos, " is nested too deeply"
            ) from None
        except ValueError as exc:  # JSONDecodeError, NaN/Infinity, over-long integers
            raise self._fail(
                f"Manifest block {index}: invalid JSON text", pos, f" ({exc})"
            ) from None
        if not isinstance(manifest, dict):
            raise self._fail(
                f"Manifest block {index}: JSON text",
                pos,
                f" must be an object, found {type(manifest).__name__}",
            )
        return ManifestBlock(manifest=manifest), pos + length


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not allowed in a manifest")


def _check_body_crc(body: memoryview, origin: int, where: str) -> memoryview:
    """The block data without its CRC32 trailer (flag BODY_CRC), once the trailer matches."""
    if len(body) < 4:
        raise QresFormatError(
            f"file truncated at byte offset {origin + len(body)}{where}: the block data must end "
            f"with a 4-byte CRC32, {len(body)} bytes remain"
        )
    end = len(body) - 4
    (stored,) = _U32.unpack_from(body, end)
    computed = zlib.crc32(body[:end])
    if stored != computed:
        raise QresFormatError(
            f"file damaged or truncated: the CRC32 at byte offset {origin + end}{where} stores "
            f"0x{stored:08X}, the block data before it gives 0x{computed:08X}"
        )
    return body[:end]


def _parse(data: Any, key: Any) -> tuple[Header, bytes, list[tuple[Block, int, int]]]:
    if key is not None:
        key = _check_key(key)
    view = _as_view(data)
    header = read_header(view)
    body = view[HEADER_SIZE:]
    if not header.encrypted:
        if header.body_crc:
            body = _check_body_crc(body, HEADER_SIZE, "")
        parser = _BlockParser(body, block_crc=header.block_crc, origin=HEADER_SIZE, where="")
        return header, bytes(view[:HEADER_SIZE]), parser.parse()
    if len(body) < NONCE_SIZE + TAG_SIZE:
        raise QresFormatError(
            f"truncated encrypted payload at byte offset {HEADER_SIZE + len(body)}: it needs at "
            f"least {NONCE_SIZE + TAG_SIZE} bytes (12-byte nonce + 16-byte tag), "
            f"{len(body)} remain"
        )
    if key is None:
        raise QresAuthError("file is encrypted; a key is required")
    ciphertext = body[NONCE_SIZE:]
    if len(ciphertext) > _MAX_AEAD_INPUT:
        raise QresFormatError(
            f"encrypted payload at byte offset {HEADER_SIZE + NONCE_SIZE} is {len(ciphertext)} "
            f"bytes, over the AES-GCM limit of 2^31-1"
        )
    header_bytes = bytes(view[:HEADER_SIZE])
    try:
        plain = memoryview(AESGCM(key).decrypt(bytes(body[:NONCE_SIZE]), ciphertext, header_bytes))
    except InvalidTag:
        raise QresAuthError("authentication failed: wrong key or corrupted data") from None
    where = " of the decrypted block data"
    if header.body_crc:
        plain = _check_body_crc(plain, 0, where)
    parser = _BlockParser(plain, block_crc=header.block_crc, origin=0, where=where)
    return header, header_bytes, parser.parse()


def read_container(
    data: bytes | bytearray | memoryview, *, key: bytes | None = None
) -> tuple[Header, list[Block]]:
    """Parse a whole container.  `key` (32 bytes) is needed for encrypted containers
    and ignored for plain ones.  Raises QresFormatError on malformed input and
    QresAuthError on a missing/wrong key or tampered ciphertext."""
    header, _raw_header, parsed = _parse(data, key)
    return header, [block for block, _off, _size in parsed]


def describe(data: bytes | bytearray | memoryview, key: bytes | None = None) -> list[dict]:
    """One dict per block, for `qres info`: index, type (name), type_code, offset,
    size (stored bytes, including the CRC trailer if any) and the block's main fields.

    Offsets are file offsets for plain containers; for encrypted containers they are
    offsets into the decrypted block data (the first block is at 0)."""
    _header, _raw, parsed = _parse(data, key)
    out = []
    for index, (block, offset, size) in enumerate(parsed):
        info: dict[str, Any] = {"index": index}
        if isinstance(block, EpiphanyBlock):
            info.update(type="Epiphany", type_code=TYPE_EPIPHANY)
            fields = {"id": block.id, "predictor_id": block.predictor_id, "model_size": len(block.model)}
        elif isinstance(block, ResidualBlock):
            info.update(type="Residual", type_code=TYPE_RESIDUAL)
            fields = {"id": block.id, "payload_size": len(block.payload)}
        elif isinstance(block, FallbackBlock):
            info.update(type="Fallback", type_code=TYPE_FALLBACK)
            fields = {"payload_size": len(block.payload)}
        elif isinstance(block, SummaryGeneBlock):
            info.update(type="SummaryGene", type_code=TYPE_SUMMARY_GENE)
            c_count, c_exp = _BFP16_HEAD.unpack_from(block.consensus_bytes, 0)
            v_count, v_exp = _BFP16_HEAD.unpack_from(block.variance_bytes, 0)
            fields = {
                "id": block.id,
                "round": block.round,
                "history_hash": block.history_hash.hex(),
                "consensus_count": c_count,
                "consensus_exponent": c_exp,
                "variance_count": v_count,
                "variance_exponent": v_exp,
            }
        else:
            info.update(type="Manifest", type_code=TYPE_MANIFEST)
            fields = {"manifest": block.manifest}
        info.update(offset=offset, size=size)
        info.update(fields)
        out.append(info)
    return out


# --------------------------------------------------------------------------- writing


def _int_field(value: Any, lo: int, hi: int, what: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{what} must be an int, not {type(value).__name__}")
    if not lo <= value <= hi:
        raise ValueError(f"{what} must be in {lo}..{hi}, got {value}")
    return value


def _bytes_field(value: Any, what: str) -> bytes:
    if not isinstance(value, (bytes, bytearray, memoryview)):
        raise TypeError(f"{what} must be bytes, not {type(value).__name__}")
    return bytes(value)


def _check_bfp16(raw: bytes, what: str) -> None:
    span = _bfp16_span(raw, 0)
    if span is None or span[0] != len(raw):
        if len(raw) < _BFP16_HEAD.size:
            detail = f"{len(raw)} bytes is shorter than the 3-byte vector head"
        else:
            count = _BFP16_HEAD.unpack_from(raw, 0)[0]
            detail = f"count {count} needs {_BFP16_HEAD.size + 2 * count} bytes, got {len(raw)}"
        raise ValueError(
            f"{what} must be one BFP-16 vector (u16 count, i8 exponent, count int16): {detail}"
        )


def manifest_json(manifest: dict, what: str = "manifest") -> bytes:
    """The canonical bytes of a manifest (compact UTF-8 JSON, sorted keys); ValueError for a dict
    that would not come back unchanged."""
    try:
        text = json.dumps(manifest, ensure_ascii=False, allow_nan=False, sort_keys=True, separators=(",", ":"))
        same = json.loads(text) == manifest
    except (TypeError, ValueError, RecursionError) as exc:
        raise ValueError(f"{what}: manifest is not JSON-serialisable: {exc}") from None
    if not same:
        raise ValueError(
            f"{what}: manifest does not survive a JSON round trip unchanged "
            "(use str keys, lists instead of tuples, and plain JSON types)"
        )
    return text.encode("utf-8")


def _encode_block(block: Any, index: int) -> bytes:
    if isinstance(block, EpiphanyBlock):
        w = f"block {index} (Epiphany)"
        bid = _int_field(block.id, 0, 255, f"{w}: id")
        pred = _int_field(block.predictor_id, 0, 255, f"{w}: predictor_id")
        model = _bytes_field(block.model, f"{w}: model")
        if len(model) > MAX_MODEL_SIZE:
            raise ValueError(f"{w}: model is {len(model)} bytes, the limit is {MAX_MODEL_SIZE}")
        return _EPIPHANY_HEAD.pack(TYPE_EPIPHANY, bid, len(model), pred) + model
    if isinstance(block, ResidualBlock):
        w = f"block {index} (Residual)"
        bid = _int_field(block.id, 0, 255, f"{w}: id")
        if not isinstance(block.payload, (bytes, bytearray, memoryview)):
            raise TypeError(f"{w}: payload must be bytes, not {type(block.payload).__name__}")
        size = len(block.payload)  # checked before copying
        if size > MAX_PAYLOAD_SIZE:
            raise ValueError(f"{w}: payload is {size} bytes, the limit is {MAX_PAYLOAD_SIZE}")
        return _RESIDUAL_HEAD.pack(TYPE_RESIDUAL, bid, size) + bytes(block.payload)
    if isinstance(block, FallbackBlock):
        w = f"block {index} (Fallback)"
        if not isinstance(block.payload, (bytes, bytearray, memoryview)):
            raise TypeError(f"{w}: payload must be bytes, not {type(block.payload).__name__}")
        if len(block.payload) > MAX_PAYLOAD_SIZE:
            raise ValueError(f"{w}: payload is {len(block.payload)} bytes, the limit is {MAX_PAYLOAD_SIZE}")
        return _FALLBACK_HEAD.pack(TYPE_FALLBACK, len(block.payload)) + bytes(block.payload)
    if isinstance(block, SummaryGeneBlock):
        w = f"block {index} (SummaryGene)"
        bid = _int_field(block.id, 0, 255, f"{w}: id")
        rnd = _int_field(block.round, 0, 2**64 - 1, f"{w}: round")
        history = _bytes_field(block.history_hash, f"{w}: history_hash")
        if len(history) != 32:
            raise ValueError(f"{w}: history_hash must be 32 bytes, got {len(history)}")
        consensus = _bytes_field(block.consensus_bytes, f"{w}: consensus_bytes")
        variance = _bytes_field(block.variance_bytes, f"{w}: variance_bytes")
        _check_bfp16(consensus, f"{w}: consensus_bytes")
        _check_bfp16(variance, f"{w}: variance_bytes")
        return _SUMMARY_HEAD.pack(TYPE_SUMMARY_GENE, bid, rnd, history) + consensus + variance
    if isinstance(block, ManifestBlock):
        w = f"block {index} (Manifest)"
        manifest = block.manifest
        if not isinstance(manifest, dict):
            raise TypeError(f"{w}: manifest must be a dict, not {type(manifest).__name__}")
        raw = manifest_json(manifest, w)
        if len(raw) > MAX_MANIFEST_SIZE:
            raise ValueError(
                f"{w}: manifest JSON is {len(raw)} bytes, the cap is {MAX_MANIFEST_SIZE} (16 MiB)"
            )
        return _MANIFEST_HEAD.pack(TYPE_MANIFEST, len(raw)) + raw
    raise TypeError(
        f"block {index}: expected EpiphanyBlock, ResidualBlock, SummaryGeneBlock, "
        f"ManifestBlock or FallbackBlock, got {type(block).__name__}"
    )


def write_container(
    blocks: Sequence[Block],
    *,
    total_size: int,
    solid: bool = False,
    block_crc: bool = True,
    body_crc: bool = False,
    key: bytes | None = None,
) -> bytes:
    """Serialise `blocks` behind a v19.0 header.  `total_size` is the uncompressed size
    recorded in the header (0..2^48).  `block_crc` puts a CRC32 after every block (flag
    0x04); `body_crc` one CRC32 after all of them (flag 0x08: 4 bytes, and a file cut at a
    block boundary no longer reads as whole).  With `key` (32 bytes) the block bytes are
    encrypted with AES-256-GCM under a fresh random nonce, the header as AAD; the GCM tag
    already checks every byte, so `body_crc` is then left out.
    Raises ValueError/TypeError on inputs that do not fit the format."""
    total_size = _int_field(total_size, 0, MAX_TOTAL_SIZE, "total_size")
    if key is not None:
        key = _check_key(key)
        body_crc = False
    flags = (SOLID if solid else 0) | (BLOCK_CRC if block_crc else 0) | (BODY_CRC if body_crc else 0)
    flags |= ENCRYPTED if key is not None else 0
    body = bytearray()
    for index, block in enumerate(blocks):
        encoded = _encode_block(block, index)
        body += encoded
        if block_crc:
            body += _U32.pack(zlib.crc32(encoded))
    if body_crc:
        body += _U32.pack(zlib.crc32(body))
    header = _header_bytes(MAJOR, MINOR, flags, total_size)
    if key is None:
        return header + bytes(body)
    if len(body) + TAG_SIZE > _MAX_AEAD_INPUT:
        raise ValueError(
            f"block data is {len(body)} bytes; AES-GCM here is limited to 2^31-1 bytes "
            "including the 16-byte tag"
        )
    nonce = os.urandom(NONCE_SIZE)
    return header + nonce + AESGCM(key).encrypt(nonce, bytes(body), header)


# --------------------------------------------------------------------------- keys


def load_key(path: str | os.PathLike) -> bytes:
    """Read a key file: exactly 32 raw bytes, or 64 hex characters (surrounding
    whitespace ignored).  Anything else raises QresFormatError."""
    with open(path, "rb") as fh:
        raw = fh.read(_MAX_KEY_FILE + 1)
    if len(raw) == KEY_SIZE:
        return raw
    expected = f"expected exactly {KEY_SIZE} raw bytes or {2 * KEY_SIZE} hex characters"
    if len(raw) > _MAX_KEY_FILE:
        raise QresFormatError(f"key file {os.fspath(path)!s}: too large ({expected})")
    text = raw.strip()
    if len(text) != 2 * KEY_SIZE:
        raise QresFormatError(
            f"key file {os.fspath(path)!s}: {expected}, found {len(raw)} bytes "
            f"({len(text)} after stripping whitespace)"
        )
    try:
        return bytes.fromhex(text.decode("ascii"))
    except (UnicodeDecodeError, ValueError):
        raise QresFormatError(
            f"key file {os.fspath(path)!s}: {expected}; the 64 characters are not all hex digits"
        ) from None


def generate_key_file(path: str | os.PathLike) -> bytes:
    """Create `path` (mode 0o600; refuses to overwrite an existing file) holding a new
    random key as 64 hex characters and a newline.  Returns the key."""
    key = os.urandom(KEY_SIZE)
    fd = os.open(Path(path), os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0), 0o600)
    with os.fdopen(fd, "wb") as fh:
        if hasattr(os, "fchmod"):
            os.fchmod(fh.fileno(), 0o600)  # the umask may not have left it at 0o600
        fh.write(key.hex().encode("ascii") + b"\n")
    return key
