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
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import signal
import time
from collections import defaultdict, deque

import numpy as np
import uvicorn

from .. import datasets
from ..codec.frame import Codec
from ..codec.model import Model
from ..errors import QresAuthError, QresFormatError
from ..fixed import bfp16_from_q16, bfp16_to_q16, to_q16
from ..swarm import energy, learn, node, regime
from ..swarm.packets import GhostUpdate, Reassembler, RegimeVote, decode_packet, fragment
from .api import create_app
from .config import NodeConfig
from .identity import Identity, ReplayGuard, did_of, open_envelope, seal
from .storage import PeerRecord, Store

MAX_PEERS = 16  # peer slots of the node's table
FED_READINGS = 4096  # readings from /readings the node keeps
KEEP_CODECS = 16  # codec models a node can still decompress frames of
HISTORY = 1024  # readings the codec model's transform and tables are fitted on
TIMELINE = 600  # rounds of history kept for the dashboard
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

    def __init__(self, cfg: NodeConfig):
        self.cfg = cfg
        self.identity: Identity = cfg.identity()
        self.store = Store.open(cfg.data_dir)
        self.guard = ReplayGuard()
        self.reassembler = Reassembler(max_pending=256)
        self.limit = _RateLimit(cfg.rate_limit)
        self.counters: dict[str, int] = defaultdict(int)
        self.state = node.NodeState(np.full((1, MAX_PEERS), -1), GENESIS, MAX_PEERS + 1)
        self.slot_of: dict[str, int] = {}  # peer DID -> slot in the node's table
        self.did_of_slot: dict[int, str] = {}
        self.addresses: dict[str, tuple[str, int]] = {}  # peer DID -> where it sends from
        self.last_seen: dict[str, float] = {}  # peer DID -> when its last message was accepted (s since the epoch)
        self.round = int(self.store.get("round", 0))
        self.inbox: dict[str, GhostUpdate] = {}
        self.votes: dict[str, int] = {}
        self.sequence = 0
        self.step: learn.LocalStep | None = None  # this round's own proposal, once made
        self.transport: asyncio.DatagramTransport | None = None
        self._stopping = asyncio.Event()
        chan = datasets.channels(cfg.dataset)[cfg.channel % len(datasets.channels(cfg.dataset))]
        self.readings = chan.exact_integers
        self.fed: deque[int] = deque(maxlen=FED_READINGS)  # readings posted to /readings, newest last
        self._codecs: dict[str, Codec] = {}  # codec model id -> codec, newest last (at most KEEP_CODECS)
        self._codec_for: tuple[str, str] | None = None  # (swarm model id, codec model id) of the current codec
        self.energy = energy.EnergyPool(1, energy.PROFILES[cfg.profile])
        self.round_bytes = [0, 0]  # bytes sent and received in the open round
        self.bits_per_value: float | None = None  # of the newest frame coded with the node's model
        self.timeline: deque[dict] = deque(maxlen=TIMELINE)  # one record per closed round, newest last
        self.started = time.time()
        self._resume()

    # -- state ---------------------------------------------------------------------------
    def _resume(self) -> None:
        latest = self.store.latest_verified()
        if latest is not None:
            w = np.frombuffer(latest.gene, "<i4").astype(np.int64)
            self.state.weights[0] = w
            self.state.verified[0] = w
        for rec in self.store.peers():
            slot = self._slot(rec.did)
            if slot is not None:
                self.state.rep.score[0, slot] = rec.score
                self.state.rep.banned[0, slot] = rec.banned
        charge = self.store.get("energy_uj")
        if charge is not None:
            self.energy.charge_uj[0] = min(int(charge), int(self.energy.capacity_uj))

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
        (rebuilt when the swarm model changes)."""
        if self._codec_for is None or self._codec_for[0] != self.model_id:
            model = learn.codec_model(self.history(HISTORY), self.state.weights[0])
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
            "model_id": self.model_id, "peers": len(self.slot_of), "energy": self.energy_status(), "bits_per_value": self.bits_per_value, "banned": int(self.state.rep.banned[0].sum()),
            "uptime_s": round(time.time() - self.started, 3), "models_committed": c["models_committed"],
            "messages_accepted": c["messages_accepted"], "messages_dropped": sum(v for k, v in c.items() if k.startswith("dropped_")),
            "counters": dict(c),
        }

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
            env = open_envelope(whole, now_ms(), self.guard)
            packet = decode_packet(env.payload)
        except QresAuthError as exc:
            self.counters["dropped_replayed" if "replay" in str(exc) else "dropped_unauthentic"] += 1
            return
        except QresFormatError:
            self.counters["dropped_malformed"] += 1
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
        self.addresses[env.did] = addr
        self.last_seen[env.did] = time.time()
        self.counters["messages_accepted"] += 1
        if isinstance(packet, GhostUpdate):
            self.inbox[env.did] = packet
        elif isinstance(packet, RegimeVote):
            self.votes[env.did] = int(packet.regime)

    def _send(self, payload: bytes) -> None:
        envelope = seal(self.identity, payload, now_ms())
        self.sequence = (self.sequence + 1) % (1 << 32)
        targets = list(self.cfg.peers) + [a for d, a in self.addresses.items() if a not in self.cfg.peers]
        for addr in targets[: self.cfg.fanout]:
            for frag in fragment(envelope, self.sequence):
                self.transport.sendto(frag, addr)
                self.counters["datagrams_sent"] += 1
                self.round_bytes[0] += len(frag)

    # -- rounds --------------------------------------------------------------------------
    def run_round(self) -> None:
        """Close the current round with what arrived, then open the next by proposing and sending."""
        if self.step is not None:  # a round of this run is open (a resumed node starts a fresh one)
            self._close_round()
        self.round += 1
        self.step = node.propose(self.state, self.window(), RATE)
        update = bfp16_from_q16(self.step.proposal[0] - GENESIS)
        mid = bytes.fromhex(model_id(model_gene(GENESIS)))
        self._send(GhostUpdate(self.identity.public_key, self.round, mid, update, int(self.step.residual_error[0]), int(self.step.accuracy_delta[0])).to_bytes())
        if self.state.regime.regime[0] != regime.CALM:
            self._send(RegimeVote(self.identity.public_key, self.round, int(self.state.vote()[0]), int(self.step.entropy[0])).to_bytes())

    def _close_round(self) -> None:
        inbox = np.repeat(self.step.proposal[:, None], MAX_PEERS, axis=1)
        present = np.zeros((1, MAX_PEERS), bool)
        votes = np.full((1, MAX_PEERS), -1, np.int8)
        for did, packet in self.inbox.items():
            slot = self.slot_of[did]
            if len(packet.update) == learn.ORDER:  # what arrived during this round; peers count their own rounds
                inbox[0, slot] = GENESIS + np.asarray(bfp16_to_q16(packet.update), np.int64)
                present[0, slot] = True
                votes[0, slot] = self.votes.get(did, regime.CALM)
        self.inbox.clear()
        self.votes.clear()
        result = node.receive(self.state, self.step, inbox, present, votes)
        self.counters["rounds"] += 1
        if result.verified[0]:
            gene = model_gene(self.state.verified[0])
            self.store.save_model(model_id(gene), gene, self.round, verified=True)
            self.counters["models_committed"] += 1
        self._spend_energy()
        self._record()
        self._save()

    def _spend_energy(self) -> None:
        """Draw one TWT period of the modelled hardware for the round (its length by regime,
        reputation and charge; radio time from the bytes actually sent and received)."""
        own_rep = np.full(1, 1 << 16)
        wake = energy.wake_interval_s(self.state.regime.regime, own_rep, self.energy.charge_q16())
        energy.spend_period(self.energy, wake, np.array([self.round_bytes[0]]), np.array([self.round_bytes[1]]))
        self.round_bytes = [0, 0]

    def _record(self) -> None:
        """Append the closed round to the timeline: regime, energy, bits per value of the round's
        newest frame coded with the node's model, model id, peers."""
        model, frame = self.compress(self.history(64))
        self.bits_per_value = 8.0 * len(frame) / 64
        self.timeline.append({
            "round": self.round, "t": round(time.time(), 3), "regime": regime.REGIME_NAMES[int(self.state.regime.regime[0])],
            "charge": round(float(self.energy.charge_q16()[0]) / 65536, 5), "bits_per_value": self.bits_per_value,
            "model_id": self.model_id, "codec_model_id": model.id, "peers": len(self.slot_of),
            "banned": int(self.state.rep.banned[0].sum()),
        })

    def energy_status(self) -> dict:
        """The modelled battery: charge (fraction and microjoules), brownouts, radio sleep ratio."""
        e = self.energy
        return {"profile": e.profile.name, "charge": round(float(e.charge_q16()[0]) / 65536, 5), "charge_uj": int(e.charge_uj[0]),
                "brownouts": int(e.brownouts[0]), "sleep_ratio": round(float(e.sleep_ratio()[0]), 5),
                "modelled_s": int(e.elapsed_s[0])}

    def _save(self) -> None:
        t = time.time()
        self.store.save_peers([
            PeerRecord(did, int(self.state.rep.score[0, s]), bool(self.state.rep.banned[0, s]), t) for did, s in self.slot_of.items()
        ])
        self.store.put("round", self.round)
        self.store.put("counters", dict(self.counters))
        self.store.put("regime", regime.REGIME_NAMES[int(self.state.regime.regime[0])])
        self.store.put("energy_uj", int(self.energy.charge_uj[0]))

    async def run(self) -> None:
        """Listen for gossip, serve the API, run rounds every `round_seconds` until `stop()`, then
        save and close everything."""
        loop = asyncio.get_running_loop()
        await loop.create_datagram_endpoint(lambda: self, local_addr=(self.cfg.gossip_host, self.cfg.gossip_port))
        api = _ApiServer(uvicorn.Config(create_app(self), host=self.cfg.api_host, port=self.cfg.api_port, log_level="warning", lifespan="off"))
        serving = asyncio.create_task(api.serve())
        try:
            while not self._stopping.is_set():
                self.run_round()
                try:
                    await asyncio.wait_for(self._stopping.wait(), self.cfg.round_seconds)
                except TimeoutError:
                    pass
        finally:
            api.should_exit = True
            await serving
            self._save()
            self.transport.close()
            self.store.close()

    def stop(self) -> None:
        self._stopping.set()


class _ApiServer(uvicorn.Server):
    """uvicorn's server without its own signal handling: the daemon owns SIGINT and SIGTERM."""

    @contextlib.contextmanager
    def capture_signals(self):
        yield


def run_daemon(cfg: NodeConfig) -> dict:
    """Run a node until SIGINT or SIGTERM; return its counters."""

    async def main() -> dict:
        daemon = NodeDaemon(cfg)
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, daemon.stop)
        print(f"node {daemon.identity.did} gossiping on udp://{cfg.gossip_host}:{cfg.gossip_port}, "
              f"API on http://{cfg.api_host}:{cfg.api_port}", flush=True)
        await daemon.run()
        return dict(daemon.counters)

    return asyncio.run(main())
