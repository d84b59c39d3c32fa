"""Node identity and signed envelopes: Ed25519 keys, DIDs, and replay protection.

A node is `did:qres:<64 lowercase hex of its Ed25519 public key>`. Every message a node sends is an
envelope, signed over everything before the signature, and is verified before anything else reads
its payload. Layout (little-endian)::

    magic b"QE" | version u8 (= 1) | sender public key (32) | timestamp u64 (ms since the epoch)
    | nonce (16) | payload length u32 | payload | Ed25519 signature (64)     -> 127 + len bytes

`open_envelope` checks, in this order: length and layout (QresFormatError), whether the nonce was
already accepted (a cheap first refusal of copies), the signature (QresAuthError), the timestamp
window and the nonce (QresAuthError: stale, from the future, or replayed). A `ReplayGuard` remembers the nonces it has accepted for as long as their timestamps are
inside the window, and at most `capacity` of them: when full it refuses new messages rather than
forget a nonce that could then be replayed, so a flood cannot grow it without bound.
"""

from __future__ import annotations

import os
import struct
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from ..codec.container import generate_key_file, load_key
from ..errors import QresAuthError, QresFormatError
from ..swarm.packets import MAX_MESSAGE_BYTES

MAGIC = b"QE"
VERSION = 1
DID_PREFIX = "did:qres:"
NONCE_LEN = 16
SIGNATURE_LEN = 64
_HEAD = struct.Struct("<2sB32sQ16sI")  # magic, version, sender, timestamp ms, nonce, payload length
ENVELOPE_OVERHEAD = _HEAD.size + SIGNATURE_LEN  # 127
WINDOW_MS = 30_000  # a message more than 30 s older or newer than our clock is refused


def did_of(public_key: bytes) -> str:
    """The DID of a 32-byte Ed25519 public key."""
    if len(public_key) != 32:
        raise ValueError(f"an Ed25519 public key has 32 bytes, got {len(public_key)}")
    return DID_PREFIX + public_key.hex()


def public_key_of(did: str) -> bytes:
    """The 32-byte public key a DID names (QresFormatError if it is not a qres DID)."""
    body = did[len(DID_PREFIX) :] if isinstance(did, str) and did.startswith(DID_PREFIX) else ""
    if len(body) != 64 or any(c not in "0123456789abcdef" for c in body):
        raise QresFormatError(f"not a qres DID (did:qres: and 64 lowercase hex digits): {did!r:.80}")
    return bytes.fromhex(body)


class Identity:
    """A node's Ed25519 key pair: `did`, `public_key` (32 bytes), `sign(message)`."""

    def __init__(self, seed: bytes):
        if len(seed) != 32:
            raise ValueError(f"an Ed25519 private key seed has 32 bytes, got {len(seed)}")
        self._key = Ed25519PrivateKey.from_private_bytes(seed)
        self.public_key = self._key.public_key().public_bytes_raw()
        self.did = did_of(self.public_key)

    @classmethod
    def generate(cls) -> Identity:
        return cls(os.urandom(32))

    @classmethod
    def create_file(cls, path: str | os.PathLike) -> Identity:
        """A new identity whose 32-byte seed is written to `path` (64 hex characters, mode 0600;
        an existing file is never overwritten)."""
        return cls(generate_key_file(Path(path)))

    @classmethod
    def load(cls, path: str | os.PathLike) -> Identity:
        """The identity whose seed `path` holds (QresFormatError if the file is malformed)."""
        return cls(load_key(path))

    def sign(self, message: bytes) -> bytes:
        return self._key.sign(message)


@dataclass(frozen=True)
class Envelope:
    """A verified message: who sent it (`did`), when (`timestamp_ms`), its `nonce` and `payload`."""

    did: str
    timestamp_ms: int
    nonce: bytes
    payload: bytes


def seal(identity: Identity, payload: bytes, now_ms: int, nonce: bytes | None = None) -> bytes:
    """Sign `payload` as `identity` at time `now_ms` into envelope bytes."""
    if len(payload) > MAX_MESSAGE_BYTES:
        raise ValueError(f"payload of {len(payload)} bytes exceeds {MAX_MESSAGE_BYTES}")
    nonce = os.urandom(NONCE_LEN) if nonce is None else nonce
    if len(nonce) != NONCE_LEN:
        raise ValueError(f"a nonce has {NONCE_LEN} bytes, got {len(nonce)}")
    head = _HEAD.pack(MAGIC, VERSION, identity.public_key, now_ms, nonce, len(payload))
    body = head + payload
    return body + identity.sign(body)


class ReplayGuard:
    """Nonces accepted within the window, oldest first, at most `capacity` of them."""

    def __init__(self, window_ms: int = WINDOW_MS, capacity: int = 100_000):
        self.window_ms = window_ms
        self.capacity = capacity
        self._seen: OrderedDict[tuple[bytes, bytes], int] = OrderedDict()

    def __len__(self) -> int:
        return len(self._seen)

    def seen(self, sender: bytes, nonce: bytes) -> bool:
        """Whether (sender, nonce) was accepted and is still remembered."""
        return (sender, nonce) in self._seen

    def admit(self, sender: bytes, nonce: bytes, timestamp_ms: int, now_ms: int) -> None:
        """Accept (sender, nonce) at `timestamp_ms`, or raise QresAuthError if it is stale, from the
        future, already seen, or the cache is full. Forgets nonces whose time has left the window.
        Timestamps are admitted in any order; the oldest-first forgetting assumes they arrive
        roughly in time order (within the window)."""
        if abs(timestamp_ms - now_ms) > self.window_ms:
            raise QresAuthError(f"timestamp {timestamp_ms} ms is {(timestamp_ms - now_ms) / 1000:+.1f} s from our clock (window {self.window_ms / 1000:.0f} s)")
        while self._seen and next(iter(self._seen.values())) < now_ms - self.window_ms:
            self._seen.popitem(last=False)
        key = (sender, nonce)
        if key in self._seen:
            raise QresAuthError("replayed message: this nonce was already accepted")
        if len(self._seen) >= self.capacity:  # forgetting a live nonce would let it be replayed
            raise QresAuthError(f"replay cache full ({self.capacity} nonces inside the window): message refused")
        self._seen[key] = timestamp_ms


def open_envelope(data: bytes, now_ms: int, guard: ReplayGuard) -> Envelope:
    """Verify and unpack envelope bytes (see the module doc for the checks and their errors)."""
    data = bytes(data)
    if len(data) < ENVELOPE_OVERHEAD:
        raise QresFormatError(f"envelope: {len(data)} bytes, at least {ENVELOPE_OVERHEAD} needed")
    magic, version, sender, timestamp, nonce, length = _HEAD.unpack_from(data)
    if magic != MAGIC:
        raise QresFormatError(f"envelope: bad magic {magic!r} at offset 0")
    if version != VERSION:
        raise QresFormatError(f"envelope: unknown version {version} at offset 2 (this node speaks {VERSION})")
    if len(data) != ENVELOPE_OVERHEAD + length:
        raise QresFormatError(f"envelope: payload length {length} at offset 51 needs {ENVELOPE_OVERHEAD + length} bytes, got {len(data)}")
    if guard.seen(sender, nonce):
        # a copy of a message already accepted (gossip brings several): refused before the costly
        # signature check; a forgery reusing the nonce is refused all the same
        raise QresAuthError("replayed message: this nonce was already accepted")
    body, signature = data[:-SIGNATURE_LEN], data[-SIGNATURE_LEN:]
    try:
        Ed25519PublicKey.from_public_bytes(sender).verify(signature, body)
    except InvalidSignature:
        raise QresAuthError("envelope: signature does not verify") from None
    except ValueError:
        raise QresAuthError("envelope: sender key is not a valid Ed25519 public key") from None
    guard.admit(sender, nonce, timestamp, now_ms)
    return Envelope(did_of(sender), timestamp, nonce, body[_HEAD.size :])
