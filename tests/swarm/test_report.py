"""The simulator's report files (`qres.swarm.report.write_report`): complete, parsable, linked, and
the same bytes for the same seed (wall time aside); every summary figure described once (`SECTIONS`)
and shown with its label, value, unit and meaning, headline questions first."""

from __future__ import annotations

import csv
import html
import json
import re
from pathlib import Path

import pytest

from qres.swarm.report import SECTIONS, figure_sections, write_report
from qres.swarm.simulator import simulate

TINY = dict(nodes=20, rounds=6, degree=4, eval_nodes=2, eval_samples=256, seed=4)
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
SUMMARY_KEYS = (
    "nodes", "rounds", "byzantine_fraction", "attack", "seed", "honest_disagreement", "attack_drift",
    "rounds_to_consensus", "bits_per_value", "bits_per_value_local_only", "gossip_bytes_per_node_per_day",
    "bans_true", "bans_false", "regime_fraction", "false_transitions", "radio_sleep_ratio", "brownouts",
    "wall_seconds", "state_bytes_per_node",
)


@pytest.fixture(scope="module", params=[{}, {"byzantine": 0.25, "attack": "bias"}], ids=["no_attack", "bias"])
def written(request, tmp_path_factory):
    res = simulate(**TINY, **request.param)
    out = tmp_path_factory.mktemp("report") / "nested" / "dir"  # created if missing
    paths = write_report(res, out)
    return res, out, paths


def test_every_written_file_exists_and_is_listed(written):
    res, out, paths = written
    names = {p.name for p in paths}
    assert {"summary.json", "rounds.csv", "index.html"} <= names
    assert all(p.parent == out and p.is_file() and p.stat().st_size > 0 for p in paths)
    assert names == {p.name for p in out.iterdir()}


def test_summary_json_is_strict_json_with_summary_and_config(written):
    res, out, _ = written
    body = json.loads((out / "summary.json").read_text(encoding="utf-8"), parse_constant=_reject_constant)
    for k in SUMMARY_KEYS:
        assert k in body, k
    assert body["nodes"] == res.config.nodes and body["rounds"] == len(res.rounds)
    assert body["attack"] == res.config.attack
    assert (body["attack_drift"] is None) == (res.config.attack == "none")
    cfg = body["config"]
    assert cfg["nodes"] == res.config.nodes and cfg["seed"] == res.config.seed
    assert set(cfg) == set(vars(res.config))  # every parameter of the run is recorded
    assert body["bits_per_value"] == pytest.approx(res.summary["bits_per_value"], rel=1e-5)


def _reject_constant(name):
    raise ValueError(f"summary.json holds {name}, which is not JSON")


def test_rounds_csv_has_a_header_and_one_row_per_round(written):
    res, out, _ = written
    with open(out / "rounds.csv", newline="", encoding="utf-8") as f:
        rows = list(csv.reader(f))
    header, body = rows[0], rows[1:]
    assert header == list(res.rounds[0])
    assert len(body) == len(res.rounds)
    for i, (row, rec) in enumerate(zip(body, res.rounds)):
        assert len(row) == len(header)
        assert int(row[header.index("round")]) == rec["round"] == i + 1
        for name, cell in zip(header, row):
            if rec[name] is None:
                assert cell == "", name
            else:
                assert float(cell) == pytest.approx(rec[name], rel=1e-5, abs=1e-12), name


def test_index_html_references_existing_png_files(written):
    res, out, _ = written
    page = (out / "index.html").read_text(encoding="utf-8")
    images = re.findall(r'<img[^>]*\bsrc="([^"]+)"', page)
    assert images, "index.html shows no plots"
    for src in images:
        assert src.endswith(".png")
        data = (out / src).read_bytes()
        assert data.startswith(PNG_SIGNATURE), src
    links = re.findall(r'href="([^"]+)"', page)
    assert "rounds.csv" in links and "summary.json" in links
    written_pngs = {p.name for p in out.glob("*.png")}
    assert written_pngs == set(images)  # every plot is shown, and every shown plot was written
    assert res.summary["attack"] in page


def _keys(summary: dict) -> set[str]:
    """The summary's figures: its keys, a dict's entries as "key.entry"."""
    out = set()
    for k, v in summary.items():
        out |= {f"{k}.{e}" for e in v} if isinstance(v, dict) else {k}
    return out


def test_every_summary_figure_is_described_exactly_once(written):
    res, _, _ = written
    described = [f.key for _, figures in SECTIONS for f in figures]
    assert len(described) == len(set(described))
    assert len({f.label for _, figures in SECTIONS for f in figures}) == len(described)
    missing = _keys(res.summary) - set(described)
    assert not missing, f"summary figures without a label, unit and meaning: {missing}"
    if res.config.attack != "none":  # under attack the summary holds every figure
        assert set(described) == _keys(res.summary)
    for _, figures in SECTIONS:
        assert all(f.label and f.meaning and "\n" not in f.meaning for f in figures)


def test_sections_put_the_headline_first_and_render_values(written):
    res, _, _ = written
    s = res.summary
    questions = [q for q, _ in figure_sections(s)]
    assert questions[:4] == ["Did the swarm agree?", "Were attackers banned?", "What did it cost?", "What did the swarm gain?"]
    rows = {label: (value, unit) for _, figures in figure_sections(s) for label, value, unit, _ in figures}
    attackers = round(res.config.byzantine * res.config.nodes)
    assert rows["attackers banned"] == (f"{s['bans_true']} of {attackers}", "nodes")
    assert rows["gossip / raw, sensor rate"] == (f"{100 * s['gossip_to_raw_at_sensor_rate']:.4g}", "%")
    assert rows["time in Calm"] == (f"{100 * s['regime_fraction']['calm']:.4g}", "%")
    if s["attack_drift"] is None:
        assert rows["drift due to the attack"] == ("no attack", "")
    assert "wall time" not in {label for _, figures in figure_sections(s, skip=("wall_seconds",)) for label, *_ in figures}


def test_index_html_shows_every_figure_under_its_question(written):
    res, out, _ = written
    page = html.unescape((out / "index.html").read_text(encoding="utf-8"))
    at = 0
    for question, figures in figure_sections(res.summary, skip=("wall_seconds",)):
        at = page.index(f">{question}</th>", at)  # in order
        for row in figures:
            at = page.index("<tr>" + "".join(f"<td>{cell}</td>" for cell in row) + "</tr>", at)
    assert "regime_fraction" not in page and "wall time" not in page  # no raw keys; nothing time-dependent


def test_same_seed_same_report_byte_for_byte(tmp_path):
    """Two runs with the same seed write identical files; summary.json differs only in wall_seconds."""
    kw = {**TINY, "byzantine": 0.25, "attack": "gaussian"}
    a, b = tmp_path / "a", tmp_path / "b"
    write_report(simulate(**kw), a)
    write_report(simulate(**kw), b)
    names = sorted(p.name for p in a.iterdir())
    assert names == sorted(p.name for p in b.iterdir())
    for name in names:
        if name == "summary.json":
            continue
        assert (a / name).read_bytes() == (b / name).read_bytes(), name
    ja, jb = (json.loads((d / "summary.json").read_text()) for d in (a, b))
    ja.pop("wall_seconds")
    jb.pop("wall_seconds")
    assert ja == jb
    strip = lambda d: [ln for ln in (d / "summary.json").read_bytes().splitlines() if b'"wall_seconds"' not in ln]  # noqa: E731
    assert strip(a) == strip(b)
    # and a different seed gives a different report
    c = tmp_path / "c"
    write_report(simulate(**{**kw, "seed": kw["seed"] + 1}), c)
    assert (a / "rounds.csv").read_bytes() != (c / "rounds.csv").read_bytes()


def test_write_report_accepts_a_string_path(tmp_path):
    res = simulate(**{**TINY, "rounds": 2})
    paths = write_report(res, str(tmp_path / "s"))
    assert all(isinstance(p, Path) and p.exists() for p in paths)


def test_the_title_says_no_attackers_or_who_attacks_and_how():
    from qres.swarm.report import run_title

    base = {"nodes": 100, "dataset": "heartpy_ppg"}
    assert run_title({**base, "byzantine_fraction": 0.0, "attack": "none"}) == "swarm of 100 nodes, no attackers, on heartpy_ppg"
    assert run_title({**base, "byzantine_fraction": 0.0, "attack": "bias"}) == "swarm of 100 nodes, no attackers, on heartpy_ppg"
    assert run_title({**base, "byzantine_fraction": 0.3, "attack": "bias"}) == "swarm of 100 nodes, 30% attacking (bias), on heartpy_ppg"
