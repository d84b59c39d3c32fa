"""The node's configuration: a commented TOML file written by `qres daemon init`, read back with
`load_config`, where environment variables override single keys.

Every key lives in a section; `QRES_<SECTION>_<KEY>` (upper case) overrides it, e.g.
`QRES_GOSSIP_PORT=7001` or `QRES_GOSSIP_PEERS=127.0.0.1:7002,127.0.0.1:7003`. Values are checked
when loaded: a bad one raises `ConfigError` naming the key, the file and the rule.
"""

from __future__ import annotations

import dataclasses
import os
import secrets
import socket
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

import fsspec

from .. import atomic, datasets
from ..errors import QresError
from ..swarm.attacks import NETWORK_ATTACKS
from ..swarm.energy import PROFILES
from .identity import Identity
from .wire import literal_ip, split_address

CONFIG_NAME = "node.toml"
KEY_NAME = "node.key"


class ConfigError(QresError, ValueError):
    """A configuration file or override is missing, malformed, or has a value out of range."""


MAINS = "mains"  # the energy profile of a node on mains power: no battery, nothing modelled
ENERGY_PROFILES = (MAINS, *PROFILES)


TEMPLATE = """\
# QRES node configuration, written by `qres daemon init`.
# Any key can be overridden by an environment variable QRES_<SECTION>_<KEY>, e.g. QRES_GOSSIP_PORT=7001.

[node]
# where the node keeps its database (models, reputation, bans, round state); relative to this file
data_dir = "data"
# the node's Ed25519 private key (32-byte seed as 64 hex characters, mode 0600); relative to this file
key_file = "{key_file}"
# for test clusters only: make this node an attacker that forges what it sends ("" = honest);
# one of the simulator's attacks that work over a network: {attacks}
attack = ""

[gossip]
# UDP address the node listens on for signed gossip
host = "127.0.0.1"
port = {port}
# peers to start from, "host:port" each (a host name is looked up once, when the node starts);
# they are trusted as given. Peer exchange adds more, each only once it answered a probe.
peers = []
# peers each gossip message goes to, and how many times it is passed on
fanout = 8
ttl = 2
# most messages accepted from one peer per second (more are dropped and counted)
rate_limit = 50
# seconds per gossip round (the TWT service period in a real deployment)
round_seconds = 2.0

[api]
# the REST API and dashboard
host = "127.0.0.1"
port = {api_port}
# bearer token for every mutating or admin endpoint: a secret, which is why this file is mode 0600
token = "{token}"
# largest request body accepted, in bytes
max_body = 1048576

[sensor]
# readings replayed when no other feed is given: a bundled dataset, its channel and where to start
dataset = "heartpy_ppg"
channel = 0
offset = 0
# readings per round
per_round = 32

[energy]
# "mains": the node runs on mains power (no battery, nothing modelled); or a modelled battery of
# {profiles}, drawn at that hardware's power over the node's real running time
profile = "mains"

[archive]
# a copy of every verified model under an fsspec URL, written in the background ("" = none),
# e.g. "s3://bucket/node-a" (needs qres[s3]) or "file:///var/lib/qres/archive"; a plain path is relative to this file
url = ""
# endpoint of an S3-compatible server, e.g. "http://127.0.0.1:9000" ("" = AWS); credentials come from
# the usual AWS environment variables (AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_DEFAULT_REGION)
endpoint = ""
"""


@dataclass(frozen=True)
class NodeConfig:
    """A node's settings (see TEMPLATE for what each means); paths are absolute."""

    data_dir: Path
    key_file: Path
    gossip_host: str = "127.0.0.1"
    gossip_port: int = 7000
    peers: tuple[tuple[str, int], ...] = ()
    fanout: int = 8
    ttl: int = 2
    rate_limit: int = 50
    round_seconds: float = 2.0
    api_host: str = "127.0.0.1"
    api_port: int = 8000
    token: str = field(default="", repr=False)
    max_body: int = 1 << 20
    dataset: str = "heartpy_ppg"
    channel: int = 0
    offset: int = 0
    per_round: int = 32
    profile: str = MAINS
    attack: str = ""
    archive_url: str = ""
    archive_endpoint: str = ""

    def identity(self) -> Identity:
        return Identity.load(self.key_file)


def init_node(directory: str | Path, port: int = 7000, api_port: int = 8000) -> Path:
    """Create `directory` with a commented node.toml (mode 0600: it holds the API token) and a new
    key pair (node.key); refuses to touch an existing configuration. Returns the config path."""
    d = Path(directory)
    d.mkdir(parents=True, exist_ok=True)
    cfg = d / CONFIG_NAME
    if cfg.exists() or (d / KEY_NAME).exists():
        raise ConfigError(f"{d}: already holds {CONFIG_NAME} or {KEY_NAME}; refusing to overwrite a node")
    Identity.create_file(d / KEY_NAME)
    text = TEMPLATE.format(key_file=KEY_NAME, port=port, api_port=api_port, token=secrets.token_urlsafe(24),
                           attacks=", ".join(NETWORK_ATTACKS), profiles=", ".join(PROFILES))
    atomic.write_text(cfg, text, mode=0o600)
    return cfg


def _peer(text: str, where: str) -> tuple[str, int]:
    try:
        return split_address(str(text))
    except ValueError:
        raise ConfigError(f"{where}: peer {text!r} is not host:port") from None


def resolve_peers(cfg: NodeConfig) -> NodeConfig:
    """`cfg` with each bootstrap peer's host as an IP address (a host name looked up once, before the
    node starts, never on its event loop; the address of the gossip socket's family preferred);
    ConfigError when a name does not resolve."""
    v6 = ":" in cfg.gossip_host
    peers = []
    for host, port in cfg.peers:
        try:
            infos = socket.getaddrinfo(host, port, type=socket.SOCK_DGRAM)
        except (OSError, UnicodeError) as exc:
            raise ConfigError(f"gossip.peers: cannot resolve {host!r} ({exc})") from None
        ip = next((i[4][0] for i in infos if (i[0] == socket.AF_INET6) == v6), infos[0][4][0])
        peers.append((literal_ip(ip), port))
    return dataclasses.replace(cfg, peers=tuple(peers))


def _archive_url(url: str, base: Path, where: str) -> str:
    """The archive URL, a plain relative path resolved against `base`; ConfigError when fsspec does
    not know its protocol or the package implementing it is not installed."""
    protocol = fsspec.utils.get_protocol(url)
    try:
        fsspec.get_filesystem_class(protocol)
    except ValueError:
        raise ConfigError(f"{where}: {url!r} has protocol {protocol!r}, which fsspec does not know") from None
    except ImportError as exc:
        raise ConfigError(f"{where}: protocol {protocol!r} needs a package that is not installed ({exc}); for s3:// install qres[s3]") from None
    return str(base / url) if protocol == "file" and "://" not in url else url


# every key a node.toml may hold, with its type; ranges where one applies
_KEYS = {
    ("node", "data_dir"): str,
    ("node", "key_file"): str,
    ("node", "attack"): str,
    ("gossip", "host"): str,
    ("gossip", "port"): int,
    ("gossip", "peers"): list,
    ("gossip", "fanout"): int,
    ("gossip", "ttl"): int,
    ("gossip", "rate_limit"): int,
    ("gossip", "round_seconds"): float,
    ("api", "host"): str,
    ("api", "port"): int,
    ("api", "token"): str,
    ("api", "max_body"): int,
    ("sensor", "dataset"): str,
    ("sensor", "channel"): int,
    ("sensor", "offset"): int,
    ("sensor", "per_round"): int,
    ("energy", "profile"): str,
    ("archive", "url"): str,
    ("archive", "endpoint"): str,
}
_RANGES = {
    ("gossip", "port"): (1, 65535),
    ("api", "port"): (1, 65535),
    ("gossip", "fanout"): (1, 1000),
    ("gossip", "ttl"): (0, 16),
    ("gossip", "rate_limit"): (1, 1_000_000),
    ("gossip", "round_seconds"): (0.05, 86_400),
    ("api", "max_body"): (1024, 1 << 30),
    ("sensor", "channel"): (0, 64),
    ("sensor", "offset"): (0, 1 << 40),
    ("sensor", "per_round"): (1, 65_536),
}


def _from_env(kind: type, text: str, where: str):
    try:
        if kind is list:
            return [p for p in (s.strip() for s in text.split(",")) if p]
        return kind(text)
    except ValueError:
        raise ConfigError(f"{where}: {text!r} is not a valid {kind.__name__}") from None


def load_config(path: str | Path, env: dict[str, str] | None = None) -> NodeConfig:
    """Read a node.toml, apply QRES_<SECTION>_<KEY> overrides from `env` (default os.environ),
    check every value, and resolve paths against the file's folder."""
    path = Path(path)
    env = dict(os.environ if env is None else env)
    try:
        raw = tomllib.loads(path.read_text())
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read ({exc.strerror or exc})") from None
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path}: not valid TOML ({exc})") from None
    for section, body in raw.items():
        if not isinstance(body, dict):
            raise ConfigError(f"{path}: [{section}] must be a table")
        for key in body:
            if (section, key) not in _KEYS:
                raise ConfigError(f"{path}: unknown key {section}.{key}")
    values = {}
    for (section, key), kind in _KEYS.items():
        where = f"{path}: {section}.{key}"
        value = raw.get(section, {}).get(key)
        name = f"QRES_{section.upper()}_{key.upper()}"
        if name in env:
            where, value = f"environment {name}", _from_env(kind, env[name], f"environment {name}")
        if value is None:
            continue
        if kind is float and isinstance(value, int) and not isinstance(value, bool):
            value = float(value)
        if not isinstance(value, kind) or isinstance(value, bool):
            raise ConfigError(f"{where}: expected {kind.__name__}, got {type(value).__name__} {value!r:.60}")
        lo_hi = _RANGES.get((section, key))
        if lo_hi and not lo_hi[0] <= value <= lo_hi[1]:
            raise ConfigError(f"{where}: {value} is outside {lo_hi[0]}..{lo_hi[1]}")
        values[(section, key)] = value
    base = path.parent.resolve()
    missing = [f"{s}.{k}" for s, k in (("node", "key_file"), ("api", "token")) if (s, k) not in values]
    if missing:
        raise ConfigError(f"{path}: missing {', '.join(missing)}")
    if len(values[("api", "token")]) < 16:
        raise ConfigError(f"{path}: api.token must have at least 16 characters")
    dataset = values.get(("sensor", "dataset"), "heartpy_ppg")
    if dataset not in datasets.VALUE_COLUMNS:
        raise ConfigError(f"{path}: sensor.dataset {dataset!r} is not a bundled dataset ({', '.join(datasets.VALUE_COLUMNS)})")
    profile = values.get(("energy", "profile"), MAINS)
    if profile not in ENERGY_PROFILES:
        raise ConfigError(f"{path}: energy.profile {profile!r} is not one of {', '.join(ENERGY_PROFILES)}")
    attack = values.get(("node", "attack"), "")
    if attack and attack not in NETWORK_ATTACKS:
        raise ConfigError(f"{path}: node.attack {attack!r} is not one of {', '.join(NETWORK_ATTACKS)} (or \"\" for an honest node)")
    archive_url = values.get(("archive", "url"), "")
    if archive_url:
        archive_url = _archive_url(archive_url, base, f"{path}: archive.url")
    archive_endpoint = values.get(("archive", "endpoint"), "")
    if archive_endpoint and not archive_endpoint.startswith(("http://", "https://")):
        raise ConfigError(f"{path}: archive.endpoint {archive_endpoint!r} is not an http:// or https:// URL")
    v = {f"{s}_{k}": val for (s, k), val in values.items()}
    return NodeConfig(
        data_dir=base / v.get("node_data_dir", "data"),
        key_file=base / v["node_key_file"],
        gossip_host=v.get("gossip_host", "127.0.0.1"),
        gossip_port=v.get("gossip_port", 7000),
        peers=tuple(_peer(p, f"{path}: gossip.peers") for p in v.get("gossip_peers", [])),
        fanout=v.get("gossip_fanout", 8),
        ttl=v.get("gossip_ttl", 2),
        rate_limit=v.get("gossip_rate_limit", 50),
        round_seconds=v.get("gossip_round_seconds", 2.0),
        api_host=v.get("api_host", "127.0.0.1"),
        api_port=v.get("api_port", 8000),
        token=v["api_token"],
        max_body=v.get("api_max_body", 1 << 20),
        dataset=dataset,
        channel=v.get("sensor_channel", 0),
        offset=v.get("sensor_offset", 0),
        per_round=v.get("sensor_per_round", 32),
        profile=profile,
        archive_url=archive_url,
        archive_endpoint=archive_endpoint,
        attack=attack,
    )
