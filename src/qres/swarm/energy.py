"""Energy: device profiles, an energy pool per node, TWT wake intervals and the gossip gate.

Sans-I/O and vectorised over nodes. Energy is counted in whole microjoules (int64), so a run is
exactly reproducible; powers are in milliwatts, times in seconds.

Rules (DESIGN.md): a radio sleeps at 35 mW and is active at 230 mW, the CPU draws 120 mW
(ESP32-C6). The target wake time (TWT) interval is 4 h in Calm, 10 min in PreStorm and 30 s in
Storm, multiplied by (0.5 + 0.5 x reputation). Below 10% energy a node falls back to the Calm
interval. In Calm a node gossips only when entropy x reputation > cost x bias, and never below its
energy reserve.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..fixed import Q16_ONE, q16_mul
from .regime import CALM

WAKE_INTERVAL_S = np.array([4 * 3600, 10 * 60, 30], np.int64)  # by regime: CALM, PRESTORM, STORM
LOW_ENERGY_Q16 = Q16_ONE // 10  # below 10% charge: the Calm interval whatever the regime
UJ_PER_MWS = 1000  # microjoules in one milliwatt-second
LISTEN_S = 1  # radio awake per wake (the TWT service period), seconds
CPU_S = 1  # CPU busy per round, seconds (a local step takes milliseconds; one second is the granularity)
BITRATE = 250_000  # radio bits per second (802.15.4 class) for airtime


@dataclass(frozen=True)
class DeviceProfile:
    """Power draw (mW) and storage (mWh) of a node's hardware."""

    name: str
    radio_sleep_mw: float
    radio_active_mw: float
    cpu_mw: float
    battery_mwh: float
    solar_peak_mw: float


# ESP32-C6 figures from DESIGN.md; a 2,000 mAh 3.7 V cell and a small 1 W panel.
ESP32_C6 = DeviceProfile("esp32-c6", 35.0, 230.0, 120.0, battery_mwh=7400.0, solar_peak_mw=1000.0)
# Raspberry Pi Zero 2 W: about 0.6 W idle with Wi-Fi asleep, 1.1 W with Wi-Fi busy, 0.6 W more
# for a busy CPU core (published measurements); a 10,000 mAh 3.7 V pack and a 5 W panel.
PI_ZERO_2W = DeviceProfile("rpi-zero-2w", 600.0, 1100.0, 600.0, battery_mwh=37000.0, solar_peak_mw=5000.0)
PROFILES = {p.name: p for p in (ESP32_C6, PI_ZERO_2W)}


def wake_interval_s(regime: np.ndarray, reputation_q16: np.ndarray, charge_q16: np.ndarray) -> np.ndarray:
    """Seconds until each node's radio wakes next (int64), by regime, reputation and charge."""
    regime = np.where(np.asarray(charge_q16) < LOW_ENERGY_Q16, CALM, np.asarray(regime))
    base = WAKE_INTERVAL_S[regime]
    factor = Q16_ONE // 2 + np.asarray(reputation_q16, np.int64) // 2  # 0.5 + 0.5 x reputation, Q16.16
    return (base * factor + Q16_ONE // 2) >> 16


def gossip_allowed(
    regime: np.ndarray,
    entropy_q16: np.ndarray,
    reputation_q16: np.ndarray,
    cost_q16: np.ndarray,
    bias_q16: np.ndarray,
    charge_q16: np.ndarray,
    reserve_q16: np.ndarray,
) -> np.ndarray:
    """Whether each node may spend radio time on gossip now (bool array).

    Never below the energy reserve; in Calm only when entropy x reputation > cost x bias.
    """
    above_reserve = np.asarray(charge_q16) > np.asarray(reserve_q16)
    useful = q16_mul(entropy_q16, reputation_q16) > q16_mul(cost_q16, bias_q16)
    return above_reserve & ((np.asarray(regime) != CALM) | useful)


class EnergyPool:
    """Charge of n nodes in microjoules, with the energy used, the radio time and brownouts counted.

    `spend(seconds, radio_active_s, cpu_s)` draws sleep power for the idle rest of the interval;
    `harvest(mw, seconds)` adds charge up to the capacity. A node whose charge would go below zero
    is counted as a brownout (once per interval) and stays at zero.
    """

    def __init__(self, n: int, profile: DeviceProfile = ESP32_C6, charge_fraction: float = 1.0):
        self.profile = profile
        self.capacity_uj = np.int64(round(profile.battery_mwh * 3600 * UJ_PER_MWS))
        self.charge_uj = np.full(n, np.int64(round(float(self.capacity_uj) * charge_fraction)), np.int64)
        self.brownouts = np.zeros(n, np.int64)
        self.used_uj = np.zeros(n, np.int64)  # energy drawn so far (what brownouts could not pay included)
        self.radio_active_s = np.zeros(n, np.int64)
        self.elapsed_s = np.zeros(n, np.int64)

    def charge_q16(self) -> np.ndarray:
        """Charge as a fraction of capacity, Q16.16."""
        return (self.charge_uj * Q16_ONE) // self.capacity_uj

    def spend(self, seconds: int, radio_active_s: np.ndarray, cpu_s: np.ndarray) -> None:
        """Draw the energy of `seconds` (radio active for radio_active_s of them, CPU busy cpu_s)."""
        radio = np.minimum(np.asarray(radio_active_s, np.int64), seconds)
        cpu = np.minimum(np.asarray(cpu_s, np.int64), seconds)
        p = self.profile
        used = (
            radio * round(p.radio_active_mw * UJ_PER_MWS)
            + (seconds - radio) * round(p.radio_sleep_mw * UJ_PER_MWS)
            + cpu * round(p.cpu_mw * UJ_PER_MWS)
        )
        short = used > self.charge_uj
        self.brownouts += short
        self.charge_uj = np.where(short, 0, self.charge_uj - used)
        self.used_uj += used
        self.radio_active_s += radio
        self.elapsed_s += seconds

    def harvest(self, mw: np.ndarray, seconds: int) -> None:
        """Add the energy of `mw` milliwatts for `seconds`, capped at the capacity."""
        gain = np.round(np.asarray(mw, np.float64) * seconds * UJ_PER_MWS).astype(np.int64)
        self.charge_uj = np.minimum(self.charge_uj + gain, self.capacity_uj)

    def sleep_ratio(self) -> np.ndarray:
        """Fraction of the elapsed time each radio slept (float, for reports)."""
        return 1.0 - self.radio_active_s / np.maximum(self.elapsed_s, 1)


def solar_mw(t_s: np.ndarray | int, peak_mw: float, cloud: np.ndarray) -> np.ndarray:
    """Intermittent solar power (mW) at time t (seconds since midnight of day 0).

    Daylight from 06:00 to 18:00 as a half sine; `cloud` holds one factor in [0, 1] per day
    (drawn by the caller from a seeded generator), so some days give little.
    """
    t = np.asarray(t_s, np.float64)
    day = (t // 86400).astype(np.int64)
    hour = (t % 86400) / 3600.0
    light = np.where((hour > 6) & (hour < 18), np.sin(np.pi * (hour - 6) / 12), 0.0)
    return peak_mw * light * np.asarray(cloud)[np.minimum(day, len(cloud) - 1)]


def spend_period(pool: EnergyPool, wake: np.ndarray, tx: np.ndarray, rx: np.ndarray, clock: np.ndarray | None = None, cloud: np.ndarray | None = None) -> None:
    """One TWT period per node: `wake` seconds, the radio awake for the listen window and the
    airtime of `tx` + `rx` bytes, the CPU for CPU_S; solar harvest over the period when `cloud`
    (with `clock`, seconds since midnight of day 0, where each period starts)."""
    wake = np.asarray(wake, np.int64)
    airtime = -(-(np.asarray(tx, np.int64) + rx) * 8 // BITRATE)
    active = np.minimum(LISTEN_S + airtime, wake)
    if cloud is not None:
        t_mid = clock[:, None] + wake[:, None] * (np.arange(8)[None] + 0.5) / 8
        pool.harvest(solar_mw(t_mid, pool.profile.solar_peak_mw, cloud).mean(axis=1), wake)
    pool.spend(wake, active, np.minimum(CPU_S, wake))
