"""The modelled battery of a node whose energy profile is a battery device (`qres.swarm.energy`
PROFILES), drained in real time (sans-I/O: the daemon says how much time passed).

No battery is read: the charge is what the device of the profile would have left after drawing its
power for the node's real running time: the radio active for a listen window per round plus the
airtime of the bytes the node actually sent and received, asleep otherwise; the CPU for the CPU
seconds the node actually used. A node on mains power (profile "mains") has no Battery.
"""

from __future__ import annotations

import numpy as np

from ..swarm import energy


class Battery:
    """An `energy.EnergyPool` of one node drawn on the wall clock; charge in microjoules."""

    def __init__(self, profile: energy.DeviceProfile, charge_uj: int | None = None):
        self.pool = energy.EnergyPool(1, profile)
        if charge_uj is not None:
            self.pool.charge_uj[0] = min(int(charge_uj), int(self.pool.capacity_uj))
        self._owed = [0.0, 0.0, 0.0]  # seconds elapsed, radio active, CPU busy not drawn yet (under 1 s)

    def draw(self, elapsed_s: float, cpu_s: float, tx_bytes: int, rx_bytes: int) -> None:
        """One round of `elapsed_s` wall-clock seconds in which the node used `cpu_s` CPU seconds and
        sent and received these bytes. The pool counts whole seconds; the rest waits for the next round."""
        radio = min(elapsed_s, energy.LISTEN_S + (tx_bytes + rx_bytes) * 8 / energy.BITRATE)
        owed = [self._owed[0] + elapsed_s, self._owed[1] + radio, self._owed[2] + min(cpu_s, elapsed_s)]
        seconds = int(owed[0])
        radio_s, cpu = min(int(owed[1]), seconds), min(int(owed[2]), seconds)
        if seconds:
            self.pool.spend(seconds, np.array([radio_s]), np.array([cpu]))
        self._owed = [owed[0] - seconds, owed[1] - radio_s, owed[2] - cpu]

    @property
    def charge(self) -> float:
        """Charge as a fraction of the capacity."""
        return round(float(self.pool.charge_q16()[0]) / 65536, 5)

    def status(self) -> dict:
        """Charge (fraction and microjoules), brownouts, radio sleep ratio and the seconds drawn."""
        p = self.pool
        return {"profile": p.profile.name, "battery": "modelled", "clock": "wall", "charge": self.charge,
                "charge_uj": int(p.charge_uj[0]), "brownouts": int(p.brownouts[0]),
                "sleep_ratio": round(float(p.sleep_ratio()[0]), 5), "elapsed_s": int(p.elapsed_s[0])}
