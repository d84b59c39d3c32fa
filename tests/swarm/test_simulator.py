"""The swarm simulator (`qres.swarm.simulator`): parameters checked, every summary figure present and
sane, same seed same run, progress reported, `days` honoured, every topology and aggregator runnable."""

from __future__ import annotations

import dataclasses
import json
import math

import numpy as np
import pytest

from qres import datasets
from qres.swarm import energy, regime
from qres.swarm import simulator as sim
from qres.swarm.simulator import AGGREGATORS, SimConfig, simulate
from qres.swarm.topology import TOPOLOGIES

TINY = dict(nodes=20, rounds=6, degree=4, eval_nodes=2, eval_samples=256)

REQUIRED = (
    "nodes", "rounds", "byzantine_fraction", "attack", "seed", "honest_disagreement", "attack_drift",
    "rounds_to_consensus", "bits_per_value", "bits_per_value_local_only", "gossip_bytes_per_node_per_day",
    "bans_true", "bans_false", "regime_fraction", "false_transitions", "radio_sleep_ratio", "brownouts",
    "wall_seconds", "state_bytes_per_node", "raw_sample_rate_hz", "raw_bytes_per_node_per_day", "sensor_rate_hz",
    "raw_bytes_per_node_per_day_at_sensor_rate", "gossip_to_raw_at_sensor_rate", "energy_j_per_node_per_day",
    "awake_energy_j_per_node_per_day", "swarm_gain",
)


@pytest.fixture(scope="module")
def calm_run():
    return simulate(**TINY, seed=3)


@pytest.fixture(scope="module")
def attacked_run():
    return simulate(**TINY, seed=3, byzantine=0.25, attack="bias")


def without_wall(summary: dict) -> dict:
    return {k: v for k, v in summary.items() if k != "wall_seconds"}


# ----------------------------------------------------------------------------- parameters

BAD = [
    ("nodes", 1), ("nodes", 0), ("rounds", 0), ("byzantine", 1.0), ("byzantine", -0.1), ("attack", "nope"),
    ("dataset", "nope"), ("topology", "nope"), ("aggregator", "nope"), ("profile", "nope"), ("degree", 0),
    ("degree", 100), ("loss", 1.5), ("loss", -0.01), ("delay", 2.0), ("delay", -1.0), ("rate", 0.0),
    ("rate", 1.5), ("window", 8), ("samples_per_round", 0), ("initial_charge", 0.0), ("initial_charge", 1.2),
]


@pytest.mark.parametrize("field,value", BAD, ids=[f"{f}={v}" for f, v in BAD])
def test_check_rejects_each_bad_field_naming_it(field, value):
    cfg = dataclasses.replace(SimConfig(), **{field: value})
    with pytest.raises(ValueError, match=field):
        cfg.check()
    with pytest.raises(ValueError, match=field):  # simulate checks before it runs
        simulate(cfg)


def test_check_accepts_the_defaults_and_the_edges():
    SimConfig().check()
    SimConfig(nodes=2, degree=1, relay=1, byzantine=0.0, loss=1.0, delay=0.0, rate=1.0, window=16, initial_charge=1.0).check()


@pytest.mark.parametrize("byzantine", [0.99, 0.95])
def test_a_swarm_without_two_honest_nodes_is_rejected_up_front(byzantine):
    """nodes=20 with 19 or 20 attackers would leave nothing to measure: check() names `byzantine`."""
    with pytest.raises(ValueError, match="byzantine"):
        SimConfig(**TINY, byzantine=byzantine, attack="bias").check()
    SimConfig(**TINY, byzantine=0.9, attack="bias").check()  # 18 attackers, 2 honest nodes: fine


@pytest.mark.parametrize("field, value", [("eval_nodes", 0), ("eval_samples", 63)])
def test_an_evaluation_without_a_frame_is_rejected(field, value):
    with pytest.raises(ValueError, match=field):
        SimConfig(**{**TINY, field: value}).check()


# ----------------------------------------------------------------------------- the summary


@pytest.mark.parametrize("which", ["calm_run", "attacked_run"])
def test_summary_has_every_required_figure(which, request):
    res = request.getfixturevalue(which)
    s = res.summary
    missing = [k for k in REQUIRED if k not in s]
    assert not missing, missing
    cfg = res.config
    assert s["nodes"] == cfg.nodes and s["seed"] == cfg.seed and s["attack"] == cfg.attack
    assert s["rounds"] == len(res.rounds) == cfg.rounds
    assert [r["round"] for r in res.rounds] == list(range(1, cfg.rounds + 1))
    assert s["byzantine_fraction"] == round(cfg.byzantine * cfg.nodes) / cfg.nodes
    fr = s["regime_fraction"]
    assert set(fr) == set(regime.REGIME_NAMES) == {"calm", "prestorm", "storm"}
    assert all(0.0 <= v <= 1.0 for v in fr.values())
    assert sum(fr.values()) == pytest.approx(1.0)
    for rec in res.rounds:
        assert rec["calm"] + rec["prestorm"] + rec["storm"] == pytest.approx(1.0)
    assert 0.0 <= s["radio_sleep_ratio"] <= 1.0
    assert s["bits_per_value"] > 0 and s["bits_per_value_local_only"] > 0
    assert s["swarm_gain"] == pytest.approx(1 - s["bits_per_value"] / s["bits_per_value_local_only"])
    assert s["gossip_bytes_per_node_per_day"] > 0
    assert s["honest_disagreement"] >= 0
    assert s["rounds_to_consensus"] is None or 1 <= s["rounds_to_consensus"] <= s["rounds"]
    for k in ("bans_true", "bans_false", "false_transitions", "brownouts"):
        assert isinstance(s[k], int) and s[k] >= 0, k
    assert s["bans_true"] <= round(cfg.byzantine * cfg.nodes)
    assert s["bans_false"] <= cfg.nodes - round(cfg.byzantine * cfg.nodes)
    assert 0 < s["state_bytes_per_node"] <= 1024
    assert s["wall_seconds"] > 0
    json.dumps(s, allow_nan=False)  # summary.json must be strict JSON


def test_attack_drift_is_a_float_under_attack_and_none_without(calm_run, attacked_run):
    assert calm_run.summary["attack_drift"] is None
    assert all(r["attack_drift"] is None for r in calm_run.rounds)
    drift = attacked_run.summary["attack_drift"]
    assert isinstance(drift, float) and math.isfinite(drift) and drift >= 0
    assert all(isinstance(r["attack_drift"], float) for r in attacked_run.rounds)


def test_raw_readings_are_priced_at_the_simulated_rate_and_at_a_stated_sensor_rate(calm_run):
    """The simulated rate is the readings the nodes learned from over the simulated time (a mean over
    nodes of readings / own time, so at least readings / mean time); the sensor rate is stated."""
    s = calm_run.summary
    readings = calm_run.config.samples_per_round * s["rounds"]
    floor = readings / (s["simulated_days"] * sim.DAY_S)
    assert floor <= s["raw_sample_rate_hz"] <= 1.1 * floor
    assert s["raw_bytes_per_node_per_day"] == pytest.approx(4 * s["raw_sample_rate_hz"] * sim.DAY_S)
    assert s["raw_bytes_per_node_per_day_at_sensor_rate"] == 4 * s["sensor_rate_hz"] * sim.DAY_S
    assert s["gossip_to_raw_at_sensor_rate"] == pytest.approx(s["gossip_bytes_per_node_per_day"] / s["raw_bytes_per_node_per_day_at_sensor_rate"])


def test_energy_used_is_the_sleeping_radio_plus_each_wake(calm_run):
    """Energy per day: the radio asleep all day, plus per wake the listen window and airtime at the
    active draw instead of the sleeping one, and the CPU's second."""
    s, p = calm_run.summary, energy.PROFILES[calm_run.config.profile]
    asleep = p.radio_sleep_mw * sim.DAY_S / 1000
    assert s["energy_j_per_node_per_day"] - s["awake_energy_j_per_node_per_day"] == pytest.approx(asleep)
    wakes = s["rounds"] / s["simulated_days"]
    listen = (energy.LISTEN_S * (p.radio_active_mw - p.radio_sleep_mw) + energy.CPU_S * p.cpu_mw) / 1000
    airtime = (p.radio_active_mw - p.radio_sleep_mw) / 1000  # at most one second per wake at these few bytes
    assert wakes * listen <= s["awake_energy_j_per_node_per_day"] <= 1.1 * wakes * (listen + airtime)


def test_bias_attack_moves_the_honest_consensus(attacked_run):
    """Attack drift compares the honest mean with the same seeded run without attackers: the bias
    attack changes what honest nodes receive, so the drift is not zero."""
    assert max(r["attack_drift"] for r in attacked_run.rounds) > 0


# ----------------------------------------------------------------------------- determinism


@pytest.mark.parametrize("extra", [{}, {"byzantine": 0.25, "attack": "gaussian", "loss": 0.2, "delay": 0.2}])
def test_same_seed_same_run(extra):
    a = simulate(**TINY, seed=5, **extra)
    b = simulate(**TINY, seed=5, **extra)
    assert without_wall(a.summary) == without_wall(b.summary)
    assert a.rounds == b.rounds
    np.testing.assert_array_equal(a.series["weights"], b.series["weights"])
    c = simulate(**TINY, seed=6, **extra)
    assert without_wall(a.summary) != without_wall(c.summary) or a.rounds != c.rounds


def test_state_stays_small_in_a_bigger_swarm():
    res = simulate(nodes=40, rounds=5, degree=16, eval_nodes=1, eval_samples=128, byzantine=0.2, attack="sybil")
    assert 0 < res.summary["state_bytes_per_node"] <= 1024


# ----------------------------------------------------------------------------- progress and days


@pytest.mark.parametrize("extra,factor", [({}, 1), ({"byzantine": 0.25, "attack": "alie"}, 2)])
def test_progress_is_called_once_per_round_up_to_total(extra, factor):
    """Under attack the reference run without attackers counts too: total is twice the rounds."""
    calls = []
    simulate(**TINY, progress=lambda done, total: calls.append((done, total)), **extra)
    total = TINY["rounds"] * factor
    assert calls == [(i, total) for i in range(1, total + 1)]


def test_days_stops_once_every_honest_node_has_lived_that_long(monkeypatch):
    """The run stops at the first round after which the slowest honest node's clock reaches `days`."""
    wakes = []
    real = sim.wake_interval_s

    def spy(*args):
        out = real(*args)
        wakes.append(np.array(out))
        return out

    monkeypatch.setattr(sim, "wake_interval_s", spy)
    days = 0.75
    res = simulate(**{**TINY, "rounds": 200}, days=days)
    k = res.summary["rounds"]
    assert 1 < k < 200 and len(wakes) == k
    clock = np.cumsum(np.array(wakes), axis=0)[:, res.series["honest"]].min(axis=1)
    assert clock[-1] >= days * sim.DAY_S
    assert clock[-2] < days * sim.DAY_S
    assert res.summary["simulated_days"] >= days
    capped = simulate(**{**TINY, "rounds": 2}, days=days)  # rounds stays the cap
    assert capped.summary["rounds"] == 2


def test_every_simulated_day_has_its_own_cloud_factor(monkeypatch):
    used = []
    real = energy.solar_mw

    def spy(t_s, peak_mw, cloud):
        used.append((int(np.max(np.asarray(t_s) // sim.DAY_S)), len(cloud)))
        return real(t_s, peak_mw, cloud)

    monkeypatch.setattr(energy, "solar_mw", spy)
    res = simulate(**{**TINY, "rounds": 30, "eval_samples": 128, "eval_nodes": 1})
    assert res.summary["simulated_days"] > 3  # the premise: the run spans several days
    assert all(day < n for day, n in used), f"days reached vs cloud factors: {used[-1]}"


# ----------------------------------------------------------------------------- variants run


@pytest.mark.parametrize("topo", TOPOLOGIES)
def test_each_topology_runs(topo):
    res = simulate(**TINY, topology=topo, byzantine=0.2, attack="sign_flip")
    assert res.summary["topology"] == topo
    assert res.summary["rounds"] == TINY["rounds"]
    assert math.isfinite(res.summary["honest_disagreement"])


@pytest.mark.parametrize("agg", AGGREGATORS)
def test_each_aggregator_runs(agg):
    res = simulate(nodes=20, rounds=4, degree=6, eval_nodes=1, eval_samples=128, aggregator=agg, byzantine=0.2,
                   attack="bias")
    assert res.summary["aggregator"] == agg
    assert len(res.rounds) == 4
    assert np.isfinite(res.series["weights"]).all()
    json.dumps(res.summary, allow_nan=False)


def test_another_dataset_runs():
    other = [d for d in datasets.names() if d != SimConfig().dataset][0]
    res = simulate(**TINY, dataset=other)
    assert res.summary["dataset"] == other and res.summary["bits_per_value"] > 0


def test_consensus_rounds_follow_the_disagreement_curve():
    """rounds_to_consensus is the first round below 1%; consensus_held_from the first from which it stays there."""
    res = simulate(**{**TINY, "rounds": 20, "nodes": 30, "degree": 8})
    d = [r["honest_disagreement"] for r in res.rounds]
    first, held = res.summary["rounds_to_consensus"], res.summary["consensus_held_from"]
    assert first is not None and held is not None and first <= held
    assert d[first - 1] < 0.01 and all(x >= 0.01 for x in d[: first - 1])
    assert all(x < 0.01 for x in d[held - 1 :]) and (held == 1 or d[held - 2] >= 0.01)


def test_epidemic_relays_cost_bytes_and_reach_beyond_direct_peers(monkeypatch):
    """With relays a node hears updates from nodes that are not its peers (epidemic spreading)."""
    from qres.swarm import node

    seen = {}
    receive = node.receive

    def spy(state, step, inbox, present, votes, quorum=node.QUORUM):
        if state.n == 30:
            seen["relayed"] = seen.get("relayed", 0) + int(present[:, 8:10].sum())
        return receive(state, step, inbox, present, votes, quorum)

    monkeypatch.setattr(node, "receive", spy)
    cfg = dict(TINY, nodes=30, degree=8, rounds=8)
    with_relay = simulate(**cfg, relay=2).summary
    assert seen["relayed"] > 0
    without = simulate(**cfg, relay=0).summary
    assert with_relay["gossip_bytes_per_node_per_day"] > without["gossip_bytes_per_node_per_day"]
    with pytest.raises(ValueError, match="relay"):
        SimConfig(**cfg, relay=9).check()
