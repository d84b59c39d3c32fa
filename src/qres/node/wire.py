"""What travels between daemons beyond the swarm packets: the hop header and the Hello.

A gossip message on the wire is a hop header followed by a signed envelope (`identity.seal`)::

    magic b"QH" | ttl u8 | envelope

The TTL sits outside the signature because every relay lowers it; it only limits how far a message
travels, it grants nothing. A message whose TTL is above zero is passed on once by each node that
accepts it (duplicates are refused by the replay guard, so a node never passes the same message on
twice).

A Hello is the node-level packet for peer exchange and for measuring how fast gossip spreads::

    magic b"QN" | version u8 (= 1) | type u8 (= 1) | sent_us u64 | count u8
    | count x (length u8 | "host:port" ASCII)

The first address is where the sender listens; the others are peers it knows (at most
`MAX_HELLO_PEERS`). `sent_us` is the sender's clock in microseconds since the epoch.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

from ..errors import QresFormatError

HOP = struct.Struct("<2sB")  # magic, ttl
HOP_MAGIC = b"QH"
MAX_TTL = 16
HELLO_HEAD = struct.Struct("<2sBBQB")  # magic, version, type, sent_us, count
HELLO_MAGIC = b"QN"
HELLO_VERSION = 1
HELLO_TYPE = 1
MAX_HELLO_PEERS = 32
MAX_ADDRESS_LEN = 64  # "host:port" in ASCII


def wrap(envelope: bytes, ttl: int) -> bytes:
    """The wire message: hop header with `ttl` (0..MAX_TTL), then the envelope."""
    if not 0 <= ttl <= MAX_TTL:
        raise ValueError(f"ttl {ttl} is outside 0..{MAX_TTL}")
    return HOP.pack(HOP_MAGIC, ttl) + envelope


def unwrap(message: bytes) -> tuple[int, bytes]:
    """(ttl, envelope bytes) of a wire message; QresFormatError when it is not one."""
    if len(message) < HOP.size:
        raise QresFormatError(f"hop header: {len(message)} bytes, {HOP.size} needed")
    magic, ttl = HOP.unpack_from(message)
    if magic != HOP_MAGIC:
        raise QresFormatError(f"hop header: bad magic {magic!r} at offset 0, expected {HOP_MAGIC!r}")
    if ttl > MAX_TTL:
        raise QresFormatError(f"hop header: ttl {ttl} at offset 2 is above {MAX_TTL}")
    return ttl, message[HOP.size :]


def parse_address(text: str) -> tuple[str, int]:
    """("host", port) of "host:port"; ValueError when it is not one."""
    host, sep, port = text.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536 or not host.isascii() or not host.isprintable():
        raise ValueError(f"{text!r} is not host:port")
    return host, int(port)


@dataclass(frozen=True)
class Hello:
    """Peer exchange: where the sender listens, peers it knows, and when it sent this (µs)."""

    sent_us: int
    listen: tuple[str, int]
    peers: tuple[tuple[str, int], ...] = ()

    def to_bytes(self) -> bytes:
        addresses = [f"{h}:{p}".encode("ascii") for h, p in (self.listen, *self.peers[:MAX_HELLO_PEERS])]
        for a in addresses:
            if len(a) > MAX_ADDRESS_LEN:
                raise ValueError(f"address {a!r} is longer than {MAX_ADDRESS_LEN} bytes")
        head = HELLO_HEAD.pack(HELLO_MAGIC, HELLO_VERSION, HELLO_TYPE, self.sent_us, len(addresses))
        return head + b"".join(bytes([len(a)]) + a for a in addresses)


def is_hello(payload: bytes) -> bool:
    """Whether an envelope's payload is a node-level packet (else it is a swarm packet)."""
    return payload[:2] == HELLO_MAGIC


def decode_hello(payload: bytes) -> Hello:
    """Parse a Hello, checking every length; QresFormatError names what is wrong and where."""
    if len(payload) < HELLO_HEAD.size:
        raise QresFormatError(f"hello: {len(payload)} bytes, at least {HELLO_HEAD.size} needed")
    magic, version, ptype, sent_us, count = HELLO_HEAD.unpack_from(payload)
    if magic != HELLO_MAGIC:
        raise QresFormatError(f"hello: bad magic {magic!r} at offset 0")
    if version != HELLO_VERSION:
        raise QresFormatError(f"hello: unknown version {version} at offset 2 (this node speaks {HELLO_VERSION})")
    if ptype != HELLO_TYPE:
        raise QresFormatError(f"hello: unknown type {ptype} at offset 3")
    if not 1 <= count <= MAX_HELLO_PEERS + 1:
        raise QresFormatError(f"hello: {count} addresses at offset 12, 1..{MAX_HELLO_PEERS + 1} allowed")
    pos, addresses = HELLO_HEAD.size, []
    for i in range(count):
        if pos >= len(payload):
            raise QresFormatError(f"hello: address {i} missing at offset {pos}")
        n = payload[pos]
        raw = payload[pos + 1 : pos + 1 + n]
        if n > MAX_ADDRESS_LEN or len(raw) != n:
            raise QresFormatError(f"hello: address {i} of {n} bytes at offset {pos} is too long or truncated")
        try:
            addresses.append(parse_address(raw.decode("ascii")))
        except (UnicodeDecodeError, ValueError):
            raise QresFormatError(f"hello: address {i} at offset {pos} is not host:port") from None
        pos += 1 + n
    if pos != len(payload):
        raise QresFormatError(f"hello: {len(payload) - pos} bytes left over at offset {pos}")
    return Hello(sent_us, addresses[0], tuple(addresses[1:]))
