"""The swarm rules (sans-I/O): packets, aggregation, reputation, regimes, energy, and the simulator.

Pure functions and small state objects over arrays with a leading node axis, so a daemon runs one
node and the simulator runs thousands through the same code (see ../shared/DESIGN.md).
"""

from .aggregate import Adaptive, Krum, Mean, Median, MultiKrum, ReputationWeighted, TrimmedMean
from .node import NodeState, gossip_decision, propose, receive, spread_bans
from .packets import Ban, GhostUpdate, Reassembler, RegimeVote, decode_packet, fragment
from .regime import detect_regimes
from .report import write_report
from .reputation import Reputation, cartel_groups, grubbs_outliers
from .simulator import SimConfig, SimResult, simulate

__all__ = [
    "Adaptive",
    "Ban",
    "GhostUpdate",
    "Krum",
    "Mean",
    "Median",
    "MultiKrum",
    "NodeState",
    "Reassembler",
    "Reputation",
    "RegimeVote",
    "ReputationWeighted",
    "SimConfig",
    "SimResult",
    "TrimmedMean",
    "cartel_groups",
    "decode_packet",
    "detect_regimes",
    "fragment",
    "gossip_decision",
    "grubbs_outliers",
    "propose",
    "receive",
    "simulate",
    "spread_bans",
    "write_report",
]
