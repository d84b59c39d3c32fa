"""The REST API of a running node process against its own OpenAPI schema (schemathesis): every
operation, called with generated valid and invalid inputs and the bearer token, answers without a
5xx, with a declared content type, and with a body that matches the schema wherever one is
declared for the status it returns."""

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis.checks import not_a_server_error
from schemathesis.generation import GenerationMode
from schemathesis.specs.openapi.checks import content_type_conformance, response_headers_conformance, response_schema_conformance

from qres.node.config import init_node, load_config

EXAMPLES = 25  # per operation and generation mode: about 30 s in all
CHECKS = [not_a_server_error, content_type_conformance, response_schema_conformance, response_headers_conformance]


def _free_ports(k, kind=socket.SOCK_DGRAM):
    socks = [socket.socket(socket.AF_INET, kind) for _ in range(k)]
    for s in socks:
        s.bind(("127.0.0.1", 0))
    ports = [s.getsockname()[1] for s in socks]
    for s in socks:
        s.close()
    return ports


@pytest.fixture(scope="module")
def node(tmp_path_factory):
    """Four daemons (a quorum for each); the first one's API is under test. Yields (url, token)."""
    base = tmp_path_factory.mktemp("schema")
    gossip, api = _free_ports(4), _free_ports(4, socket.SOCK_STREAM)
    procs = []
    for i in range(4):
        d = base / f"n{i}"
        init_node(d, gossip[i], api[i])
        peers = ",".join(f"127.0.0.1:{p}" for j, p in enumerate(gossip) if j != i)
        env = {**os.environ, "QRES_GOSSIP_PEERS": peers, "QRES_GOSSIP_ROUND_SECONDS": "0.2", "QRES_SENSOR_OFFSET": str(2000 * i),
               "QRES_API_MAX_BODY": "65536"}
        procs.append(subprocess.Popen([sys.executable, "-m", "qres.cli", "daemon", "run", "--config", str(d / "node.toml")],
                                      env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True))
    url = f"http://127.0.0.1:{api[0]}"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            if json.loads(urllib.request.urlopen(url + "/status", timeout=2).read())["models_committed"] > 2:
                break
        except (urllib.error.URLError, ConnectionError):
            pass
        time.sleep(0.2)
    yield url, load_config(base / "n0" / "node.toml", env={}).token
    for p in procs:
        p.send_signal(signal.SIGTERM)
    for p in procs:
        _, err = p.communicate(timeout=30)
        assert p.returncode == 0, err[-2000:]


@pytest.mark.parametrize("mode", [GenerationMode.POSITIVE, GenerationMode.NEGATIVE])
def test_every_operation_conforms_to_the_schema(node, mode):
    url, token = node
    schema = schemathesis.openapi.from_url(url + "/openapi.json")
    operations = [result.ok() for result in schema.get_all_operations()]
    assert {"/compress", "/decompress", "/readings", "/status"} <= {op.path for op in operations}
    for op in operations:
        if mode is GenerationMode.NEGATIVE and not any((op.body, op.query, op.path_parameters, op.headers)):
            continue  # nothing to make invalid

        @given(case=op.as_strategy(mode))
        @settings(max_examples=EXAMPLES, deadline=None, database=None, suppress_health_check=list(HealthCheck))
        def conforms(case):
            case.call_and_validate(headers={"Authorization": f"Bearer {token}"}, checks=CHECKS, timeout=10)

        conforms()
