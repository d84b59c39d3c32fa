"""Cluster benchmark: gossip propagation and convergence of real daemon processes on loopback
(`qres.node.cluster`), at growing cluster sizes.

For each size it runs `run_cluster` (every node a separate `qres daemon run` process with its own
ports and database) and keeps the summary. Writes bench/results/cluster.json and regenerates the
section between `<!-- cluster:begin -->` and `<!-- cluster:end -->` in docs/BENCHMARKS.md.

    python bench/cluster_bench.py                      # 10, 30 and 100 nodes (about 10 minutes)
    python bench/cluster_bench.py --sizes 10 --rounds 20
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT / "src") not in sys.path:  # run from a checkout without installing
    sys.path.insert(0, str(ROOT / "src"))

from qres import __version__  # noqa: E402
from qres.benchmark import update_markdown_section  # noqa: E402
from qres.node.cluster import ClusterConfig, run_cluster  # noqa: E402

BEGIN, END = "<!-- cluster:begin -->", "<!-- cluster:end -->"
TARGET_P99_MS = 100.0  # the published figure: gossip reaches a 100-node LAN within 100 ms (p99)


def log(msg: str, t0: list[float] = [time.perf_counter()]) -> None:
    print(f"[{time.perf_counter() - t0[0]:7.1f}s] {msg}", flush=True)


def round_seconds_for(nodes: int) -> float:
    """Round length that leaves the machine's cores idle between rounds: every node spends tens of
    milliseconds of CPU per round (learning, coding, signing), and they share 2 cores here."""
    return max(0.5, 0.05 * nodes)


def run_size(nodes: int, rounds: int, byzantine: float, attack: str) -> dict:
    cfg = ClusterConfig(nodes=nodes, byzantine=byzantine, attack=attack, rounds=rounds, round_seconds=round_seconds_for(nodes))
    with tempfile.TemporaryDirectory(prefix=f"qres-cluster-{nodes}-") as tmp:
        last = [0.0]

        def progress(stage: str, done: int, total: int) -> None:
            if time.perf_counter() - last[0] > 10:
                last[0] = time.perf_counter()
                log(f"  {nodes} nodes: {stage} {done}/{total}")

        return run_cluster(cfg, Path(tmp), progress)


def _f(v, spec: str) -> str:
    return "n/a" if v is None else format(v, spec)


def render(results: dict) -> str:
    meta = results["meta"]
    lines = [
        f"Machine: {meta['machine']}, {meta['cores']} cores, Python {meta['python']}, qres {meta['qres']}; every node is its own "
        "process, all on one machine, so the cores are shared by all nodes (a LAN gives each node its own).",
        "",
        "Propagation: from a Hello's sending until the last other honest node accepted it (verified signature, fresh nonce), over "
        "the Hellos sent after every node was up; fanout 8, TTL ceil(log8(nodes)) (every node that first hears a Hello with TTL left passes it on once). Compress: POST /compress of 64 values on the first node, one "
        "keep-alive client, while the cluster runs.",
        "",
        "| nodes | attackers | round s | TTL | rounds | reached all | propagation p50 ms | p99 ms | max ms | honest disagreement | bans true / false | datagrams / node / round | /compress per s | wall s |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for n, s in sorted(results["sizes"].items(), key=lambda kv: int(kv[0])):
        lines.append(
            f"| {n} | {s['byzantine_nodes']} ({s['attack']}) | {s['round_seconds']:g} | {s['ttl']} | {s['rounds_closed_min']} | {s['propagation_reached_all']:.1%} "
            f"| {_f(s['propagation_ms_p50'], '.1f')} | {_f(s['propagation_ms_p99'], '.1f')} | {_f(s['propagation_ms_max'], '.1f')} "
            f"| {_f(s['honest_disagreement'], '.4f')} | {s['bans_true']} / {s['bans_false']} | {s['datagrams_sent_per_node_per_round']:.1f} "
            f"| {s['compress_per_s']:.0f} | {s['wall_seconds']:.0f} |"
        )
    big = results["sizes"].get("100")
    if big is not None and big["propagation_ms_p99"] is not None:
        met = "met" if big["propagation_ms_p99"] < TARGET_P99_MS else "missed"
        lines += ["", f"Target: p99 under {TARGET_P99_MS:.0f} ms at 100 nodes: **{big['propagation_ms_p99']:.1f} ms, {met}**."]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sizes", type=int, nargs="+", default=[10, 30, 100])
    ap.add_argument("--rounds", type=int, default=20)
    ap.add_argument("--byzantine", type=float, default=0.2)
    ap.add_argument("--attack", default="bias")
    ap.add_argument("--out", type=Path, default=ROOT / "bench" / "results")
    ap.add_argument("--doc", type=Path, default=ROOT / "docs" / "BENCHMARKS.md")
    args = ap.parse_args(argv)
    path = args.out / "cluster.json"
    results = json.loads(path.read_text()) if path.exists() else {"sizes": {}}
    results["meta"] = {"machine": platform.machine(), "cores": os.cpu_count(), "python": platform.python_version(), "qres": __version__}
    for n in args.sizes:
        log(f"cluster of {n} nodes ...")
        s = run_size(n, args.rounds, args.byzantine, args.attack)
        results["sizes"][str(n)] = {k: v for k, v in s.items() if k != "honest_counters"}
        log(f"  propagation p50 {_f(s['propagation_ms_p50'], '.1f')} ms, p99 {_f(s['propagation_ms_p99'], '.1f')} ms, "
            f"reached all {s['propagation_reached_all']:.1%}, bans {s['bans_true']}/{s['bans_false']}")
        args.out.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(results, indent=1, default=float))
    update_markdown_section(args.doc, "## Cluster\n\nGenerated by `python bench/cluster_bench.py` (raw figures in "
                            "`bench/results/cluster.json`).\n\n" + render(results), begin=BEGIN, end=END)
    log(f"wrote {path} and updated {args.doc}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
