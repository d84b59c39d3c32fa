"""Swarm benchmark: the figures of the swarm issue, measured with `qres.swarm` itself.

Writes bench/results/swarm.json and bench/results/swarm.png, and regenerates the section between
`<!-- swarm:begin -->` and `<!-- swarm:end -->` in docs/BENCHMARKS.md.

    python bench/swarm_bench.py                  # everything (about 10 minutes on 2 cores)
    python bench/swarm_bench.py --only scale regimes
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT / "src") not in sys.path:  # run from a checkout without installing
    sys.path.insert(0, str(ROOT / "src"))

from qres import __version__, datasets  # noqa: E402
from qres.benchmark import update_markdown_section  # noqa: E402
from qres.swarm import attacks, regime  # noqa: E402
from qres.swarm.aggregate import Krum  # noqa: E402
from qres.swarm.simulator import SimConfig, simulate  # noqa: E402

PARTS = ("scale", "robustness", "cooperation", "cartel", "regimes", "energy", "krum")
BEGIN, END = "<!-- swarm:begin -->", "<!-- swarm:end -->"
ATTACKS = [a for a in attacks.ATTACKS if a != "none"]


def log(msg: str, t0: list[float] = [time.perf_counter()]) -> None:
    print(f"[{time.perf_counter() - t0[0]:7.1f}s] {msg}", flush=True)


def _keep(summary: dict, *keys: str) -> dict:
    return {k: summary[k] for k in keys if k in summary}


def bench_scale() -> dict:
    """10,000 nodes x 100 rounds: wall time (the round loop, and with the codec evaluation), state per node."""
    t = time.perf_counter()
    res = simulate(SimConfig(nodes=10_000, rounds=100, eval_nodes=100))
    wall = time.perf_counter() - t
    s = res.summary
    return {
        "nodes": 10_000,
        "rounds": 100,
        "wall_seconds": wall,
        **_keep(s, "rounds_to_consensus", "consensus_held_from", "honest_disagreement", "state_bytes_per_node", "bits_per_value", "bits_per_value_local_only", "bits_per_value_central"),
    }


def bench_robustness() -> dict:
    """100 nodes, 30% attackers, every attack class, 40 rounds; figures at round 30 and at the end."""
    out = {}
    for dataset in ("heartpy_ppg", "seattle_temps"):
        rows = {}
        for attack in ["none"] + ATTACKS:
            res = simulate(SimConfig(nodes=100, rounds=40, byzantine=0.0 if attack == "none" else 0.3, attack=attack, dataset=dataset, eval_nodes=30))
            s = res.summary
            r30 = res.rounds[29]
            rows[attack] = {
                "disagreement_at_30": r30["honest_disagreement"],
                "drift_at_30": r30["attack_drift"],
                **_keep(s, "rounds_to_consensus", "consensus_held_from", "honest_disagreement", "attack_drift", "bans_true", "bans_false", "detection_round_mean", "bits_per_value"),
                "curve": [r["honest_disagreement"] for r in res.rounds],
            }
            log(f"robustness {dataset} {attack}: d30 {r30['honest_disagreement']:.4f} drift {s['attack_drift']}")
        out[dataset] = rows
    return out


def bench_cooperation() -> dict:
    """Bits per value of the swarm's model vs each node learning alone vs one central fit, as history grows."""
    out = []
    for dataset in ("heartpy_ppg", "seattle_temps", "taylor_electricity", "daphnet_accel"):
        for per_round, window, rounds in ((2, 16, 60), (4, 16, 30), (8, 24, 30), (32, 64, 10), (32, 128, 40), (32, 128, 100)):
            s = simulate(SimConfig(nodes=100, rounds=rounds, window=window, samples_per_round=per_round, dataset=dataset, eval_nodes=40)).summary
            out.append({"dataset": dataset, "per_round": per_round, "window": window, "rounds": rounds, "seen": per_round * rounds + window,
                        **_keep(s, "bits_per_value", "bits_per_value_local_only", "bits_per_value_central", "honest_disagreement")})
            log(f"cooperation {dataset} {per_round}/{window}/{rounds}: {s['bits_per_value']:.3f} vs alone {s['bits_per_value_local_only']:.3f} vs central {s['bits_per_value_central']:.3f}")
    return {"runs": out}


def bench_cartel() -> dict:
    """10 scenarios of 3..10 colluders with a shared bias among 390 honest nodes."""
    runs = []
    for i, k in enumerate((3, 4, 5, 6, 7, 8, 9, 10, 5, 10)):
        n = 390 + k
        res = simulate(SimConfig(nodes=n, rounds=60, byzantine=k / n, attack="cartel", seed=100 + i, eval_nodes=10))
        s = res.summary
        det = res.series["detection_rounds"]
        runs.append({"colluders": k, "seed": 100 + i, "banned": int((det > 0).sum()), "bans_false": s["bans_false"], "detection_rounds": det.tolist(),
                     "detection_round_mean": s.get("detection_round_mean"), "attack_drift": s["attack_drift"], "honest_disagreement": s["honest_disagreement"]})
        log(f"cartel {k}: banned {runs[-1]['banned']}/{k}, false {s['bans_false']}, mean detection {s.get('detection_round_mean')}")
    found = [d for r in runs for d in r["detection_rounds"] if d > 0]
    return {"runs": runs, "all_banned": all(r["banned"] == r["colluders"] for r in runs), "false_bans": sum(r["bans_false"] for r in runs),
            "mean_detection_round": float(np.mean(found)) if found else None}


def _changes(reg: np.ndarray, storm_only: bool) -> int:
    r = (reg == regime.STORM) if storm_only else reg
    return int((np.diff(r.astype(np.int8), axis=-1) != 0).sum())


def bench_regimes() -> dict:
    """False transitions with and without hysteresis, and change points on occupancy against the annotators."""
    rng = np.random.default_rng(0)
    streams = {
        "white noise (200 x 5,000)": rng.normal(0, 1, (200, 5000)),
        "random walk + noise (200 x 5,000)": np.cumsum(rng.normal(0, 1, (200, 5000)), axis=1) + rng.normal(0, 3, (200, 5000)),
    }
    out = {}
    for label, x in streams.items():
        out[label] = _transitions(regime.entropy_series(x))
    bundled = [regime.entropy_series(c.exact_integers) for name in datasets.names() for c in datasets.channels(name)]
    totals = [_transitions(e) for e in bundled]
    out["bundled recordings (23 channels)"] = {k: sum(t[k] for t in totals) for k in totals[0]}
    ann = json.loads((datasets.data_dir() / "occupancy_changepoints.json").read_text())["annotations"]
    truth = sorted({int(i) for v in ann.values() for i in v})
    scores = {}
    for method in ("hysteresis", "plain threshold"):
        per = []
        for ch in datasets.channels("occupancy"):
            v = ch.exact_integers.astype(np.float64)
            changes = regime.detect_regimes(v) if method == "hysteresis" else regime.detect_plain(v)
            entries = [i for i, name in changes[1:] if name != "calm"]
            per.append(regime.changepoint_scores(entries, truth, tolerance=10))
        scores[method] = {k: float(np.nanmean([p[k] for p in per])) for k in per[0]}
    return {"transitions": out, "occupancy": scores, "annotated_points": len(truth)}


def _transitions(e: np.ndarray) -> dict:
    hyst = regime.regime_series(e, regime.HYSTERESIS)
    single = regime.regime_series(e, regime.NO_HYSTERESIS)
    plain = np.where(e > regime.STORM_ENTER_Q16, regime.STORM, regime.CALM)
    return {
        "storm_hysteresis": _changes(hyst, True), "storm_single_step": _changes(single, True), "storm_plain": _changes(plain, True),
        "all_hysteresis": _changes(hyst, False), "all_single_step": _changes(single, False), "all_plain": _changes(plain, False),
    }


def bench_energy() -> dict:
    """A Calm day (radio sleep, gossip bytes next to raw readings and FedAvg) and the 7-day solar scenario (INV-5)."""
    out = {}
    for profile in ("esp32-c6", "rpi-zero-2w"):
        s = simulate(SimConfig(nodes=100, rounds=200, days=1, profile=profile, eval_nodes=10)).summary
        out[f"calm_day_{profile}"] = _keep(s, "rounds", "simulated_days", "radio_sleep_ratio", "gossip_bytes_per_node_per_day", "raw_bytes_per_node_per_day",
                                           "fedavg_bytes_per_node_per_day", "regime_fraction", "brownouts")
        for label, attack in (("solar_week", "entropy"), ("solar_week_no_attack", "none")):  # same seed, same weather: attackers honest
            res = simulate(SimConfig(nodes=100, rounds=3000, days=7, byzantine=0.25, attack=attack, initial_charge=0.25, profile=profile, eval_nodes=10))
            s = res.summary
            out[f"{label}_{profile}"] = {**_keep(s, "rounds", "simulated_days", "brownouts", "radio_sleep_ratio", "regime_fraction", "bans_true"),
                                         "lowest_charge": min(r["min_charge"] for r in res.rounds)}
        log(f"energy {profile}: calm sleep {out[f'calm_day_{profile}']['radio_sleep_ratio']:.4f}, solar brownouts {s['brownouts']}")
    return out


def bench_krum() -> dict:
    """Krum on 50 updates of 100,000 values, next to Flower's numpy implementation."""
    rng = np.random.default_rng(0)
    x = rng.integers(-(2**20), 2**20, size=(50, 100_000)).astype(np.int64)
    out = {}
    t = time.perf_counter()
    Krum(10)(x)
    out["qres_seconds"] = time.perf_counter() - t
    try:
        from flwr.server.strategy.aggregate import aggregate_krum

        t = time.perf_counter()
        aggregate_krum([([u.astype(np.float64)], 1) for u in x], 10, 1)
        out["flower_seconds"] = time.perf_counter() - t
    except ImportError:
        out["flower_seconds"] = None
    return out


def _f(v, fmt=".3f") -> str:
    return "—" if v is None else format(v, fmt)


def _table(headers: list[str], rows: list[list], first_left: int = 1) -> list[str]:
    """Markdown table lines; the first `first_left` columns left-aligned, the rest right-aligned."""
    align = ["---"] * first_left + ["---:"] * (len(headers) - first_left)
    return ["| " + " | ".join(headers) + " |", "| " + " | ".join(align) + " |"] + ["| " + " | ".join(str(c) for c in row) + " |" for row in rows] + [""]


def render(r: dict) -> str:
    lines = [f"Measured with python {platform.python_version()}, qres {__version__}, numpy {np.__version__} on {platform.processor() or platform.machine()}, "
             f"{time.strftime('%Y-%m-%d')}. Every figure comes from `qres.swarm.simulate` or the swarm rules themselves.", ""]
    if "scale" in r:
        s = r["scale"]
        lines += ["### Scale", ""] + _table(
            ["nodes", "rounds", "wall time (s)", "rounds to consensus", "held from", "final disagreement", "state per node (bytes)", "bits/value swarm", "alone", "central"],
            [[f"{s['nodes']:,}", s["rounds"], f"{s['wall_seconds']:.1f}", s["rounds_to_consensus"], s["consensus_held_from"], f"{s['honest_disagreement']:.4f}", f"{s['state_bytes_per_node']:.0f}",
              _f(s["bits_per_value"]), _f(s["bits_per_value_local_only"]), _f(s["bits_per_value_central"])]], 0)
        lines += ["Wall time includes building the swarm, the 100 rounds and the codec evaluation of 100 nodes. State per node counts the weights, the last verified model, "
                  "the running curvature, the peer table (16 peers and 2 relay slots, each id counted as 32 bytes, score, ban flag) and the regime detector.", ""]
    if "robustness" in r:
        lines += ["### Robustness: 100 nodes, 30% attackers", "",
                  "Honest disagreement = max over honest nodes of |w_i - mean| / |mean|; drift = |mean_honest - w_ref| / |w_ref| with w_ref from the same run without attackers. "
                  "Rounds to consensus: first round with disagreement below 1%; held from: first round from which it stays below. Bans: attackers banned by most of their honest observers / honest nodes banned by any honest observer.", ""]
        for ds, runs in r["robustness"].items():
            lines += [f"**{ds}**", ""] + _table(
                ["attack", "disagreement @30", "drift @30", "rounds to consensus", "held from", "final drift", "bans true", "bans false", "mean detection round"],
                [[a, f"{v['disagreement_at_30']:.4f}", _f(v["drift_at_30"], ".4f"), v["rounds_to_consensus"], v["consensus_held_from"], _f(v["attack_drift"], ".4f"), v["bans_true"], v["bans_false"],
                  _f(v.get("detection_round_mean"), ".1f")] for a, v in runs.items()])
    if "cooperation" in r:
        lines += ["### Compression through cooperation (100 nodes, bits per value with the codec, frames of 64)", "",
                  "swarm: each node's final model; alone: the same rule with no peers; central: one least-squares model fitted on all honest nodes' data. "
                  "`new/round` readings arrive each round, `window` is the history a node keeps for its updates, `rounds` how many it has made, "
                  "`seen` how many readings each node has had in all.", ""]
        lines += _table(["dataset", "new/round", "window", "rounds", "seen", "swarm", "alone", "central", "swarm / alone", "swarm / central"],
                        [[v["dataset"], v["per_round"], v["window"], v["rounds"], v["seen"], f"{v['bits_per_value']:.3f}", f"{v['bits_per_value_local_only']:.3f}", f"{v['bits_per_value_central']:.3f}",
                          f"{v['bits_per_value'] / v['bits_per_value_local_only']:.3f}", f"{v['bits_per_value'] / v['bits_per_value_central']:.3f}"] for v in r["cooperation"]["runs"]])
    if "cartel" in r:
        c = r["cartel"]
        lines += ["### Cartels: 3 to 10 colluders with a shared bias among 390 honest nodes (60 rounds)", ""]
        lines += _table(["colluders", "seed", "banned", "honest banned", "mean detection round", "drift"],
                        [[v["colluders"], v["seed"], f"{v['banned']}/{v['colluders']}", v["bans_false"], _f(v["detection_round_mean"], ".1f"), _f(v["attack_drift"], ".4f")] for v in c["runs"]], 0)
        lines += [f"Every member banned in every scenario: {'yes' if c['all_banned'] else 'no'}; honest nodes banned: {c['false_bans']}; "
                  f"mean detection round over all members: {_f(c['mean_detection_round'], '.1f')} (published: 82.3).", ""]
    if "regimes" in r:
        g = r["regimes"]
        lines += ["### Regimes", "", "Transitions on streams with no real change. *hysteresis*: the detector as DESIGN.md fixes it; *single step*: the same state machine "
                  "acting on one step (no consecutive counts, no minimum Storm); *plain*: Storm while entropy > 0.45.", ""]
        lines += _table(["streams", "Storm changes: hysteresis", "single step", "plain", "fewer than plain", "all changes: hysteresis", "single step", "plain"],
                        [[label, f"{t['storm_hysteresis']:,}", f"{t['storm_single_step']:,}", f"{t['storm_plain']:,}", f"{1 - t['storm_hysteresis'] / max(t['storm_plain'], 1):.1%}",
                          f"{t['all_hysteresis']:,}", f"{t['all_single_step']:,}", f"{t['all_plain']:,}"] for label, t in g["transitions"].items()])
        lines += [f"Occupancy against the union of the human change-point annotations ({g['annotated_points']} points, tolerance 10 samples, "
                  "entries into PreStorm or Storm, mean over the 4 channels):", ""]
        lines += _table(["detector", "precision", "recall", "mean delay (samples)"],
                        [[m, f"{v['precision']:.2f}", f"{v['recall']:.2f}", f"{v['mean_delay']:+.1f}"] for m, v in g["occupancy"].items()])
    if "energy" in r:
        e = r["energy"]
        lines += ["### Energy and bandwidth", "", "A Calm day (no attackers), and a week of intermittent solar charging (one seeded cloud factor per day) with batteries starting at 25%, "
                  "with 25% entropy injectors and, for comparison, without attackers.", ""]
        rows = []
        for p in ("esp32-c6", "rpi-zero-2w"):
            c, w, q = e[f"calm_day_{p}"], e[f"solar_week_{p}"], e[f"solar_week_no_attack_{p}"]
            rows.append([p, f"{c['radio_sleep_ratio']:.4%}", f"{c['gossip_bytes_per_node_per_day']:,.0f}", f"{c['raw_bytes_per_node_per_day']:,.0f}", f"{4 * 86400:,}",
                         f"{c['fedavg_bytes_per_node_per_day']:,.0f}", w["brownouts"], f"{w['lowest_charge']:.2f}", f"{w['regime_fraction']['storm']:.3f}", q["brownouts"], f"{q['lowest_charge']:.2f}"])
        lines += _table(["device", "Calm radio sleep", "gossip bytes/node/day", "raw readings, sim pace", "raw readings, 1 Hz", "FedAvg float32 uploads",
                         "solar week with injectors: brownouts", "lowest charge", "Storm share", "without attackers: brownouts", "lowest charge"], rows)
        lines += ["Bytes per node per day. Gossip counts every byte a node transmits (its own GhostUpdate and the one it relays, 91 bytes each with their fragment header; regime votes outside Calm; ban reports); "
                  "raw readings: 4 bytes per reading, at the simulator's pace (32 readings per round, one round per wake) and for a sensor read once a second; "
                  "FedAvg: uploading the same 8-weight model as float32 every round, payload only. A brownout is a wake interval a node could not pay for.", ""]
    if "krum" in r:
        k = r["krum"]
        lines += ["### Krum at 50 updates of 100,000 values", "", f"qres `Krum(f=10)`: {k['qres_seconds']:.2f} s; Flower 1.41 `aggregate_krum`: {_f(k['flower_seconds'], '.2f')} s.", ""]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--only", nargs="+", choices=PARTS, default=list(PARTS))
    ap.add_argument("--out", type=Path, default=ROOT / "bench" / "results")
    ap.add_argument("--doc", type=Path, default=ROOT / "docs" / "BENCHMARKS.md")
    args = ap.parse_args(argv)
    path = args.out / "swarm.json"
    results = json.loads(path.read_text()) if path.exists() else {}
    for part in args.only:
        log(f"{part} ...")
        results[part] = globals()[f"bench_{part}"]()
        args.out.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(results, indent=1, default=float))
    _plot(results, args.out / "swarm.png")
    update_markdown_section(args.doc, "## Swarm\n\nGenerated by `python bench/swarm_bench.py` (raw figures in `bench/results/swarm.json`, "
                            "consensus curves in `bench/results/swarm.png`).\n\n" + render(results), begin=BEGIN, end=END)
    log(f"wrote {path} and updated {args.doc}")
    return 0


def _plot(results: dict, path: Path) -> None:
    if "robustness" not in results:
        return
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = results["robustness"]
    fig, axes = plt.subplots(1, len(rows), figsize=(6 * len(rows), 3.6), squeeze=False)
    for ax, (ds, runs) in zip(axes[0], rows.items()):
        for a, v in runs.items():
            ax.plot(range(1, len(v["curve"]) + 1), np.maximum(v["curve"], 1e-5), label=a, linewidth=1)
        ax.axhline(0.01, color="grey", linestyle=":")
        ax.set_yscale("log")
        ax.set_title(f"{ds}: honest disagreement, 30% attackers", fontsize=9)
        ax.set_xlabel("round")
    axes[0][0].legend(fontsize=6, ncol=2)
    fig.tight_layout()
    fig.savefig(path, metadata={"Software": None})
    plt.close(fig)


if __name__ == "__main__":
    sys.exit(main())
