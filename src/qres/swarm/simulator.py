"""The swarm simulator: thousands of nodes running the node rules (`node.py`) on real recordings.

Every node gets a stream of the bundled recordings (a channel and a seeded offset of its own, so
nodes differ as real sites do). Each round every node takes `samples_per_round` new readings,
proposes a local update, gossips it (as BFP-16) to the nodes that hear it, and closes the round
with `node.receive`. Attackers forge what they send (`attacks.py`); the network loses and delays
messages; energy is drawn per round for the node's own wake interval (`energy.py`), so one round is
one TWT service period and its simulated length depends on the node's regime, reputation and charge.

`simulate(config)` returns a `SimResult` (summary, one record per round, series for plots); the
report files are written by `report.write_report`. Same config and seed, same result, byte for byte
(wall time aside).
"""

from __future__ import annotations

import time
from collections.abc import Callable
import dataclasses
from dataclasses import dataclass, field

import numpy as np

from .. import datasets
from ..fixed import Q16_ONE, bfp16_quantise_rows, to_q16
from . import attacks, learn, node, regime, topology
from .aggregate import Adaptive, Krum, Mean, Median, MultiKrum, ReputationWeighted, TrimmedMean
from .energy import PROFILES, UJ_PER_MWS, WAKE_INTERVAL_S, EnergyPool, spend_period, wake_interval_s
from .packets import FRAG_HEADER_LEN

AGGREGATORS = ("adaptive", "mean", "trimmed_mean", "median", "krum", "multi_krum", "reputation")
NEWCOMER_SLOTS = 2  # peer slots open to unknown identities (filled by Sybils in the sybil attack)
SYBIL_ID_START = 1 << 30
GHOST_BYTES = 63 + 2 * learn.ORDER + FRAG_HEADER_LEN  # one GhostUpdate in one fragment
VOTE_BYTES = 49 + FRAG_HEADER_LEN
BAN_BYTES = 77 + FRAG_HEADER_LEN
DAY_S = 86_400
VALUE_BYTES = 4  # a raw reading (int32) or a float32 weight, as uploaded instead of gossip
SENSOR_RATE_HZ = 1.0  # a realistic rate for a sensor read continuously: the stated rate raw uploads are also compared at
CONSENSUS = 0.01  # honest disagreement below 1% is consensus
CENTRAL_NODES = 1000  # the central reference model is fitted on at most this many honest nodes' data


@dataclass(frozen=True)
class SimConfig:
    """Parameters of one run (every field is in summary.json)."""

    nodes: int = 100
    rounds: int = 100
    byzantine: float = 0.0  # fraction of attackers
    attack: str = "none"
    dataset: str = "heartpy_ppg"
    seed: int = 0
    topology: str = "random_regular"
    degree: int = 16  # peers each node hears
    loss: float = 0.0  # probability a message is lost
    delay: float = 0.0  # probability a message arrives one round late (its previous round's content)
    samples_per_round: int = 32
    window: int = 128  # readings a node keeps for its local update
    rate: float = 0.5  # Calm learning rate (Storm: 5x, at most 1)
    aggregator: str = "adaptive"
    eval_nodes: int = 100  # honest nodes whose bits/value are measured with the codec
    eval_samples: int = 1024  # held-out readings per evaluated node
    profile: str = "esp32-c6"
    initial_charge: float = 1.0  # battery fraction at the start
    solar: bool = True  # intermittent solar charging (one seeded cloud factor per day)
    days: float = 0.0  # > 0: run until every honest node has lived this many days (rounds is then a cap)
    gossip: bool = True  # False: every node learns alone (the local-only baseline)
    relay: int = 2  # updates a node takes per round from its peers' epidemic relays (0: none)

    def check(self) -> None:
        """Raise ValueError naming the first parameter out of range."""
        if self.nodes < 2:
            raise ValueError(f"nodes must be at least 2, got {self.nodes}")
        if self.rounds < 1:
            raise ValueError(f"rounds must be at least 1, got {self.rounds}")
        if not 0.0 <= self.byzantine < 1.0:
            raise ValueError(f"byzantine must be a fraction in [0, 1), got {self.byzantine}")
        if round(self.byzantine * self.nodes) > self.nodes - 2:
            raise ValueError(f"byzantine {self.byzantine} leaves fewer than 2 honest nodes of {self.nodes}")
        if self.eval_nodes < 1 or self.eval_samples < 64:
            raise ValueError(f"eval_nodes must be at least 1 and eval_samples at least 64 (one frame), got {self.eval_nodes} and {self.eval_samples}")
        if self.attack not in attacks.ATTACKS:
            raise ValueError(f"unknown attack {self.attack!r}; choose one of {', '.join(attacks.ATTACKS)}")
        if self.dataset not in datasets.VALUE_COLUMNS:
            raise ValueError(f"unknown dataset {self.dataset!r}; bundled: {', '.join(datasets.VALUE_COLUMNS)}")
        if self.topology not in topology.TOPOLOGIES:
            raise ValueError(f"unknown topology {self.topology!r}; choose one of {', '.join(topology.TOPOLOGIES)}")
        if self.aggregator not in AGGREGATORS:
            raise ValueError(f"unknown aggregator {self.aggregator!r}; choose one of {', '.join(AGGREGATORS)}")
        if self.profile not in PROFILES:
            raise ValueError(f"unknown device profile {self.profile!r}; choose one of {', '.join(PROFILES)}")
        if not 1 <= self.degree < self.nodes:
            raise ValueError(f"degree must be 1..{self.nodes - 1}, got {self.degree}")
        for name in ("loss", "delay"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ValueError(f"{name} must be a probability in [0, 1], got {getattr(self, name)}")
        if not 0.0 < self.rate <= 1.0:
            raise ValueError(f"rate must be in (0, 1], got {self.rate}")
        if not 0 <= self.relay <= self.degree:
            raise ValueError(f"relay must be 0..degree ({self.degree}), got {self.relay}")
        if self.window < 2 * learn.ORDER or self.samples_per_round < 1:
            raise ValueError(f"window must be at least {2 * learn.ORDER} and samples_per_round positive")
        if not 0.0 < self.initial_charge <= 1.0:
            raise ValueError(f"initial_charge must be in (0, 1], got {self.initial_charge}")


@dataclass
class SimResult:
    """A run's summary (the fields of summary.json), one record per round, and per-node series."""

    config: SimConfig
    summary: dict
    rounds: list[dict]
    series: dict = field(default_factory=dict)


def _aggregator(name: str, nodes: int, slots: int):
    f = max(1, (slots + 1) // 5)
    return {
        "adaptive": lambda: Adaptive(nodes),
        "mean": Mean,
        "trimmed_mean": lambda: TrimmedMean(0.2),
        "median": Median,
        "krum": lambda: Krum(f),
        "multi_krum": lambda: MultiKrum(f, max(1, slots + 1 - f)),
        "reputation": lambda: ReputationWeighted(nodes),
    }[name]()


class _Streams:
    """Every node's stream: a channel of the dataset and an offset into it (read with wrap-around)."""

    def __init__(self, dataset: str, n: int, rng: np.random.Generator):
        chans = [c.exact_integers for c in datasets.channels(dataset)]
        self.data = np.concatenate(chans)
        self.lengths = np.array([len(c) for c in chans], np.int64)
        starts = np.concatenate([[0], np.cumsum(self.lengths)[:-1]])
        self.channel = rng.permutation(np.arange(n) % len(chans))
        self.start = starts[self.channel]
        self.length = self.lengths[self.channel]
        self.offset = rng.integers(0, self.length)

    def read(self, rows: np.ndarray, first: int, count: int) -> np.ndarray:
        """Readings first .. first+count-1 (after each node's offset) of the nodes in `rows`: int64 (len(rows), count)."""
        pos = (self.offset[rows, None] + first + np.arange(count)[None]) % self.length[rows, None]
        return self.data[self.start[rows, None] + pos]


def _slot_mask(shape: tuple[int, int], cols: slice) -> np.ndarray:
    mask = np.zeros(shape, bool)
    mask[:, cols] = True
    return mask


def _rel(a: np.ndarray, ref: np.ndarray) -> float:
    den = float(np.linalg.norm(ref))
    return float(np.linalg.norm(a - ref)) / den if den > 0 else float(np.linalg.norm(a) > 0)


def disagreement(w: np.ndarray) -> float:
    """max over nodes of |w_i - mean| / |mean| (L2 norms, float64)."""
    if len(w) == 0:
        return 0.0
    x = w.astype(np.float64)
    mean = x.mean(axis=0)
    den = float(np.linalg.norm(mean))
    spread = float(np.linalg.norm(x - mean, axis=1).max())
    return spread / den if den > 0 else (0.0 if spread == 0 else float("inf"))


def _received_reputation(peers: np.ndarray, score: np.ndarray, n: int) -> np.ndarray:
    """Each node's reputation as its observers hold it (mean score, Q16.16; 0.5 when nobody holds it)."""
    ok = (peers >= 0) & (peers < n)
    total = np.bincount(peers[ok], weights=score[ok].astype(np.float64), minlength=n)
    count = np.bincount(peers[ok], minlength=n)
    return np.where(count > 0, total // np.maximum(count, 1), Q16_ONE // 2).astype(np.int64)


def _ban_counts(peers: np.ndarray, banned: np.ndarray, honest: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray]:
    """For each node: how many honest observers hold it, and how many of those banned it."""
    rows = honest[:, None] & (peers >= 0) & (peers < n)
    holders = np.bincount(peers[rows], minlength=n)
    banners = np.bincount(peers[rows & banned], minlength=n)
    return holders, banners


def _flood_sybils(state, r: int, byz, src, present, inbox, proposals, base, newcomer: int) -> None:
    """Fresh identities (new ids every round) fill the newcomer slots of every node an attacker
    reaches, each sending the attackers' biased proposal. Updates the round's arrays in place."""
    n, slots = state.peers.shape
    reached = (byz[src] & present).any(axis=1)
    fresh = np.zeros(state.peers.shape, bool)
    fresh[:, -newcomer:] = reached[:, None]
    ids = SYBIL_ID_START + (r * n + np.arange(n))[:, None] * newcomer + np.arange(slots)[None] - (slots - newcomer)
    state.replace_peers(fresh, np.where(fresh, ids, state.peers))
    sybil = proposals + int(attacks.Bias.magnitude * Q16_ONE)
    inbox[:, -newcomer:] = (base + bfp16_quantise_rows(sybil - base))[:, None]
    present[:, -newcomer:] = reached[:, None]


def _take_relays(state, relay: slice, direct, heard, present, inbox, votes, prev_sent, relayed, relayed_prio) -> None:
    """Each node takes the highest-priority updates its peers (`heard`, the ids in its direct
    slots) pass on, from nodes it does not hear itself, into its relay slots; in place."""
    n = state.n
    known = np.concatenate([np.arange(n)[:, None], direct], axis=1)
    offered = np.where(present[:, : heard.shape[1]], relayed[heard], -1)
    pick = node.pick_relays(offered, relayed_prio[heard], known, relay.stop - relay.start)
    ids = state.peers.copy()
    ids[:, relay] = pick
    state.replace_peers(_slot_mask(state.peers.shape, relay), ids)
    inbox[:, relay] = prev_sent[np.maximum(pick, 0)]  # what the origin sent last round
    present[:, relay] = pick >= 0
    votes[:, relay] = -1  # a relay carries the update, not the origin's vote


def _slander(state, byz, honest) -> tuple[np.ndarray, np.ndarray]:
    """Ban reports (reporters, targets) of every attacker against every honest node it hears."""
    n, slots = state.peers.shape
    mask = byz[:, None] & (state.peers >= 0) & (state.peers < n)
    rows = np.repeat(np.arange(n), slots)[mask.ravel()]
    targets = state.peers[mask].astype(np.int64)
    keep = honest[targets]
    return rows[keep], targets[keep]


def _run(cfg: SimConfig, progress: Callable[[int], None] | None, reference: np.ndarray | None) -> SimResult:
    n = cfg.nodes
    rng, net, adversary, _ = (np.random.default_rng(s) for s in np.random.SeedSequence(cfg.seed).spawn(4))
    streams = _Streams(cfg.dataset, n, rng)
    n_byz = int(round(cfg.byzantine * n))
    byz = np.zeros(n, bool)
    byz[rng.choice(n, n_byz, replace=False)] = True
    attack = attacks.make(cfg.attack) if n_byz else attacks.make("none")
    honest = ~byz
    peers = topology.build(cfg.topology, n, cfg.degree, rng)
    direct = peers.copy()  # the nodes each node hears itself
    newcomer = NEWCOMER_SLOTS if attack.sybils else 0
    relay = slice(cfg.degree, cfg.degree + cfg.relay)  # slots for updates passed on by peers (epidemic, one hop further)
    peers = np.concatenate([peers, np.full((n, cfg.relay + newcomer), -1, np.int64)], axis=1)
    slots = peers.shape[1]
    base = np.zeros(learn.ORDER, np.int64)
    state = node.NodeState(peers, base, n, _aggregator(cfg.aggregator, n, slots))
    pool = EnergyPool(n, PROFILES[cfg.profile], cfg.initial_charge)
    clock = np.zeros(n, np.int64)
    longest_days = -(-cfg.rounds * int(WAKE_INTERVAL_S.max()) // DAY_S)  # no round lasts longer than the Calm interval
    cloud = rng.uniform(0.0, 1.0, size=longest_days + 2) if cfg.solar else np.zeros(1)  # one factor per day
    direction = rng.normal(size=learn.ORDER)
    direction /= np.linalg.norm(direction)
    rate_q16 = int(to_q16(cfg.rate))
    offline = np.zeros(n, np.int64)  # rounds a dropout stays away
    prev_sent = np.tile(base, (n, 1))
    relayed = np.full(n, -1, np.int64)  # the origin each node passes on this round (-1: none), chosen last round
    relayed_prio = np.zeros(n, np.int64)
    ban_rep, ban_tgt = np.zeros(0, np.int64), np.zeros(0, np.int64)
    sent_bytes = np.zeros(n, np.int64)
    records: list[dict] = []
    mean_series = []
    first_banned = np.zeros(n, np.int64)  # round in which honest observers' majority banned each node
    false_alarms = 0  # PreStorm -> Calm among honest nodes
    for r in range(cfg.rounds):
        windows = streams.read(np.arange(n), r * cfg.samples_per_round, cfg.window + 1)
        step = node.propose(state, windows, rate_q16)
        ctx = attacks.AttackContext(step.proposal, byz, base, direction, adversary)
        sent = attack.forge(ctx) if n_byz else step.proposal
        sent = base + bfp16_quantise_rows(sent - base)
        self_rep = _received_reputation(state.peers, state.rep.score, n)
        charge = pool.charge_q16()
        sends = node.gossip_decision(state, step, self_rep, charge) | byz
        if attack.straggles:
            starting = byz & (offline == 0) & (adversary.random(n) < attack.dropout)
            offline = np.where(starting, attack.dropout_rounds, np.maximum(offline - 1, 0))
            sends &= ~(byz & ((offline > 0) | (adversary.random(n) < attack.late)))
        if not cfg.gossip:
            sends[:] = False
        # delivery: loss, delay (last round's content arrives instead)
        src = np.clip(state.peers, 0, n - 1)  # empty and Sybil slots read row 0 / n-1, masked by `present`
        present = (state.peers >= 0) & (state.peers < n) & sends[src] & (net.random(state.peers.shape) >= cfg.loss)
        late = net.random(state.peers.shape) < cfg.delay
        inbox = np.where(late[..., None], prev_sent[src], sent[src])
        votes = np.where(byz[src] & attack.votes_storm, regime.STORM, state.vote()[src]).astype(np.int8)
        if attack.sybils:
            _flood_sybils(state, r, byz, src, present, inbox, ctx.proposals, base, newcomer)
        if cfg.relay:
            _take_relays(state, relay, direct, src[:, : cfg.degree], present, inbox, votes, prev_sent, relayed, relayed_prio)
        if attack.slanders:  # every attacker reports every honest node it hears
            liars, victims = _slander(state, byz, honest)
            ban_rep, ban_tgt = np.concatenate([ban_rep, liars]), np.concatenate([ban_tgt, victims])
        spread = node.spread_bans(state, ban_rep, ban_tgt) if cfg.gossip else np.zeros(state.peers.shape, bool)
        keep_w = state.weights.copy()
        before = state.regime.regime.copy()
        result = node.receive(state, step, inbox, present, votes, quorum=node.QUORUM if cfg.gossip else 0)
        if attack.straggles:
            away = offline > 0
            state.weights[away] = keep_w[away]
            state.verified[away] = keep_w[away]
        if cfg.relay:  # what each node will pass on next round: its best accepted update from a node it hears
            relayed, relayed_prio = node.relay_choice(state, result.accepted, step.residual_error[src], step.accuracy_delta[src], slice(0, cfg.degree))
        # ban reports travel next round
        new = result.new_bans | spread
        ban_rep = np.repeat(np.arange(n), slots)[new.ravel()]
        ban_tgt = state.peers[new].astype(np.int64)
        # energy and time
        wake = wake_interval_s(state.regime.regime, self_rep, charge)
        tx = np.where(sends, GHOST_BYTES, 0) + np.where(state.regime.regime != regime.CALM, VOTE_BYTES, 0)
        tx = tx + BAN_BYTES * new.sum(axis=1) + GHOST_BYTES * (relayed >= 0)
        spend_period(pool, wake, tx, GHOST_BYTES * present.sum(axis=1), clock, cloud if cfg.solar else None)
        clock += wake
        sent_bytes += tx
        prev_sent = sent
        # metrics
        w_h = state.weights[honest].astype(np.float64)
        mean_h = w_h.mean(axis=0)
        mean_series.append(mean_h)
        holders, banners = _ban_counts(state.peers, state.rep.banned, honest, n)
        banned_major = 2 * banners > np.maximum(holders, 1)
        reg = state.regime.regime[honest]
        false_alarms += int(np.count_nonzero((before[honest] == regime.PRESTORM) & (reg == regime.CALM)))
        first_banned = np.where((first_banned == 0) & banned_major, r + 1, first_banned)
        records.append(
            {
                "round": r + 1,
                "honest_disagreement": disagreement(state.weights[honest]),
                "attack_drift": _rel(mean_h, reference[min(r, len(reference) - 1)]) if reference is not None else None,
                "entropy": float(step.entropy[honest].mean()) / Q16_ONE,
                "calm": float(np.mean(reg == regime.CALM)),
                "prestorm": float(np.mean(reg == regime.PRESTORM)),
                "storm": float(np.mean(reg == regime.STORM)),
                "bans_true": int(np.count_nonzero(byz & banned_major)),
                "bans_false": int(np.count_nonzero(honest & (banners > 0))),
                "verified": float(result.verified[honest].mean()),
                "gossip_bytes": int(tx[honest].sum()),
                "min_charge": float(pool.charge_q16()[honest].min()) / Q16_ONE,
                "brownouts": int(pool.brownouts[honest].sum()),
                "sim_hours": float(clock[honest].mean()) / 3600,
            }
        )
        if progress is not None:
            progress(r + 1)
        if cfg.days > 0 and clock[honest].min() >= cfg.days * DAY_S:
            break
    days = np.maximum(clock, 1) / DAY_S
    sample_rate_hz = float(np.mean(cfg.samples_per_round * len(records) / (days[honest] * DAY_S)))
    gossip = float(np.mean(sent_bytes[honest] / days[honest]))
    sensor_bytes = VALUE_BYTES * SENSOR_RATE_HZ * DAY_S  # every reading of a sensor read at SENSOR_RATE_HZ
    asleep_uj = pool.elapsed_s * round(pool.profile.radio_sleep_mw * UJ_PER_MWS)  # what the radio asleep all the time draws
    summary = {
        "nodes": n,
        "rounds": len(records),
        "byzantine_fraction": n_byz / n,
        "attack": cfg.attack,
        "seed": cfg.seed,
        "dataset": cfg.dataset,
        "topology": cfg.topology,
        "aggregator": cfg.aggregator,
        **_consensus_figures(records),
        "gossip_bytes_per_node_per_day": gossip,
        "raw_sample_rate_hz": sample_rate_hz,
        "raw_bytes_per_node_per_day": VALUE_BYTES * sample_rate_hz * DAY_S,
        "sensor_rate_hz": SENSOR_RATE_HZ,
        "raw_bytes_per_node_per_day_at_sensor_rate": sensor_bytes,
        "gossip_to_raw_at_sensor_rate": gossip / sensor_bytes,
        "fedavg_bytes_per_node_per_day": float(np.mean(VALUE_BYTES * learn.ORDER * len(records) / days[honest])),
        "energy_j_per_node_per_day": float(np.mean(pool.used_uj[honest] / days[honest])) / 1e6,
        "awake_energy_j_per_node_per_day": float(np.mean((pool.used_uj - asleep_uj)[honest] / days[honest])) / 1e6,
        "bans_true": records[-1]["bans_true"],
        "bans_false": records[-1]["bans_false"],
        "regime_fraction": {name: float(np.mean([rec[name] for rec in records])) for name in regime.REGIME_NAMES},
        "false_transitions": int(false_alarms),
        "radio_sleep_ratio": float(pool.sleep_ratio()[honest].mean()),
        "brownouts": int(pool.brownouts[honest].sum()),
        "simulated_days": float(days[honest].mean()),
        "state_bytes_per_node": state.state_bytes_per_node(),
    }
    detected = first_banned[byz]
    series = {"weights": state.weights.copy(), "honest": honest, "mean": np.array(mean_series), "streams": streams,
              "detection_rounds": detected}
    if n_byz:
        summary["detection_round_mean"] = float(detected[detected > 0].mean()) if (detected > 0).any() else None
    return SimResult(cfg, summary, records, series)


def _consensus_figures(records: list[dict]) -> dict:
    """Final disagreement and drift, the first round below 1% and the round from which it stays there."""
    below = np.array([rec["honest_disagreement"] for rec in records]) < CONSENSUS
    above = np.flatnonzero(~below)
    held_from = int(above[-1]) + 1 if len(above) else 0  # 0-based round from which it stays below
    return {
        "honest_disagreement": records[-1]["honest_disagreement"],
        "attack_drift": records[-1]["attack_drift"],
        "rounds_to_consensus": int(np.argmax(below)) + 1 if below.any() else None,
        "consensus_held_from": held_from + 1 if held_from < len(records) else None,
    }


def _evaluate(cfg: SimConfig, res: SimResult, rng: np.random.Generator) -> dict:
    """Bits per value of the final models on each evaluated node's next `eval_samples` readings,
    next to the same rule run by each node alone and to one model fitted on all honest data centrally."""
    streams: _Streams = res.series["streams"]
    honest_rows = np.flatnonzero(res.series["honest"])
    rows = np.sort(rng.choice(honest_rows, min(cfg.eval_nodes, len(honest_rows)), replace=False))
    seen = res.summary["rounds"] * cfg.samples_per_round + cfg.window + 1
    solo = node.NodeState(np.zeros((len(rows), 0), np.int64), np.zeros(learn.ORDER, np.int64), cfg.nodes)
    nothing = np.zeros((len(rows), 0), bool)
    for r in range(res.summary["rounds"]):  # the same rule, each node alone: no peers, no quorum needed
        step = node.propose(solo, streams.read(rows, r * cfg.samples_per_round, cfg.window + 1), int(to_q16(cfg.rate)))
        node.receive(solo, step, np.zeros((len(rows), 0, learn.ORDER), np.int64), nothing, nothing.astype(np.int8), quorum=0)
    alone = solo.weights
    pool = np.sort(rng.choice(honest_rows, min(CENTRAL_NODES, len(honest_rows)), replace=False))
    central = learn.least_squares(list(streams.read(pool, 0, seen)))
    swarm_bits, alone_bits, central_bits = [], [], []
    for k, i in enumerate(rows):
        train = streams.read(np.array([i]), 0, seen)[0]
        test = streams.read(np.array([i]), seen, cfg.eval_samples)[0]
        b = learn.frame_bits_per_value(train, test, [res.series["weights"][i], alone[k], central])
        swarm_bits.append(b[0])
        alone_bits.append(b[1])
        central_bits.append(b[2])
    return {
        "bits_per_value": float(np.mean(swarm_bits)),
        "bits_per_value_local_only": float(np.mean(alone_bits)),
        "swarm_gain": 1.0 - float(np.mean(swarm_bits)) / float(np.mean(alone_bits)),
        "bits_per_value_central": float(np.mean(central_bits)),
        "evaluated_nodes": len(rows),
    }


def simulate(config: SimConfig | None = None, progress: Callable[[int, int], None] | None = None, **overrides) -> SimResult:
    """Run the swarm (and, under attack, the same run without attackers for `attack_drift`).

    `config` or keyword overrides of `SimConfig`; `progress(done, total)` is called after every round.
    """
    cfg = dataclasses.replace(config or SimConfig(), **overrides)
    cfg.check()
    t0 = time.perf_counter()
    total = cfg.rounds * (2 if cfg.attack != "none" and cfg.byzantine > 0 else 1)
    done = 0

    def tick(_: int) -> None:
        nonlocal done
        done += 1
        if progress is not None:
            progress(done, total)

    reference = None
    if total > cfg.rounds:
        reference = _run(dataclasses.replace(cfg, attack="none"), tick, None).series["mean"]
    res = _run(cfg, tick, reference)
    res.summary.update(_evaluate(cfg, res, np.random.default_rng(np.random.SeedSequence(cfg.seed).spawn(4)[3])))
    res.summary["wall_seconds"] = time.perf_counter() - t0
    return res
