"""Node configuration: `qres daemon init` writes a file that loads, environment variables override
single keys, and every bad value is refused with the key named."""

import subprocess
import sys

import pytest

from qres.node.config import ConfigError, init_node, load_config


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
