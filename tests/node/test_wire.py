"""The hop header and the Hello (peer exchange): round trips, and hostile bytes refused with a
QresFormatError that says where, never another exception."""

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from qres.errors import QresFormatError
from qres.node import wire

hosts = st.sampled_from(["127.0.0.1", "10.0.0.7", "node-a.local", "::1"])
addresses = st.tuples(hosts, st.integers(1, 65535))


@given(st.binary(max_size=200), st.integers(0, wire.MAX_TTL))
def test_hop_header_round_trip(envelope, ttl):
    assert wire.unwrap(wire.wrap(envelope, ttl)) == (ttl, envelope)


def test_hop_header_refuses_bad_magic_and_ttl():
    with pytest.raises(QresFormatError, match="bad magic"):
        wire.unwrap(b"QE\x01rest")
    with pytest.raises(QresFormatError, match="ttl 17"):
        wire.unwrap(b"QH\x11rest")
    with pytest.raises(QresFormatError, match="needed"):
        wire.unwrap(b"Q")
    with pytest.raises(ValueError):
        wire.wrap(b"", wire.MAX_TTL + 1)


@given(st.integers(0, 2**64 - 1), addresses, st.lists(addresses, max_size=wire.MAX_HELLO_PEERS))
def test_hello_round_trip(sent_us, listen, peers):
    hello = wire.Hello(sent_us, listen, tuple(peers))
    assert wire.decode_hello(hello.to_bytes()) == hello


@pytest.mark.parametrize(
    "mutate, says",
    [
        (lambda b: b[:5], "at least"),
        (lambda b: b[:2] + b"\x02" + b[3:], "unknown version 2"),
        (lambda b: b[:3] + b"\x09" + b[4:], "unknown type 9"),
        (lambda b: b[:12] + b"\x00" + b[13:], "0 addresses"),
        (lambda b: b[:-1], "truncated"),
        (lambda b: b + b"\x00", "left over"),
        (lambda b: b.replace(b"1:7000", b"1x7000"), "not host:port"),
    ],
)
def test_hello_refuses_damage_with_a_clear_error(mutate, says):
    good = wire.Hello(1, ("127.0.0.1", 7000), (("127.0.0.1", 7001),)).to_bytes()
    with pytest.raises(QresFormatError, match=says):
        wire.decode_hello(mutate(good))


@settings(max_examples=500)
@given(st.binary(max_size=300))
def test_any_bytes_give_a_hello_or_a_format_error(data):
    try:
        hello = wire.decode_hello(b"QN\x01\x01" + data)
    except QresFormatError:
        return
    assert wire.decode_hello(hello.to_bytes()) == hello
