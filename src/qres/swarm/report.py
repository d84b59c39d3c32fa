"""The simulator's report files: summary.json, rounds.csv, PNG plots and an HTML page that shows them.

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
from pathlib import Path

from .simulator import SimResult

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
    fig.savefig(path, metadata={"Software": None})  # no version or date stamp: same run, same bytes
    plt.close(fig)


def _html(result: SimResult) -> str:
    s = result.summary
    rows = "\n".join(
        f"<tr><th>{html.escape(k)}</th><td>{html.escape(json.dumps(_round_floats(v)))}</td></tr>" for k, v in s.items() if k != "wall_seconds"
    )
    figs = "\n".join(f'<figure><img src="{name}" alt="{html.escape(title)}"><figcaption>{html.escape(title)}</figcaption></figure>' for name, title, _, _ in PLOTS)
    title = f"QRES swarm: {s['nodes']} nodes, {s['rounds']} rounds, attack {s['attack']} ({s['byzantine_fraction']:.0%})"
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>{html.escape(title)}</title>
<style>body{{font-family:sans-serif;max-width:60em;margin:2em auto}}table{{border-collapse:collapse}}
th,td{{border:1px solid #ccc;padding:.2em .6em;text-align:left}}figure{{display:inline-block;margin:.5em}}</style></head>
<body><h1>{html.escape(title)}</h1>
<p>Dataset <code>{html.escape(s['dataset'])}</code>, topology <code>{html.escape(s['topology'])}</code>,
aggregator <code>{html.escape(s['aggregator'])}</code>, seed {s['seed']}. Per-round figures are in
<a href="rounds.csv">rounds.csv</a>, the summary in <a href="summary.json">summary.json</a>.</p>
<table>{rows}</table>
{figs}
</body></html>
"""


def write_report(result: SimResult, out: Path) -> list[Path]:
    """Write summary.json, rounds.csv, the PNG plots and index.html into `out` (created if needed)."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    written = []
    for name, text in (("summary.json", summary_json(result)), ("rounds.csv", rounds_csv(result)), ("index.html", _html(result))):
        (out / name).write_text(text, encoding="utf-8")
        written.append(out / name)
    for name, title, fields, log in PLOTS:
        _plot(result, out / name, title, fields, log)
        written.append(out / name)
    return written
