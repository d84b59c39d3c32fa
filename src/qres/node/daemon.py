"""The node daemon: one swarm node (`qres.swarm.node` rules, n = 1) on real UDP sockets, clocks,
keys and storage.

Transport: UDP datagrams on the gossip port. A message is a swarm packet (`qres.swarm.packets`)
sealed in a signed envelope (`identity.seal`), cut into fragments (`packets.fragment`) of at most
1,024 bytes, so every datagram fits a radio frame and a lost one costs only its message. UDP keeps
the node close to what a sensor radio does (no connection state per peer, broadcast-friendly); the
envelope gives authenticity and replay protection that TCP would not give anyway.

Every round (`round_seconds`) the node takes its new readings, proposes its local update, sends it as
a GhostUpdate (and a RegimeVote outside Calm) to its peers, then closes the round with
`node.receive` on the updates that arrived before the deadline. A verified model is committed to the
store; peers, bans, the round and the counters are saved every round. On start the node resumes
from the newest verified model in its store (INV-7). SIGINT/SIGTERM stop it cleanly.

Gossip goes only to bootstrap peers and to addresses that answered a probe (`addresses`): a Hello
that names addresses earns them one small probe each, paid for by the bytes of the Hello.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import hashlib
import signal
import socket
import sqlite3
import sys
import time
from collections import defaultdict, deque
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import uvicorn

from .. import datasets
from ..codec.frame import Codec
from ..codec.model import Model
from ..errors import QresAuthError, QresError, QresFormatError
from ..fixed import bfp16_from_q16, bfp16_to_q16, to_q16
from ..swarm import attacks, energy, learn, node, regime
from ..swarm.aggregate import Median
from ..swarm.packets import Ban, BanReason, GhostUpdate, Reassembler, RegimeVote, decode_packet, fragment
from . import archive
from .addresses import AddressBook
from .api import create_app
from .battery import Battery
from .config import MAINS, NodeConfig, resolve_peers
from . import wire
from .identity import Identity, ReplayGuard, did_of, open_envelope, public_key_of, seal
from .storage import PeerRecord, Store, StoredModel

MAX_PEERS = 16  # peer slots of the node's table
FED_READINGS = 4096  # readings from /readings the node keeps
KEEP_CODECS = 16  # codec models a node can still decompress frames of
HISTORY = 1024  # readings the codec model's transform and tables are fitted on
REFIT_ROUNDS = 20  # rounds between refits of the codec's transform to the node's readings
TIMELINE = 600  # rounds of history kept for the dashboard
MAX_LISTEN = 256  # peers' listen addresses (from their Hellos) kept beyond the table's
HELLO_EVERY = 5  # rounds between the node's Hellos (peer exchange)
RELAY = 2  # peers' updates a node passes on per round (the simulator's relay)
ARRIVALS = 20_000  # Hello arrivals kept for propagation figures
MAX_BAN_REPORTS = 4096  # (reporter, banned) pairs a node keeps per round
JOIN_ROUNDS = 3  # rounds a new node only listens, to start from its peers' model rather than genesis
QUORUM_ROUNDS = 3  # a peer counts towards the quorum while its updates arrived in the last 3 rounds
GENESIS = np.zeros(learn.ORDER, np.int64)
RATE = int(to_q16(0.5))


def model_gene(weights: np.ndarray) -> bytes:
    """The swarm model's gene: its Q16.16 weights as little-endian int32."""
    return np.asarray(weights, "<i4").tobytes()


def model_id(gene: bytes) -> str:
    """16 lowercase hex digits of the gene's SHA-256."""
    return hashlib.sha256(gene).hexdigest()[:16]


def now_ms() -> int:
    return time.time_ns() // 1_000_000


class ListenError(QresError):
    """The node cannot listen on its gossip or API port (taken, or not allowed)."""


def _listen_error(what: str, host: str, port: int, key: str, exc: OSError) -> ListenError:
    """One line naming the port, why it cannot be used and what to do."""
    why = "is already in use" if exc.errno == errno.EADDRINUSE else f"cannot be used ({exc.strerror or exc})"
    return ListenError(f"{what} port {port} on {host} {why}: stop what listens there, or choose another port "
                       f"({key} in node.toml, or QRES_{key.replace('.', '_').upper()})")


def _api_socket(host: str, port: int) -> socket.socket:
    """A TCP socket listening on (host, port) for the API (OSError when it cannot)."""
    info = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)[0]
    sock = socket.socket(info[0], socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(info[4])
        sock.listen(2048)
    except OSError:
        sock.close()
        raise
    return sock


class _RateLimit:
    """A token bucket per sender address: `per_second` messages, bursts of as many."""

    def __init__(self, per_second: int):
        self.per_second = per_second
        self._buckets: dict[tuple, tuple[float, float]] = {}

    def allow(self, addr: tuple, t: float) -> bool:
        tokens, last = self._buckets.get(addr, (float(self.per_second), t))
        tokens = min(float(self.per_second), tokens + (t - last) * self.per_second)
        ok = tokens >= 1.0
        self._buckets[addr] = (tokens - 1.0 if ok else tokens, t)
        if len(self._buckets) > 10_000:  # forget the quietest senders first
            self._buckets.pop(next(iter(self._buckets)))
        return ok


class NodeDaemon(asyncio.DatagramProtocol):
    """One running node. `await run()` until `stop()`; `counters` say what it did and dropped."""

    def __init__(self, cfg: NodeConfig, feed: np.ndarray | None = None, feed_rate: float = 32.0):
        self.cfg = cfg
        self.feed_source = feed  # readings to replay into feed() at feed_rate per second (`--feed`), or None
        self.feed_rate = feed_rate
        self.identity: Identity = cfg.identity()
        self.store = Store.open(cfg.data_dir, any_thread=True)
        # commits (each an fsync) run on this one thread, so a slow disk never stalls gossip
        self._writer = ThreadPoolExecutor(max_workers=1, thread_name_prefix="qres-store")
        self.archive = archive.from_config(cfg)  # copies committed models to the configured archive; None without one
        if self.archive is not None:
            self.archive.backfill(self.store)
        self.guard = ReplayGuard()
        self.reassembler = Reassembler(max_pending=256)
        self.limit = _RateLimit(cfg.rate_limit)
        self.counters: dict[str, int] = defaultdict(int)
        self.state = node.NodeState(np.full((1, MAX_PEERS), -1), GENESIS, MAX_PEERS + 1)
        self.slot_of: dict[str, int] = {}  # peer DID -> slot in the node's table
        self.did_of_slot: dict[int, str] = {}
        self.addresses: dict[str, tuple[str, int]] = {}  # peer DID -> where it listens (from its Hellos), oldest first
        self.last_seen: dict[str, float] = {}  # peer DID -> when its last message was accepted (s since the epoch)
        self.round = int(self.store.get("round", 0))
        self.inbox: dict[str, tuple[GhostUpdate, bytes, int]] = {}  # origin DID -> (update, envelope, ttl) this round
        self.heard = np.zeros((0, learn.ORDER), np.int64)  # the peers' proposals of the last closed round
        # where the node says it listens: its gossip host when that is an IP address, else "0.0.0.0"
        # (a peer takes the address the Hello came from)
        self.listen = (wire.literal_ip(cfg.gossip_host) or "0.0.0.0", cfg.gossip_port)
        self.book = AddressBook(cfg.peers, self.listen, self.counters)  # where gossip may go
        self.updated_in: dict[str, int] = {}  # peer DID -> the last round its update arrived in
        self.quorum_said: tuple | None = None  # the quorum state last logged
        self.arrivals: deque[tuple[str, int, int, int]] = deque(maxlen=ARRIVALS)  # (origin, sent_us, received_us, ttl) of Hellos
        self.rng = np.random.default_rng()
        self.attack = attacks.make(cfg.attack) if cfg.attack else None
        direction = np.random.default_rng(0).normal(size=learn.ORDER)  # the cartel's shared direction: the same for every attacker
        self.shared_direction = direction / np.linalg.norm(direction)
        self.votes: dict[str, int] = {}
        self.ban_reports: set[tuple[str, str]] = set()  # (reporter DID, banned DID) heard this round
        self.sequence = 0
        self.step: learn.LocalStep | None = None  # this round's own proposal, once made
        self.transport: asyncio.DatagramTransport | None = None
        self._stopping = asyncio.Event()
        channels = datasets.channels(cfg.dataset)
        self.readings = channels[cfg.channel % len(channels)].exact_integers
        self.fed: deque[int] = deque(maxlen=FED_READINGS)  # readings posted to /readings, newest last
        self._codecs: dict[str, Codec] = {}  # codec model id -> codec, newest last (at most KEEP_CODECS)
        self._codec_for: tuple[str, str] | None = None  # (swarm model id, codec model id) of the current codec
        self._fitted: tuple[int, Model] | None = None  # (round, Model.fit of the readings then) the codec builds on
        self.battery = None if cfg.profile == MAINS else Battery(energy.PROFILES[cfg.profile], self.store.get("energy_uj"))
        self._drawn = (time.monotonic(), time.process_time())  # when the battery was last drawn: wall and CPU seconds
        self.round_bytes = [0, 0]  # bytes sent and received in the open round
        self.bits_per_value: float | None = None  # of the newest frame coded with the node's model
        self.timeline: deque[dict] = deque(maxlen=TIMELINE)  # one record per closed round, newest last
        self.started = time.time()
        self._resume()

    # -- state ---------------------------------------------------------------------------
    def _resume(self) -> None:
        latest = self.store.latest_verified()
        self.joining = JOIN_ROUNDS if latest is None else 0
        if latest is not None:
            w = np.frombuffer(latest.gene, "<i4").astype(np.int64)
            self.state.weights[0] = w
            self.state.verified[0] = w
        for rec in self.store.peers():
            slot = self._slot(rec.did)
            if slot is not None:
                self.state.rep.score[0, slot] = rec.score
                self.state.rep.banned[0, slot] = rec.banned

    def _slot(self, did: str) -> int | None:
        """The table slot of a peer, given a free one on first sight; None when the table is full."""
        if did in self.slot_of:
            return self.slot_of[did]
        free = [s for s in range(MAX_PEERS) if s not in self.did_of_slot]
        if not free:
            return None
        slot = free[0]
        self.slot_of[did] = slot
        self.did_of_slot[slot] = did
        self.state.replace_peers(np.arange(MAX_PEERS)[None] == slot, np.full((1, MAX_PEERS), slot))
        return slot

    def history(self, count: int) -> np.ndarray:
        """The node's newest `count` readings: those posted to /readings when there are enough, else
        the recording replayed from the configured offset (wrapping around)."""
        if len(self.fed) >= count:
            return np.fromiter(self.fed, np.int64, len(self.fed))[-count:]
        end = self.cfg.offset + (self.round + 1) * self.cfg.per_round + count
        return self.readings[np.arange(end - count, end) % len(self.readings)]

    def window(self) -> np.ndarray:
        """This round's window for the local update: the newest 129 readings, (1, 129)."""
        return self.history(129)[None]

    def feed(self, values: np.ndarray) -> None:
        """Readings from the node's sensor (POST /readings)."""
        self.fed.extend(int(v) for v in values)

    # -- frames with the node's current model ---------------------------------------------
    def codec_model(self) -> Model:
        """The codec model for the current swarm model, fitted on the node's recent readings
        (rebuilt when the swarm model changes; the transform is refitted every REFIT_ROUNDS rounds)."""
        if self._codec_for is None or self._codec_for[0] != self.model_id:
            train = self.history(HISTORY)
            if self._fitted is None or self.round - self._fitted[0] >= REFIT_ROUNDS:
                self._fitted = (self.round, Model.fit(train))
            model = learn.codec_model(train, self.state.weights[0], self._fitted[1])
            self._codecs[model.id] = Codec(model)
            while len(self._codecs) > KEEP_CODECS:
                self._codecs.pop(next(iter(self._codecs)))
            self._codec_for = (self.model_id, model.id)
        return self._codecs[self._codec_for[1]].model

    def compress(self, values: np.ndarray) -> tuple[Model, bytes]:
        model = self.codec_model()
        return model, self._codecs[model.id].encode_frame(values)

    def decompress(self, model_id: str, frame: bytes) -> np.ndarray:
        """Decode a frame of a model this node coded with (KeyError if it never did or forgot it)."""
        return self._codecs[model_id].decode_frame(frame)

    def status(self) -> dict:
        c = self.counters
        return {
            "did": self.identity.did, "round": self.round, "regime": regime.REGIME_NAMES[int(self.state.regime.regime[0])],
            "joining": self.joining > 0, "swarm_model_id": self.model_id,
            "codec_model_id": self._codec_for[1] if self._codec_for is not None else None,
            "peers": len(self.slot_of), "quorum": self.quorum(), "addresses": self.book.status(), "energy": self.energy_status(),
            "bits_per_value": self.bits_per_value, "banned": int(self.state.rep.banned[0].sum()),
            "uptime_s": round(time.time() - self.started, 3), "models_committed": c["models_committed"],
            "messages_accepted": c["messages_accepted"], "messages_dropped": sum(v for k, v in c.items() if k.startswith("dropped_")),
            "counters": {**c, **(self.archive.counters() if self.archive is not None else {})},
        }

    def quorum(self) -> dict:
        """How many peers the node hears updates from (in the last QUORUM_ROUNDS rounds, not banned),
        how many a round needs (the swarm's QUORUM) before its model is committed, and whether it waits."""
        banned = self.state.rep.banned[0]
        have = sum(1 for d, r in self.updated_in.items() if r > self.round - QUORUM_ROUNDS and not banned[self.slot_of[d]])
        return {"needed": node.QUORUM, "peers": have, "waiting": have < node.QUORUM}

    def peer_table(self) -> list[dict]:
        return [
            {"did": did, "reputation": int(self.state.rep.score[0, s]) / 65536, "banned": bool(self.state.rep.banned[0, s]),
             "last_seen": self.last_seen.get(did)}
            for did, s in sorted(self.slot_of.items())
        ]

    @property
    def model_id(self) -> str:
        return model_id(model_gene(self.state.weights[0]))

    # -- transport -----------------------------------------------------------------------
    def connection_made(self, transport) -> None:
        self.transport = transport

    def datagram_received(self, data: bytes, addr) -> None:
        self.counters["datagrams_received"] += 1
        self.round_bytes[1] += len(data)
        if not self.limit.allow(addr, time.monotonic()):
            self.counters["dropped_rate_limited"] += 1
            return
        try:
            whole = self.reassembler.push(data, repr(addr).encode())
            if whole is None:
                return
            ctrl = wire.control(whole)
            if ctrl is not None:
                self._on_control(*ctrl, addr)
                return
            ttl, envelope = wire.unwrap(whole)
            env = open_envelope(envelope, now_ms(), self.guard)
            packet = wire.decode_hello(env.payload) if wire.is_hello(env.payload) else decode_packet(env.payload)
        except QresAuthError as exc:
            # a flood delivers the same message along several paths: the copies after the first
            # are refused here as replays, which is also what suppresses duplicates
            text = str(exc)
            self.counters["dropped_replayed" if "replay" in text else "dropped_stale" if "timestamp" in text else "dropped_unauthentic"] += 1
            return
        except QresFormatError as exc:
            self.counters["dropped_unknown_version" if "unknown version" in str(exc) else "dropped_malformed"] += 1
            return
        if env.did == self.identity.did:  # our own message, come back around
            return
        self.book.heard(addr)
        if isinstance(packet, wire.Hello):
            self._on_hello(env, packet, ttl, envelope, addr, len(whole))
            return
        if did_of(packet.sender) != env.did:  # a packet must be signed by the node it names
            self.counters["dropped_unauthentic"] += 1
            return
        slot = self._slot(env.did)
        if slot is None:
            self.counters["dropped_table_full"] += 1
            return
        if self.state.rep.banned[0, slot]:
            self.counters["dropped_banned"] += 1
            return
        self.last_seen[env.did] = time.time()
        self.counters["messages_accepted"] += 1
        if isinstance(packet, GhostUpdate):
            self.inbox[env.did] = (packet, envelope, ttl)
        elif isinstance(packet, RegimeVote):
            self.votes[env.did] = int(packet.regime)
        elif isinstance(packet, Ban):
            self.counters["ban_reports_received"] += 1
            if len(self.ban_reports) < MAX_BAN_REPORTS:
                self.ban_reports.add((env.did, did_of(packet.banned)))
            target = self.slot_of.get(did_of(packet.banned))
            score = self.state.rep.score[0]
            if ttl > 0 and target is not None and score[slot] > node.START > score[target]:
                # passed on only from a reporter this node thinks well of, against a peer it doubts
                # itself: a slanderer cannot make honest nodes amplify its reports
                self._forward(wire.wrap(envelope, ttl - 1), exclude={addr})

    def _on_control(self, magic: bytes, nonce: bytes, addr) -> None:
        """A probe is answered to where it came from (as many bytes as it brought); an answer
        verifies the address its probe went to."""
        if magic == wire.PROBE_MAGIC:
            self._transmit(wire.answer(nonce), [addr])
            self.counters["probes_answered"] += 1
        elif self.book.answered(nonce, time.monotonic()) is None:
            self.counters["dropped_unasked_answers"] += 1

    def _on_hello(self, env, hello: wire.Hello, ttl: int, envelope: bytes, addr, size: int) -> None:
        """Peer exchange: learn where the origin listens; from a Hello straight from its origin (not
        a relayed copy) also whom it knows, each new address getting a probe paid for by the Hello's
        `size` bytes, so a flood of one Hello does not make every node probe what it names; note
        when the Hello arrived (for propagation figures); pass it on while its TTL lasts."""
        slot = self.slot_of.get(env.did)
        if slot is not None and self.state.rep.banned[0, slot]:
            self.counters["dropped_banned"] += 1
            return
        if ttl > hello.ttl:  # a relay cannot have raised it
            self.counters["dropped_malformed"] += 1
            return
        self.counters["hellos_accepted"] += 1
        self.arrivals.append((env.did, hello.sent_us, time.time_ns() // 1000, ttl))
        self.last_seen[env.did] = time.time()
        listen = hello.listen if hello.listen[0] not in ("0.0.0.0", "::") else (wire.literal_ip(addr[0]), hello.listen[1])
        self.addresses.pop(env.did, None)
        self.addresses[env.did] = listen
        if len(self.addresses) > MAX_LISTEN:  # forget the oldest stranger's (never a table peer's)
            self.addresses.pop(next((d for d in self.addresses if d not in self.slot_of), env.did))
        if ttl == hello.ttl:
            for target, probe in self.book.learn(env.did, size, (listen, *hello.peers), time.monotonic()):
                self._transmit(probe, [target])
        if ttl > 0:
            self._forward(wire.wrap(envelope, ttl - 1), exclude={addr, listen})

    def _transmit(self, message: bytes, targets) -> None:
        """Fragment one wire message and send it to each target address."""
        self.sequence = (self.sequence + 1) % (1 << 32)
        frags = fragment(message, self.sequence)
        for addr in targets:
            for frag in frags:
                self.transport.sendto(frag, addr)
                self.counters["datagrams_sent"] += 1
                self.round_bytes[0] += len(frag)

    def _send(self, payload: bytes, targets) -> None:
        """Sign `payload` and send it with the configured TTL."""
        self._transmit(wire.wrap(seal(self.identity, payload, now_ms()), self.cfg.ttl), targets)

    def _random_known(self, exclude: set) -> list[tuple[str, int]]:
        """`fanout` addresses of the address book (bootstrap or verified) chosen at random, none of
        them in `exclude`."""
        pool = [a for a in self.book.targets() if a not in exclude]
        picked = self.rng.choice(len(pool), min(self.cfg.fanout, len(pool)), replace=False) if pool else []
        return [pool[i] for i in picked]

    def _flood(self, payload: bytes) -> None:
        """Sign one of the node's own flooded messages (Hello, Ban) and send it to `fanout` random
        known addresses with the configured TTL."""
        self._transmit(wire.wrap(seal(self.identity, payload, now_ms()), self.cfg.ttl), self._random_known(set()))

    def _forward(self, message: bytes, exclude: set) -> None:
        """Pass a peer's message on to `fanout` random known addresses, not back to `exclude`."""
        self._transmit(message, self._random_known(exclude))
        self.counters["messages_forwarded"] += 1

    def update_targets(self) -> list[tuple[str, int]]:
        """Where the node's own updates go: its table peers (those not banned, at a verified address)
        and its bootstrap peers, `fanout` of them at random when there are more."""
        banned = {d for d, s in self.slot_of.items() if self.state.rep.banned[0, s]}
        table = [a for d, a in self.addresses.items() if d in self.slot_of and d not in banned and self.book.trusted(a)]
        pool = list(dict.fromkeys(table + list(self.cfg.peers)))
        if len(pool) <= self.cfg.fanout:
            return pool
        return [pool[i] for i in self.rng.choice(len(pool), self.cfg.fanout, replace=False)]

    # -- rounds --------------------------------------------------------------------------
    def run_round(self) -> None:
        """Close the current round with what arrived, then open the next by proposing and sending."""
        if self.step is not None:  # a round of this run is open (a resumed node starts a fresh one)
            self._close_round()
        self.round += 1
        for target, probe in self.book.tick(time.monotonic()):
            self._transmit(probe, [target])
        self._send_hello()
        if self.joining:
            self._join()
            return
        self.step = node.propose(self.state, self.window(), RATE)
        proposal, vote = self.step.proposal[0], int(self.state.vote()[0])
        if self.attack is not None:
            proposal, vote = self._forge(proposal, vote)
        targets = self.update_targets()
        if proposal is not None:
            update = bfp16_from_q16(proposal - GENESIS)
            mid = bytes.fromhex(model_id(model_gene(GENESIS)))
            self._send(GhostUpdate(self.identity.public_key, self.round, mid, update, int(self.step.residual_error[0]), int(self.step.accuracy_delta[0])).to_bytes(), targets)
        if vote != regime.CALM:
            self._send(RegimeVote(self.identity.public_key, self.round, vote, int(self.step.entropy[0])).to_bytes(), targets)
        if self.attack is not None and self.attack.slanders:  # false ban reports against every peer it holds
            self._report_bans(~self.state.rep.banned[0] & np.isin(np.arange(MAX_PEERS), list(self.did_of_slot)), BanReason.OUTLIER)

    def _send_hello(self) -> None:
        """Every HELLO_EVERY rounds (every round while it knows fewer than `fanout` addresses) the
        node floods a Hello: where it listens and some peers it knows."""
        known = self.book.targets()
        if self.round % HELLO_EVERY == 1 or len(known) < self.cfg.fanout:
            hello = wire.Hello(time.time_ns() // 1000, self.listen,
                               tuple(known[i] for i in self.rng.permutation(len(known))[: wire.MAX_HELLO_PEERS]), self.cfg.ttl)
            self._flood(hello.to_bytes())

    def _join(self) -> None:
        """A new node (no verified model stored) listens for JOIN_ROUNDS rounds before it proposes:
        as soon as a round brings a quorum of peer updates it starts from their coordinate-wise
        median (robust while attackers are a minority), so the swarm does not judge a newcomer's
        genesis model against its own; a swarm that is itself starting gives no quorum, and the
        node then starts from genesis like its peers."""
        updates = [GENESIS + np.asarray(bfp16_to_q16(p.update), np.int64) for p, _, _ in self.inbox.values() if len(p.update) == learn.ORDER]
        self._note_quorum()
        self.inbox.clear()
        self.votes.clear()
        self.ban_reports.clear()
        self.joining -= 1
        if len(updates) >= node.QUORUM:
            start = Median()(np.array(updates)[None])[0]
            self.state.weights[0] = start
            self.state.verified[0] = start
            self.joining = 0
            self.counters["joined_from_peers"] += 1
        self._save()

    def _forge(self, proposal: np.ndarray, vote: int) -> tuple[np.ndarray | None, int]:
        """What an attacking node (config `node.attack`, for test clusters) sends instead: the
        attack's forgery from its own proposal and what it heard last round; None to stay silent."""
        rows = np.vstack([proposal[None], self.heard]) if len(self.heard) else proposal[None]
        byz = np.zeros(len(rows), bool)
        byz[0] = True
        ctx = attacks.AttackContext(rows, byz, GENESIS, self.shared_direction, self.rng)
        forged = self.attack.forge(ctx)[0]
        if self.attack.straggles and self.rng.random() < self.attack.late:
            return None, vote
        return forged, regime.STORM if self.attack.votes_storm else vote

    def _close_round(self) -> None:
        inbox = np.repeat(self.step.proposal[:, None], MAX_PEERS, axis=1)
        present = np.zeros((1, MAX_PEERS), bool)
        votes = np.full((1, MAX_PEERS), -1, np.int8)
        residual = np.zeros((1, MAX_PEERS), np.int64)
        gain = np.zeros((1, MAX_PEERS), np.int64)
        for did, (packet, _, _) in self.inbox.items():
            slot = self.slot_of[did]
            if len(packet.update) == learn.ORDER:  # what arrived during this round; peers count their own rounds
                inbox[0, slot] = GENESIS + np.asarray(bfp16_to_q16(packet.update), np.int64)
                present[0, slot] = True
                votes[0, slot] = self.votes.get(did, regime.CALM)
                residual[0, slot], gain[0, slot] = packet.residual_error, packet.accuracy_delta
        self.heard = inbox[present]
        self._note_quorum()
        reports = [(self.slot_of[r], self.slot_of[t]) for r, t in self.ban_reports if r in self.slot_of and t in self.slot_of]
        self.ban_reports.clear()
        spread = node.spread_bans(self.state, np.array([r for r, _ in reports], np.int64), np.array([t for _, t in reports], np.int64))[0]
        result = node.receive(self.state, self.step, inbox, present, votes)
        self._report_bans(result.new_bans[0] & ~spread, BanReason.OUTLIER)
        self._report_bans(spread, BanReason.RELAYED_BAN)
        self._relay(result.accepted, residual, gain)
        self.inbox.clear()
        self.votes.clear()
        self.counters["rounds"] += 1
        committed = None
        if result.verified[0]:
            gene = model_gene(self.state.verified[0])
            committed = StoredModel(model_id(gene), gene, self.round, True)
            self.counters["models_committed"] += 1
        self._draw_battery()
        self._record()
        self._save(committed)

    def _note_quorum(self) -> None:
        """Note whose updates arrived this round; log the quorum state when it changes (waiting for
        peers, and how many it has, or no longer waiting)."""
        self.updated_in.update(dict.fromkeys(self.inbox, self.round))
        q = self.quorum()
        said = (q["waiting"], q["peers"] if q["waiting"] else None)
        if said != self.quorum_said:
            self.quorum_said = said
            text = (f"waiting for {q['needed']} peers, have {q['peers']}: a model is committed only in a round with updates from "
                    f"{q['needed']} peers (add peers: gossip.peers in node.toml or QRES_GOSSIP_PEERS)" if q["waiting"]
                    else f"quorum reached: updates from {q['peers']} peers, models can be committed")
            print(f"round {self.round}: {text}", file=sys.stderr, flush=True)

    def _report_bans(self, slots: np.ndarray, reason: BanReason) -> None:
        """Flood a Ban of each peer in `slots` (bool over the table) to `fanout` known addresses."""
        for slot in np.flatnonzero(slots):
            did = self.did_of_slot.get(int(slot))
            if did is None:
                continue
            ban = Ban(self.identity.public_key, self.round, public_key_of(did), reason)
            self._flood(ban.to_bytes())
            self.counters["bans_reported"] += 1

    def _relay(self, accepted: np.ndarray, residual: np.ndarray, gain: np.ndarray) -> None:
        """Pass on the `RELAY` accepted updates of highest epidemic priority (the swarm's relay
        rule: only gains above the cure threshold), while their TTL lasts."""
        prio = node.relay_priority(self.state, accepted, residual, gain)[0]
        by_slot = {self.slot_of[d]: (env, ttl, self.addresses.get(d)) for d, (_, env, ttl) in self.inbox.items()}
        for slot in np.argsort(-prio, kind="stable")[:RELAY]:
            if prio[slot] > 0 and slot in by_slot and by_slot[slot][1] > 0:
                env, ttl, origin = by_slot[slot]
                self._forward(wire.wrap(env, ttl - 1), exclude={origin})

    def _draw_battery(self) -> None:
        """Draw the modelled battery (if any) for the wall-clock and CPU seconds since the last
        draw and the bytes the round sent and received."""
        wall, cpu = time.monotonic(), time.process_time()
        if self.battery is not None:
            self.battery.draw(wall - self._drawn[0], cpu - self._drawn[1], *self.round_bytes)
        self._drawn = (wall, cpu)
        self.round_bytes = [0, 0]

    def _record(self) -> None:
        """Append the closed round to the timeline: regime, energy, bits per value of the round's
        newest frame coded with the node's model, model id, peers."""
        model, frame = self.compress(self.history(64))
        self.bits_per_value = 8.0 * len(frame) / 64
        self.timeline.append({
            "round": self.round, "t": round(time.time(), 3), "regime": regime.REGIME_NAMES[int(self.state.regime.regime[0])],
            "charge": None if self.battery is None else self.battery.charge, "bits_per_value": self.bits_per_value,
            "swarm_model_id": self.model_id, "codec_model_id": model.id, "peers": len(self.slot_of),
            "banned": int(self.state.rep.banned[0].sum()),
        })

    def energy_status(self) -> dict:
        """The energy profile; for a battery profile, the modelled battery (`Battery.status`)."""
        return {"profile": MAINS, "battery": "none"} if self.battery is None else self.battery.status()

    def _save(self, model: StoredModel | None = None) -> None:
        """Commit the round's model (if any), the peer table and the round state in one transaction."""
        t = time.time()
        peers = [PeerRecord(did, int(self.state.rep.score[0, s]), bool(self.state.rep.banned[0, s]), t) for did, s in self.slot_of.items()]
        values = {"round": self.round, "counters": dict(self.counters), "regime": regime.REGIME_NAMES[int(self.state.regime.regime[0])]}
        if self.battery is not None:
            values["energy_uj"] = int(self.battery.pool.charge_uj[0])
        self._writer.submit(self._commit, peers, values, model)

    def _commit(self, peers: list[PeerRecord], values: dict, model: StoredModel | None) -> None:
        """On the writer thread: commit one round, then hand its model to the archive."""
        try:
            self.store.save_round(peers, values, model)
        except sqlite3.Error as exc:  # a full or failing disk: count it, keep gossiping, retry next round
            self.counters["store_errors"] += 1
            print(f"store: round {values['round']} not saved: {exc}", file=sys.stderr, flush=True)
            return
        if model is not None and self.archive is not None:
            self.archive.committed(model.id, model.gene, model.round)

    async def run(self, listening=lambda: None) -> None:
        """Listen for gossip, serve the API (calling `listening()` once both ports are bound), run
        rounds every `round_seconds` until `stop()`, then save and close everything. ListenError
        when a port cannot be bound."""
        cfg = self.cfg
        serving = feeding = None
        try:
            self.compress(self.history(64))  # load the codec's compiled kernels now, not in the middle of a round
            try:
                await asyncio.get_running_loop().create_datagram_endpoint(lambda: self, local_addr=(cfg.gossip_host, cfg.gossip_port))
            except OSError as exc:
                raise _listen_error("gossip (UDP)", cfg.gossip_host, cfg.gossip_port, "gossip.port", exc) from None
            try:
                api_socket = _api_socket(cfg.api_host, cfg.api_port)
            except OSError as exc:
                raise _listen_error("API (TCP)", cfg.api_host, cfg.api_port, "api.port", exc) from None
            api = _ApiServer(uvicorn.Config(create_app(self), log_level="warning", lifespan="off",
                                              timeout_graceful_shutdown=5))  # a client that never reads cannot hold up a stop
            serving = asyncio.create_task(api.serve(sockets=[api_socket]))
            listening()
            if self.feed_source is not None and len(self.feed_source):
                feeding = asyncio.create_task(self._replay_feed())
            while not self._stopping.is_set():
                self.run_round()
                try:
                    await asyncio.wait_for(self._stopping.wait(), self.cfg.round_seconds)
                except TimeoutError:
                    pass
        finally:
            if feeding is not None:
                feeding.cancel()
            if serving is not None:
                api.should_exit = True
                await serving
            if self.transport is not None:
                self.transport.close()
            if serving is not None:  # the node ran: its last state and arrivals are saved
                self._save()
            self._writer.shutdown(wait=True)  # every round handed to the writer is committed
            if serving is not None:
                self.store.put("arrivals", list(self.arrivals))  # for a cluster's propagation figures
            self.store.close()
            if self.archive is not None:
                self.archive.close()

    async def _replay_feed(self) -> None:
        """Feed the `--feed` readings at `feed_rate` per second, in batches every 0.1 s, from the
        start again when they run out."""
        pos, owed, last = 0, 0.0, time.monotonic()
        while True:
            await asyncio.sleep(0.1)
            t = time.monotonic()
            owed += (t - last) * self.feed_rate
            last = t
            count, owed = int(owed), owed - int(owed)
            idx = (pos + np.arange(count)) % len(self.feed_source)
            self.feed(self.feed_source[idx])
            pos = (pos + count) % len(self.feed_source)
            self.counters["readings_fed"] += count

    def stop(self) -> None:
        self._stopping.set()

    @property
    def stopping(self) -> asyncio.Event:
        """Set by `stop()`; what serves the node (the dashboard's event streams) ends on it."""
        return self._stopping


class _ApiServer(uvicorn.Server):
    """uvicorn's server without its own signal handling: the daemon owns SIGINT and SIGTERM."""

    @contextlib.contextmanager
    def capture_signals(self):
        yield


def run_daemon(cfg: NodeConfig, feed: np.ndarray | None = None, feed_rate: float = 32.0) -> dict:
    """Run a node until SIGINT or SIGTERM (replaying `feed` readings at `feed_rate` per second when
    given); return its counters."""

    async def main() -> dict:
        daemon = NodeDaemon(cfg, feed, feed_rate)
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, daemon.stop)
        await daemon.run(lambda: print(f"node {daemon.identity.did} gossiping on udp://{cfg.gossip_host}:{cfg.gossip_port}, "
                                       f"API on http://{cfg.api_host}:{cfg.api_port}", flush=True))
        return dict(daemon.counters)

    cfg = resolve_peers(cfg)  # host names looked up here, before the event loop runs
    return asyncio.run(main())
