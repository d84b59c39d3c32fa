"""The REST API of a running node process, over real HTTP on loopback: status, peers, model,
Prometheus metrics, frames in and out with the node's model, readings in, the offline /docs;
tokens, body limits and garbage bodies answered with a clear 4xx (never a 5xx), counted in
/metrics, while the node keeps serving."""

import base64
import json
import re
import time
import urllib.error
import urllib.request

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from prometheus_client.parser import text_string_to_metric_families

from daemons import chromium, gossiping
from qres.node.metrics import COUNTERS


@pytest.fixture(scope="module")
def node(tmp_path_factory):
    """Four daemons (a quorum for each) on a modelled battery; the first one's API is under test."""
    with gossiping(tmp_path_factory.mktemp("api"), 4, {"QRES_API_MAX_BODY": "4096", "QRES_ENERGY_PROFILE": "esp32-c6"}) as (_, url, token):
        yield url, token


def call(url, path, body=None, token=None, raw=None, headers=None):
    data = raw if raw is not None else (None if body is None else json.dumps(body).encode())
    req = urllib.request.Request(url + path, data=data, method="POST" if data is not None else "GET")
    req.add_header("content-type", "application/json")
    if token:
        req.add_header("authorization", f"Bearer {token}")
    for k, v in (headers or {}).items():
        req.add_header(k, v)
    try:
        with urllib.request.urlopen(req, timeout=10) as r:
            text = r.read().decode()
            return r.status, (json.loads(text) if r.headers.get_content_type() == "application/json" else text)
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read().decode() or "null")


def test_health_status_peers_and_model(node):
    url, _ = node
    assert call(url, "/health") == (200, {"status": "ok"})
    code, status = call(url, "/status")
    assert code == 200 and status["did"].startswith("did:qres:") and status["peers"] == 3 and status["regime"] == "calm"
    assert status["round"] > 0 and status["models_committed"] > 0
    assert status["quorum"] == {"needed": 3, "peers": 3, "waiting": False}
    assert status["addresses"] == {"bootstrap": 3, "verified": 0, "pending": 0}  # every peer is a bootstrap peer
    energy = status["energy"]  # drawn on the wall clock: the modelled battery has lived as long as the node
    assert energy["profile"] == "esp32-c6" and energy["battery"] == "modelled" and energy["clock"] == "wall"
    assert energy["elapsed_s"] <= status["uptime_s"] + 1 and 0.99 < energy["charge"] <= 1 and energy["brownouts"] == 0
    assert 0 < status["bits_per_value"] < 32
    code, peers = call(url, "/peers")
    assert code == 200 and len(peers) == 3 and all(0 <= p["reputation"] <= 1 and p["banned"] is False for p in peers)
    code, model = call(url, "/model")
    assert code == 200 and len(model["codec_model_id"]) == 16 and len(model["swarm_model_id"]) == 16
    assert len(model["weights_q16"]) == 8 and base64.b64decode(model["gene"])


def test_both_model_ids_are_named_apart(node):
    url, token = node
    code, frame = call(url, "/compress", {"values": list(range(64))}, token)
    code2, status = call(url, "/status")
    assert code == code2 == 200 and "model_id" not in frame and "model_id" not in status
    assert re.fullmatch("[0-9a-f]{16}", frame["codec_model_id"]) and re.fullmatch("[0-9a-f]{16}", frame["swarm_model_id"])
    assert frame["codec_model_id"] != frame["swarm_model_id"]  # two different models
    assert re.fullmatch("[0-9a-f]{16}", status["swarm_model_id"]) and re.fullmatch("[0-9a-f]{16}", status["codec_model_id"])


def test_compress_then_decompress_gives_the_readings_back(node):
    url, token = node
    values = [30000 + (i * 37) % 101 for i in range(64)]
    code, frame = call(url, "/compress", {"values": values}, token)
    assert code == 200 and frame["values"] == 64 and frame["bytes"] < 4 * 64
    code, back = call(url, "/decompress", {"codec_model_id": frame["codec_model_id"], "frame": frame["frame"]}, token)
    assert code == 200 and back["values"] == values and back["codec_model_id"] == frame["codec_model_id"]


def test_readings_feed_the_node(node):
    url, token = node
    code, res = call(url, "/readings", {"values": list(range(1000, 1200))}, token)
    assert code == 200 and res["accepted"] == 200 and res["buffered"] >= 200


@pytest.mark.parametrize(
    "path, body, token, raw, code, says",
    [
        ("/compress", {"values": [1, 2]}, None, None, 401, "bearer"),
        ("/compress", {"values": [1, 2]}, "wrong-token-wrong-token", None, 401, "bearer"),
        ("/compress", None, "T", b"{not json", 422, ""),
        ("/compress", {"values": []}, "T", None, 422, ""),
        ("/compress", {"values": [1.5, 2]}, "T", None, 422, "whole numbers"),
        ("/compress", {"values": [2**70]}, "T", None, 422, ""),
        ("/compress", None, "T", json.dumps({"values": list(range(5000))}).encode(), 413, "over 4096"),
        ("/decompress", {"codec_model_id": "0" * 16, "frame": "AAAA"}, "T", None, 404, "unknown codec model"),
        ("/decompress", {"codec_model_id": "0" * 16, "frame": "!!!"}, "T", None, 422, "base64"),
        ("/readings", {"values": ["a"]}, "T", None, 422, ""),
        ("/compress", None, "T", b"[NaN]", 422, "object"),  # was a 500: the error echoed NaN
        ("/compress", None, "T", b'{"values": [NaN, "a"]}', 422, "valid number"),
    ],
)
def test_bad_requests_get_a_clear_4xx(node, path, body, token, raw, code, says):
    url, real = node
    got, detail = call(url, path, body, real if token == "T" else token, raw)
    assert got == code and says in json.dumps(detail)


def test_the_token_must_match_exactly(node):
    """Not a prefix of it, not it with more after it, not another case: compared whole."""
    url, token = node
    for wrong in (token + "x", token + token, token[:-1], token[:1], token.swapcase(), " " + token):
        code, detail = call(url, "/compress", {"values": [1, 2]}, wrong)
        assert code == 401 and "bearer" in detail["detail"], wrong
    assert call(url, "/compress", {"values": [1, 2]}, token)[0] == 200


def _scrape(url) -> dict:
    """GET /metrics parsed by prometheus_client: {family name: family}."""
    code, text = call(url, "/metrics")
    assert code == 200
    return {f.name: f for f in text_string_to_metric_families(text)}


def _value(family, **labels) -> float:
    """The value of the sample of `family` whose labels include `labels` (the first one when several)."""
    return next(s.value for s in family.samples if labels.items() <= s.labels.items())


def test_metrics_follow_prometheus_conventions_and_move(node):
    url, token = node
    before = _scrape(url)
    expected = {"process_cpu_seconds", "process_resident_memory_bytes", "process_start_time_seconds", "python_info",
                "qres_http_request_duration_seconds", "qres_api_rejected_requests", "qres_model_info", "qres_node_info", "qres_round",
                "qres_regime", "qres_bits_per_value", "qres_peers", "qres_peers_banned", "qres_peer_reputation", "qres_quorum_peers",
                "qres_quorum_required_peers", "qres_addresses", "qres_energy_charge_ratio", "qres_energy_charge_joules",
                "qres_energy_brownouts", "qres_radio_sleep_ratio", "qres_gossip_dropped", "qres_bans_reported", "qres_ban_reports_received"}
    assert expected <= set(before), expected - set(before)
    assert before["qres_http_request_duration_seconds"].type == "histogram" and before["qres_bans_reported"].type == "counter"
    model = before["qres_model_info"].samples[0]  # an info metric: value 1, the ids in its labels
    assert model.value == 1 and re.fullmatch("[0-9a-f]{16}", model.labels["swarm_model_id"]) and re.fullmatch("[0-9a-f]{16}", model.labels["codec_model_id"])
    assert sum(s.value for s in before["qres_regime"].samples) == 1  # one regime at a time
    assert len(before["qres_peer_reputation"].samples) == 3 and 0.99 < _value(before["qres_energy_charge_ratio"]) <= 1
    _, status = call(url, "/status")
    for key in status["counters"]:  # every counter of /status is exported
        assert key.startswith("dropped_") or key in COUNTERS, key
    compress = lambda f: _value(f["qres_http_request_duration_seconds"], endpoint="/compress", le="+Inf")  # noqa: E731
    n = compress(before) if any(s.labels.get("endpoint") == "/compress" for s in before["qres_http_request_duration_seconds"].samples) else 0
    call(url, "/compress", {"values": [1, 2, 3]}, token)
    call(url, "/compress", {"values": [1]})  # refused: no token
    for method in ("PROPFIND", "MKCOL"):  # a client cannot mint label values
        try:
            urllib.request.urlopen(urllib.request.Request(url + f"/no/such/{method}", method=method), timeout=10)
        except urllib.error.HTTPError:
            pass
    time.sleep(0.5)  # a round or two
    after = _scrape(url)
    assert compress(after) == n + 2
    labels = {(s.labels["method"], s.labels["endpoint"]) for s in after["qres_http_request_duration_seconds"].samples}
    assert ("other", "unmatched") in labels and not any(m in ("PROPFIND", "MKCOL") or "/no/such" in e for m, e in labels)
    assert _value(after["qres_api_rejected_requests"], reason="401") >= 1
    assert _value(after["qres_round"]) > _value(before["qres_round"])
    assert _value(after["qres_gossip_datagrams_received"]) > _value(before["qres_gossip_datagrams_received"])
    assert _value(after["process_cpu_seconds"]) >= _value(before["process_cpu_seconds"])


def test_docs_load_nothing_from_outside_the_node(node):
    url, _ = node
    with urllib.request.urlopen(url + "/docs", timeout=10) as r:
        html, csp = r.read().decode(), r.headers["content-security-policy"]
    assert "SwaggerUIBundle" in html and re.findall(r"https?://", html) == []
    assert "default-src 'none'" in csp and "http" not in csp
    refs = re.findall(r"(?:src|href)=[\"']([^\"']*)", html) + re.findall(r"url: '([^']*)'", html)
    assert refs and all(ref.startswith("/") for ref in refs), refs
    for ref in refs:
        with urllib.request.urlopen(url + ref, timeout=10) as r:
            assert r.status == 200 and len(r.read()) > 0
    assert call(url, "/docs/assets/redoc.js")[0] == 404


def test_docs_render_every_operation_offline_in_chromium(node):
    url, _ = node
    with chromium() as (page, requested, errors):
        page.goto(url + "/docs")
        page.wait_for_selector(".opblock-summary-path")
        paths = set(page.locator(".opblock-summary-path").all_text_contents())
        assert {"/compress", "/decompress", "/readings", "/status", "/metrics"} <= {p.replace("\u200b", "") for p in paths}
        assert errors == [] and all(u.startswith(url + "/") or u.startswith("data:") for u in requested), (errors, requested)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.sampled_from(["/compress", "/decompress", "/readings"]),
       st.recursive(st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20),
                    lambda c: st.lists(c, max_size=5) | st.dictionaries(st.sampled_from(["values", "model_id", "frame", "x"]), c, max_size=3),
                    max_leaves=20))
def test_any_json_body_gets_an_answer_below_500(node, path, body):
    url, token = node
    try:
        raw = json.dumps(body).encode()
    except ValueError:
        return
    code, _ = call(url, path, token=token, raw=raw)
    assert code < 500


def test_a_chunked_body_over_the_limit_is_refused_without_being_read_whole(node):
    import http.client
    from urllib.parse import urlparse

    url, token = node
    u = urlparse(url)
    conn = http.client.HTTPConnection(u.hostname, u.port, timeout=10)
    chunks = (json.dumps({"values": list(range(5000))}).encode()[i : i + 512] for i in range(0, 30000, 512))
    conn.request("POST", "/compress", body=chunks, headers={"authorization": f"Bearer {token}", "content-type": "application/json"},
                 encode_chunked=True)
    resp = conn.getresponse()
    assert resp.status == 413 and "over 4096" in resp.read().decode()
    conn.close()
    assert call(url, "/health") == (200, {"status": "ok"})  # and the node keeps serving


def test_binary_bodies_round_trip_and_name_the_model(node):
    import numpy as np

    url, token = node
    values = np.array([-(2**40), 7, 30000, 30001, 29999] * 12, "<i8")
    headers = {"content-type": "application/octet-stream"}
    code, frame = call_raw(url, "/compress", values.tobytes(), token, headers)
    assert code == 200 and len(frame.body) < values.nbytes and len(frame.model_id) == 16 and len(frame.swarm_model_id) == 16
    code, back = call_raw(url, "/decompress", frame.body, token, {**headers, "x-codec-model-id": frame.model_id})
    assert code == 200 and back.model_id == frame.model_id
    np.testing.assert_array_equal(np.frombuffer(back.body, "<i8"), values)


@pytest.mark.parametrize(
    "path, body, headers, says",
    [
        ("/compress", b"", {}, "little-endian int64 values (0 bytes given)"),
        ("/compress", b"\x01" * 12, {}, "12 bytes given"),
        ("/decompress", b"\x00" * 10, {}, "X-Codec-Model-Id"),
        ("/decompress", b"\x00" * 10, {"x-codec-model-id": "0" * 16}, "unknown codec model"),
    ],
)
def test_bad_binary_bodies_get_a_clear_4xx(node, path, body, headers, says):
    url, token = node
    code, resp = call_raw(url, path, body, token, {"content-type": "application/octet-stream", **headers})
    assert 400 <= code < 500 and says in resp.body.decode()


class _Raw:
    def __init__(self, body, headers):
        self.body, self.model_id, self.swarm_model_id = body, headers.get("x-codec-model-id"), headers.get("x-swarm-model-id")


def call_raw(url, path, body, token, headers):
    req = urllib.request.Request(url + path, data=body, method="POST", headers={"authorization": f"Bearer {token}", **headers})
    try:
        with urllib.request.urlopen(req, timeout=10) as r:
            return r.status, _Raw(r.read(), {k.lower(): v for k, v in r.headers.items()})
    except urllib.error.HTTPError as e:
        return e.code, _Raw(e.read(), {})
