"""A cluster of real daemon processes on one machine (`qres cluster`).

`run_cluster` starts N `qres daemon run` processes on loopback, each with its own ports, data
directory and stream of a bundled recording (channel and offset of its own); the last
round(byzantine x N) of them attack (config `node.attack`). Every node starts from a few bootstrap
peers (the next ones on a ring) and finds the rest by peer exchange. When every honest node has
closed `rounds` rounds, the cluster measures POST /compress on the first node, stops every process
with SIGTERM, reads each node's store and writes DIR/summary.json: the simulator's figures where
they apply (honest disagreement, bans true and false, bytes) plus the gossip propagation time
(`propagation_ms_p50`, `propagation_ms_p99`: from a Hello's sending until the last honest node
accepted it, over the Hellos that reached them all) and `compress_per_s`.
"""

from __future__ import annotations

import http.client
import json
import math
import os
import signal
import socket
import subprocess
import sys
import time
from collections import defaultdict
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from .. import atomic, datasets
from ..swarm.simulator import disagreement
from ..swarm.attacks import NETWORK_ATTACKS
from .config import init_node, load_config
from .daemon import JOIN_ROUNDS
from .storage import Store

BOOTSTRAP = 3  # peers each node is told of at start; peer exchange finds the rest
START_TIMEOUT_S = 300.0  # for the first node, which may compile the codec's kernels
COMPRESS_VALUES = 64  # values per POST /compress when measuring throughput


class ClusterError(RuntimeError):
    """A node of the cluster failed to start, stalled, or did not stop."""


@dataclass(frozen=True)
class ClusterConfig:
    """What `qres cluster` runs: N nodes, a fraction of attackers, the recording they read."""

    nodes: int = 10
    byzantine: float = 0.0
    attack: str = "bias"
    dataset: str = "heartpy_ppg"
    rounds: int = 30
    round_seconds: float = 0.5
    fanout: int = 8
    ttl: int | None = None  # None: enough hops for the flood to reach every node, ceil(log_fanout(nodes))
    compress_seconds: float = 3.0
    seed: int = 0

    def check(self) -> None:
        if not 2 <= self.nodes <= 1000:
            raise ValueError(f"nodes {self.nodes} is outside 2..1000")
        if not 0 <= self.byzantine < 0.5:
            raise ValueError(f"byzantine {self.byzantine} is outside 0..0.5 (honest nodes must be the majority)")
        if self.byzantine > 0 and self.attack not in NETWORK_ATTACKS:
            raise ValueError(f"attack {self.attack!r} is not one of {', '.join(NETWORK_ATTACKS)}")
        if self.dataset not in datasets.VALUE_COLUMNS:
            raise ValueError(f"dataset {self.dataset!r} is not bundled ({', '.join(datasets.VALUE_COLUMNS)})")
        if self.rounds < 1 or self.round_seconds < 0.05:
            raise ValueError("rounds must be >= 1 and round_seconds >= 0.05")

    @property
    def hops(self) -> int:
        """The TTL the nodes use: `ttl`, or ceil(log_fanout(nodes)) (at least 1) when None."""
        if self.ttl is not None:
            return self.ttl
        return max(1, math.ceil(math.log(self.nodes) / math.log(max(self.fanout, 2)) - 1e-9))

    @property
    def attackers(self) -> int:
        return int(round(self.byzantine * self.nodes))

    @property
    def title(self) -> str:
        """What the run is, in a few words: "cluster of 10 daemons, 2 attacking (bias)", or "..., no attackers"."""
        who = f"{self.attackers} attacking ({self.attack})" if self.attackers else "no attackers"
        return f"cluster of {self.nodes} daemons, {who}"


def free_ports(count: int, kind: int = socket.SOCK_DGRAM) -> list[int]:
    """`count` distinct loopback ports free right now (UDP by default, TCP with SOCK_STREAM)."""
    socks = [socket.socket(socket.AF_INET, kind) for _ in range(count)]
    try:
        for s in socks:
            s.bind(("127.0.0.1", 0))
        return [s.getsockname()[1] for s in socks]
    finally:
        for s in socks:
            s.close()


@dataclass
class _Node:
    index: int
    directory: Path
    gossip_port: int
    api_port: int
    attack: str
    env: dict[str, str]  # the QRES_* overrides it runs with
    proc: subprocess.Popen | None = None

    @property
    def honest(self) -> bool:
        return not self.attack

    def store_value(self, key: str, default=None):
        try:
            with Store.open(self.directory / "data") as s:
                return s.get(key, default)
        except Exception:  # not created yet, or being created
            return default


def _setup(cfg: ClusterConfig, out: Path) -> list[_Node]:
    rng = np.random.default_rng(cfg.seed)
    gossip, api = free_ports(cfg.nodes), free_ports(cfg.nodes, socket.SOCK_STREAM)
    channels = len(datasets.VALUE_COLUMNS[cfg.dataset])
    length = len(datasets.channels(cfg.dataset)[0].exact_integers)
    nodes = []
    for i in range(cfg.nodes):
        d = out / "nodes" / f"n{i:03d}"
        init_node(d, gossip[i], api[i])
        attack = cfg.attack if i >= cfg.nodes - cfg.attackers else ""
        peers = [f"127.0.0.1:{gossip[(i + k) % cfg.nodes]}" for k in range(1, min(BOOTSTRAP, cfg.nodes - 1) + 1)]
        env = {
            "QRES_GOSSIP_PEERS": ",".join(peers), "QRES_GOSSIP_ROUND_SECONDS": str(cfg.round_seconds),
            "QRES_GOSSIP_FANOUT": str(cfg.fanout), "QRES_GOSSIP_TTL": str(cfg.hops), "QRES_SENSOR_DATASET": cfg.dataset,
            "QRES_SENSOR_CHANNEL": str(i % channels), "QRES_SENSOR_OFFSET": str(int(rng.integers(0, length))), "QRES_NODE_ATTACK": attack,
        }
        nodes.append(_Node(i, d, gossip[i], api[i], attack, env))
    return nodes


def _start(node: _Node) -> None:
    log = open(node.directory / "daemon.log", "w")
    node.proc = subprocess.Popen([sys.executable, "-m", "qres.cli", "daemon", "run", "--config", str(node.directory / "node.toml")],
                                 env={**os.environ, **node.env}, stdout=log, stderr=subprocess.STDOUT)
    log.close()


def _healthy(node: _Node) -> bool:
    try:
        conn = http.client.HTTPConnection("127.0.0.1", node.api_port, timeout=2)
        conn.request("GET", "/health")
        ok = conn.getresponse().status == 200
        conn.close()
        return ok
    except OSError:
        return False


def _check_alive(nodes: list[_Node]) -> None:
    for n in nodes:
        if n.proc is not None and n.proc.poll() is not None:
            tail = (n.directory / "daemon.log").read_text()[-2000:]
            raise ClusterError(f"node {n.index} exited with code {n.proc.returncode}:\n{tail}")


def _wait_for(nodes: list[_Node], ready: Callable[[_Node], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    waiting = list(nodes)
    while waiting:
        _check_alive(nodes)
        waiting = [n for n in waiting if not ready(n)]
        if waiting and time.monotonic() > deadline:
            raise ClusterError(f"{len(waiting)} nodes (first: {waiting[0].index}) not {what} after {timeout:.0f} s")
        time.sleep(0.2)


def measure_compress(port: int, token: str, seconds: float, values: np.ndarray) -> dict:
    """POST /compress throughput of one node over one keep-alive connection: calls per second and
    latency p50/p99 (ms), frames of COMPRESS_VALUES values cut from `values` in turn."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    headers = {"content-type": "application/json", "authorization": f"Bearer {token}"}
    frames = [json.dumps({"values": values[i : i + COMPRESS_VALUES].tolist()}) for i in range(0, len(values) - COMPRESS_VALUES, COMPRESS_VALUES)][:256]
    lat, t0 = [], time.perf_counter()
    while time.perf_counter() - t0 < seconds:
        t = time.perf_counter()
        conn.request("POST", "/compress", frames[len(lat) % len(frames)], headers)
        resp = conn.getresponse()
        resp.read()
        if resp.status != 200:
            raise ClusterError(f"POST /compress answered {resp.status}")
        lat.append(time.perf_counter() - t)
    elapsed = time.perf_counter() - t0
    conn.close()
    ms = np.array(lat) * 1000
    return {"compress_per_s": len(lat) / elapsed, "compress_ms_p50": float(np.percentile(ms, 50)), "compress_ms_p99": float(np.percentile(ms, 99))}


def propagation(arrivals: dict[int, list], dids: dict[int, str], honest: list[int], since_us: int = 0) -> dict:
    """Gossip propagation over the Hellos of honest nodes sent from `since_us` on (`arrivals`: node
    index -> its (origin DID, sent_us, received_us, ttl) records; `dids`: node index -> DID): for each Hello,
    the time (ms) from its sending until the last other honest node accepted it; p50/p99 over
    those that reached every honest node, and the fraction that did."""
    received: dict[tuple[str, int], dict[int, int]] = defaultdict(dict)
    origin_of = {did: i for i, did in dids.items()}
    for i in honest:
        for origin, sent_us, recv_us, _ttl in arrivals.get(i, []):
            key = (origin, sent_us)
            received[key][i] = min(recv_us, received[key].get(i, recv_us))
    times, complete, total = [], 0, 0
    for (origin, sent_us), by_node in received.items():
        src = origin_of.get(origin)
        if src is None or src not in honest or sent_us < since_us:
            continue
        total += 1
        others = [i for i in honest if i != src]
        if all(i in by_node for i in others):
            complete += 1
            times.append((max(by_node[i] for i in others) - sent_us) / 1000)
    out = {"propagation_messages": total, "propagation_reached_all": complete / total if total else 0.0}
    if times:
        out.update(propagation_ms_p50=float(np.percentile(times, 50)), propagation_ms_p99=float(np.percentile(times, 99)),
                   propagation_ms_max=float(np.max(times)))
    else:
        out.update(propagation_ms_p50=None, propagation_ms_p99=None, propagation_ms_max=None)
    return out


def _collect(cfg: ClusterConfig, nodes: list[_Node], since_us: int) -> dict:
    honest = [n.index for n in nodes if n.honest]
    dids, weights, arrivals, rounds, counters = {}, {}, {}, {}, defaultdict(int)
    tables = {}
    for n in nodes:
        did = load_config(n.directory / "node.toml", env={}).identity().did
        dids[n.index] = did
        with Store.open(n.directory / "data") as s:
            latest = s.latest_verified()
            weights[n.index] = None if latest is None else np.frombuffer(latest.gene, "<i4").astype(np.int64)
            arrivals[n.index] = s.get("arrivals", [])
            rounds[n.index] = s.get("round", 0)
            tables[n.index] = {p.did: p.banned for p in s.peers()}
            for k, v in (s.get("counters") or {}).items():
                if n.honest:
                    counters[k] += v
    index_of = {d: i for i, d in dids.items()}
    holders, banners = defaultdict(int), defaultdict(int)
    for i in honest:
        for did, banned in tables[i].items():
            holders[index_of.get(did, -1)] += 1
            banners[index_of.get(did, -1)] += banned
    attackers = [n.index for n in nodes if not n.honest]
    w = np.array([weights[i] for i in honest if weights[i] is not None])
    rounds_done = [rounds[i] for i in honest]
    summary = {
        **asdict(cfg),
        "ttl": cfg.hops,
        "byzantine_nodes": len(attackers),
        "rounds_closed_min": int(min(rounds_done)),
        "honest_with_model": len(w),
        "honest_disagreement": disagreement(w) if len(w) else None,
        "model_norm": float(np.linalg.norm(w.mean(axis=0)) / 65536) if len(w) else None,
        "bans_true": sum(1 for a in attackers if 2 * banners[a] > max(holders[a], 1)),
        "bans_false": sum(1 for h in honest if banners[h] > 0),
        "attacker_banned_share": {str(a): banners[a] / max(holders[a], 1) for a in attackers},  # of the honest nodes that hold it
        **propagation(arrivals, dids, honest, since_us),
        "datagrams_sent_per_node_per_round": counters["datagrams_sent"] / max(len(honest), 1) / max(min(rounds_done), 1),
        "honest_counters": dict(sorted(counters.items())),
    }
    return summary


def run_cluster(cfg: ClusterConfig, out: Path, progress: Callable[[str, int, int], None] | None = None) -> dict:
    """Start the cluster in `out` (which must not hold one yet), run it until every honest node has
    closed `cfg.rounds` rounds, measure, stop it, write and return out/summary.json's figures.
    `progress(stage, done, total)` reports starting nodes and rounds."""
    cfg.check()
    out = Path(out)
    if (out / "nodes").exists():
        raise ClusterError(f"{out} already holds a cluster (nodes/); choose an empty directory")
    say = progress or (lambda stage, done, total: None)
    t0 = time.perf_counter()
    nodes = _setup(cfg, out)
    try:
        _start(nodes[0])  # alone first: it compiles the kernels into numba's cache for the others
        _wait_for(nodes[:1], _healthy, START_TIMEOUT_S, "answering /health")
        for k, n in enumerate(nodes[1:], 2):
            _start(n)
            say("starting", k, len(nodes))
        _wait_for(nodes, _healthy, START_TIMEOUT_S, "answering /health")
        honest = [n for n in nodes if n.honest]
        # propagation counts from here: every node is up, has joined and had rounds to find its peers
        _wait_for(honest, lambda n: n.store_value("round", 0) >= JOIN_ROUNDS + 3, START_TIMEOUT_S, "past their first rounds")
        since_us = time.time_ns() // 1000
        deadline = time.monotonic() + 60 + 20 * cfg.rounds * cfg.round_seconds
        while True:
            _check_alive(nodes)
            done = min(n.store_value("round", 0) for n in honest)
            say("rounds", min(done, cfg.rounds), cfg.rounds)
            if done >= cfg.rounds:
                break
            if time.monotonic() > deadline:
                raise ClusterError(f"honest nodes closed only {done} of {cfg.rounds} rounds in time")
            time.sleep(0.25)
        token = load_config(nodes[0].directory / "node.toml", env={}).token
        values = datasets.channels(cfg.dataset)[0].exact_integers[: 256 * COMPRESS_VALUES + COMPRESS_VALUES]
        compress = measure_compress(nodes[0].api_port, token, cfg.compress_seconds, values)
    finally:
        stopped = _stop_all(nodes)
    summary = {**_collect(cfg, nodes, since_us), **compress, "stopped_cleanly": stopped, "wall_seconds": time.perf_counter() - t0}
    atomic.write_text(out / "summary.json", json.dumps(summary, indent=2) + "\n", overwrite=True)
    return summary


def _stop_all(nodes: list[_Node], timeout: float = 60.0) -> int:
    """SIGTERM every running node; SIGKILL what has not stopped after `timeout`. Returns how many
    stopped cleanly (exit code 0)."""
    running = [n for n in nodes if n.proc is not None and n.proc.poll() is None]
    for n in running:
        n.proc.send_signal(signal.SIGTERM)
    deadline = time.monotonic() + timeout
    clean = 0
    for n in nodes:
        if n.proc is None:
            continue
        try:
            n.proc.wait(timeout=max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            n.proc.kill()
            n.proc.wait()
        clean += n.proc.returncode == 0
    return clean
