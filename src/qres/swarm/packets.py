"""Swarm packets and their fragments: versioned little-endian wire formats with length and range checks.

Sans-I/O: bytes in, objects out (and back); no sockets, clocks or randomness.  Every malformed
input raises :class:`qres.errors.QresFormatError` naming what is wrong and the byte offset; a bad
argument from our own code (wrong type, value out of range) raises ``TypeError``/``ValueError``.

Packets (all integers little-endian)::

    header   magic b"QS" (2) | version u8 (= 1) | packet type u8
    type 1   GhostUpdate: sender (32) | round u64 | model_id (8) | update (BFP-16: u16 count,
             i8 exponent, count x i16 mantissas) | residual_error i32 Q16.16 (>= 0)
             | accuracy_delta i32 Q16.16                           -> 63 + 2 x count bytes
    type 2   Ban: sender (32) | round u64 | banned (32) | reason u8 (0..3)   -> 77 bytes
    type 3   RegimeVote: sender (32) | round u64 | regime u8 (0..2)
             | entropy i32 Q16.16 (>= 0)                                     -> 49 bytes

A packet is exactly that long: trailing bytes are an error.  A GhostUpdate with at most 474 update
values fits one fragment.

Fragments (DESIGN.md): a payload travels as ``max(1, ceil(len / 1012))`` fragments, each a 12-byte
header ``sequence u32 | index u16 | total u16 | crc32 u32`` (``zlib.crc32`` of this fragment's
payload bytes) followed by its payload bytes.  The encoding is canonical: every fragment but the
last carries exactly 1,012 bytes, the last carries 1..1,012 bytes (0 only for the empty payload,
which is one fragment), so ``total`` is at most 65,535 and a message at most 65,535 x 1,012 bytes.
"""

from __future__ import annotations

import struct
import zlib
from collections import OrderedDict
from dataclasses import dataclass
from enum import IntEnum
from typing import ClassVar

from ..codec.varint import Reader
from ..errors import QresFormatError
from . import regime
from ..fixed import Q16_MAX, Q16_MIN, Q16_ONE, Bfp16, q16_mul

MAGIC = b"QS"
VERSION = 1
NODE_ID_LEN = 32  # sender / banned node ids: a hash or public key
MODEL_ID_LEN = 8  # first 8 bytes of the model's SHA-256: bytes.fromhex(model.id)
MAX_UPDATE_LEN = 0xFFFF  # values in a GhostUpdate's update vector

FRAG_HEADER = struct.Struct("<IHHI")  # sequence, index, total, crc32
FRAG_HEADER_LEN = FRAG_HEADER.size  # 12
FRAG_PAYLOAD_MAX = 1012  # payload bytes per fragment; header + payload = 1,024
FRAG_TOTAL_MAX = 0xFFFF
MAX_MESSAGE_BYTES = FRAG_TOTAL_MAX * FRAG_PAYLOAD_MAX  # 66,321,420

_HEAD = struct.Struct("<2sBB")  # magic, version, type
_U64 = struct.Struct("<Q")
_I32 = struct.Struct("<i")
_U64_MAX = (1 << 64) - 1
_U32_MAX = (1 << 32) - 1


class PacketType(IntEnum):
    """The packet type byte."""

    GHOST_UPDATE = 1
    BAN = 2
    REGIME_VOTE = 3


class BanReason(IntEnum):
    """Why a node is banned (the Ban packet's reason byte)."""

    OUTLIER = 0
    CARTEL = 1
    RELAYED_BAN = 2
    SLANDER = 3


class Regime(IntEnum):
    """Swarm regime (the RegimeVote packet's regime byte), numbered as in ``qres.swarm.regime``."""

    CALM = regime.CALM
    PRESTORM = regime.PRESTORM
    STORM = regime.STORM


# ---------------------------------------------------------------------------------------------
# argument checks (caller bugs: TypeError / ValueError)


def _id_bytes(name: str, v, n: int) -> bytes:
    if not isinstance(v, (bytes, bytearray, memoryview)):
        raise TypeError(f"{name}: expected {n} bytes, got {type(v).__name__}")
    b = bytes(v)
    if len(b) != n:
        raise ValueError(f"{name}: expected {n} bytes, got {len(b)}")
    return b


def _int_in(name: str, v, lo: int, hi: int) -> int:
    if isinstance(v, bool) or not hasattr(v, "__index__"):
        raise TypeError(f"{name}: expected an int, got {type(v).__name__}")
    i = v.__index__()
    if not lo <= i <= hi:
        raise ValueError(f"{name}: {i} outside [{lo}, {hi}]")
    return i


def _set(obj, name: str, value) -> None:
    object.__setattr__(obj, name, value)


# ---------------------------------------------------------------------------------------------
# decoding helpers (untrusted bytes: QresFormatError with the offset)


def _bad(what: str, msg: str, offset: int) -> QresFormatError:
    return QresFormatError(f"{what}: {msg} at byte {offset}")


def _u64(r: Reader) -> int:
    return _U64.unpack(r.take(8))[0]


def _i32(r: Reader) -> int:
    return _I32.unpack(r.take(4))[0]


def _enum_byte(r: Reader, what: str, enum: type[IntEnum]) -> IntEnum:
    at = r.pos
    v = r.u8()
    try:
        return enum(v)
    except ValueError:
        hi = max(enum)
        raise _bad(what, f"{enum.__name__} {v} unknown (0..{int(hi)})", at) from None


def _nonneg_q16(r: Reader, what: str, field: str) -> int:
    at = r.pos
    v = _i32(r)
    if v < 0:
        raise _bad(what, f"{field} {v} is negative (Q16.16, must be >= 0)", at)
    return v


def _head(ptype: PacketType) -> bytes:
    return _HEAD.pack(MAGIC, VERSION, ptype)


# ---------------------------------------------------------------------------------------------
# packets


def epidemic_priority(residual_error_q16, accuracy_delta_q16, reputation_q16):
    """``residual_error x accuracy_delta x reputation`` in Q16.16 (scalars or arrays, broadcast):
    ``q16_mul(q16_mul(residual_error, accuracy_delta), reputation)``, two roundings to nearest
    (ties away from zero), each saturated to int32."""
    return q16_mul(q16_mul(residual_error_q16, accuracy_delta_q16), reputation_q16)


@dataclass(frozen=True)
class GhostUpdate:
    """A model-weight update offered to the swarm.

    ``sender``: 32-byte node id; ``round``: u64; ``model_id``: 8 bytes (``bytes.fromhex(model.id)``);
    ``update``: :class:`~qres.fixed.Bfp16` vector of at most 65,535 values; ``residual_error``:
    Q16.16 raw in [0, Q16_MAX]; ``accuracy_delta``: Q16.16 raw (int32, may be negative).
    """

    TYPE: ClassVar[PacketType] = PacketType.GHOST_UPDATE

    sender: bytes
    round: int
    model_id: bytes
    update: Bfp16
    residual_error: int
    accuracy_delta: int

    def __post_init__(self) -> None:
        _set(self, "sender", _id_bytes("GhostUpdate.sender", self.sender, NODE_ID_LEN))
        _set(self, "round", _int_in("GhostUpdate.round", self.round, 0, _U64_MAX))
        _set(
            self,
            "model_id",
            _id_bytes("GhostUpdate.model_id", self.model_id, MODEL_ID_LEN),
        )
        if not isinstance(self.update, Bfp16):
            raise TypeError(
                f"GhostUpdate.update: expected Bfp16, got {type(self.update).__name__}"
            )
        if (
            len(self.update) > MAX_UPDATE_LEN
        ):  # Bfp16 already enforces this; kept as the packet's own cap
            raise ValueError(
                f"GhostUpdate.update: {len(self.update)} values, at most {MAX_UPDATE_LEN}"
            )
        _set(
            self,
            "residual_error",
            _int_in("GhostUpdate.residual_error", self.residual_error, 0, Q16_MAX),
        )
        _set(
            self,
            "accuracy_delta",
            _int_in(
                "GhostUpdate.accuracy_delta", self.accuracy_delta, Q16_MIN, Q16_MAX
            ),
        )

    def priority(self, reputation_q16: int) -> int:
        """Epidemic priority ``residual_error x accuracy_delta x reputation`` as a Q16.16 raw int.

        ``reputation_q16`` is a Q16.16 raw in [0, 65536] (reputation 0..1).  Computed as
        ``q16_mul(q16_mul(residual_error, accuracy_delta), reputation_q16)``: two roundings, each to
        nearest with ties away from zero, each saturated to int32; so when nothing saturates the
        result is within 1 raw unit (2**-16) of the exact product.
        """
        rep = _int_in(
            "GhostUpdate.priority: reputation_q16", reputation_q16, 0, Q16_ONE
        )
        return int(epidemic_priority(self.residual_error, self.accuracy_delta, rep))

    def to_bytes(self) -> bytes:
        return b"".join(
            (
                _head(self.TYPE),
                self.sender,
                _U64.pack(self.round),
                self.model_id,
                self.update.to_bytes(),
                _I32.pack(self.residual_error),
                _I32.pack(self.accuracy_delta),
            )
        )

    @classmethod
    def _read_body(cls, r: Reader) -> GhostUpdate:
        sender = r.take(NODE_ID_LEN)
        rnd = _u64(r)
        model_id = r.take(MODEL_ID_LEN)
        try:
            update, end = Bfp16.from_prefix(r.data, r.pos)
        except QresFormatError as e:
            raise QresFormatError(f"{r.what}: update: {e}") from None
        r.pos = end
        residual = _nonneg_q16(r, r.what, "residual_error")
        delta = _i32(r)
        return cls(sender, rnd, model_id, update, residual, delta)


@dataclass(frozen=True)
class Ban:
    """A ban of ``banned`` (32-byte node id) by ``sender`` in ``round`` (u64), with a :class:`BanReason`."""

    TYPE: ClassVar[PacketType] = PacketType.BAN

    sender: bytes
    round: int
    banned: bytes
    reason: BanReason

    def __post_init__(self) -> None:
        _set(self, "sender", _id_bytes("Ban.sender", self.sender, NODE_ID_LEN))
        _set(self, "round", _int_in("Ban.round", self.round, 0, _U64_MAX))
        _set(self, "banned", _id_bytes("Ban.banned", self.banned, NODE_ID_LEN))
        _set(
            self,
            "reason",
            BanReason(_int_in("Ban.reason", self.reason, 0, max(BanReason))),
        )

    def to_bytes(self) -> bytes:
        return b"".join(
            (
                _head(self.TYPE),
                self.sender,
                _U64.pack(self.round),
                self.banned,
                bytes((self.reason,)),
            )
        )

    @classmethod
    def _read_body(cls, r: Reader) -> Ban:
        sender = r.take(NODE_ID_LEN)
        rnd = _u64(r)
        banned = r.take(NODE_ID_LEN)
        reason = _enum_byte(r, r.what, BanReason)
        return cls(sender, rnd, banned, reason)


@dataclass(frozen=True)
class RegimeVote:
    """``sender``'s view of the regime in ``round`` (u64): a :class:`Regime` and its entropy (Q16.16 raw >= 0)."""

    TYPE: ClassVar[PacketType] = PacketType.REGIME_VOTE

    sender: bytes
    round: int
    regime: Regime
    entropy: int

    def __post_init__(self) -> None:
        _set(self, "sender", _id_bytes("RegimeVote.sender", self.sender, NODE_ID_LEN))
        _set(self, "round", _int_in("RegimeVote.round", self.round, 0, _U64_MAX))
        _set(
            self,
            "regime",
            Regime(_int_in("RegimeVote.regime", self.regime, 0, max(Regime))),
        )
        _set(self, "entropy", _int_in("RegimeVote.entropy", self.entropy, 0, Q16_MAX))

    def to_bytes(self) -> bytes:
        return b"".join(
            (
                _head(self.TYPE),
                self.sender,
                _U64.pack(self.round),
                bytes((self.regime,)),
                _I32.pack(self.entropy),
            )
        )

    @classmethod
    def _read_body(cls, r: Reader) -> RegimeVote:
        sender = r.take(NODE_ID_LEN)
        rnd = _u64(r)
        regime = _enum_byte(r, r.what, Regime)
        entropy = _nonneg_q16(r, r.what, "entropy")
        return cls(sender, rnd, regime, entropy)


Packet = GhostUpdate | Ban | RegimeVote
_BY_TYPE: dict[int, type] = {c.TYPE: c for c in (GhostUpdate, Ban, RegimeVote)}


def decode_packet(data: bytes) -> Packet:
    """Parse exactly one packet; any malformed, foreign, truncated or over-long input raises QresFormatError."""
    if not isinstance(data, (bytes, bytearray, memoryview)):
        raise TypeError(f"decode_packet: expected bytes, got {type(data).__name__}")
    r = Reader(data, what="packet")
    magic = r.take(2)
    if magic != MAGIC:
        raise _bad("packet", f"bad magic {magic!r}, expected {MAGIC!r}", 0)
    version = r.u8()
    if version != VERSION:
        raise _bad("packet", f"unsupported version {version}, expected {VERSION}", 2)
    ptype = r.u8()
    cls = _BY_TYPE.get(ptype)
    if cls is None:
        raise _bad("packet", f"unknown packet type {ptype}", 3)
    r.what = f"packet {cls.__name__}"
    pkt = cls._read_body(r)
    if r.remaining():
        raise _bad(r.what, f"{r.remaining()} trailing bytes", r.pos)
    return pkt


# ---------------------------------------------------------------------------------------------
# fragments


def fragment(payload: bytes, sequence: int) -> list[bytes]:
    """Split ``payload`` into fragments of message ``sequence`` (u32), in index order.

    ``max(1, ceil(len(payload) / 1012))`` fragments of 12 + up to 1,012 bytes; an empty payload is
    one fragment with 0 payload bytes.  A payload needing more than 65,535 fragments raises ``ValueError``.
    """
    if not isinstance(payload, (bytes, bytearray, memoryview)):
        raise TypeError(
            f"fragment: payload must be bytes, got {type(payload).__name__}"
        )
    payload = bytes(payload)
    seq = _int_in("fragment: sequence", sequence, 0, _U32_MAX)
    total = max(1, -(-len(payload) // FRAG_PAYLOAD_MAX))
    if total > FRAG_TOTAL_MAX:
        raise ValueError(
            f"fragment: payload of {len(payload)} bytes exceeds {MAX_MESSAGE_BYTES} bytes"
        )
    out = []
    for i in range(total):
        chunk = payload[i * FRAG_PAYLOAD_MAX : (i + 1) * FRAG_PAYLOAD_MAX]
        out.append(FRAG_HEADER.pack(seq, i, total, zlib.crc32(chunk)) + chunk)
    return out


class _Pending:
    __slots__ = ("nbytes", "parts", "total")

    def __init__(self, total: int) -> None:
        self.total = total
        self.parts: dict[int, bytes] = {}
        self.nbytes = 0


class Reassembler:
    """Sans-I/O reassembly of fragmented messages, keyed by ``(sender, sequence)``.

    ``sender`` is whatever the transport says the fragment came from (b"" if it cannot tell).
    Memory is bounded: at most ``max_pending`` incomplete messages (pushing a fragment of a new
    message when full drops the oldest-started one), each at most ``max_message_bytes`` (default and
    hard limit 65,535 x 1,012), plus the keys of the last ``max_completed`` finished messages, so a
    late duplicate of a finished message is ignored rather than delivered twice.  A fragment that
    raises leaves the state unchanged.  Sequence numbers are compared as plain ints (no wrap-around).
    """

    def __init__(
        self,
        max_pending: int = 64,
        max_message_bytes: int = MAX_MESSAGE_BYTES,
        max_completed: int = 256,
    ):
        self.max_pending = _int_in("Reassembler: max_pending", max_pending, 1, 1 << 30)
        self.max_message_bytes = _int_in(
            "Reassembler: max_message_bytes", max_message_bytes, 0, MAX_MESSAGE_BYTES
        )
        self.max_completed = _int_in(
            "Reassembler: max_completed", max_completed, 0, 1 << 30
        )
        self._pending: OrderedDict[tuple[bytes, int], _Pending] = OrderedDict()
        self._completed: OrderedDict[tuple[bytes, int], None] = OrderedDict()

    def __len__(self) -> int:
        """Number of incomplete messages held."""
        return len(self._pending)

    @property
    def pending_bytes(self) -> int:
        """Payload bytes buffered for incomplete messages."""
        return sum(p.nbytes for p in self._pending.values())

    def push(self, fragment: bytes, sender: bytes = b"") -> bytes | None:
        """Take one fragment; return the whole payload when it completes a message, else None.

        Raises QresFormatError (state unchanged) for: a header shorter than 12 bytes, ``total == 0``,
        ``index >= total``, more than 1,012 payload bytes, a CRC32 mismatch, a non-final fragment
        shorter than 1,012 bytes, an empty final fragment of a multi-fragment message, a ``total``
        that disagrees with earlier fragments of the same message, or a message over
        ``max_message_bytes``.  Duplicates (also of recently completed messages) return None.
        """
        if not isinstance(fragment, (bytes, bytearray, memoryview)):
            raise TypeError(
                f"Reassembler.push: fragment must be bytes, got {type(fragment).__name__}"
            )
        if not isinstance(sender, (bytes, bytearray, memoryview)):
            raise TypeError(
                f"Reassembler.push: sender must be bytes, got {type(sender).__name__}"
            )
        frag = bytes(fragment)
        if len(frag) < FRAG_HEADER_LEN:
            raise _bad(
                "fragment",
                f"short header: {len(frag)} bytes, need {FRAG_HEADER_LEN}",
                0,
            )
        seq, index, total, crc = FRAG_HEADER.unpack_from(frag)
        data = frag[FRAG_HEADER_LEN:]
        what = f"fragment (sequence {seq}, index {index}, total {total})"
        if total == 0:
            raise _bad(what, "total is 0", 6)
        if index >= total:
            raise _bad(what, "index >= total", 4)
        if len(data) > FRAG_PAYLOAD_MAX:
            raise _bad(
                what,
                f"payload of {len(data)} bytes exceeds {FRAG_PAYLOAD_MAX}",
                FRAG_HEADER_LEN + FRAG_PAYLOAD_MAX,
            )
        actual = zlib.crc32(data)
        if actual != crc:
            raise _bad(
                what, f"CRC32 mismatch: header 0x{crc:08x}, payload 0x{actual:08x}", 8
            )
        final = index == total - 1
        if not final and len(data) != FRAG_PAYLOAD_MAX:
            raise _bad(
                what,
                f"non-final fragment carries {len(data)} bytes, must carry {FRAG_PAYLOAD_MAX}",
                len(frag),
            )
        if final and total > 1 and not data:
            raise _bad(
                what,
                "final fragment of a multi-fragment message is empty",
                FRAG_HEADER_LEN,
            )
        min_size = (total - 1) * FRAG_PAYLOAD_MAX + (1 if total > 1 else 0)
        if min_size > self.max_message_bytes:
            raise _bad(
                what,
                f"message of at least {min_size} bytes exceeds the limit {self.max_message_bytes}",
                6,
            )
        if (
            final
            and (total - 1) * FRAG_PAYLOAD_MAX + len(data) > self.max_message_bytes
        ):
            size = (total - 1) * FRAG_PAYLOAD_MAX + len(data)
            raise _bad(
                what,
                f"message of {size} bytes exceeds the limit {self.max_message_bytes}",
                len(frag),
            )

        key = (bytes(sender), seq)
        if key in self._completed:
            return None  # late duplicate of a delivered message
        p = self._pending.get(key)
        if p is not None:
            if p.total != total:
                raise _bad(
                    what,
                    f"total disagrees with earlier fragments of this message (total {p.total})",
                    6,
                )
            if index in p.parts:
                return None  # duplicate: the first copy wins
        elif total == 1:
            self._remember(key)
            return data
        else:
            while len(self._pending) >= self.max_pending:
                self._pending.popitem(last=False)
            p = self._pending[key] = _Pending(total)
        p.parts[index] = data
        p.nbytes += len(data)
        if len(p.parts) < p.total:
            return None
        del self._pending[key]
        self._remember(key)
        return b"".join(p.parts[i] for i in range(p.total))

    def _remember(self, key: tuple[bytes, int]) -> None:
        if self.max_completed == 0:
            return
        self._completed[key] = None
        self._completed.move_to_end(key)
        while len(self._completed) > self.max_completed:
            self._completed.popitem(last=False)

    def drop(self, sender: bytes, sequence: int) -> bool:
        """Forget the incomplete message ``(sender, sequence)``; True if there was one."""
        return self._pending.pop((bytes(sender), sequence), None) is not None

    def expire(self, older_than_sequence: int, sender: bytes | None = None) -> int:
        """Forget incomplete messages with ``sequence < older_than_sequence`` (of ``sender`` only, if
        given); return how many were dropped."""
        old = [
            k
            for k in self._pending
            if k[1] < older_than_sequence and (sender is None or k[0] == bytes(sender))
        ]
        for k in old:
            del self._pending[k]
        return len(old)
