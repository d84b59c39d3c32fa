"""The simulator's report files: summary.json, rounds.csv, PNG plots and an HTML page that shows them,
and `SECTIONS`, the one description of every summary figure (label, unit, meaning) that the HTML
page, `qres sim` and `qres demo` all show.

This is the simulator's edge, the only place in `qres.swarm` that writes files. Everything written
is a function of the run (wall time aside): the same config and seed give the same bytes, because
the JSON and CSV are printed with fixed float formatting, the PNGs carry no timestamp and the HTML
embeds nothing time-dependent.
"""

from __future__ import annotations

import csv
import html
import io
import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from .. import atomic
from .simulator import CONSENSUS, VALUE_BYTES, SimResult


def _number(v, s: dict) -> str:
    return f"{v:,}" if isinstance(v, int) else f"{v:,.0f}" if abs(v) >= 1000 else f"{v:.4g}"


def _percent(v, s: dict) -> str:
    return f"{100 * v:.4g}"


def _text(v, s: dict) -> str:
    return str(v)


def _of_attackers(v, s: dict) -> str:
    return f"{v} of {round(s['byzantine_fraction'] * s['nodes'])}"


@dataclass(frozen=True)
class Figure:
    """How every report shows one summary figure."""

    key: str  # summary key; "a.b" is entry b of the dict at key a
    label: str
    unit: str
    meaning: str  # one line
    show: Callable[[object, dict], str] = _number  # the value as text, given the whole summary
    none: str = "n/a"  # what a None value means


SECTIONS: tuple[tuple[str, tuple[Figure, ...]], ...] = (
    ("Did the swarm agree?", (
        Figure("rounds_to_consensus", "consensus reached in", "round", f"first round with every honest model within {CONSENSUS:.0%} of the honest mean", none="never"),
        Figure("consensus_held_from", "consensus held from", "round", f"round from which every honest model stayed within {CONSENSUS:.0%} of the mean", none="never"),
        Figure("honest_disagreement", "final disagreement", "%", "farthest honest model from the honest mean, relative to it (L2)", _percent),
        Figure("attack_drift", "drift due to the attack", "%", "honest mean against the same run without attackers, relative (L2)", _percent, "no attack"),
    )),
    ("Were attackers banned?", (
        Figure("bans_true", "attackers banned", "nodes", "attackers banned by most of the honest nodes that hear them", _of_attackers),
        Figure("bans_false", "honest nodes banned", "nodes", "honest nodes banned by any honest node that hears them"),
        Figure("detection_round_mean", "attackers banned by round", "round", "mean round of the ban, over the attackers banned", none="none banned"),
    )),
    ("What did it cost?", (
        Figure("gossip_bytes_per_node_per_day", "gossip sent", "bytes/node/day", "bytes an honest node sent: updates, relays, votes, ban reports"),
        Figure("raw_sample_rate_hz", "simulated sampling rate", "Hz", "new readings per round over the round's length (a wake interval)"),
        Figure("raw_bytes_per_node_per_day", "raw readings, simulated rate", "bytes/node/day", f"those readings uploaded ({VALUE_BYTES} bytes each) for central learning"),
        Figure("sensor_rate_hz", "sensor rate compared", "Hz", "stated, not simulated: gossip stays the same at any sensor rate"),
        Figure("raw_bytes_per_node_per_day_at_sensor_rate", "raw readings, sensor rate", "bytes/node/day", f"every reading of that sensor uploaded ({VALUE_BYTES} bytes each)"),
        Figure("gossip_to_raw_at_sensor_rate", "gossip / raw, sensor rate", "%", "below 100%, gossiping costs less than uploading every reading", _percent),
        Figure("fedavg_bytes_per_node_per_day", "FedAvg uploads", "bytes/node/day", "the same model as float32 to a server each round, payload only"),
        Figure("energy_j_per_node_per_day", "energy used", "J/node/day", "what an honest node drew: radio asleep and awake, and the CPU"),
        Figure("awake_energy_j_per_node_per_day", "energy used awake", "J/node/day", "part of it above the sleeping radio's draw: listen, send, compute"),
        Figure("radio_sleep_ratio", "radio asleep", "%", "share of the simulated time an honest node's radio slept", _percent),
        Figure("brownouts", "brownouts", "wakes", "wake intervals an honest node's battery could not pay for"),
        Figure("state_bytes_per_node", "protocol state", "bytes/node", "memory a node keeps for the protocol, a peer id as 32 bytes"),
    )),
    ("What did the swarm gain?", (
        Figure("swarm_gain", "bits saved over nodes alone", "%", "bits per value saved against learning alone (negative: more bits)", _percent),
        Figure("bits_per_value", "with the swarm's model", "bits/value", "codec cost of each evaluated node's next readings, frames of 64"),
        Figure("bits_per_value_local_only", "with the node's own model", "bits/value", "the same rule run by each node alone, without peers"),
        Figure("bits_per_value_central", "with a central model", "bits/value", "one least-squares model fitted on every honest node's data"),
        Figure("evaluated_nodes", "evaluated nodes", "nodes", "honest nodes whose next readings were coded"),
    )),
    ("The run", (
        Figure("nodes", "nodes", "nodes", "nodes in the swarm"),
        Figure("byzantine_fraction", "attackers", "%", "share of the nodes that attack", _percent),
        Figure("attack", "attack", "", "what the attackers do (qres sim --help)", _text),
        Figure("dataset", "dataset", "", "bundled recording the nodes observe", _text),
        Figure("topology", "topology", "", "who hears whom", _text),
        Figure("aggregator", "aggregator", "", "rule that combines the accepted proposals", _text),
        Figure("seed", "seed", "", "seed of every random choice: same seed, same run", _text),
        Figure("rounds", "rounds", "rounds", "gossip rounds run, one per wake"),
        Figure("simulated_days", "simulated time", "days", "mean time an honest node lived through"),
        Figure("regime_fraction.calm", "time in Calm", "%", "share of honest node-rounds in Calm", _percent),
        Figure("regime_fraction.prestorm", "time in PreStorm", "%", "share of honest node-rounds in PreStorm", _percent),
        Figure("regime_fraction.storm", "time in Storm", "%", "share of honest node-rounds in Storm", _percent),
        Figure("false_transitions", "false alarms", "alarms", "PreStorm that fell back to Calm, over all honest nodes"),
        Figure("wall_seconds", "wall time", "s", "time this machine took to simulate the run"),
    )),
)


def _value(summary: dict, key: str):
    head, _, entry = key.partition(".")
    value = summary.get(head)
    return value.get(entry) if entry and isinstance(value, dict) else value


def figure_sections(summary: dict, skip: tuple[str, ...] = ()) -> list[tuple[str, list[tuple[str, str, str, str]]]]:
    """Each question of `SECTIONS` with the rows (label, value text, unit, meaning) of the figures
    `summary` holds, headline questions first; keys in `skip` are left out."""
    out = []
    for question, figures in SECTIONS:
        rows = []
        for f in figures:
            if f.key.partition(".")[0] not in summary or f.key in skip:
                continue
            v = _value(summary, f.key)
            rows.append((f.label, f.none, "", f.meaning) if v is None else (f.label, f.show(v, summary), f.unit, f.meaning))
        out.append((question, rows))
    return out

PLOTS = (
    ("consensus.png", "Honest disagreement and attack drift", ("honest_disagreement", "attack_drift"), True),
    ("regimes.png", "Share of honest nodes per regime", ("calm", "prestorm", "storm"), False),
    ("bans.png", "Attackers banned and honest nodes banned", ("bans_true", "bans_false"), False),
    ("energy.png", "Lowest honest battery charge (fraction)", ("min_charge",), False),
)


def _round_floats(x, digits: int = 6):
    """Floats rounded to `digits` significant digits (stable text across platforms)."""
    if isinstance(x, float):
        return float(f"{x:.{digits}g}")
    if isinstance(x, dict):
        return {k: _round_floats(v, digits) for k, v in x.items()}
    if isinstance(x, list):
        return [_round_floats(v, digits) for v in x]
    return x


def summary_json(result: SimResult) -> str:
    """summary.json text: the summary and the run's parameters."""
    body = dict(result.summary)
    body["config"] = {k: v for k, v in vars(result.config).items()}
    return json.dumps(_round_floats(body), indent=2, sort_keys=True) + "\n"


def rounds_csv(result: SimResult) -> str:
    """rounds.csv text: one row per round."""
    buf = io.StringIO()
    fields = list(result.rounds[0])
    w = csv.DictWriter(buf, fieldnames=fields, lineterminator="\n")
    w.writeheader()
    for rec in result.rounds:
        w.writerow({k: ("" if v is None else f"{v:.6g}" if isinstance(v, float) else v) for k, v in rec.items()})
    return buf.getvalue()


def _plot(result: SimResult, path: Path, title: str, fields: tuple[str, ...], log: bool) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rounds = [r["round"] for r in result.rounds]
    fig, ax = plt.subplots(figsize=(6.4, 3.2), dpi=100)
    for f in fields:
        ys = [r[f] for r in result.rounds]
        if any(y is None for y in ys):
            continue
        ax.plot(rounds, [max(y, 1e-6) for y in ys] if log else ys, label=f.replace("_", " "))
    if log:
        ax.set_yscale("log")
        ax.axhline(0.01, color="grey", linestyle=":", linewidth=1, label="1%")
    ax.set_xlabel("round")
    ax.set_title(title, fontsize=10)
    ax.legend(fontsize=8)
    fig.tight_layout()
    with atomic.replacing(path, overwrite=True) as tmp:
        fig.savefig(tmp, format="png", metadata={"Software": None})  # no version or date stamp: same run, same bytes
    plt.close(fig)


def run_title(summary: dict) -> str:
    """What a run was, in a few words: "swarm of 100 nodes, 30% attacking (bias)" or "..., no attackers"."""
    nodes, share = summary["nodes"], summary["byzantine_fraction"]
    attackers = round(share * nodes)
    who = f"{share:.0%} attacking ({summary['attack']})" if attackers and summary["attack"] != "none" else "no attackers"
    return f"swarm of {nodes} nodes, {who}, on {summary['dataset']}"


def _html(result: SimResult) -> str:
    s = result.summary
    rows = "\n".join(
        f'<tr><th colspan="4">{html.escape(question)}</th></tr>\n'
        + "\n".join("<tr>" + "".join(f"<td>{html.escape(cell)}</td>" for cell in row) + "</tr>" for row in figures)
        for question, figures in figure_sections(s, skip=("wall_seconds",))
    )
    figs = "\n".join(f'<figure><img src="{name}" alt="{html.escape(title)}"><figcaption>{html.escape(title)}</figcaption></figure>' for name, title, _, _ in PLOTS)
    title = f"QRES {run_title(s)}, {s['rounds']} rounds"
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>{html.escape(title)}</title>
<style>body{{font-family:sans-serif;max-width:60em;margin:2em auto}}table{{border-collapse:collapse}}
th,td{{border:1px solid #ccc;padding:.2em .6em;text-align:left}}figure{{display:inline-block;margin:.5em}}</style></head>
<body><h1>{html.escape(title)}</h1>
<p>Dataset <code>{html.escape(s['dataset'])}</code>, topology <code>{html.escape(s['topology'])}</code>,
aggregator <code>{html.escape(s['aggregator'])}</code>, seed {s['seed']}. Per-round figures are in
<a href="rounds.csv">rounds.csv</a>, the summary in <a href="summary.json">summary.json</a>.</p>
<table><tr><th>figure</th><th>value</th><th>unit</th><th>meaning</th></tr>
{rows}</table>
{figs}
</body></html>
"""


def write_report(result: SimResult, out: Path) -> list[Path]:
    """Write summary.json, rounds.csv, the PNG plots and index.html into `out` (created if needed)."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    written = []
    for name, text in (("summary.json", summary_json(result)), ("rounds.csv", rounds_csv(result)), ("index.html", _html(result))):
        atomic.write_text(out / name, text, overwrite=True)
        written.append(out / name)
    for name, title, fields, log in PLOTS:
        _plot(result, out / name, title, fields, log)
        written.append(out / name)
    return written
