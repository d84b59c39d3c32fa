import random
import struct
import zlib
from fractions import Fraction

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from qres.errors import QresFormatError
from qres.fixed import Q16_MAX, Q16_MIN, Q16_ONE, Bfp16
from qres.swarm.packets import (
    FRAG_PAYLOAD_MAX,
    Ban,
    BanReason,
    GhostUpdate,
    Reassembler,
    Regime,
    RegimeVote,
    decode_packet,
    fragment,
)

DET = settings(derandomize=True, database=None, deadline=None, max_examples=200)
A = bytes(range(32))
B = bytes(range(100, 132))
MODEL = bytes.fromhex("a1a2a3a4a5a6a7a8")


def ghost(n=3, **kw):
    args = {
        "sender": A,
        "round": 0x0102030405060708,
        "model_id": MODEL,
        "update": Bfp16(-3, np.array([1, -2, 300][:n] + [7] * max(0, n - 3))),
        "residual_error": 0x18000,  # 1.5
        "accuracy_delta": -0x4000,  # -0.25
    }
    args.update(kw)
    return GhostUpdate(**args)


# --- packets -------------------------------------------------------------------------------------

GOLDEN = bytes.fromhex(
    "5153"
    "01"
    "01"  # magic "QS", version 1, type GhostUpdate
    "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f"  # sender
    "0807060504030201"  # round u64 LE
    "a1a2a3a4a5a6a7a8"  # model id
    "0300"
    "fd"
    "0100"
    "feff"
    "2c01"  # BFP-16: count 3, exponent -3, mantissas 1, -2, 300
    "00800100"  # residual_error 1.5
    "00c0ffff"  # accuracy_delta -0.25
)


def test_ghost_update_golden_bytes():
    g = ghost()
    assert g.to_bytes() == GOLDEN
    assert len(GOLDEN) == 63 + 2 * 3
    assert decode_packet(GOLDEN) == g


def test_ban_and_regime_vote_layout():
    b = Ban(A, 5, B, BanReason.SLANDER)
    assert b.to_bytes() == b"QS\x01\x02" + A + struct.pack("<Q", 5) + B + b"\x03"
    v = RegimeVote(A, 7, Regime.STORM, 0x8000)
    assert v.to_bytes() == b"QS\x01\x03" + A + struct.pack(
        "<Q", 7
    ) + b"\x02" + struct.pack("<i", 0x8000)


packets = st.one_of(
    st.builds(
        GhostUpdate,
        sender=st.binary(min_size=32, max_size=32),
        round=st.integers(0, 2**64 - 1),
        model_id=st.binary(min_size=8, max_size=8),
        update=st.builds(
            Bfp16,
            st.integers(-128, 127),
            st.lists(st.integers(-32768, 32767), max_size=40).map(
                lambda m: np.array(m, dtype=np.int64)
            ),
        ),
        residual_error=st.integers(0, Q16_MAX),
        accuracy_delta=st.integers(Q16_MIN, Q16_MAX),
    ),
    st.builds(
        Ban,
        st.binary(min_size=32, max_size=32),
        st.integers(0, 2**64 - 1),
        st.binary(min_size=32, max_size=32),
        st.sampled_from(list(BanReason)),
    ),
    st.builds(
        RegimeVote,
        st.binary(min_size=32, max_size=32),
        st.integers(0, 2**64 - 1),
        st.sampled_from(list(Regime)),
        st.integers(0, Q16_MAX),
    ),
)


@DET
@given(packets)
def test_packet_round_trip(p):
    data = p.to_bytes()
    q = decode_packet(data)
    assert type(q) is type(p) and q == p and q.to_bytes() == data
    with pytest.raises(QresFormatError, match="trailing"):
        decode_packet(data + b"\x00")
    with pytest.raises(QresFormatError):
        decode_packet(data[:-1])


def test_large_update_round_trip_and_cap():
    g = ghost(update=Bfp16(0, np.arange(65535) % 30000))
    assert decode_packet(g.to_bytes()) == g
    with pytest.raises(ValueError):
        ghost(update=Bfp16(0, np.zeros(65536, dtype=np.int16)))


@pytest.mark.parametrize(
    "mutate, match",
    [
        (lambda d: b"QX" + d[2:], r"magic.*at byte 0"),
        (lambda d: d[:2] + b"\x02" + d[3:], r"version 2.*at byte 2"),
        (lambda d: d[:3] + b"\x09" + d[4:], r"type 9.*at byte 3"),
        (lambda d: d[:3] + b"\x00" + d[4:], r"type 0.*at byte 3"),
        (lambda d: d[:3], r"truncated.*at byte 3"),
        (lambda d: b"", r"truncated.*at byte 0"),
        (lambda d: d[:50], r"truncated"),
        (
            lambda d: d[:52] + b"\x08\x00" + d[54:],
            r"update.*offset 52.*count 8",
        ),  # 16 mantissa bytes, 14 left
        (
            lambda d: d[:-8] + struct.pack("<i", -1) + d[-4:],
            r"residual_error -1.*at byte 61",
        ),
        (lambda d: d + b"\x00\x00", r"2 trailing bytes at byte 69"),
    ],
)
def test_ghost_update_corruption(mutate, match):
    with pytest.raises(QresFormatError, match=match):
        decode_packet(mutate(GOLDEN))


def test_ban_and_vote_range_checks():
    b = Ban(A, 1, B, BanReason.OUTLIER).to_bytes()
    with pytest.raises(QresFormatError, match=r"BanReason 4.*at byte 76"):
        decode_packet(b[:-1] + b"\x04")
    v = RegimeVote(A, 1, Regime.CALM, 5).to_bytes()
    with pytest.raises(QresFormatError, match=r"Regime 3.*at byte 44"):
        decode_packet(v[:44] + b"\x03" + v[45:])
    with pytest.raises(QresFormatError, match=r"entropy -5.*at byte 45"):
        decode_packet(v[:45] + struct.pack("<i", -5))
    # constructor checks (caller bugs are plain ValueError/TypeError, not format errors)
    for bad in (
        lambda: Ban(A[:31], 1, B, 0),
        lambda: Ban(A, -1, B, 0),
        lambda: Ban(A, 1, B, 4),
        lambda: RegimeVote(A, 2**64, Regime.CALM, 0),
        lambda: RegimeVote(A, 0, Regime.CALM, -1),
        lambda: ghost(residual_error=-1),
        lambda: ghost(accuracy_delta=Q16_MAX + 1),
        lambda: ghost(model_id=MODEL + b"\x00"),
    ):
        with pytest.raises(ValueError):
            bad()
    with pytest.raises(TypeError):
        GhostUpdate("a" * 32, 0, MODEL, Bfp16(0, np.zeros(1, np.int16)), 0, 0)


@DET
@given(st.binary(max_size=120))
def test_decode_packet_fuzz(data):
    try:
        p = decode_packet(data)
    except QresFormatError:
        return
    assert p.to_bytes() == data


@DET
@given(st.sampled_from([0, 1, 2, 3]), st.binary(max_size=100))
def test_decode_packet_fuzz_after_valid_header(ptype, body):
    data = b"QS\x01" + bytes([ptype]) + body
    try:
        p = decode_packet(data)
    except QresFormatError:
        return
    assert p.to_bytes() == data


# --- priority ------------------------------------------------------------------------------------


def _round_sat(x: Fraction) -> int:
    """Round to nearest, ties away from zero, then saturate to int32."""
    mag = (abs(x.numerator) * 2 + x.denominator) // (2 * x.denominator)
    r = mag if x >= 0 else -mag
    return min(max(r, Q16_MIN), Q16_MAX)


def _priority_ref(res: int, delta: int, rep: int) -> int:
    step = _round_sat(Fraction(res * delta, Q16_ONE))
    return _round_sat(Fraction(step * rep, Q16_ONE))


def test_priority_examples():
    assert (
        ghost(residual_error=0x18000, accuracy_delta=0x4000).priority(Q16_ONE // 2)
        == 12288
    )  # 1.5*.25*.5
    assert (
        ghost(residual_error=0x18000, accuracy_delta=-0x4000).priority(Q16_ONE // 2)
        == -12288
    )
    assert (
        ghost(residual_error=1, accuracy_delta=Q16_ONE // 2).priority(Q16_ONE) == 1
    )  # tie 0.5 -> 1
    assert (
        ghost(residual_error=1, accuracy_delta=-(Q16_ONE // 2)).priority(Q16_ONE) == -1
    )  # tie -0.5 -> -1
    assert (
        ghost(residual_error=1, accuracy_delta=Q16_ONE // 2 - 1).priority(Q16_ONE) == 0
    )
    assert (
        ghost(residual_error=Q16_MAX, accuracy_delta=Q16_MAX).priority(Q16_ONE)
        == Q16_MAX
    )  # saturates
    assert (
        ghost(residual_error=Q16_MAX, accuracy_delta=Q16_MIN).priority(Q16_ONE)
        == Q16_MIN
    )
    assert ghost(residual_error=Q16_MAX, accuracy_delta=Q16_MAX).priority(0) == 0
    assert type(ghost().priority(Q16_ONE)) is int
    for bad in (-1, Q16_ONE + 1):
        with pytest.raises(ValueError):
            ghost().priority(bad)


@DET
@given(
    st.one_of(st.integers(0, Q16_MAX), st.integers(0, 4 * Q16_ONE)),
    st.one_of(st.integers(Q16_MIN, Q16_MAX), st.integers(-4 * Q16_ONE, 4 * Q16_ONE)),
    st.integers(0, Q16_ONE),
)
def test_priority_matches_fraction_arithmetic(res, delta, rep):
    p = ghost(residual_error=res, accuracy_delta=delta).priority(rep)
    assert p == _priority_ref(res, delta, rep)
    exact = Fraction(res * delta * rep, Q16_ONE * Q16_ONE)
    if Q16_MIN <= Fraction(res * delta, Q16_ONE) <= Q16_MAX:
        assert (
            abs(p - exact) <= 1
        )  # two roundings, each at most half a unit (the second scaled by rep <= 1)


# --- fragments -----------------------------------------------------------------------------------


def _payload(n: int) -> bytes:
    return random.Random(n).randbytes(n)


@pytest.mark.parametrize("size", [0, 1, 1011, 1012, 1013, 5000, 100000])
def test_fragment_reassemble_shuffled_with_duplicates(size):
    payload = _payload(size)
    frags = fragment(payload, sequence=77)
    total = max(1, -(-size // FRAG_PAYLOAD_MAX))
    assert len(frags) == total
    for i, f in enumerate(frags):
        seq, idx, tot, crc = struct.unpack_from("<IHHI", f)
        assert (seq, idx, tot) == (77, i, total)
        assert crc == zlib.crc32(f[12:])
        assert len(f) - 12 == (
            FRAG_PAYLOAD_MAX if i < total - 1 else size - (total - 1) * FRAG_PAYLOAD_MAX
        )
    rng = random.Random(size)
    order = frags + rng.sample(frags, min(len(frags), 5))  # some duplicates
    rng.shuffle(order)
    r = Reassembler()
    results = [r.push(f, sender=A) for f in order]
    done = [x for x in results if x is not None]
    assert done == [payload]  # delivered exactly once, even with late duplicates
    assert len(r) == 0 and r.pending_bytes == 0


def test_interleaved_messages_from_senders():
    r = Reassembler()
    p1, p2, p3 = _payload(3000), _payload(2500), _payload(10)
    f1, f2, f3 = fragment(p1, 1), fragment(p2, 1), fragment(p3, 2)
    assert r.push(f1[0], A) is None
    assert r.push(f2[0], B) is None  # same sequence, other sender: separate message
    assert r.push(f3[0], A) == p3
    assert r.push(f1[2], A) is None
    assert r.push(f2[2], B) is None
    assert len(r) == 2
    assert r.push(f2[1], B) == p2
    assert r.push(f1[1], A) == p1


def _frag(seq, index, total, data, crc=None):
    return (
        struct.pack(
            "<IHHI", seq, index, total, zlib.crc32(data) if crc is None else crc
        )
        + data
    )


FULL = bytes(FRAG_PAYLOAD_MAX)


@pytest.mark.parametrize(
    "frag, match",
    [
        (b"", r"short header.*at byte 0"),
        (_frag(1, 0, 1, b"")[:11], r"short header"),
        (_frag(1, 0, 1, b"abc", crc=123), r"CRC32 mismatch.*at byte 8"),
        (_frag(1, 0, 1, b"abc")[:-1] + b"x", r"CRC32 mismatch"),
        (_frag(1, 2, 2, b"abc"), r"index >= total"),
        (_frag(1, 0, 0, b""), r"total is 0"),
        (_frag(1, 0, 1, FULL + b"x"), r"exceeds 1012"),
        (_frag(1, 0, 2, b"abc"), r"non-final fragment carries 3 bytes"),
        (_frag(1, 0, 2, FULL[:-1]), r"non-final fragment carries 1011 bytes"),
        (_frag(1, 1, 2, b""), r"final fragment .* empty"),
    ],
)
def test_fragment_corruption(frag, match):
    r = Reassembler()
    with pytest.raises(QresFormatError, match=match):
        r.push(frag, A)
    assert len(r) == 0


def test_total_disagreement_and_state_unchanged_on_error():
    r = Reassembler()
    assert r.push(_frag(9, 0, 3, FULL), A) is None
    with pytest.raises(QresFormatError, match=r"total disagrees"):
        r.push(_frag(9, 1, 4, FULL), A)
    with pytest.raises(QresFormatError, match=r"total disagrees"):
        r.push(_frag(9, 0, 1, b"x"), A)
    assert r.push(_frag(9, 0, 3, FULL), A) is None  # duplicate, ignored
    assert r.pending_bytes == FRAG_PAYLOAD_MAX
    assert r.push(_frag(9, 1, 3, FULL), A) is None
    assert r.push(_frag(9, 2, 3, b"end"), A) == FULL + FULL + b"end"


def test_message_size_limit():
    r = Reassembler(max_message_bytes=2 * FRAG_PAYLOAD_MAX + 5)
    with pytest.raises(QresFormatError, match="exceeds the limit"):
        r.push(_frag(1, 0, 4, FULL), A)
    with pytest.raises(QresFormatError, match="exceeds the limit"):
        r.push(_frag(1, 2, 3, b"123456"), A)
    assert len(r) == 0
    for f in fragment(bytes(2 * FRAG_PAYLOAD_MAX + 5), 2):
        out = r.push(f, A)
    assert out == bytes(2 * FRAG_PAYLOAD_MAX + 5)
    with pytest.raises(ValueError):
        fragment(bytes(65535 * FRAG_PAYLOAD_MAX + 1), 0)
    with pytest.raises(ValueError):
        fragment(b"", 2**32)


def test_flood_keeps_at_most_max_pending():
    r = Reassembler(max_pending=8)
    keys = [(bytes([s]) * 32, q) for s in range(20) for q in range(10)]
    for sender, seq in keys:
        assert r.push(_frag(seq, 0, 2, FULL), sender) is None
        assert len(r) <= 8
        assert r.pending_bytes <= 8 * FRAG_PAYLOAD_MAX
    assert len(r) == 8
    # the oldest were dropped: completing an evicted message only starts it again
    old_sender, old_seq = keys[0]
    assert r.push(_frag(old_seq, 1, 2, b"x"), old_sender) is None
    assert len(r) == 8
    # the newest survive and complete
    new_sender, new_seq = keys[-1]
    assert r.push(_frag(new_seq, 1, 2, b"x"), new_sender) == FULL + b"x"


def test_drop_and_expire():
    r = Reassembler()
    for seq in range(5):
        r.push(_frag(seq, 0, 2, FULL), A)
        r.push(_frag(seq, 0, 2, FULL), B)
    assert len(r) == 10
    assert r.drop(A, 4) is True and r.drop(A, 4) is False
    assert r.expire(2, sender=B) == 2  # B's 0 and 1
    assert r.expire(3) == 4  # A's 0, 1, 2 and B's 2
    assert len(r) == 3  # A's 3, B's 3 and B's 4 (A's 4 was dropped)
    assert r.push(_frag(3, 1, 2, b"!"), A) == FULL + b"!"
    assert r.push(_frag(0, 1, 2, b"!"), A) is None  # expired: starts over


@DET
@given(st.binary(max_size=40), st.binary(max_size=4))
def test_reassembler_fuzz(data, sender):
    r = Reassembler(max_pending=2)
    try:
        out = r.push(data, sender)
    except QresFormatError:
        assert len(r) == 0
        return
    assert out is None or isinstance(out, bytes)
    assert len(r) <= 2


@DET
@given(
    st.lists(
        st.tuples(
            st.integers(0, 3),
            st.integers(0, 3),
            st.integers(0, 3),
            st.binary(max_size=3),
            st.booleans(),
        ),
        max_size=30,
    )
)
def test_reassembler_fuzz_structured(items):
    """Near-valid fragments (small totals, right CRC or not, with full and short payloads) never crash."""
    r = Reassembler(max_pending=3)
    for seq, index, total, tail, full in items:
        data = (FULL if full else b"") + tail
        try:
            out = r.push(
                _frag(seq, index, total, data[: FRAG_PAYLOAD_MAX + 1]), bytes([seq & 1])
            )
        except QresFormatError:
            continue
        assert out is None or isinstance(out, bytes)
        assert len(r) <= 3
