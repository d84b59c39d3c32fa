"""The live dashboard of running node processes: the page and its event stream over plain HTTP
(self-contained page, snapshots whose round rises, a bound on open streams with a share kept for
clients with the token, a clean SIGTERM with streams open), and the page in a real headless
Chromium, which must show the node's DID and live numbers that change as the node works, and get
a stream with its token when strangers hold every other one."""

import http.client
import json
import re
import signal
import time
import urllib.request
from urllib.parse import urlsplit

import pytest
from playwright.sync_api import expect

from daemons import STOP_S, WAIT_MS, WAIT_S, chromium, gossiping
from qres.node.dashboard import ANONYMOUS_STREAMS, MAX_STREAMS, TIMELINE_ROUNDS

def _get(url):
    with urllib.request.urlopen(url, timeout=WAIT_S) as r:
        return json.loads(r.read())


@pytest.fixture(scope="module")
def swarm(tmp_path_factory):
    """Four daemons; the first one's dashboard is under test, once it has heard all its peers. Yields its URL."""
    ready = lambda s: s["round"] > 1 and s["peers"] == 3 and s["models_committed"] > 2  # noqa: E731
    with gossiping(tmp_path_factory.mktemp("dashboard"), 4, ready=ready) as (_, url, _token):
        yield url


@pytest.fixture
def lone(tmp_path):
    """One daemon of its own (its rounds run without peers). Yields (URL, process, token)."""
    with gossiping(tmp_path, 1, ready=lambda s: s["round"] > 1) as (procs, url, token):
        yield url, procs[0], token


def _open_events(url, token=None):
    """An open GET /events response (with the bearer token when given)."""
    parts = urlsplit(url)
    conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=WAIT_S)
    conn.request("GET", "/events", headers={"Authorization": f"Bearer {token}"} if token else {})
    return conn.getresponse()


def _next_snapshot(resp):
    """The next `snapshot` event of an open /events response, as a dict."""
    name, data = None, []
    while True:
        line = resp.readline().decode()
        assert line, "the event stream ended"
        line = line.rstrip("\n")
        if line.startswith("event: "):
            name = line[len("event: "):]
        elif line.startswith("data: "):
            data.append(line[len("data: "):])
        elif not line and data:
            assert name == "snapshot"
            return json.loads("\n".join(data))


def test_page_is_one_self_contained_html_document(swarm):
    with urllib.request.urlopen(swarm + "/", timeout=WAIT_S) as r:
        html = r.read().decode()
        assert r.status == 200 and r.headers.get_content_type() == "text/html"
        assert "default-src 'none'" in r.headers["content-security-policy"]
    assert html.startswith("<!doctype html>") and "<script>" in html and "<style>" in html
    assert 'fetch("events"' in html
    # nothing to fetch: the only URL on the page is the SVG namespace, every src/href is inline data
    assert set(re.findall(r"https?://[^\s\"'`]+", html)) == {"http://www.w3.org/2000/svg"}
    assert all(ref.startswith("data:") for ref in re.findall(r"(?:src|href)=[\"']([^\"']*)", html))


def test_events_stream_snapshots_whose_round_rises(swarm):
    status, peers = _get(swarm + "/status"), _get(swarm + "/peers")
    resp = _open_events(swarm)
    try:
        assert resp.status == 200 and resp.getheader("content-type").startswith("text/event-stream")
        first = _next_snapshot(resp)
        assert first["status"]["did"] == status["did"] and first["status"]["round"] >= status["round"]
        assert {p["did"] for p in first["peers"]} == {p["did"] for p in peers} and len(first["peers"]) == 3
        rounds = [r["round"] for r in first["timeline"]]
        assert 0 < len(rounds) <= TIMELINE_ROUNDS and rounds == list(range(rounds[0], rounds[0] + len(rounds)))
        assert rounds[-1] <= first["status"]["round"] and {"regime", "charge", "bits_per_value", "swarm_model_id", "codec_model_id"} <= set(first["timeline"][-1])
        later = _next_snapshot(resp)
        for _ in range(30):  # the node closes a round every 0.2 s; a snapshot comes about every second
            if later["status"]["round"] > first["status"]["round"]:
                break
            later = _next_snapshot(resp)
        assert later["status"]["round"] > first["status"]["round"]
        # later snapshots carry only the rounds closed since the one before
        assert later["timeline"] and later["timeline"][0]["round"] > rounds[-1]
    finally:
        resp.close()


def test_strangers_cannot_take_every_stream_and_a_closed_one_frees_its_slot(lone):
    url, _, token = lone
    streams = [_open_events(url) for _ in range(ANONYMOUS_STREAMS)]
    try:
        for resp in streams:  # each one is being served
            assert resp.status == 200 and _next_snapshot(resp)["status"]["round"] > 0
        stranger = _open_events(url)
        assert stranger.status == 503 and stranger.getheader("retry-after")
        assert "without the API token" in json.loads(stranger.read())["detail"]
        wrong = _open_events(url, token + "x")
        assert wrong.status == 401 and "wrong bearer token" in json.loads(wrong.read())["detail"]
        for _ in range(MAX_STREAMS - ANONYMOUS_STREAMS):  # the operator's share is still there
            streams.append(_open_events(url, token))
            assert streams[-1].status == 200 and _next_snapshot(streams[-1])["status"]["round"] > 0
        full = _open_events(url, token)
        assert full.status == 503 and "too many event streams" in json.loads(full.read())["detail"]
        streams.pop(0).close()  # a stranger leaves
        deadline = time.monotonic() + WAIT_S
        while True:  # the server notices the closed connection and takes one more stranger
            resp = _open_events(url)
            if resp.status == 200:
                streams.append(resp)
                break
            resp.read()
            assert time.monotonic() < deadline, "a closed stream's slot was never freed"
            time.sleep(0.2)
        assert _next_snapshot(resp)["status"]["round"] > 0
    finally:
        for resp in streams:
            resp.close()


def test_sigterm_with_open_event_streams_stops_the_daemon_cleanly(lone):
    url, proc, _ = lone
    streams = [_open_events(url) for _ in range(3)]
    for resp in streams:
        _next_snapshot(resp)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=STOP_S)
    assert proc.returncode == 0 and "Traceback" not in err, err[-2000:]
    for resp in streams:  # each stream was ended by the server, with its closing chunk (no IncompleteRead)
        rest = resp.read().decode()
        assert resp.isclosed() and (rest == "" or rest.endswith("\n\n"))


def test_page_in_chromium_shows_the_node_live(swarm):
    status, peers = _get(swarm + "/status"), _get(swarm + "/peers")
    with chromium() as (page, requested, errors):
        page.goto(swarm + "/")
        # locators and expect (not page.evaluate): the page's CSP forbids evaluating strings
        expect(page.locator("#peer-rows tr")).to_have_count(3, timeout=WAIT_MS)
        assert page.text_content("#did") == status["did"]
        assert sorted(page.locator("#peer-rows td:first-child").all_text_contents()) == sorted(p["did"] for p in peers)
        assert page.text_content("#peers").startswith("3 (")
        assert re.fullmatch("[0-9a-f]{16}", page.text_content("#model-id"))
        assert re.fullmatch("[0-9a-f]{16}", page.text_content("#codec-id"))
        assert page.text_content("#quorum") == "3 / 3" and page.text_content("#charge") == "mains"
        assert page.text_content("#regime") in {"calm", "prestorm", "storm"}
        assert 0 < float(page.text_content("#bpv")) < 32
        first = int(page.text_content("#round"))
        assert first >= status["round"]
        expect(page.locator("#round")).not_to_have_text(str(first), timeout=WAIT_MS)
        assert int(page.text_content("#round")) > first
        # the charts are drawn from the timeline the stream sent
        assert len(page.get_attribute("#chart-bpv polyline", "points").split()) >= 2
        assert "no battery" in page.text_content("#caption-charge")  # on mains power
        assert page.locator("#chart-regime rect").count() >= 1
        assert page.text_content("#conn") == "live"
        assert errors == []
        assert requested and all(u.startswith((swarm + "/", "data:")) for u in requested), requested


def test_page_with_its_token_gets_a_stream_when_strangers_hold_theirs(lone):
    url, _, token = lone
    strangers = [_open_events(url) for _ in range(ANONYMOUS_STREAMS)]
    try:
        assert all(r.status == 200 for r in strangers)
        with chromium() as (page, _, errors):
            page.goto(url + "/")  # no token: refused, and says so
            expect(page.locator("#conn")).to_contain_text("busy", timeout=WAIT_MS)
            page.goto("about:blank")  # a new load (a changed fragment alone does not reload the page)
            page.goto(url + "/#token=" + token)
            expect(page.locator("#conn")).to_have_text("live", timeout=WAIT_MS)
            expect(page.locator("#round")).not_to_have_text("\u2013", timeout=WAIT_MS)
            assert "token" not in page.url  # taken out of the address bar
            assert not [e for e in errors if "503" not in e], errors  # the refused stream is the only error
    finally:
        for r in strangers:
            r.close()
