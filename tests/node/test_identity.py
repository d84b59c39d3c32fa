"""Identities and signed envelopes: every message is verified before it is read; tampered, forged,
stale, future, replayed, truncated, oversized and foreign bytes each get their own clear error."""

import os
import stat

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from hypothesis import given, settings
from hypothesis import strategies as st

from qres.errors import QresAuthError, QresFormatError
from qres.node.identity import ENVELOPE_OVERHEAD, WINDOW_MS, Identity, ReplayGuard, did_of, open_envelope, public_key_of, seal

NOW = 1_790_000_000_000
ALICE = Identity(bytes(range(32)))
BOB = Identity(bytes(range(1, 33)))


def test_did_is_the_public_key_in_lowercase_hex_and_round_trips():
    assert ALICE.did == "did:qres:" + ALICE.public_key.hex()
    assert len(ALICE.did) == len("did:qres:") + 64 and ALICE.did == ALICE.did.lower()
    assert public_key_of(ALICE.did) == ALICE.public_key and did_of(ALICE.public_key) == ALICE.did


@pytest.mark.parametrize("bad", ["did:qres:" + "A" * 64, "did:key:" + "a" * 64, "did:qres:" + "a" * 63, "", "did:qres:" + "g" * 64])
def test_malformed_dids_are_refused(bad):
    with pytest.raises(QresFormatError, match="DID"):
        public_key_of(bad)


def test_key_file_round_trip_is_private_and_never_overwritten(tmp_path):
    path = tmp_path / "node.key"
    made = Identity.create_file(path)
    assert Identity.load(path).did == made.did
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    with pytest.raises(FileExistsError):
        Identity.create_file(path)


def test_a_sealed_envelope_opens_to_its_sender_and_payload():
    env = open_envelope(seal(ALICE, b"ghost update", NOW), NOW + 5, ReplayGuard())
    assert env.did == ALICE.did and env.payload == b"ghost update" and env.timestamp_ms == NOW
    assert len(seal(ALICE, b"", NOW)) == ENVELOPE_OVERHEAD


def test_every_flipped_bit_is_caught():
    data = seal(ALICE, b"payload bytes", NOW, nonce=bytes(16))
    for i in range(len(data) * 8):
        bad = bytearray(data)
        bad[i // 8] ^= 1 << (i % 8)
        with pytest.raises((QresAuthError, QresFormatError)):
            open_envelope(bytes(bad), NOW, ReplayGuard())


def test_a_signature_of_another_key_does_not_verify():
    data = bytearray(seal(ALICE, b"x", NOW))
    data[3:35] = BOB.public_key  # claim to be Bob, keep Alice's signature
    with pytest.raises(QresAuthError, match="signature"):
        open_envelope(bytes(data), NOW, ReplayGuard())


@pytest.mark.parametrize("skew", [WINDOW_MS + 1, -(WINDOW_MS + 1), 10 * WINDOW_MS])
def test_stale_and_future_messages_are_refused(skew):
    with pytest.raises(QresAuthError, match="timestamp"):
        open_envelope(seal(ALICE, b"x", NOW + skew), NOW, ReplayGuard())


@pytest.mark.parametrize("skew_ms, accepted", [(29_900, True), (-29_900, True), (30_100, False), (-30_100, False)])
def test_the_time_window_is_30_seconds_each_way(skew_ms, accepted):
    """Pinned with literal values: a window widened (or narrowed) in WINDOW_MS fails here."""
    data = seal(ALICE, b"x", NOW + skew_ms)
    if accepted:
        assert open_envelope(data, NOW, ReplayGuard()).timestamp_ms == NOW + skew_ms
    else:
        with pytest.raises(QresAuthError, match="timestamp"):
            open_envelope(data, NOW, ReplayGuard())


def test_a_replayed_message_is_refused_and_an_expired_nonce_forgotten():
    guard = ReplayGuard()
    data = seal(ALICE, b"x", NOW)
    open_envelope(data, NOW, guard)
    with pytest.raises(QresAuthError, match="replayed"):
        open_envelope(data, NOW + 1, guard)
    open_envelope(seal(ALICE, b"y", NOW + 2 * WINDOW_MS), NOW + 2 * WINDOW_MS, guard)
    assert len(guard) == 1  # the first nonce left the window with its timestamp


def test_a_copy_of_an_accepted_message_is_refused_before_its_signature_is_checked(monkeypatch):
    guard = ReplayGuard()
    data = seal(ALICE, b"x", NOW)
    open_envelope(data, NOW, guard)
    verified = []
    real = Ed25519PublicKey.from_public_bytes
    monkeypatch.setattr("qres.node.identity.Ed25519PublicKey.from_public_bytes", lambda b: verified.append(b) or real(b))
    forged = bytearray(data)
    forged[-1] ^= 1  # a damaged copy with the same nonce: refused as the copy it is
    for copy in (data, bytes(forged)):
        with pytest.raises(QresAuthError, match="replayed"):
            open_envelope(copy, NOW + 1, guard)
    assert verified == []  # no signature work spent on copies
    with pytest.raises(QresAuthError, match="signature"):  # the same damage on a new message still fails the signature
        bad = bytearray(seal(ALICE, b"x", NOW))
        bad[-1] ^= 1
        open_envelope(bytes(bad), NOW, guard)


def test_the_replay_cache_is_bounded_and_refuses_rather_than_forgets():
    guard = ReplayGuard(capacity=3)
    sent = [seal(ALICE, b"%d" % i, NOW) for i in range(4)]
    for data in sent[:3]:
        open_envelope(data, NOW, guard)
    with pytest.raises(QresAuthError, match="full"):
        open_envelope(sent[3], NOW, guard)
    with pytest.raises(QresAuthError, match="replayed"):
        open_envelope(sent[0], NOW, guard)  # still remembered
    assert len(guard) == 3


@pytest.mark.parametrize(
    "mutate, match",
    [
        (lambda d: d[:-1], "needs"),
        (lambda d: d + b"\0", "needs"),
        (lambda d: d[:50], "at least"),
        (lambda d: b"XX" + d[2:], "magic"),
        (lambda d: d[:2] + b"\x07" + d[3:], "version"),
    ],
)
def test_malformed_layouts_are_format_errors(mutate, match):
    with pytest.raises(QresFormatError, match=match):
        open_envelope(mutate(seal(ALICE, b"abc", NOW)), NOW, ReplayGuard())


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=400))
def test_any_bytes_give_a_clear_error_or_a_verified_envelope(data):
    try:
        env = open_envelope(data, NOW, ReplayGuard())
    except (QresFormatError, QresAuthError):
        return
    assert env.did.startswith("did:qres:")  # only a correctly signed envelope gets here


@settings(max_examples=100, deadline=None)
@given(st.binary(max_size=2000), st.integers(0, 2**63 - 1))
def test_seal_open_round_trip_for_any_payload(payload, now):
    env = open_envelope(seal(BOB, payload, now), now, ReplayGuard())
    assert env.payload == payload and env.did == BOB.did
