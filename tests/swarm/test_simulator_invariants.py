"""Whole swarms in the simulator: every attack class against the adaptive aggregator at a small
scale, and the invariants that only show over many rounds (INV-5 no brownouts, INV-7 liveness).
"""

import numpy as np
import pytest

from qres.swarm import attacks, node, regime
from qres.swarm.simulator import SimConfig, simulate

SMALL = SimConfig(nodes=50, rounds=25, byzantine=0.2, eval_nodes=5, eval_samples=256)


@pytest.mark.parametrize("attack", [a for a in attacks.ATTACKS if a != "none"])
def test_each_attack_class_against_the_adaptive_aggregator(attack):
    s = simulate(SMALL, attack=attack).summary
    assert s["honest_disagreement"] < 0.02, s
    # a shared-bias cartel drags the swarm along flat directions of the loss before it is caught
    # (docs/BENCHMARKS.md reports it); every other class stays well inside 5%
    assert s["attack_drift"] < (0.1 if attack == "cartel" else 0.05), s
    assert s["bans_false"] == 0, s
    if attack in ("bias", "sign_flip", "gaussian", "ipm", "sybil", "entropy", "cartel"):
        assert s["bans_true"] >= 0.9 * 10, s  # the attackers whose proposals break the protocol are banned
    assert s["regime_fraction"]["storm"] == 0.0  # nobody was talked into Storm


def test_without_evidence_the_same_attack_does_harm(monkeypatch):
    """The attacks above are not toothless: a node that took every proposal at face value (no outlier
    test, no violations, no bans) would let a bias drag the swarm."""
    defended = simulate(SMALL, attack="bias").summary
    real = node._evidence

    def blind(*args):
        ev = real(*args)
        for mask in (ev.unusual, ev.violating):
            mask[:] = False
        return ev

    monkeypatch.setattr(node, "_evidence", blind)
    naive = simulate(SMALL, attack="bias").summary
    assert defended["attack_drift"] < 0.05 and defended["bans_true"] > 0
    assert naive["bans_true"] == 0 and naive["attack_drift"] > 3 * defended["attack_drift"]


def test_inv5_entropy_injectors_cannot_brown_out_honest_nodes():
    cfg = SimConfig(nodes=40, rounds=400, days=7, byzantine=0.25, attack="entropy", initial_charge=0.2, eval_nodes=3, eval_samples=256)
    s = simulate(cfg).summary
    assert s["simulated_days"] >= 7 and s["brownouts"] == 0
    assert s["regime_fraction"]["storm"] == 0.0


def test_inv5_depends_on_trusted_storm_votes(monkeypatch):
    """If Storm votes counted whatever the voter's reputation, the injectors would keep honest radios
    awake every 30 s: the test above would then see Storm and a far larger energy draw."""
    monkeypatch.setattr(regime, "trusted_storm_votes", lambda votes, rep, trusted_above_q16=0: np.asarray(votes) == regime.STORM)
    cfg = SimConfig(nodes=40, rounds=60, byzantine=0.25, attack="entropy", initial_charge=0.2, eval_nodes=3, eval_samples=256)
    fooled = simulate(cfg)
    monkeypatch.undo()
    honest = simulate(cfg)
    assert fooled.summary["regime_fraction"]["storm"] > 0.5
    assert honest.summary["regime_fraction"]["storm"] == 0.0
    assert fooled.summary["simulated_days"] < 0.5 * honest.summary["simulated_days"]  # rounds every 30 s, not hours
    lowest = [min(r["min_charge"] for r in run.rounds) for run in (fooled, honest)]
    assert lowest[0] < lowest[1]  # and batteries drained towards the 10% fallback


def test_inv7_twenty_percent_stragglers_still_reach_consensus_and_rejoin_it():
    res = simulate(SimConfig(nodes=50, rounds=150, byzantine=0.2, attack="straggler", eval_nodes=3, eval_samples=256))
    assert res.summary["consensus_held_from"] is not None and res.summary["consensus_held_from"] <= 150
    w = res.series["weights"].astype(float)
    mean = w[res.series["honest"]].mean(axis=0)
    late = ~res.series["honest"]
    gap = np.linalg.norm(w[late] - mean, axis=1) / np.linalg.norm(mean)
    assert np.median(gap) < 0.05  # the stragglers themselves follow the consensus when they make it


def test_inv7_a_node_cut_off_keeps_its_last_verified_model():
    cfg = SimConfig(nodes=30, rounds=12, loss=1.0, eval_nodes=3, eval_samples=256)  # every message lost
    res = simulate(cfg)
    assert all(r["verified"] == 0.0 for r in res.rounds)
    assert not res.series["weights"].any()  # nothing verified, so still the genesis model

