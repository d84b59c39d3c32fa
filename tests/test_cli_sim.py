"""`qres sim`, run as a user runs it (a child process): JSON summary, report files, every option
reaching the simulation, the choices in --help, and clean one-line failures on bad values."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys

import pytest

from qres import datasets
from qres.swarm import attacks, topology
from qres.swarm.report import figure_sections
from qres.swarm.simulator import AGGREGATORS, SimConfig

TINY = ("--nodes", "20", "--rounds", "4", "--degree", "4")
KEYS = (
    "nodes", "rounds", "byzantine_fraction", "attack", "seed", "honest_disagreement", "attack_drift",
    "rounds_to_consensus", "bits_per_value", "bits_per_value_local_only", "gossip_bytes_per_node_per_day",
    "bans_true", "bans_false", "regime_fraction", "false_transitions", "radio_sleep_ratio", "brownouts",
    "wall_seconds", "state_bytes_per_node",
)


def qres(*args, columns: int = 80) -> subprocess.CompletedProcess:
    env = {**os.environ, "COLUMNS": str(columns)}
    return subprocess.run([sys.executable, "-m", "qres.cli", *map(str, args)], capture_output=True, text=True, env=env,
                          timeout=120)


def test_sim_json_and_report(tmp_path):
    out = tmp_path / "report"
    p = qres("sim", *TINY, "--byzantine", "0.25", "--attack", "bias", "--seed", "7", "--out", out, "--json")
    assert p.returncode == 0, p.stderr
    assert "Traceback" not in p.stderr
    summary = json.loads(p.stdout)
    missing = [k for k in KEYS if k not in summary]
    assert not missing, missing
    assert summary["nodes"] == 20 and summary["rounds"] == 4 and summary["seed"] == 7
    assert summary["attack"] == "bias" and summary["byzantine_fraction"] == 0.25
    assert isinstance(summary["attack_drift"], float)
    for name in ("summary.json", "rounds.csv", "index.html"):
        assert (out / name).is_file(), name
    assert list(out.glob("*.png"))
    written = json.loads((out / "summary.json").read_text())
    assert written["config"]["attack"] == "bias" and written["config"]["seed"] == 7
    assert written["bans_true"] == summary["bans_true"]
    assert len((out / "rounds.csv").read_text().splitlines()) == 1 + 4


def test_every_option_reaches_the_simulation(tmp_path):
    out = tmp_path / "r"
    p = qres(
        "sim", "--nodes", "24", "--rounds", "3", "--degree", "5", "--byzantine", "0.25", "--attack", "cartel",
        "--dataset", "waterflow", "--seed", "3", "--topology", "random_geometric", "--loss", "0.1", "--delay",
        "0.2", "--aggregator", "median", "--days", "0.01", "--charge", "0.5", "--no-solar", "--out", out,
    )
    assert p.returncode == 0, p.stderr
    cfg = json.loads((out / "summary.json").read_text())["config"]
    expect = dict(nodes=24, rounds=3, degree=5, byzantine=0.25, attack="cartel", dataset="waterflow", seed=3,
                  topology="random_geometric", loss=0.1, delay=0.2, aggregator="median", days=0.01,
                  initial_charge=0.5, solar=False)
    assert {k: cfg[k] for k in expect} == expect
    assert "index.html" in p.stderr  # where the report went
    assert "cartel" in p.stdout  # the table names the attack


def test_the_table_gives_each_figure_a_label_value_unit_and_meaning_headline_first(tmp_path):
    out = tmp_path / "r"
    p = qres("sim", *TINY, "--byzantine", "0.25", "--attack", "bias", "--out", out)
    assert p.returncode == 0, p.stderr
    summary = json.loads((out / "summary.json").read_text())
    lines = p.stdout.splitlines()
    at = 0
    for question, rows in figure_sections(summary, skip=("wall_seconds",)):
        at = next(i for i in range(at, len(lines)) if question in lines[i])  # the questions in order
        for row in rows:  # each figure on one line of its own, in order
            cells = r"\s*│\s*".join(map(re.escape, row))
            at = next(i for i in range(at, len(lines)) if re.search(rf"│\s*{cells}\s*│", lines[i]))
    assert p.stdout.index("Did the swarm agree?") < p.stdout.index("The run")
    assert "regime_fraction" not in p.stdout and "{" not in p.stdout  # no raw keys, no dicts


@pytest.mark.parametrize("nodes, degree, relay", [(10, 9, 2), (2, 1, 1), (40, SimConfig.degree, SimConfig.relay)])
def test_the_default_degree_and_relay_fit_the_swarm(nodes, degree, relay, tmp_path):
    out = tmp_path / "r"
    p = qres("sim", "--nodes", nodes, "--rounds", "1", "--out", out)
    assert p.returncode == 0, p.stderr
    cfg = json.loads((out / "summary.json").read_text())["config"]
    assert (cfg["degree"], cfg["relay"]) == (degree, relay)


def test_an_explicit_degree_too_large_is_a_usage_error():
    p = qres("sim", "--nodes", "10", "--degree", "10", "--rounds", "1")
    assert p.returncode == 2
    assert p.stderr.strip() == "error: degree must be 1..9, got 10"


def test_help_lists_every_choice():
    p = qres("sim", "--help", columns=400)  # wide, so no choice list is broken across lines
    assert p.returncode == 0, p.stderr
    lists = re.findall(r"\[([a-z_0-9|]+)\]", p.stdout)
    offered = {name for group in lists for name in group.split("|")}
    for name in (*attacks.ATTACKS, *datasets.names(), *topology.TOPOLOGIES, *AGGREGATORS):
        assert name in offered, f"{name} missing from qres sim --help"
    for option in ("--nodes", "--rounds", "--byzantine", "--attack", "--dataset", "--seed", "--out", "--topology",
                   "--degree", "--loss", "--delay", "--aggregator", "--days", "--charge", "--solar", "--json"):
        assert option in p.stdout, option
    assert f"(default: {SimConfig.degree}, at most nodes - 1)" in p.stdout
    assert f"(default: {SimConfig.relay}, at most --degree)" in p.stdout


@pytest.mark.parametrize(
    "args,says",
    [
        (("--attack", "nope"), "--attack"),
        (("--dataset", "nope"), "--dataset"),
        (("--byzantine", "2"), "--byzantine"),
        (("--nodes", "1"), "--nodes"),
        (("--topology", "ring"), "--topology"),
        (("--nodes", "10", "--degree", "10"), "degree"),  # passes typer, caught by SimConfig.check
        (("--nodes", "10", "--degree", "4", "--relay", "5"), "relay"),
    ],
)
def test_bad_values_fail_cleanly(args, says, tmp_path):
    out = tmp_path / "never"
    p = qres("sim", "--rounds", "2", *args, "--out", out)
    assert p.returncode == 2  # a usage error
    assert "Traceback" not in p.stderr and "Traceback" not in p.stdout
    assert says in p.stderr, p.stderr
    assert not out.exists()  # nothing was simulated or written


def test_a_swarm_of_only_attackers_fails_cleanly():
    p = qres("sim", *TINY, "--byzantine", "0.99", "--attack", "bias")
    assert p.returncode == 2
    assert "Traceback" not in p.stderr and "Traceback" not in p.stdout
    lines = [ln for ln in p.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("error:") and "byzantine" in lines[0], p.stderr
