"""The REST API of a running node process, over real HTTP on loopback: status, peers, model,
metrics, frames in and out with the node's model, readings in; tokens, body limits and garbage
bodies answered with a clear 4xx (never a 5xx), counted in /metrics, while the node keeps serving."""

import base64
import json
import urllib.error
import urllib.request

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from daemons import gossiping


@pytest.fixture(scope="module")
def node(tmp_path_factory):
    """Four daemons (a quorum for each); the first one's API is under test."""
    with gossiping(tmp_path_factory.mktemp("api"), 4, {"QRES_API_MAX_BODY": "4096"}) as (_, url, token):
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
    energy = status["energy"]  # one modelled TWT period drawn per round
    assert energy["profile"] == "esp32-c6" and 0 < energy["charge"] < 1 and energy["modelled_s"] >= status["counters"]["rounds"]
    assert 0 < status["bits_per_value"] < 32
    code, peers = call(url, "/peers")
    assert code == 200 and len(peers) == 3 and all(0 <= p["reputation"] <= 1 and p["banned"] is False for p in peers)
    code, model = call(url, "/model")
    assert code == 200 and len(model["id"]) == 16 and len(model["weights_q16"]) == 8 and base64.b64decode(model["gene"])


def test_compress_then_decompress_gives_the_readings_back(node):
    url, token = node
    values = [30000 + (i * 37) % 101 for i in range(64)]
    code, frame = call(url, "/compress", {"values": values}, token)
    assert code == 200 and frame["values"] == 64 and frame["bytes"] < 4 * 64
    code, back = call(url, "/decompress", {"model_id": frame["model_id"], "frame": frame["frame"]}, token)
    assert code == 200 and back["values"] == values


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
        ("/decompress", {"model_id": "0" * 16, "frame": "AAAA"}, "T", None, 404, "unknown model"),
        ("/decompress", {"model_id": "0" * 16, "frame": "!!!"}, "T", None, 422, "base64"),
        ("/readings", {"values": ["a"]}, "T", None, 422, ""),
        ("/compress", None, "T", b"[NaN]", 422, "object"),  # was a 500: the error echoed NaN
        ("/compress", None, "T", b'{"values": [NaN, "a"]}', 422, "valid number"),
    ],
)
def test_bad_requests_get_a_clear_4xx(node, path, body, token, raw, code, says):
    url, real = node
    got, detail = call(url, path, body, real if token == "T" else token, raw)
    assert got == code and says in json.dumps(detail)


def test_refused_requests_are_counted_in_metrics(node):
    url, _ = node
    call(url, "/compress", {"values": [1]})
    code, text = call(url, "/metrics")
    assert code == 200 and 'qres_api_rejected_requests_total{reason="401"}' in text
    assert 'qres_gossip_events{event="messages_accepted"}' in text and "qres_round " in text


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
    assert code == 200 and len(frame.body) < values.nbytes and len(frame.model_id) == 16
    code, back = call_raw(url, "/decompress", frame.body, token, {**headers, "x-model-id": frame.model_id})
    assert code == 200 and back.model_id == frame.model_id
    np.testing.assert_array_equal(np.frombuffer(back.body, "<i8"), values)


@pytest.mark.parametrize(
    "path, body, headers, says",
    [
        ("/compress", b"", {}, "little-endian int64 values (0 bytes given)"),
        ("/compress", b"\x01" * 12, {}, "12 bytes given"),
        ("/decompress", b"\x00" * 10, {}, "X-Model-Id"),
        ("/decompress", b"\x00" * 10, {"x-model-id": "0" * 16}, "unknown model"),
    ],
)
def test_bad_binary_bodies_get_a_clear_4xx(node, path, body, headers, says):
    url, token = node
    code, resp = call_raw(url, path, body, token, {"content-type": "application/octet-stream", **headers})
    assert 400 <= code < 500 and says in resp.body.decode()


class _Raw:
    def __init__(self, body, headers):
        self.body, self.model_id = body, headers.get("x-model-id")


def call_raw(url, path, body, token, headers):
    req = urllib.request.Request(url + path, data=body, method="POST", headers={"authorization": f"Bearer {token}", **headers})
    try:
        with urllib.request.urlopen(req, timeout=10) as r:
            return r.status, _Raw(r.read(), {k.lower(): v for k, v in r.headers.items()})
    except urllib.error.HTTPError as e:
        return e.code, _Raw(e.read(), {})
