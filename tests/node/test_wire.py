"""The hop header, the Hello (peer exchange) and the probe and answer control messages: round trips,
literal IP addresses only, and hostile bytes refused with a QresFormatError that says where, never
another exception."""

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from qres.errors import QresFormatError
from qres.node import wire

hosts = st.sampled_from(["127.0.0.1", "10.0.0.7", "::1", "2001:db8::7"])
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


@given(st.integers(0, 2**64 - 1), addresses, st.lists(addresses, max_size=wire.MAX_HELLO_PEERS), st.integers(0, wire.MAX_TTL))
def test_hello_round_trip(sent_us, listen, peers, ttl):
    hello = wire.Hello(sent_us, listen, tuple(peers), ttl)
    assert wire.decode_hello(hello.to_bytes()) == hello


@pytest.mark.parametrize("name", ["node-a.local", "localhost", "example.com", "127.1", "::1%", "1.2.3.4.5"])
def test_a_hello_naming_a_host_name_is_refused(name):
    hello = wire.Hello(1, ("127.0.0.1", 7000), (("10.0.0.1", 7001),)).to_bytes()
    forged = hello.replace(b"\x0d10.0.0.1:7001", bytes([len(name) + 5]) + f"{name}:7001".encode())
    with pytest.raises(QresFormatError, match="address 1 at offset .* is not a literal IP address and port"):
        wire.decode_hello(forged)


@pytest.mark.parametrize("text, address", [("127.0.0.1:7000", ("127.0.0.1", 7000)), ("[::0001]:7000", ("::1", 7000)),
                                           ("::1:7000", ("::1", 7000)), ("[2001:DB8::7]:1", ("2001:db8::7", 1))])
def test_addresses_are_literal_ips_in_one_spelling(text, address):
    assert wire.parse_address(text) == address
    assert wire.parse_address(wire.format_address(address)) == address


@pytest.mark.parametrize("text", ["node-a:7000", "localhost:7000", "127.0.0.1", "127.0.0.1:0", "127.0.0.1:70000", "[::1]", ":7000"])
def test_anything_but_a_literal_ip_and_port_is_refused(text):
    with pytest.raises(ValueError):
        wire.parse_address(text)


def test_probe_and_answer_carry_their_nonce_and_nothing_else():
    nonce = bytes(range(16))
    assert wire.control(wire.probe(nonce)) == (wire.PROBE_MAGIC, nonce)
    assert wire.control(wire.answer(nonce)) == (wire.ANSWER_MAGIC, nonce)
    assert wire.control(wire.wrap(b"envelope", 1)) is None  # a hop message
    with pytest.raises(QresFormatError, match="17 bytes, 18 expected"):
        wire.control(wire.probe(nonce)[:-1])


@settings(max_examples=300)
@given(st.sampled_from([b"QP", b"QA", b"QH", b""]), st.binary(max_size=40))
def test_any_bytes_give_a_control_message_none_or_a_format_error(magic, data):
    message = magic + data
    control = message[:2] in (b"QP", b"QA")
    try:
        got = wire.control(message)
    except QresFormatError:
        assert control and len(message) != 18
        return
    assert got == ((message[:2], message[2:]) if control else None)


@pytest.mark.parametrize(
    "mutate, says",
    [
        (lambda b: b[:5], "at least"),
        (lambda b: b[:2] + b"\x01" + b[3:], "unknown version 1"),
        (lambda b: b[:3] + b"\x09" + b[4:], "unknown type 9"),
        (lambda b: b[:12] + b"\x11" + b[13:], "ttl 17 at offset 12"),
        (lambda b: b[:13] + b"\x00" + b[14:], "0 addresses at offset 13"),
        (lambda b: b[:-1], "truncated"),
        (lambda b: b + b"\x00", "left over"),
        (lambda b: b.replace(b"1:7000", b"1x7000"), "not a literal IP address and port"),
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
        hello = wire.decode_hello(b"QN\x02\x01" + data)
    except QresFormatError:
        return
    assert wire.decode_hello(hello.to_bytes()) == hello
