"""The address book (sans-I/O): a named address gets one small probe and nothing else until it
echoes the nonce; probes are paid for by the naming origin's bytes and capped per origin;
silent addresses are pruned and not probed again soon."""

from collections import defaultdict

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from qres.node import addresses as ab
from qres.node import wire
from qres.node.addresses import AddressBook

OWN = ("127.0.0.1", 7000)
BOOT = ("127.0.0.1", 7001)
HELLO = 600  # bytes of a typical Hello


def book():
    counter = iter(range(1, 1 << 30))
    return AddressBook([BOOT], OWN, defaultdict(int), nonce=lambda: next(counter).to_bytes(16, "big"))


def addr(i):
    return ("10.0.%d.%d" % (i // 250, i % 250 + 1), 7000)


def test_a_named_address_gets_one_probe_and_is_used_only_once_it_answers():
    b = book()
    probes = b.learn("did:a", HELLO, [addr(1), OWN, BOOT], now=0.0)
    assert [t for t, _ in probes] == [addr(1)]  # not itself, not a bootstrap peer
    (_, message), = probes
    assert len(message) + 12 == ab.PROBE_BYTES == 30 and wire.control(message)[0] == wire.PROBE_MAGIC
    assert b.targets() == [BOOT] and not b.trusted(addr(1)) and b.status() == {"bootstrap": 1, "verified": 0, "pending": 1}
    assert b.learn("did:b", HELLO, [addr(1)], now=1.0) == []  # named again: no second probe
    assert b.answered(b"\x00" * 16, now=1.0) is None  # an answer nobody asked for verifies nothing
    assert b.answered(wire.control(message)[1], now=1.0) == addr(1)
    assert b.targets() == [BOOT, addr(1)] and b.trusted(addr(1)) and b.counters["addresses_verified"] == 1


def test_probes_never_cost_more_than_the_origin_sent():
    b = book()
    probes = b.learn("did:a", 100, [addr(i) for i in range(10)], now=0.0)
    assert len(probes) * ab.PROBE_BYTES <= 100 and len(probes) == 3
    assert b.learn("did:a", 50, [addr(i) for i in range(10, 20)], now=0.0)  # the 10 left over and 50 more pay for one
    assert b.counters["addresses_refused"] > 0


def test_pending_addresses_are_capped_per_origin_and_in_all():
    b = book()
    assert len(b.learn("did:a", 10_000, [addr(i) for i in range(30)], now=0.0)) == ab.PENDING_PER_ORIGIN
    for k in range(ab.MAX_PENDING // ab.PENDING_PER_ORIGIN + 2):
        b.learn(f"did:{k}", 10_000, [addr(100 + 10 * k + i) for i in range(ab.PENDING_PER_ORIGIN)], now=1.0)
    assert b.status()["pending"] == ab.MAX_PENDING
    assert not any(b.trusted(addr(i)) for i in range(30)) and b.counters["addresses_pruned"] > 0  # the oldest made room


def test_silent_addresses_are_pruned_and_not_probed_again_soon():
    b = book()
    (_, probe), = b.learn("did:a", HELLO, [addr(1)], now=0.0)
    assert b.tick(now=ab.ANSWER_S - 0.1) == [] and b.status()["pending"] == 1
    assert b.tick(now=ab.ANSWER_S) == [] and b.status()["pending"] == 0 and b.counters["addresses_pruned"] == 1
    assert b.answered(wire.control(probe)[1], now=ab.ANSWER_S + 1) is None  # too late
    assert b.learn("did:b", HELLO, [addr(1)], now=ab.ANSWER_S + 1) == []  # failed: not probed again
    assert len(b.learn("did:b", HELLO, [addr(1)], now=ab.ANSWER_S + ab.RETRY_S)) == 1  # until RETRY_S has passed
    b.tick(now=2 * ab.RETRY_S)
    b.heard(addr(1))  # ... or a signed message came from it
    assert len(b.learn("did:b", HELLO, [addr(1)], now=2 * ab.RETRY_S)) == 1


def test_verified_addresses_are_probed_again_and_dropped_when_silent():
    b = book()
    (_, probe), = b.learn("did:a", HELLO, [addr(1)], now=0.0)
    b.answered(wire.control(probe)[1], now=1.0)
    assert b.tick(now=ab.REVERIFY_S) == []
    (target, again), = b.tick(now=1.0 + ab.REVERIFY_S)
    assert target == addr(1) and again != probe and b.trusted(addr(1))  # still used while it may answer
    b.answered(wire.control(again)[1], now=2.0 + ab.REVERIFY_S)  # it answers: kept
    (_, third), = b.tick(now=3.0 + 2 * ab.REVERIFY_S)
    b.tick(now=3.0 + 2 * ab.REVERIFY_S + ab.ANSWER_S)  # it went silent: dropped
    assert b.targets() == [BOOT]


@pytest.mark.parametrize("bad", [("224.0.0.1", 7000), ("0.0.0.0", 7000), ("::", 7000), ("255.255.255.255", 7000), ("ff02::1", 7000)])
def test_multicast_unspecified_and_reserved_addresses_are_never_probed(bad):
    b = book()
    assert b.learn("did:a", HELLO, [bad], now=0.0) == [] and b.counters["addresses_refused"] == 1


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 5), st.integers(0, 2000), st.lists(st.integers(0, 300), max_size=33),
                          st.floats(0, 50), st.booleans()), max_size=40))
def test_no_origin_ever_gets_more_probe_bytes_than_it_sent(events):
    """Whatever Hellos arrive (origin, bytes, named addresses, time step, whether the probes are
    answered): the probe bytes charged to each origin stay within its bytes, and the caps hold."""
    b, now = book(), 0.0
    sent, probed = defaultdict(int), defaultdict(int)
    for origin, size, named, step, answer in events:
        now += step
        sent[origin] += size
        for _, message in b.learn(f"did:{origin}", size, [addr(i) for i in named], now):
            probed[origin] += ab.PROBE_BYTES
            if answer:
                b.answered(wire.control(message)[1], now)
        b.tick(now)
        status = b.status()
        assert status["pending"] <= ab.MAX_PENDING and status["pending"] + status["verified"] <= ab.MAX_ADDRESSES
    assert all(probed[o] <= sent[o] for o in probed)
