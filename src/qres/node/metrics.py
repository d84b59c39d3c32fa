"""A node's Prometheus metrics (GET /metrics), named by Prometheus conventions: base units in the
names (seconds, joules, ratios), `_total` for counters.

- the process (`process_*`: CPU seconds, memory bytes, open files, start time) and Python
  (`python_info`, `python_gc_*`) from prometheus_client's own collectors;
- HTTP: `qres_http_request_duration_seconds` (histogram per method and endpoint, until the
  response starts) and `qres_api_rejected_requests_total` (4xx by status), filled by the API;
- the node, read from the daemon at every scrape (`NodeCollector`): identity and models as info
  metrics, round, regime, bits per value, peers, reputation, bans, quorum, addresses, energy, and
  every counter of /status as a `_total` counter.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

from prometheus_client import GC_COLLECTOR, PLATFORM_COLLECTOR, PROCESS_COLLECTOR, CollectorRegistry, Counter, Histogram
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, InfoMetricFamily, StateSetMetricFamily
from prometheus_client.registry import Collector

from ..swarm import regime

if TYPE_CHECKING:
    from .daemon import NodeDaemon

# the node's counters (as in /status) -> (metric name without _total, help)
COUNTERS = {
    "datagrams_sent": ("qres_gossip_datagrams_sent", "UDP datagrams sent"),
    "datagrams_received": ("qres_gossip_datagrams_received", "UDP datagrams received"),
    "messages_accepted": ("qres_gossip_messages_accepted", "signed swarm packets accepted"),
    "messages_forwarded": ("qres_gossip_messages_forwarded", "peers' messages passed on"),
    "hellos_accepted": ("qres_gossip_hellos_accepted", "Hellos (peer exchange) accepted"),
    "probes_sent": ("qres_address_probes_sent", "probes sent to check an address"),
    "probes_answered": ("qres_address_probes_answered", "probes of other nodes answered"),
    "addresses_verified": ("qres_addresses_verified", "addresses that answered their probe"),
    "addresses_pruned": ("qres_addresses_pruned", "addresses dropped: no answer to a probe, or pushed out while pending"),
    "addresses_refused": ("qres_addresses_refused", "addresses named in Hellos and not taken (unusable, failed recently, over a cap or budget)"),
    "rounds": ("qres_rounds", "rounds closed"),
    "models_committed": ("qres_models_committed", "verified models committed"),
    "joined_from_peers": ("qres_joined_from_peers", "starts from the peers' model instead of genesis"),
    "bans_reported": ("qres_bans_reported", "Ban packets this node flooded (its own evidence or its peers' reports adopted)"),
    "ban_reports_received": ("qres_ban_reports_received", "Ban packets of peers accepted"),
    "readings_fed": ("qres_readings_fed", "readings replayed from --feed"),
    "store_errors": ("qres_store_errors", "rounds the store failed to save"),
    "archived": ("qres_archive_uploads", "models copied to the archive"),
    "archive_errors": ("qres_archive_errors", "failed archive attempts"),
    "archive_dropped": ("qres_archive_dropped", "models not archived: the queue was full"),
}
DROPPED = "dropped_"  # counters dropped_<reason> -> qres_gossip_dropped_total{reason}


class NodeCollector(Collector):
    """The node's state as metric families, read at scrape time (so a peer that leaves the table
    leaves the metrics too)."""

    def __init__(self, daemon: NodeDaemon):
        self.daemon = daemon

    def collect(self) -> Iterator:
        d = self.daemon
        status = d.status()
        yield InfoMetricFamily("qres_node", "the node's identity and energy profile", {"did": status["did"], "profile": status["energy"]["profile"]})
        yield InfoMetricFamily("qres_model", "the node's current models: the swarm's (weights) and the codec's (frames)",
                               {"swarm_model_id": status["swarm_model_id"], "codec_model_id": status["codec_model_id"] or ""})
        yield GaugeMetricFamily("qres_round", "the node's current round", status["round"])
        yield GaugeMetricFamily("qres_joining", "1 while a new node listens before it proposes", int(status["joining"]))
        yield StateSetMetricFamily("qres_regime", "the node's regime", {name: name == status["regime"] for name in regime.REGIME_NAMES})
        if status["bits_per_value"] is not None:
            yield GaugeMetricFamily("qres_bits_per_value", "bits per value of the node's newest frame", status["bits_per_value"])
        yield GaugeMetricFamily("qres_peers", "peers in the node's table", status["peers"])
        yield GaugeMetricFamily("qres_peers_banned", "peers of the table the node bans", status["banned"])
        reputation = GaugeMetricFamily("qres_peer_reputation", "each peer's reputation score, 0 to 1", labels=["peer"])
        for p in d.peer_table():
            reputation.add_metric([p["did"]], p["reputation"])
        yield reputation
        q = status["quorum"]
        yield GaugeMetricFamily("qres_quorum_peers", "peers whose updates arrived in the last rounds (not banned)", q["peers"])
        yield GaugeMetricFamily("qres_quorum_required_peers", "peers' updates a round needs before its model is committed", q["needed"])
        addresses = GaugeMetricFamily("qres_addresses", "addresses in the address book, by state", labels=["state"])
        for state, n in status["addresses"].items():
            addresses.add_metric([state], n)
        yield addresses
        e = status["energy"]
        if e["battery"] == "modelled":
            yield GaugeMetricFamily("qres_energy_charge_ratio", "modelled battery charge, fraction of capacity", e["charge"])
            yield GaugeMetricFamily("qres_energy_charge_joules", "modelled battery charge", e["charge_uj"] / 1e6)
            yield CounterMetricFamily("qres_energy_brownouts", "times the modelled battery ran empty", e["brownouts"])
            yield GaugeMetricFamily("qres_radio_sleep_ratio", "fraction of the time the modelled radio slept", e["sleep_ratio"])
        counters = status["counters"]
        dropped = CounterMetricFamily("qres_gossip_dropped", "datagrams and messages dropped, by reason", labels=["reason"])
        for key in sorted(k for k in counters if k.startswith(DROPPED)):
            dropped.add_metric([key[len(DROPPED):]], counters[key])
        yield dropped
        for key, (name, text) in COUNTERS.items():
            yield CounterMetricFamily(name, text, counters.get(key, 0))


def registry(daemon: NodeDaemon) -> tuple[CollectorRegistry, Histogram, Counter]:
    """A registry of the node's metrics, with the HTTP latency histogram and rejected-requests
    counter for the API to fill."""
    reg = CollectorRegistry()
    for collector in (PROCESS_COLLECTOR, PLATFORM_COLLECTOR, GC_COLLECTOR, NodeCollector(daemon)):
        reg.register(collector)
    latency = Histogram("qres_http_request_duration_seconds", "time from a request's arrival until its response starts",
                        ["method", "endpoint"], registry=reg)
    rejected = Counter("qres_api_rejected_requests", "HTTP requests refused (4xx)", ["reason"], registry=reg)
    return reg, latency, rejected
