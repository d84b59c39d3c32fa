"""The swarm rules (sans-I/O): packets, aggregation, reputation, regimes, energy, and the simulator.

Pure functions and small state objects over arrays with a leading node axis, so a daemon runs one
node and the simulator runs thousands through the same code (see ../shared/DESIGN.md).
"""

from .regime import detect_regimes

__all__ = ["detect_regimes"]
