"""Node benchmark: what one node does, measured on real daemon processes on loopback.

  library  frames of 64 values compressed and decompressed per second with the node's codec model
           (one core, best of 5)
  http     POST /compress requests per second one daemon sustains, with latency percentiles, from
           keep-alive clients in another process
  crash    a node (with 3 peer daemons, so it commits models) SIGKILLed at random moments and
           restarted: starts, SQLite integrity, committed models kept, resumed from the last one
  memory   resident memory (VmRSS) of a node alone, and with 1..15 peer daemons in its table

Writes bench/results/node.json and regenerates the section between `<!-- node:begin -->` and
`<!-- node:end -->` in docs/BENCHMARKS.md.

    python bench/node_bench.py                  # everything (about 15 minutes on 2 cores)
    python bench/node_bench.py --quick          # a smaller run of each part (about 5 minutes)
    python bench/node_bench.py --only crash memory
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing
import os
import platform
import random
import signal
import socket
import sqlite3
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT / "src") not in sys.path:  # run from a checkout without installing
    sys.path.insert(0, str(ROOT / "src"))

from qres import __version__, datasets  # noqa: E402
from qres.benchmark import update_markdown_section  # noqa: E402
from qres.codec.frame import Codec  # noqa: E402
from qres.node.cluster import free_ports  # noqa: E402
from qres.node.config import init_node, load_config  # noqa: E402
from qres.node.daemon import HISTORY, MAX_PEERS, model_gene, model_id  # noqa: E402
from qres.node.storage import DB_NAME  # noqa: E402
from qres.swarm import learn  # noqa: E402

PARTS = ("library", "http", "crash", "memory")
BEGIN, END = "<!-- node:begin -->", "<!-- node:end -->"
DATASET = "heartpy_ppg"
FRAME = 64
PUBLISHED_FRAMES_PER_S = 10_000  # the published figure per node of the system QRES re-implements
PUBLISHED_HTTP_PER_S = 330  # calls per second of that system's published Python package


def log(msg: str, t0: list[float] = [time.perf_counter()]) -> None:
    print(f"[{time.perf_counter() - t0[0]:7.1f}s] {msg}", flush=True)


def _recording() -> np.ndarray:
    return datasets.channels(DATASET)[0].exact_integers


# ----------------------------------------------------------------------------------- library


def bench_library(quick: bool) -> dict:
    """Frames of 64 values per second through `Codec.encode_frame` / `decode_frame` with the model a
    node builds (`learn.codec_model` on its newest HISTORY readings and the swarm weights; here the
    least-squares weights of those readings, where the swarm converges), on one core, best of 5."""
    z = _recording()
    history = z[:HISTORY]
    codec = Codec(learn.codec_model(history, learn.least_squares([history])))
    frames = z[HISTORY : HISTORY + (len(z) - HISTORY) // FRAME * FRAME].reshape(-1, FRAME)[: 200 if quick else None]
    blobs = [codec.encode_frame(f) for f in frames]  # warm-up (numba compiles) and the round-trip check
    exact = all(np.array_equal(codec.decode_frame(b), f) for b, f in zip(blobs, frames))
    cores = os.sched_getaffinity(0)
    os.sched_setaffinity(0, {min(cores)})
    try:
        enc, dec = [], []
        for _ in range(2 if quick else 5):
            t = time.perf_counter()
            for f in frames:
                codec.encode_frame(f)
            enc.append(time.perf_counter() - t)
            t = time.perf_counter()
            for b in blobs:
                codec.decode_frame(b)
            dec.append(time.perf_counter() - t)
    finally:
        os.sched_setaffinity(0, cores)
    out = {"dataset": DATASET, "frames": len(frames), "values_per_frame": FRAME, "runs": len(enc), "round_trip_exact": exact,
           "bits_per_value": 8.0 * sum(map(len, blobs)) / frames.size,
           "encode_frames_per_s": len(frames) / min(enc), "decode_frames_per_s": len(frames) / min(dec)}
    log(f"library: {out['encode_frames_per_s']:,.0f} frames/s encode, {out['decode_frames_per_s']:,.0f} decode, {out['bits_per_value']:.2f} bits/value, exact {exact}")
    return out


# ----------------------------------------------------------------------------------- daemons


class Daemon:
    """One node directory and its daemon process (`qres daemon run`), logging to DIR/daemon.log."""

    def __init__(self, directory: Path, peers: list[int], round_seconds: float, offset: int = 0, gossip: int | None = None):
        gossip, api = gossip or free_ports(1, socket.SOCK_DGRAM)[0], free_ports(1, socket.SOCK_STREAM)[0]
        self.dir, self.gossip = directory, gossip
        self.url = f"http://127.0.0.1:{api}"
        self.token = load_config(init_node(directory, gossip, api), env={}).token
        self.db = directory / "data" / DB_NAME
        self.env = {**os.environ, "QRES_GOSSIP_PEERS": ",".join(f"127.0.0.1:{p}" for p in peers),
                    "QRES_GOSSIP_ROUND_SECONDS": str(round_seconds), "QRES_SENSOR_OFFSET": str(offset)}
        self.proc: subprocess.Popen | None = None

    def start(self) -> None:
        with open(self.dir / "daemon.log", "ab") as out:
            self.proc = subprocess.Popen([sys.executable, "-m", "qres.cli", "daemon", "run", "--config", str(self.dir / "node.toml")],
                                         env=self.env, stdout=out, stderr=out)

    def get(self, path: str, timeout: float = 5.0) -> dict:
        with urllib.request.urlopen(self.url + path, timeout=timeout) as r:
            return json.loads(r.read())

    def healthy(self, timeout: float) -> bool:
        """Poll GET /health until it answers 200 (True), the process exits or `timeout` s pass (False)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and self.proc.poll() is None:
            try:
                if self.get("/health", 2.0) == {"status": "ok"}:
                    return True
            except (urllib.error.URLError, ConnectionError, TimeoutError, json.JSONDecodeError):
                pass
            time.sleep(0.02)
        return False

    def wait_status(self, ok, timeout: float) -> dict:
        """Poll GET /status until `ok(status)`; TimeoutError with the last status otherwise."""
        deadline, status = time.monotonic() + timeout, {}
        while time.monotonic() < deadline:
            try:
                status = self.get("/status")
                if ok(status):
                    return status
            except (urllib.error.URLError, ConnectionError, TimeoutError):
                pass
            time.sleep(0.1)
        raise TimeoutError(f"{self.dir.name}: status still {status} after {timeout} s")

    def rss_kib(self) -> int:
        """Resident memory of the daemon process (VmRSS), KiB."""
        for line in Path(f"/proc/{self.proc.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
        raise RuntimeError("no VmRSS")

    def kill(self) -> None:
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait()

    def stop(self) -> int:
        """SIGTERM and wait; the exit code (0 = a clean stop)."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            self.kill()
            return -9

    def log_tail(self, chars: int = 2000) -> str:
        return (self.dir / "daemon.log").read_text(errors="replace")[-chars:]


def _stop_all(daemons: list[Daemon]) -> list[int]:
    return [d.stop() for d in daemons if d.proc is not None]


# -------------------------------------------------------------------------------------- http


def _client(port: int, token: str, connections: int, seconds: float, bodies: list[bytes]) -> dict:
    """In its own process: `connections` keep-alive HTTP/1.1 connections, each sending POST
    /compress back to back for `seconds`. Latencies in s of the 200s, count of other answers, wall s."""
    heads = [f"POST /compress HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer {token}\r\nContent-Type: application/json\r\n"
             f"Content-Length: {len(b)}\r\n\r\n".encode() + b for b in bodies]
    latencies: list[float] = []
    errors = [0]

    async def connection(first: int, deadline: float) -> None:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        i = first
        while time.perf_counter() < deadline:
            t = time.perf_counter()
            writer.write(heads[i % len(heads)])
            head = await reader.readuntil(b"\r\n\r\n")
            length = next(int(line.split(b":")[1]) for line in head.split(b"\r\n") if line.lower().startswith(b"content-length:"))
            await reader.readexactly(length)
            if head.startswith(b"HTTP/1.1 200"):
                latencies.append(time.perf_counter() - t)
            else:
                errors[0] += 1
            i += connections
        writer.close()
        await writer.wait_closed()

    async def main() -> float:
        t = time.perf_counter()
        await asyncio.gather(*(connection(c, t + seconds) for c in range(connections)))
        return time.perf_counter() - t

    wall = asyncio.run(main())
    return {"latencies": latencies, "errors": errors[0], "wall_s": wall}


def bench_http(quick: bool, client_procs: int) -> dict:
    """POST /compress against one daemon process (no peers, 2 s rounds), from `client_procs` client
    processes with keep-alive connections, bodies of 64 readings of the recording; ~10 s per load."""
    seconds = 2.0 if quick else 10.0
    z = _recording()
    bodies = [json.dumps({"values": [int(v) for v in z[i : i + FRAME]]}).encode() for i in range(0, 256 * FRAME, FRAME)]
    runs = []
    with tempfile.TemporaryDirectory() as tmp:
        node = Daemon(Path(tmp) / "n0", [], 2.0)
        node.start()
        try:
            if not node.healthy(120):
                raise RuntimeError(f"the daemon did not start:\n{node.log_tail()}")
            port = int(node.url.rsplit(":", 1)[1])
            ctx = multiprocessing.get_context("spawn")
            with ctx.Pool(client_procs) as pool:
                pool.apply(_client, (port, node.token, 1, 1.0, bodies))  # warm-up: the codec model is built on the first call
                for connections in (1, 4, 16):
                    per = [(port, node.token, max(1, connections // client_procs), seconds, bodies) for _ in range(min(client_procs, connections))]
                    res = pool.starmap(_client, per)
                    lat = np.concatenate([r["latencies"] for r in res]) * 1000
                    wall = max(r["wall_s"] for r in res)
                    runs.append({"connections": sum(p[2] for p in per), "client_processes": len(per), "seconds": wall, "requests": int(lat.size),
                                 "errors": sum(r["errors"] for r in res), "requests_per_s": lat.size / wall,
                                 "latency_ms_p50": float(np.percentile(lat, 50)), "latency_ms_p99": float(np.percentile(lat, 99))})
                    log(f"http: {runs[-1]['connections']} connections: {runs[-1]['requests_per_s']:,.0f} requests/s, "
                        f"p50 {runs[-1]['latency_ms_p50']:.2f} ms, p99 {runs[-1]['latency_ms_p99']:.2f} ms, errors {runs[-1]['errors']}")
        finally:
            code = node.stop()
    return {"values_per_request": FRAME, "round_seconds": 2.0, "peers": 0, "runs": runs, "clean_stop": code == 0,
            "published_calls_per_s": PUBLISHED_HTTP_PER_S}


# ------------------------------------------------------------------------------------- crash


def _models(db: Path) -> tuple[dict[str, tuple[bytes, int, int, bool]], int]:
    """The node's models (id -> gene, round, rowid, verified) and its stored round, read through a
    read-only connection."""
    con = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=30)
    try:
        models = {r[0]: (bytes(r[1]), r[2], r[3], bool(r[4])) for r in con.execute("SELECT id, gene, round, rowid, verified FROM models")}
        row = con.execute("SELECT value FROM state WHERE key = 'round'").fetchone()
    finally:
        con.close()
    return models, (0 if row is None else json.loads(row[0]))


def _integrity(db: Path) -> str:
    con = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=30)
    try:
        return con.execute("PRAGMA integrity_check").fetchone()[0]
    finally:
        con.close()


def _latest(models: dict) -> tuple[str, bytes, int] | None:
    """(id, gene, rowid) of the model a node resumes from: verified, highest round, newest stored."""
    ver = [(r, rowid, mid, gene) for mid, (gene, r, rowid, v) in models.items() if v]
    if not ver:
        return None
    _, rowid, mid, gene = max(ver)
    return mid, gene, rowid


def bench_crash(quick: bool, seed: int = 0) -> dict:
    """SIGKILL a node at a random moment 0.05-2 s after it answers /health, restart it, check it;
    `restarts` times. Three peer daemons keep it committing models (0.2 s rounds)."""
    restarts = 10 if quick else 100
    rng = random.Random(seed)
    out = {"restarts": 0, "failed_starts": 0, "lost_models": 0, "integrity_failures": 0, "resumed_exactly": 0,
           "resumed_within_one_step": 0, "resume_failures": 0, "resume_unchecked": 0, "restart_to_healthy_s": [], "models_seen": 0,
           "kill_delay_s": [0.05, 2.0], "seed": seed, "round_seconds": 0.2, "peers": 3, "problems": []}
    with tempfile.TemporaryDirectory() as tmp:
        ports = free_ports(4, socket.SOCK_DGRAM)
        nodes = [Daemon(Path(tmp) / f"n{i}", [p for j, p in enumerate(ports) if j != i], 0.2, 3000 * i, ports[i]) for i in range(4)]
        target = nodes[0]
        for n in nodes:
            n.start()
        try:
            if not target.healthy(120):
                raise RuntimeError(f"the node did not start:\n{target.log_tail()}")
            target.wait_status(lambda s: s["models_committed"] >= 3, 180)
            known: dict[str, bytes] = {}  # every model id read before a kill -> its gene
            pending = None  # (gene resumed from, rowid at restart) when a round closed before /status could show it
            for i in range(restarts):
                time.sleep(rng.uniform(0.05, 2.0))
                before, _ = _models(target.db)
                known.update({mid: m[0] for mid, m in before.items()})
                if pending is not None:
                    out[_step_check(before, *pending)] += 1
                    pending = None
                target.kill()
                models, stored_round = _models(target.db)
                last = _latest(models)
                t = time.monotonic()
                target.start()
                if not target.healthy(120):
                    out["failed_starts"] += 1
                    out["problems"].append(f"restart {i + 1}: no /health within 120 s (exit code {target.proc.poll()}): {target.log_tail(600)}")
                    log(f"crash: restart {i + 1} failed to start")
                    target.kill()
                    target.start()
                    if not target.healthy(120):
                        raise RuntimeError(f"the node does not start any more:\n{target.log_tail()}")
                    continue
                out["restart_to_healthy_s"].append(time.monotonic() - t)
                out["restarts"] += 1
                status = target.get("/status")
                if status["round"] == stored_round + 1:  # no round closed yet: it still holds what it resumed from
                    expected = last[0] if last else model_id(model_gene(np.zeros(learn.ORDER, np.int64)))
                    if status["swarm_model_id"] == expected:
                        out["resumed_exactly"] += 1
                    else:
                        out["resume_failures"] += 1
                        out["problems"].append(f"restart {i + 1}: resumed with model {status['swarm_model_id']}, its newest verified was {expected}")
                elif last is not None:
                    pending = (last[1], max(m[2] for m in models.values()))
                else:
                    out["resume_unchecked"] += 1
                check = _integrity(target.db)
                if check != "ok":
                    out["integrity_failures"] += 1
                    out["problems"].append(f"restart {i + 1}: integrity_check: {check}")
                now, _ = _models(target.db)
                lost = [mid for mid, gene in known.items() if mid not in now or now[mid][0] != gene]
                if lost:
                    out["lost_models"] += len(lost)
                    out["problems"].append(f"restart {i + 1}: models missing or changed: {lost[:5]}")
                    known = {mid: m[0] for mid, m in now.items()}  # count each loss once
                if (i + 1) % 10 == 0 or i == 0:
                    log(f"crash: {i + 1}/{restarts} restarts, {len(now)} models stored, healthy after {out['restart_to_healthy_s'][-1]:.2f} s, "
                        f"lost {out['lost_models']}, integrity failures {out['integrity_failures']}, resume failures {out['resume_failures']}")
            if pending is not None:
                out[_step_check(_models(target.db)[0], *pending)] += 1
            out["models_seen"] = len(known)
        finally:
            codes = _stop_all(nodes)
    out["clean_stop"] = all(c == 0 for c in codes)
    h = out["restart_to_healthy_s"]
    out["restart_to_healthy_median_s"] = float(np.median(h)) if h else None
    out["restart_to_healthy_max_s"] = float(np.max(h)) if h else None
    return out


def _step_check(models: dict, resumed_gene: bytes, rowid: int) -> str:
    """Whether the first model committed after a restart lies within one round's step (0.1 in L2,
    Q16.16) of the model the node resumed from: its round rule bounds every input to that."""
    new = sorted((m[2], m[0]) for m in models.values() if m[2] > rowid)
    if not new:
        return "resume_unchecked"
    first = np.frombuffer(new[0][1], "<i4").astype(float)
    before = np.frombuffer(resumed_gene, "<i4").astype(float)
    return "resumed_within_one_step" if np.linalg.norm(first - before) <= learn.STEP_LIMIT + 8 else "resume_failures"


# ------------------------------------------------------------------------------------ memory


def _rss(node: Daemon, samples: int = 5) -> int:
    """Median VmRSS over `samples` readings 0.2 s apart, KiB."""
    values = []
    for _ in range(samples):
        values.append(node.rss_kib())
        time.sleep(0.2)
    return int(np.median(values))


def bench_memory(quick: bool) -> dict:
    """VmRSS of one daemon after some rounds, alone and with k peer daemons in its table: for each k
    a fresh node and k peers started together (0.5 s rounds), as a deployment comes up."""
    rounds = 8 if quick else 20
    points = []
    for k in (0, 1, 4, 15) if quick else (0, 1, 2, 4, 8, 12, 15):
        with tempfile.TemporaryDirectory() as tmp:
            ports = free_ports(k + 1, socket.SOCK_DGRAM)
            nodes = [Daemon(Path(tmp) / f"n{i}", [p for j, p in enumerate(ports) if j != i], 0.5, 3000 * i, ports[i]) for i in range(k + 1)]
            for n in nodes:
                n.start()
            target = nodes[0]
            try:
                if not target.healthy(180):
                    raise RuntimeError(f"the node did not start:\n{target.log_tail()}")
                status = target.wait_status(lambda s: s["peers"] >= k, 180)
                r0 = status["round"]
                status = target.wait_status(lambda s: s["round"] >= r0 + rounds, 120)
                points.append({"peers": status["peers"], "rss_kib": _rss(target), "round": status["round"], "banned": status["banned"],
                               "messages_accepted": status["messages_accepted"]})
            finally:
                codes = _stop_all(nodes)
        points[-1]["clean_stop"] = all(c == 0 for c in codes)
        log(f"memory: {k} peers: {points[-1]['rss_kib'] / 1024:.1f} MiB at round {points[-1]['round']}, {points[-1]['banned']} banned")
    fit = [p for p in points if p["peers"] > 0]
    slope = float(np.polyfit([p["peers"] for p in fit], [p["rss_kib"] for p in fit], 1)[0]) if len(fit) > 1 else None
    return {"round_seconds": 0.5, "rounds_per_point": rounds, "table_slots": MAX_PEERS, "points": points, "kib_per_peer": slope}


# ------------------------------------------------------------------------------------ report


def _table(headers: list[str], rows: list[list], first_left: int = 1) -> list[str]:
    align = ["---"] * first_left + ["---:"] * (len(headers) - first_left)
    return ["| " + " | ".join(headers) + " |", "| " + " | ".join(align) + " |"] + ["| " + " | ".join(str(c) for c in row) + " |" for row in rows] + [""]


def render(r: dict) -> str:
    lines = [f"Measured with python {platform.python_version()}, qres {__version__}, numpy {np.__version__} on {platform.processor() or platform.machine()} "
             f"({os.cpu_count()} cores), {time.strftime('%Y-%m-%d')}. "
             "Daemons are real `qres daemon run` processes on loopback.", ""]
    if "library" in r:
        x = r["library"]
        lines += ["### Frames per second, library" + _quick(x), "",
                  f"`Codec.encode_frame` / `decode_frame` on the {x['frames']:,} whole frames of {x['values_per_frame']} values of {x['dataset']} after the first "
                  f"{HISTORY:,} readings, with the model a node builds (`learn.codec_model` on those {HISTORY:,} readings and swarm weights, here their "
                  f"least-squares weights); one core, best of {x['runs']} runs; round trip {'exact' if x['round_trip_exact'] else 'NOT exact'}.", ""]
        lines += _table(["bits/value", "encode frames/s", "decode frames/s", "target frames/s", "encode / target"],
                        [[f"{x['bits_per_value']:.2f}", f"{x['encode_frames_per_s']:,.0f}", f"{x['decode_frames_per_s']:,.0f}", f"{PUBLISHED_FRAMES_PER_S:,}",
                          f"{x['encode_frames_per_s'] / PUBLISHED_FRAMES_PER_S:.1f}x"]], 0)
    if "http" in r:
        h = r["http"]
        lines += ["### POST /compress over HTTP" + _quick(h), "",
                  f"One daemon (no peers, {h['round_seconds']:g} s rounds); clients in a separate process on keep-alive HTTP/1.1 connections (asyncio), "
                  f"each sending the next request when the answer arrives, bodies of {h['values_per_request']} readings; latency from sending a request to reading its whole answer. "
                  f"The published Python package of the system QRES re-implements manages about {h['published_calls_per_s']} calls/s.", ""]
        lines += _table(["connections", "seconds", "requests", "errors", "requests/s", "p50 latency (ms)", "p99 latency (ms)", "vs 330/s"],
                        [[x["connections"], f"{x['seconds']:.1f}", f"{x['requests']:,}", x["errors"], f"{x['requests_per_s']:,.0f}", f"{x['latency_ms_p50']:.2f}",
                          f"{x['latency_ms_p99']:.2f}", f"{x['requests_per_s'] / h['published_calls_per_s']:.1f}x"] for x in h["runs"]], 0)
    if "crash" in r:
        c = r["crash"]
        lines += ["### Crash safety" + _quick(c), "",
                  f"One node with {c['peers']} peer daemons ({c['round_seconds']:g} s rounds, so it commits models), SIGKILLed at a random moment "
                  f"{c['kill_delay_s'][0]:g}-{c['kill_delay_s'][1]:g} s after it answers /health (seed {c['seed']}) and restarted. Before each kill its models are read "
                  "through a read-only SQLite connection; after each restart: GET /health within 120 s, `PRAGMA integrity_check`, every model read before any kill "
                  "still there with the same gene, and the model it runs is its newest verified one (its /status model id while no round has closed yet; "
                  "otherwise its first new model lies within one round's step, 0.1, of it).", ""]
        lines += _table(["restarts", "failed starts", "lost models", "integrity failures", "resumed exactly", "resumed within one step", "resume failures",
                         "unchecked", "models checked", "restart to healthy, median (s)", "max (s)"],
                        [[c["restarts"], c["failed_starts"], c["lost_models"], c["integrity_failures"], c["resumed_exactly"], c["resumed_within_one_step"],
                          c["resume_failures"], c["resume_unchecked"], c["models_seen"], _f(c["restart_to_healthy_median_s"], ".2f"), _f(c["restart_to_healthy_max_s"], ".2f")]], 0)
        lines += ["Restart to healthy counts from launching the process (Python, numpy, numba and FastAPI imports included) to the first 200 of /health."
                  + ("" if not c["problems"] else " Problems seen: " + "; ".join(c["problems"][:10])), ""]
    if "memory" in r:
        m = r["memory"]
        lines += ["### Memory" + _quick(m), "",
                  f"VmRSS (median of 5 readings 0.2 s apart) of one daemon ({m['round_seconds']:g} s rounds), alone and with k peer daemons in its table "
                  f"(of {m['table_slots']} slots): for each k a fresh node and its k peers started together, read once every peer is in its table and "
                  f"{m['rounds_per_point']} more rounds have passed.", ""]
        lines += _table(["peers", "RSS (MiB)", "round", "messages accepted", "banned"],
                        [[p["peers"], f"{p['rss_kib'] / 1024:.1f}", p["round"], p["messages_accepted"], p["banned"]] for p in m["points"]], 0)
        fit = [p for p in m["points"] if p["peers"] > 0]
        lines += [f"Slope over k = {', '.join(str(p['peers']) for p in fit)}: {_f(m['kib_per_peer'], '.0f')} KiB per peer (least squares); "
                  "each point is a separate process, so the slope carries their differences too.", ""]
    return "\n".join(lines)


def _quick(part: dict) -> str:
    return " (`--quick` run)" if part.get("quick") else ""


def _f(v, fmt: str) -> str:
    return "—" if v is None else format(v, fmt)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--only", nargs="+", choices=PARTS, default=list(PARTS))
    ap.add_argument("--quick", action="store_true", help="fewer frames, shorter loads, 10 restarts, fewer peer counts")
    ap.add_argument("--client-procs", type=int, default=1, help="client processes for the HTTP load")
    ap.add_argument("--out", type=Path, default=ROOT / "bench" / "results")
    ap.add_argument("--doc", type=Path, default=ROOT / "docs" / "BENCHMARKS.md")
    args = ap.parse_args(argv)
    path = args.out / "node.json"
    results = json.loads(path.read_text()) if path.exists() else {}
    for part in args.only:
        log(f"{part} ...")
        results[part] = {**(bench_http(args.quick, args.client_procs) if part == "http" else globals()[f"bench_{part}"](args.quick)), "quick": args.quick}
        args.out.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(results, indent=1, default=float))
    update_markdown_section(args.doc, "## Node\n\nGenerated by `python bench/node_bench.py` (raw figures in `bench/results/node.json`).\n\n" + render(results),
                            begin=BEGIN, end=END)
    log(f"wrote {path} and updated {args.doc}")
    c = results.get("crash", {})
    return 1 if c.get("failed_starts") or c.get("lost_models") or c.get("integrity_failures") or c.get("resume_failures") else 0


if __name__ == "__main__":
    sys.exit(main())
