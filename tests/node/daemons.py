"""Daemon processes for the node tests: a few nodes gossiping on loopback, started, waited for
and stopped, and never left running after a failure; and a headless Chromium to look at their pages."""

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from contextlib import contextmanager

import pytest
from playwright.sync_api import sync_playwright

from qres.node.cluster import free_ports
from qres.node.config import init_node, load_config

WAIT_S = 120  # how long a busy machine may take to start a node (a bound, not a measurement)
WAIT_MS = 1000 * WAIT_S
STOP_S = 30  # how long a node may take to stop
CHROMIUM = "/usr/bin/chromium" if os.path.exists("/usr/bin/chromium") else shutil.which("chromium")
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]


def status(url: str) -> dict | None:
    """GET /status, or None while the node does not answer."""
    try:
        with urllib.request.urlopen(url + "/status", timeout=5) as r:
            return json.loads(r.read())
    except OSError:  # not listening yet, or too busy to answer in time (URLError and TimeoutError are OSErrors)
        return None


@contextmanager
def gossiping(base, count: int, env: dict | None = None, ready=lambda s: s["models_committed"] > 2):
    """`count` daemons in folders under `base`, each with the others as peers (rounds of 0.2 s);
    yields (processes, the first node's API URL, its token) once `ready(status)` holds for it.
    On leaving, each gets SIGTERM and must exit 0; whatever failed, none is left running."""
    gossip, api = free_ports(count), free_ports(count, socket.SOCK_STREAM)
    procs = []
    try:
        for i in range(count):
            d = base / f"n{i}"
            init_node(d, gossip[i], api[i])
            peers = ",".join(f"127.0.0.1:{p}" for j, p in enumerate(gossip) if j != i)
            e = {**os.environ, "QRES_GOSSIP_PEERS": peers, "QRES_GOSSIP_ROUND_SECONDS": "0.2", "QRES_SENSOR_OFFSET": str(2000 * i), **(env or {})}
            procs.append(subprocess.Popen([sys.executable, "-m", "qres.cli", "daemon", "run", "--config", str(d / "node.toml")],
                                          env=e, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True))
        url = f"http://127.0.0.1:{api[0]}"
        deadline, last = time.monotonic() + WAIT_S, None
        while not ((last := status(url)) and ready(last)):
            if time.monotonic() > deadline:
                raise AssertionError(f"the first node did not get going within {WAIT_S} s: {last}")
            time.sleep(0.2)
        yield procs, url, load_config(base / "n0" / "node.toml", env={}).token
        stop(procs)
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.wait()


def stop(procs) -> list[str]:
    """SIGTERM to each daemon still running; each must exit 0 within STOP_S. Their logs (stderr)."""
    running = [p for p in procs if p.returncode is None]
    for p in running:
        p.send_signal(signal.SIGTERM)
    logs = []
    for p in running:
        _, err = p.communicate(timeout=STOP_S)
        assert p.returncode == 0, err[-2000:]
        logs.append(err)
    return logs


@contextmanager
def chromium():
    """A page in headless Chromium (skips the test where there is none); yields (page, URLs it
    requested, errors it reported)."""
    if CHROMIUM is None:
        pytest.skip("no chromium executable (/usr/bin/chromium; `apt-get install chromium`): the page is not checked in a browser")
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, timeout=WAIT_MS)
        try:
            page = browser.new_page()
            page.set_default_timeout(WAIT_MS)
            requested, errors = [], []
            page.on("request", lambda r: requested.append(r.url))
            page.on("pageerror", lambda e: errors.append(str(e)))
            page.on("console", lambda m: m.type == "error" and errors.append(m.text))
            yield page, requested, errors
        finally:
            browser.close()
