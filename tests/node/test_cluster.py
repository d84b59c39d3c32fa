"""`qres cluster`: real daemon processes on loopback, attackers among them; and the propagation
figure computed from the nodes' Hello arrivals."""

import json
import subprocess
import sys

import pytest

from qres.node.cluster import ClusterConfig, propagation


def _cluster(out, attack: str) -> dict:
    """`qres cluster` of 10 daemons, 2 of them playing `attack`, 25 rounds of 0.3 s; its summary."""
    proc = subprocess.run(
        [sys.executable, "-m", "qres.cli", "cluster", "--nodes", "10", "--byzantine", "0.2", "--attack", attack, "--rounds", "25",
         "--round-seconds", "0.3", "--out", str(out)],
        capture_output=True, text=True, timeout=900,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads((out / "summary.json").read_text())


def test_a_cluster_with_attackers_converges_and_bans_them(tmp_path):
    out = tmp_path / "cluster"
    s = _cluster(out, "bias")
    assert s["nodes"] == 10 and s["byzantine_nodes"] == 2 and s["stopped_cleanly"] == 10
    assert s["rounds_closed_min"] >= 25 and s["honest_with_model"] == 8
    assert s["model_norm"] > 0.05  # the honest nodes learned from their readings ...
    assert s["honest_disagreement"] < 0.05  # ... and agree on one model
    assert s["bans_true"] == 2 and s["bans_false"] == 0  # every attacker banned by most honest nodes, no honest node by any
    assert s["propagation_messages"] > 0 and s["propagation_ms_p50"] is not None and s["propagation_ms_p99"] >= s["propagation_ms_p50"]
    assert s["compress_per_s"] > 0 and s["honest_counters"]["hellos_accepted"] > 0
    assert len(list((out / "nodes").iterdir())) == 10


def test_a_cluster_refuses_an_occupied_folder_and_bad_settings(tmp_path):
    (tmp_path / "nodes").mkdir()
    proc = subprocess.run([sys.executable, "-m", "qres.cli", "cluster", "--nodes", "3", "--out", str(tmp_path)], capture_output=True, text=True, timeout=120)
    assert proc.returncode != 0 and "already holds a cluster" in proc.stderr
    for bad, says in [(dict(attack="sybil", byzantine=0.2), "not one of"), (dict(byzantine=0.5), "honest nodes must be the majority"),
                      (dict(dataset="nope"), "not bundled"), (dict(nodes=1), "outside 2..1000")]:
        with pytest.raises(ValueError, match=says):
            ClusterConfig(**bad).check()


def test_the_title_names_the_attackers_or_says_there_are_none():
    assert ClusterConfig(nodes=10, byzantine=0.2, attack="bias").title == "cluster of 10 daemons, 2 attacking (bias)"
    assert ClusterConfig(nodes=4, attack="bias").title == "cluster of 4 daemons, no attackers"
    assert ClusterConfig(nodes=10, byzantine=0.01, attack="bias").title == "cluster of 10 daemons, no attackers"  # rounds to none


def test_propagation_is_the_time_until_the_last_honest_node_has_a_hello():
    dids = {0: "a", 1: "b", 2: "c", 3: "x"}
    arrivals = {
        0: [("b", 1_000, 3_000, 2), ("c", 5_000, 9_000, 2)],
        1: [("a", 2_000, 2_500, 2), ("c", 5_000, 6_000, 1)],
        2: [("a", 2_000, 4_000, 1), ("b", 1_000, 1_500, 2), ("b", 1_000, 1_200, 0)],  # a duplicate: the earlier one counts
        3: [("a", 2_000, 2_100, 2)],  # an attacker's view is not counted
    }
    got = propagation(arrivals, dids, honest=[0, 1, 2])
    # a's Hello: last honest arrival at 4,000 (2 ms); b's: 3,000 (2 ms); c's: 9,000 (4 ms)
    assert got["propagation_messages"] == 3 and got["propagation_reached_all"] == 1.0
    assert got["propagation_ms_p50"] == 2.0 and got["propagation_ms_max"] == 4.0
    partial = propagation({0: arrivals[0], 1: arrivals[1], 2: []}, dids, honest=[0, 1, 2], since_us=1_500)
    # from 1,500 on: a's Hello never reached node 2; c's reached both others
    assert partial["propagation_messages"] == 2 and partial["propagation_reached_all"] == 0.5 and partial["propagation_ms_p99"] == 4.0
    assert propagation({0: [], 1: [], 2: []}, dids, honest=[0, 1, 2])["propagation_ms_p50"] is None


def test_slanderers_ban_nobody_and_their_reports_are_not_amplified(tmp_path):
    s = _cluster(tmp_path / "cluster", "slander")
    assert s["bans_false"] == 0 and s["honest_disagreement"] < 0.05  # false reports every round ban no honest node
    # honest nodes pass on no slanderer's report (they think well of its victims), so the two
    # slanderers' floods do not multiply through the swarm
    c = s["honest_counters"]
    assert c.get("bans_reported", 0) == 0 and c.get("dropped_rate_limited", 0) == 0
