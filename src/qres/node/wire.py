"""What travels between daemons beyond the swarm packets: the hop header and the Hello.

A gossip message on the wire is a hop header followed by a signed envelope (`identity.seal`)::

    magic b"QH" | ttl u8 | envelope

The TTL sits outside the signature because every relay lowers it; it only limits how far a message
travels, it grants nothing. A message whose TTL is above zero is passed on once by each node that
accepts it (duplicates are refused by the replay guard, so a node never passes the same message on
twice).

A Hello is the node-level packet for peer exchange and for measuring how fast gossip spreads::

    magic b"QN" | version u8 (= 2) | type u8 (= 1) | sent_us u64 | ttl u8 | count u8
    | count x (length u8 | "ip:port" ASCII)

The first address is where the sender listens; the others are peers it knows (at most
`MAX_HELLO_PEERS`). `sent_us` is the sender's clock in microseconds since the epoch; `ttl` the TTL
its sender gave it, so a receiver tells a Hello straight from its signer (hop header TTL equal to
it) from a relayed copy (lower) and acts on the addresses of the first kind only. Addresses are
literal IPv4 or IPv6 addresses (IPv6 in brackets, "[::1]:7000"), never host names: a node never
looks a name up on a stranger's word.

Beside the hop messages travel two unsigned control messages of 18 bytes (30 in their fragment),
the address check of `addresses.AddressBook`::

    magic b"QP" | nonce (16)     probe: "echo this nonce if you listen at this address"
    magic b"QA" | nonce (16)     answer: the nonce of a probe this node received
"""

from __future__ import annotations

import ipaddress
import struct
from dataclasses import dataclass

from ..errors import QresFormatError

HOP = struct.Struct("<2sB")  # magic, ttl
HOP_MAGIC = b"QH"
MAX_TTL = 16
HELLO_HEAD = struct.Struct("<2sBBQBB")  # magic, version, type, sent_us, ttl, count
HELLO_MAGIC = b"QN"
HELLO_VERSION = 2
HELLO_TYPE = 1
MAX_HELLO_PEERS = 32
MAX_ADDRESS_LEN = 64  # "ip:port" in ASCII
PROBE_MAGIC = b"QP"
ANSWER_MAGIC = b"QA"
NONCE_LEN = 16


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


def split_address(text: str) -> tuple[str, int]:
    """("host", port) of "host:port" or "[ipv6]:port"; ValueError when it is not one."""
    host, sep, port = text.rpartition(":")
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536 or not host.isascii() or not host.isprintable():
        raise ValueError(f"{text!r} is not host:port")
    return host, int(port)


def literal_ip(host: str) -> str | None:
    """The canonical spelling of a literal IPv4 or IPv6 address (so one address has one form); None
    for anything else, host names included."""
    try:
        return str(ipaddress.ip_address(host))
    except ValueError:
        return None


def parse_address(text: str) -> tuple[str, int]:
    """("ip", port) of "ip:port" with a literal IP address (`literal_ip`); ValueError for anything else."""
    host, port = split_address(text)
    ip = literal_ip(host)
    if ip is None:
        raise ValueError(f"{text!r} is not a literal IP address and port")
    return ip, port


def format_address(address: tuple[str, int]) -> str:
    """"ip:port", IPv6 in brackets."""
    host, port = address
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def probe(nonce: bytes) -> bytes:
    """The control message that asks an address to echo `nonce` (NONCE_LEN bytes)."""
    return PROBE_MAGIC + nonce


def answer(nonce: bytes) -> bytes:
    """The control message that echoes a probe's `nonce`."""
    return ANSWER_MAGIC + nonce


def control(message: bytes) -> tuple[bytes, bytes] | None:
    """(magic, nonce) of a probe or an answer; None for any other message (a hop message);
    QresFormatError for a control message of the wrong length."""
    if message[:2] not in (PROBE_MAGIC, ANSWER_MAGIC):
        return None
    if len(message) != 2 + NONCE_LEN:
        raise QresFormatError(f"control message {message[:2]!r}: {len(message)} bytes, {2 + NONCE_LEN} expected")
    return message[:2], message[2:]


@dataclass(frozen=True)
class Hello:
    """Peer exchange: where the sender listens, peers it knows, when it sent this (µs) and with
    which TTL."""

    sent_us: int
    listen: tuple[str, int]
    peers: tuple[tuple[str, int], ...] = ()
    ttl: int = 0

    def to_bytes(self) -> bytes:
        addresses = [format_address(a).encode("ascii") for a in (self.listen, *self.peers[:MAX_HELLO_PEERS])]
        for a in addresses:
            if len(a) > MAX_ADDRESS_LEN:
                raise ValueError(f"address {a!r} is longer than {MAX_ADDRESS_LEN} bytes")
        if not 0 <= self.ttl <= MAX_TTL:
            raise ValueError(f"ttl {self.ttl} is outside 0..{MAX_TTL}")
        head = HELLO_HEAD.pack(HELLO_MAGIC, HELLO_VERSION, HELLO_TYPE, self.sent_us, self.ttl, len(addresses))
        return head + b"".join(bytes([len(a)]) + a for a in addresses)


def is_hello(payload: bytes) -> bool:
    """Whether an envelope's payload is a node-level packet (else it is a swarm packet)."""
    return payload[:2] == HELLO_MAGIC


def decode_hello(payload: bytes) -> Hello:
    """Parse a Hello, checking every length; QresFormatError names what is wrong and where."""
    if len(payload) < HELLO_HEAD.size:
        raise QresFormatError(f"hello: {len(payload)} bytes, at least {HELLO_HEAD.size} needed")
    magic, version, ptype, sent_us, ttl, count = HELLO_HEAD.unpack_from(payload)
    if magic != HELLO_MAGIC:
        raise QresFormatError(f"hello: bad magic {magic!r} at offset 0")
    if version != HELLO_VERSION:
        raise QresFormatError(f"hello: unknown version {version} at offset 2 (this node speaks {HELLO_VERSION})")
    if ptype != HELLO_TYPE:
        raise QresFormatError(f"hello: unknown type {ptype} at offset 3")
    if ttl > MAX_TTL:
        raise QresFormatError(f"hello: ttl {ttl} at offset 12 is above {MAX_TTL}")
    if not 1 <= count <= MAX_HELLO_PEERS + 1:
        raise QresFormatError(f"hello: {count} addresses at offset 13, 1..{MAX_HELLO_PEERS + 1} allowed")
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
            raise QresFormatError(f"hello: address {i} at offset {pos} is not a literal IP address and port") from None
        pos += 1 + n
    if pos != len(payload):
        raise QresFormatError(f"hello: {len(payload) - pos} bytes left over at offset {pos}")
    return Hello(sent_us, addresses[0], tuple(addresses[1:]), ttl)
