"""Node configuration: `qres daemon init` writes a file that loads, environment variables override
single keys, and every bad value is refused with the key named."""

import dataclasses
import os
import stat
import subprocess
import sys

import pytest

from qres.node.config import ConfigError, init_node, load_config, resolve_peers


@pytest.fixture
def node_dir(tmp_path):
    init_node(tmp_path / "n1", port=7101, api_port=8101)
    return tmp_path / "n1"


def test_init_writes_a_config_that_loads_with_its_defaults(node_dir):
    cfg = load_config(node_dir / "node.toml", env={})
    assert cfg.gossip_port == 7101 and cfg.api_port == 8101 and cfg.peers == ()
    assert cfg.data_dir == (node_dir / "data").resolve() and cfg.key_file == (node_dir / "node.key").resolve()
    assert len(cfg.token) >= 16 and cfg.identity().did.startswith("did:qres:")
    assert "token" not in repr(cfg)  # the secret stays out of logs
    assert cfg.profile == "mains"  # a daemon models no battery unless told to


def test_the_config_holding_the_token_is_private_like_the_key(node_dir):
    for name in ("node.toml", "node.key"):
        assert stat.S_IMODE(os.stat(node_dir / name).st_mode) == 0o600, name
    assert [p.name for p in node_dir.iterdir() if p.name.startswith(".")] == []  # no temporary file left behind


def test_cli_init_says_where_the_token_is_without_printing_it(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "qres.cli", "daemon", "init", str(tmp_path / "n")], capture_output=True, text=True)
    token = load_config(tmp_path / "n" / "node.toml", env={}).token
    assert proc.returncode == 0 and token not in proc.stdout + proc.stderr
    assert "api.tokenin" + str(tmp_path / "n" / "node.toml") in "".join(proc.stderr.split())  # however the console wrapped it


def test_bootstrap_peers_may_be_host_names_looked_up_once_at_start(node_dir):
    cfg = load_config(node_dir / "node.toml", env={"QRES_GOSSIP_PEERS": "localhost:7201,[::1]:7202,10.0.0.2:7203"})
    assert cfg.peers == (("localhost", 7201), ("::1", 7202), ("10.0.0.2", 7203))
    assert resolve_peers(cfg).peers == (("127.0.0.1", 7201), ("::1", 7202), ("10.0.0.2", 7203))
    with pytest.raises(ConfigError, match="cannot resolve 'no-such-host.invalid'"):
        resolve_peers(dataclasses.replace(cfg, peers=(("no-such-host.invalid", 7000),)))


def test_two_nodes_get_different_keys_and_tokens(tmp_path):
    a = load_config(init_node(tmp_path / "a"), env={})
    b = load_config(init_node(tmp_path / "b"), env={})
    assert a.identity().did != b.identity().did and a.token != b.token


def test_environment_overrides_single_keys(node_dir):
    env = {"QRES_GOSSIP_PORT": "7200", "QRES_GOSSIP_PEERS": "127.0.0.1:7201, 10.0.0.2:7202", "QRES_GOSSIP_ROUND_SECONDS": "0.5"}
    cfg = load_config(node_dir / "node.toml", env=env)
    assert cfg.gossip_port == 7200 and cfg.round_seconds == 0.5
    assert cfg.peers == (("127.0.0.1", 7201), ("10.0.0.2", 7202))


@pytest.mark.parametrize(
    "env, match",
    [
        ({"QRES_GOSSIP_PORT": "70000"}, "gossip_port|QRES_GOSSIP_PORT.*outside"),
        ({"QRES_GOSSIP_PORT": "seven"}, "QRES_GOSSIP_PORT.*not a valid int"),
        ({"QRES_GOSSIP_PEERS": "nohost"}, "not host:port"),
        ({"QRES_API_TOKEN": "short"}, "at least 16"),
        ({"QRES_SENSOR_DATASET": "mars"}, "not a bundled dataset"),
        ({"QRES_ENERGY_PROFILE": "solar"}, "not one of mains, esp32-c6, rpi-zero-2w"),
        ({"QRES_GOSSIP_ROUND_SECONDS": "0"}, "outside"),
    ],
)
def test_bad_overrides_name_the_key(node_dir, env, match):
    with pytest.raises(ConfigError, match=match):
        load_config(node_dir / "node.toml", env=env)


@pytest.mark.parametrize(
    "text, match",
    [
        ("[gossip]\nport = 'x'\n", "gossip.port: expected int"),
        ("[gossip]\nwhat = 1\n", "unknown key gossip.what"),
        ("[node\n", "not valid TOML"),
        ("[node]\nkey_file = 'k'\n", "missing api.token"),
        ("gossip = 3\n", r"\[gossip\] must be a table"),
    ],
)
def test_bad_files_are_clear_errors(tmp_path, text, match):
    path = tmp_path / "node.toml"
    path.write_text(text)
    with pytest.raises(ConfigError, match=match):
        load_config(path, env={})


def test_a_missing_file_is_a_clear_error(tmp_path):
    with pytest.raises(ConfigError, match="cannot read"):
        load_config(tmp_path / "nope.toml", env={})


def test_cli_init_refuses_to_overwrite(tmp_path):
    run = [sys.executable, "-m", "qres.cli", "daemon", "init", str(tmp_path / "n")]
    first = subprocess.run(run, capture_output=True, text=True)
    assert first.returncode == 0 and first.stdout.startswith("node did:qres:")
    again = subprocess.run(run, capture_output=True, text=True)
    assert again.returncode != 0 and "refusing to overwrite" in again.stderr and "Traceback" not in again.stderr
