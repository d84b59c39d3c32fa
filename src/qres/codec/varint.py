"""LEB128 varints (unsigned, and zigzag-signed) for compact headers, with bounds checks on reading."""

from __future__ import annotations

from ..errors import QresFormatError

MAX_VARINT_BYTES = 10  # enough for 64 bits


def put_uvarint(out: bytearray, v: int) -> None:
    """Append unsigned v (0 <= v < 2^64)."""
    if not 0 <= v < 2**64:
        raise ValueError(f"varint out of range: {v}")
    while v >= 0x80:
        out.append((v & 0x7F) | 0x80)
        v >>= 7
    out.append(v)


def put_svarint(out: bytearray, v: int) -> None:
    """Append signed v (-2^63 <= v < 2^63) zigzag-encoded."""
    if not -(2**63) <= v < 2**63:
        raise ValueError(f"signed varint out of range: {v}")
    put_uvarint(out, (v << 1) ^ (v >> 63) if v < 0 else v << 1)


class Reader:
    """Sequential reader over bytes; every read checks the remaining length and names the offset."""

    def __init__(self, data: bytes | memoryview, offset: int = 0, what: str = "data") -> None:
        self.data = bytes(data)
        self.pos = offset
        self.what = what

    def fail(self, msg: str) -> QresFormatError:
        return QresFormatError(f"{self.what}: {msg} at byte {self.pos}")

    def u8(self) -> int:
        if self.pos >= len(self.data):
            raise self.fail("truncated (expected 1 more byte)")
        v = self.data[self.pos]
        self.pos += 1
        return v

    def take(self, n: int) -> bytes:
        if n < 0 or self.pos + n > len(self.data):
            raise self.fail(f"truncated (expected {n} more bytes, {len(self.data) - self.pos} left)")
        v = self.data[self.pos : self.pos + n]
        self.pos += n
        return v

    def uvarint(self, limit: int = 2**64 - 1) -> int:
        start = self.pos
        v = 0
        for i in range(MAX_VARINT_BYTES):
            b = self.u8()
            v |= (b & 0x7F) << (7 * i)
            if not b & 0x80:
                if v > limit:
                    self.pos = start
                    raise self.fail(f"value {v} exceeds its limit {limit}")
                return v
        self.pos = start
        raise self.fail("varint longer than 10 bytes")

    def svarint(self) -> int:
        u = self.uvarint()
        v = (u >> 1) ^ -(u & 1)
        if not -(2**63) <= v < 2**63:
            raise self.fail("signed varint out of range")
        return v

    def remaining(self) -> int:
        return len(self.data) - self.pos
