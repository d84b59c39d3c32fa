"""Real node processes on loopback: signed UDP gossip between daemons converges on one verified
model, hostile datagrams are dropped and counted while the node keeps working, hostile Hellos
make it send nothing but one small probe to each address they name, a taken port is one clear
line, a swarm too small for a quorum says so, and SIGTERM stops a node cleanly with its state saved."""

import json
import os
import select
import signal
import socket
import subprocess
import sys
import time
import urllib.request

import numpy as np
import pytest

from daemons import gossiping, stop
from qres.node import addresses, wire
from qres.node.cluster import free_ports
from qres.node.config import init_node, load_config
from qres.node.identity import Identity, seal
from qres.node.storage import Store
from qres.swarm import learn
from qres.node.wire import wrap
from qres.swarm.packets import FRAG_HEADER_LEN, fragment


_RUNNING: list[subprocess.Popen] = []  # every daemon a test started, killed after the test if still running


@pytest.fixture(autouse=True)
def _no_daemon_outlives_its_test():
    yield
    while _RUNNING:
        p = _RUNNING.pop()
        if p.poll() is None:
            p.kill()
            p.wait()


def _start(dirs, ports, i, extra_env=None):
    peers = ",".join(f"127.0.0.1:{p}" for j, p in enumerate(ports) if j != i)
    env = {**os.environ, "QRES_GOSSIP_PORT": str(ports[i]), "QRES_API_PORT": str(free_ports(1, socket.SOCK_STREAM)[0]), "QRES_GOSSIP_PEERS": peers, "QRES_GOSSIP_ROUND_SECONDS": "0.15",
           "QRES_SENSOR_OFFSET": str(3000 * i), **(extra_env or {})}
    proc = subprocess.Popen([sys.executable, "-m", "qres.cli", "daemon", "run", "--config", str(dirs[i] / "node.toml")],
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    _RUNNING.append(proc)
    return proc


def _stop(procs, timeout=20):
    for p in procs:
        p.send_signal(signal.SIGTERM)
    outs = [p.communicate(timeout=timeout) for p in procs]
    return [(p.returncode, o, e) for p, (o, e) in zip(procs, outs)]


def _wait_for_models(dirs, count, timeout=90):
    """Wait (polling the live databases) until every node in `dirs` has committed `count` verified
    models, so a loaded machine only makes the test slower, not wrong."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        counts = []
        for d in dirs:
            try:
                with Store.open(d / "data") as s:
                    counts.append((s.get("counters") or {}).get("models_committed", 0))
            except Exception:  # not created yet
                counts.append(0)
        if min(counts) >= count:
            return
        time.sleep(0.2)
    with Store.open(dirs[counts.index(min(counts))] / "data") as s:
        slowest = (s.get("counters"), s.get("round"), len(s.peers()))
    raise AssertionError(f"nodes committed {counts} models, wanted {count} each; the slowest (counters, round, peers): {slowest}")


def _latest_weights(d):
    with Store.open(d / "data") as s:
        m = s.latest_verified()
        return None if m is None else np.frombuffer(m.gene, "<i4").astype(float)


@pytest.fixture
def cluster(tmp_path):
    n = 5
    dirs = [tmp_path / f"n{i}" for i in range(n)]
    for d in dirs:
        init_node(d)
    return dirs, free_ports(n)


def test_five_daemons_gossip_to_one_verified_model_and_stop_cleanly(cluster):
    dirs, ports = cluster
    procs = [_start(dirs, ports, i) for i in range(len(dirs))]
    _wait_for_models(dirs, 30)
    results = _stop(procs)
    for code, out, err in results:
        assert code == 0, err
        assert out.startswith("node did:qres:") and "stopped:" in err
    weights = [_latest_weights(d) for d in dirs]
    assert all(w is not None for w in weights), "every node committed a verified model"
    mean = np.mean(weights, axis=0)
    assert np.linalg.norm(mean) > 0.05 * 65536  # they learned something from their readings
    spread = max(np.linalg.norm(w - mean) for w in weights) / np.linalg.norm(mean)
    assert spread < 0.1  # and agree on it
    with Store.open(dirs[0] / "data") as s:
        counters = s.get("counters")
        assert counters["rounds"] >= 10 and counters["messages_accepted"] > 0 and s.get("round") >= 10
        assert len(s.peers()) == len(dirs) - 1 and not s.banned()


def test_hostile_datagrams_are_dropped_and_counted_and_the_node_keeps_working(cluster):
    dirs, ports = cluster
    procs = [_start(dirs, ports, i) for i in range(4)]
    _wait_for_models(dirs[:4], 3)  # every node is up and gossiping
    target = ("127.0.0.1", ports[0])
    mallory = Identity.generate()
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        sock.sendto(b"", target)
        sock.sendto(b"\xff" * 700, target)  # not a fragment
        def send(envelope, seq, ttl=0):
            sock.sendto(fragment(wrap(envelope, ttl), seq)[0], target)

        now = int(time.time() * 1000)
        send(seal(mallory, b"QS\x01\x09 unknown packet type", now), 1)  # signed, but a malformed packet
        sock.sendto(fragment(seal(mallory, b"no hop header", now), 4)[0], target)  # an envelope without its hop header
        forged = bytearray(seal(mallory, b"hello", now))
        forged[-1] ^= 1
        send(bytes(forged), 2)  # bad signature
        send(seal(mallory, b"hello", now - 10 * 60_000), 3)  # ten minutes old
        future = bytearray(seal(mallory, b"hello", now))
        future[2] = 7
        send(bytes(future), 5)  # an envelope version this node does not speak
        once = seal(mallory, b"QS\x01\x09 again", now)
        send(once, 6)
        send(once, 7)  # the same envelope again: a replay
        for i in range(400):  # a flood from one address
            send(seal(mallory, b"x", int(time.time() * 1000)), 10 + i)
    finally:
        sock.close()
    time.sleep(2.5)
    results = _stop(procs)
    assert all(code == 0 for code, _, _ in results), results[0][2]
    with Store.open(dirs[0] / "data") as s:
        c = s.get("counters")
        assert c["dropped_malformed"] >= 4 and c["dropped_unauthentic"] >= 1 and c["dropped_unknown_version"] >= 1
        assert c["dropped_replayed"] >= 1 and c["dropped_stale"] >= 1
        assert c["dropped_rate_limited"] > 0
        assert c["models_committed"] > 0 and s.latest_verified() is not None  # it kept working
        assert mallory.did not in {p.did for p in s.peers()}  # nothing unverified reached the peer table


def test_a_restarted_node_resumes_from_its_last_verified_model(cluster):
    dirs, ports = cluster
    procs = [_start(dirs, ports, i) for i in range(4)]
    _wait_for_models(dirs[:4], 5)
    _stop(procs[:1])
    before = _latest_weights(dirs[0])
    with Store.open(dirs[0] / "data") as s:
        round_before, ids_before = s.get("round"), s.model_ids()
    assert before is not None
    again = _start(dirs, ports, 0)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:  # until the restarted node has committed a model of its own
        with Store.open(dirs[0] / "data") as s:
            if len(s.model_ids()) > len(ids_before):
                break
        time.sleep(0.2)
    results = _stop([again] + procs[1:])
    assert all(code == 0 for code, _, _ in results), [e[-2000:] for _, _, e in results]
    with Store.open(dirs[0] / "data") as s:
        assert s.get("round") > round_before  # it went on counting rounds
        assert s.model_ids()[: len(ids_before)] == ids_before  # and kept every model it had committed
        first = np.frombuffer(s.model(s.model_ids()[len(ids_before)]).gene, "<i4").astype(float)
    # its first model after the restart is one round away from where it stopped (every input of a
    # round lies within one step, 0.1 in L2, of the node's weights), not from the genesis model
    assert np.linalg.norm(first - before) <= learn.STEP_LIMIT + 8 < np.linalg.norm(before)


def test_feed_replays_a_csv_as_the_nodes_sensor(tmp_path):
    d = tmp_path / "n"
    init_node(d)
    csv = tmp_path / "sensor.csv"
    csv.write_text("t,level\n" + "".join(f"{i},{100 + (i * 7) % 13}\n" for i in range(500)))
    port, api = free_ports(1)[0], free_ports(1, socket.SOCK_STREAM)[0]
    env = {**os.environ, "QRES_GOSSIP_PORT": str(port), "QRES_API_PORT": str(api), "QRES_GOSSIP_ROUND_SECONDS": "0.1"}
    proc = subprocess.Popen([sys.executable, "-m", "qres.cli", "daemon", "run", "--config", str(d / "node.toml"), "--feed", str(csv),
                             "--column", "level", "--rate", "2000"], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    _RUNNING.append(proc)
    deadline = time.monotonic() + 60
    fed = 0
    while time.monotonic() < deadline and fed < 1000:  # more than the file holds: it starts again
        with Store.open(d / "data") as s:
            fed = (s.get("counters") or {}).get("readings_fed", 0)
        time.sleep(0.2)
    (code, out, err), = _stop([proc])
    assert code == 0, err
    assert "feeding 500 readings of" in err and fed >= 1000


def test_a_bad_feed_is_refused_with_a_clear_message(tmp_path):
    d = tmp_path / "n"
    init_node(d)
    csv = tmp_path / "words.csv"
    csv.write_text("a\nx\n")
    proc = subprocess.run([sys.executable, "-m", "qres.cli", "daemon", "run", "--config", str(d / "node.toml"), "--feed", str(csv)],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode != 0 and "no column holds only numbers" in proc.stderr and "Traceback" not in proc.stderr


def test_a_late_joiner_starts_from_its_peers_model_not_genesis(tmp_path):
    dirs = [tmp_path / f"n{i}" for i in range(5)]
    for d in dirs:
        init_node(d)
    ports = free_ports(5)
    early = [_start(dirs, ports, i) for i in range(4)]
    _wait_for_models(dirs[:4], 15)  # the swarm has moved well away from genesis
    swarm = np.mean([_latest_weights(d) for d in dirs[:4]], axis=0)
    late = _start(dirs, ports, 4)
    _wait_for_models(dirs[4:], 1)
    results = _stop(early + [late])
    assert all(code == 0 for code, _, _ in results)
    with Store.open(dirs[4] / "data") as s:
        assert s.get("counters")["joined_from_peers"] == 1
        first = np.frombuffer(s.model(s.model_ids()[0]).gene, "<i4").astype(float)
    # its first model is the median of its peers' updates plus at most one round: near the swarm's model
    assert np.linalg.norm(first - swarm) < 0.25 * np.linalg.norm(swarm)


def test_hostile_hellos_get_one_small_probe_per_address_and_nothing_else(tmp_path):
    """Eight Hellos from throwaway identities, each naming 16 addresses where this test listens:
    the node sends each address at most one probe, fewer bytes in all than the Hellos brought,
    nothing from the peer they were relayed to; an address that answers is verified and then gets
    gossip; the silent ones are pruned."""
    with gossiping(tmp_path, 2, ready=lambda s: s["round"] > 3) as (procs, url, _):
        port = load_config(tmp_path / "n0" / "node.toml", env={}).gossip_port
        sinks = [socket.socket(socket.AF_INET, socket.SOCK_DGRAM) for _ in range(8 * 16)]
        attacker = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        try:
            for sink in sinks:
                sink.bind(("127.0.0.1", 0))
            named = [sink.getsockname() for sink in sinks]
            answering = named[16]  # one address where a node does listen: it answers its probe
            sent = 0
            for k in range(8):
                hello = wire.Hello(time.time_ns() // 1000, named[16 * k], tuple(named[16 * k + 1 : 16 * k + 16]), ttl=2)
                for frag in fragment(wrap(seal(Identity.generate(), hello.to_bytes(), time.time_ns() // 1_000_000), 2), 100 + k):
                    sent += attacker.sendto(frag, ("127.0.0.1", port))
            got = {a: [] for a in named}
            deadline = time.monotonic() + addresses.ANSWER_S + 2
            while time.monotonic() < deadline:
                for sink in select.select(sinks, [], [], 0.1)[0]:
                    data, source = sink.recvfrom(4096)
                    got[sink.getsockname()].append((data, source))
                    ctrl = wire.control(data[FRAG_HEADER_LEN:])
                    if sink.getsockname() == answering and ctrl and ctrl[0] == wire.PROBE_MAGIC:
                        sink.sendto(fragment(wire.answer(ctrl[1]), 1)[0], source)
            status = json.loads(urllib.request.urlopen(url + "/status", timeout=10).read())
        finally:
            attacker.close()
            for sink in sinks:
                sink.close()
        stop(procs)
    silent = [d for a, d in got.items() if a != answering]
    assert all(len(d) <= 1 for d in silent)  # at most one datagram per address ...
    probes = [data for d in silent for data, _ in d]
    assert probes and all(len(data) == addresses.PROBE_BYTES and data[FRAG_HEADER_LEN:][:2] == wire.PROBE_MAGIC for data in probes)  # ... a probe
    assert len(probes) * addresses.PROBE_BYTES + addresses.PROBE_BYTES <= sent  # fewer bytes in all than the Hellos brought
    assert {source for d in silent for _, source in d} == {("127.0.0.1", port)}  # the peer that got relayed copies sent nothing
    assert any(data[FRAG_HEADER_LEN:][:2] == wire.HOP_MAGIC for data, _ in got[answering])  # verified: it gets gossip
    assert status["addresses"] == {"bootstrap": 1, "verified": 1, "pending": 0}  # the silent ones were pruned
    assert status["counters"]["addresses_pruned"] == len(probes) and status["counters"]["addresses_verified"] == 1


@pytest.mark.parametrize("which", ["gossip", "api"])
def test_a_taken_port_is_one_clear_line_and_no_false_announcement(tmp_path, which):
    gossip_port, api_port = free_ports(1)[0], free_ports(1, socket.SOCK_STREAM)[0]
    init_node(tmp_path / "n", gossip_port, api_port)
    taken = socket.socket(socket.AF_INET, socket.SOCK_DGRAM if which == "gossip" else socket.SOCK_STREAM)
    try:
        taken.bind(("127.0.0.1", gossip_port if which == "gossip" else api_port))
        if which == "api":
            taken.listen()
        proc = subprocess.run([sys.executable, "-m", "qres.cli", "daemon", "run", "--config", str(tmp_path / "n" / "node.toml")],
                              capture_output=True, text=True, timeout=300, env={k: v for k, v in os.environ.items() if not k.startswith("QRES_")})
    finally:
        taken.close()
    port, key = (gossip_port, "QRES_GOSSIP_PORT") if which == "gossip" else (api_port, "QRES_API_PORT")
    assert proc.returncode == 1 and proc.stdout == ""  # it never said it was listening
    line, = proc.stderr.strip().splitlines()
    assert line.startswith("error: ") and f"port {port} on 127.0.0.1 is already in use" in line and key in line, line


def test_a_swarm_too_small_for_a_quorum_says_so_once_and_models_no_battery(tmp_path):
    with gossiping(tmp_path, 2, ready=lambda s: s["round"] > 10 and s["peers"] == 1) as (procs, url, _):
        status = json.loads(urllib.request.urlopen(url + "/status", timeout=10).read())
        logs = stop(procs)
    assert status["quorum"] == {"needed": 3, "peers": 1, "waiting": True} and status["models_committed"] == 0
    assert status["energy"] == {"profile": "mains", "battery": "none"}
    said = [line for line in logs[0].splitlines() if "peers" in line and ("waiting for" in line or "quorum" in line)]
    assert said and "waiting for 3 peers, have 1" in said[-1] and "QRES_GOSSIP_PEERS" in said[-1]
    assert len(said) <= 3 < status["round"]  # when it changes, not every round
