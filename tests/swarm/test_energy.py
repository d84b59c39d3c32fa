import numpy as np
import pytest

from qres.swarm.regime import CALM, PRESTORM, STORM

from qres.fixed import Q16_ONE, to_q16
from qres.swarm.energy import (
    ESP32_C6,
    PI_ZERO_2W,
    EnergyPool,
    gossip_allowed,
    solar_mw,
    wake_interval_s,
)

FULL = np.int64(Q16_ONE)


def test_wake_intervals_by_regime_reputation_and_charge():
    regime = np.array([CALM, PRESTORM, STORM, CALM, STORM])
    rep = np.array([Q16_ONE, Q16_ONE, Q16_ONE, 0, 0])
    charge = np.full(5, FULL)
    assert wake_interval_s(regime, rep, charge).tolist() == [4 * 3600, 600, 30, 2 * 3600, 15]
    # below 10% charge every node takes the Calm interval
    low = np.full(5, Q16_ONE // 20)
    assert wake_interval_s(regime, rep, low).tolist() == [4 * 3600, 4 * 3600, 4 * 3600, 2 * 3600, 2 * 3600]


def test_gossip_gate():
    one = np.int64(Q16_ONE)
    args = dict(cost_q16=to_q16(0.1), bias_q16=one, charge_q16=to_q16(0.5), reserve_q16=to_q16(0.2))
    calm = np.array([CALM])
    # Calm: only when entropy x reputation beats cost x bias
    assert gossip_allowed(calm, to_q16(0.5), to_q16(0.5), **args).tolist() == [True]
    assert gossip_allowed(calm, to_q16(0.5), to_q16(0.1), **args).tolist() == [False]
    # Storm gossips whatever the utility, but never below the reserve
    assert gossip_allowed(np.array([STORM]), 0, 0, **args).tolist() == [True]
    args["charge_q16"] = to_q16(0.1)
    assert gossip_allowed(np.array([STORM]), to_q16(0.9), one, **args).tolist() == [False]


def test_pool_spends_exact_microjoules_and_counts_brownouts():
    pool = EnergyPool(2, ESP32_C6)
    start = pool.charge_uj.copy()
    pool.spend(10, np.array([2, 0]), np.array([1, 0]))
    used = start - pool.charge_uj
    # 2 s at 230 mW + 8 s at 35 mW + 1 s CPU at 120 mW = 460 + 280 + 120 mJ
    assert used.tolist() == pool.used_uj.tolist() == [860_000, 350_000]
    pool.spend(10, np.array([0, 0]), np.array([0, 0]))
    assert pool.used_uj.tolist() == [1_210_000, 700_000]  # it adds up
    empty = EnergyPool(1, ESP32_C6, charge_fraction=0.0)
    empty.spend(5, np.array([0]), np.array([0]))
    assert empty.brownouts.tolist() == [1] and empty.charge_uj.tolist() == [0]
    assert empty.used_uj.tolist() == [175_000]  # what the interval needed, paid or not
    empty.harvest(np.array([1e9]), 3600)
    assert empty.charge_uj.tolist() == [empty.capacity_uj]  # capped


def test_radio_sleeps_most_of_a_calm_day():
    pool = EnergyPool(1, ESP32_C6)
    t = 0
    while t < 86400:
        interval = int(wake_interval_s(np.array([CALM]), np.array([Q16_ONE]), pool.charge_q16())[0])
        step = min(interval, 86400 - t)
        pool.spend(step, np.array([2]), np.array([1]))  # wake: 2 s of radio for one gossip exchange
        t += step
    assert pool.sleep_ratio()[0] > 0.99
    assert pool.brownouts.sum() == 0


@pytest.mark.parametrize("profile", [ESP32_C6, PI_ZERO_2W])
def test_solar_is_zero_at_night_and_peaks_at_noon(profile):
    cloud = np.array([1.0, 0.2])
    assert solar_mw(3 * 3600, profile.solar_peak_mw, cloud) == 0
    assert solar_mw(12 * 3600, profile.solar_peak_mw, cloud) == pytest.approx(profile.solar_peak_mw)
    assert solar_mw(86400 + 12 * 3600, profile.solar_peak_mw, cloud) == pytest.approx(0.2 * profile.solar_peak_mw)
