"""The node's address book: where it may send gossip, and the probe that checks an address before
the node sends it anything else (sans-I/O: no sockets, no clock; each call takes the time `now`
in seconds and returns what to send).

A Hello names addresses on its signer's word, and UDP lets anyone name anyone, so a named address
earns nothing until it proves that a node listens there by echoing a random nonce:

- Bootstrap peers (the node's configuration) are trusted as given: always used, never probed,
  never pruned.
- An address named in a Hello is pending: it gets one probe (`PROBE_BYTES` on the wire) and nothing
  else until the probe's nonce comes back in an answer; then it is verified and gossip may go there.
- No amplification: each origin (the DID that signed the Hellos) earns the bytes of its Hellos, and
  each probe spends `PROBE_BYTES` of its origin's credit, so the node never sends the addresses an
  origin named more bytes than it received from that origin.
- At most `PENDING_PER_ORIGIN` pending addresses per origin and `MAX_PENDING` in all (when full,
  the oldest pending one is dropped), `MAX_ADDRESSES` pending and verified together.
- At most one probe per address: one that did not answer, or was dropped, is not probed again for
  `RETRY_S` seconds unless a signed message arrives from it.
- Pruning: a pending address unanswered `ANSWER_S` seconds after its probe is dropped; a verified
  one is probed again every `REVERIFY_S` seconds and dropped when it stays silent `ANSWER_S` seconds.
- Only literal unicast IP addresses (the Hello's parser refuses names); multicast, unspecified and
  reserved addresses are refused.
"""

from __future__ import annotations

import ipaddress
import secrets
from collections import OrderedDict
from collections.abc import Callable, Iterable, MutableMapping
from dataclasses import dataclass

from ..swarm.packets import FRAG_HEADER_LEN
from . import wire

Address = tuple[str, int]

PROBE_BYTES = FRAG_HEADER_LEN + 2 + wire.NONCE_LEN  # one probe datagram: 30 bytes
PENDING_PER_ORIGIN = 8  # unverified addresses one origin may have waiting for an answer
MAX_PENDING = 64  # unverified addresses waiting for an answer, from all origins
MAX_ADDRESSES = 256  # pending and verified addresses kept
ANSWER_S = 5.0  # seconds an address has to answer a probe
REVERIFY_S = 60.0  # seconds between two probes of a verified address
RETRY_S = 300.0  # seconds before an address that failed to answer may be probed again
MAX_ORIGINS = 1024  # origins whose credit (bytes) is remembered, the least recent forgotten first
MAX_FAILED = 4096  # failed addresses remembered, the oldest forgotten first


@dataclass
class _Entry:
    origin: str | None  # the DID whose Hello named it
    verified: bool = False
    nonce: bytes | None = None  # of the probe awaiting an answer
    probed_at: float = 0.0
    verified_at: float = 0.0


def usable(address: Address) -> bool:
    """Whether gossip may ever go to `address`: a unicast IP address (not multicast, unspecified or
    reserved)."""
    try:
        ip = ipaddress.ip_address(address[0])
    except ValueError:
        return False
    return not (ip.is_multicast or ip.is_unspecified or ip.is_reserved)


class AddressBook:
    """Bootstrap, pending and verified addresses. `learn` and `tick` return the probes to send as
    (address, control message) pairs; `counters` (shared with the daemon) count what it did."""

    def __init__(self, bootstrap: Iterable[Address], own: Address, counters: MutableMapping[str, int],
                 nonce: Callable[[], bytes] = lambda: secrets.token_bytes(wire.NONCE_LEN)):
        self.bootstrap = list(dict.fromkeys(bootstrap))
        self.own = own
        self.counters = counters
        self._nonce = nonce
        self._entries: dict[Address, _Entry] = {}  # oldest first
        self._by_nonce: dict[bytes, Address] = {}
        self._credit: OrderedDict[str, int] = OrderedDict()  # origin -> bytes it may still have probed
        self._failed: OrderedDict[Address, float] = OrderedDict()  # address -> when it failed

    # -- what the daemon asks --------------------------------------------------------------
    def targets(self) -> list[Address]:
        """Where gossip may go: bootstrap peers, then verified addresses, oldest first."""
        return self.bootstrap + [a for a, e in self._entries.items() if e.verified and a not in self.bootstrap]

    def trusted(self, address: Address) -> bool:
        """Whether `address` is a bootstrap peer or verified."""
        entry = self._entries.get(address)
        return address in self.bootstrap or (entry is not None and entry.verified)

    def status(self) -> dict:
        """How many addresses of each kind the book holds."""
        verified = sum(e.verified for e in self._entries.values())
        return {"bootstrap": len(self.bootstrap), "verified": verified, "pending": len(self._entries) - verified}

    # -- what the daemon tells -------------------------------------------------------------
    def learn(self, origin: str, received: int, addresses: Iterable[Address], now: float) -> list[tuple[Address, bytes]]:
        """A Hello of `received` bytes signed by `origin` named `addresses`: credit the origin, take
        the new ones it can pay for as pending; the probes to send."""
        self._credit[origin] = self._credit.pop(origin, 0) + received
        if len(self._credit) > MAX_ORIGINS:
            self._credit.popitem(last=False)
        probes = []
        for address in addresses:
            if address == self.own or address in self.bootstrap or address in self._entries:
                continue
            failed = self._failed.get(address)
            if not usable(address) or (failed is not None and now - failed < RETRY_S):
                self.counters["addresses_refused"] += 1
                continue
            pending = [e for e in self._entries.values() if not e.verified]
            if sum(e.origin == origin for e in pending) >= PENDING_PER_ORIGIN or self._credit[origin] < PROBE_BYTES:
                self.counters["addresses_refused"] += 1
                continue
            if len(pending) >= MAX_PENDING:
                self._drop(next(a for a, e in self._entries.items() if not e.verified), now)
            elif len(self._entries) >= MAX_ADDRESSES:
                self.counters["addresses_refused"] += 1
                continue
            self._credit[origin] -= PROBE_BYTES
            self._entries[address] = _Entry(origin)
            probes.append(self._probe(address, now))
        return probes

    def answered(self, nonce: bytes, now: float) -> Address | None:
        """An answer echoed `nonce`: the address it proves (now verified), or None when no probe
        awaits it."""
        address = self._by_nonce.pop(nonce, None)
        if address is None:
            return None
        entry = self._entries[address]
        if not entry.verified:
            self.counters["addresses_verified"] += 1
        entry.verified, entry.nonce, entry.verified_at = True, None, now
        return address

    def heard(self, address: Address) -> None:
        """A signed message arrived from `address`: a past failure no longer bars probing it."""
        self._failed.pop(address, None)

    def tick(self, now: float) -> list[tuple[Address, bytes]]:
        """Drop the addresses that did not answer within ANSWER_S; probe the verified ones whose
        last check is REVERIFY_S old. The probes to send."""
        probes = []
        for address, entry in list(self._entries.items()):
            if entry.nonce is not None and now - entry.probed_at >= ANSWER_S:
                self._drop(address, now)
            elif entry.verified and entry.nonce is None and now - entry.verified_at >= REVERIFY_S:
                probes.append(self._probe(address, now))
        return probes

    # -- inside ------------------------------------------------------------------------------
    def _probe(self, address: Address, now: float) -> tuple[Address, bytes]:
        entry = self._entries[address]
        entry.nonce, entry.probed_at = self._nonce(), now
        self._by_nonce[entry.nonce] = address
        self.counters["probes_sent"] += 1
        return address, wire.probe(entry.nonce)

    def _drop(self, address: Address, now: float) -> None:
        entry = self._entries.pop(address)
        self._by_nonce.pop(entry.nonce, None)
        self._failed[address] = now
        self._failed.move_to_end(address)
        if len(self._failed) > MAX_FAILED:
            self._failed.popitem(last=False)
        self.counters["addresses_pruned"] += 1
