"""The node's live dashboard: one self-contained HTML page (GET /) and the server-sent event stream
it reads (GET /events).

The page loads nothing from anywhere (inline CSS and JS, charts drawn as inline SVG, a CSP that
forbids anything else), so it works on a node without internet. It shows the node (DID, round,
regime, quorum, energy, models, bits per value), its peer table and charts over the newest rounds.
Opened as `/#token=<api.token>` it sends the token with its stream (the fragment never leaves the
browser, and the page removes it from the address bar).

/events is a text/event-stream: a `snapshot` event at once and then every `PERIOD_S` seconds. A
snapshot holds the node's status, its peer table, its clock and the closed rounds of its timeline
that this stream has not sent yet (the newest `TIMELINE_ROUNDS` in the first one). A stream ends as
soon as the daemon stops, so an open browser never holds up a clean shutdown; at most
`MAX_STREAMS` streams are open at once, of which at most `ANONYMOUS_STREAMS` without the API token
(so strangers cannot lock the operator out); more are answered 503, a wrong token 401.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import time
from collections.abc import AsyncIterator, Callable
from typing import TYPE_CHECKING

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, JSONResponse, Response, StreamingResponse

if TYPE_CHECKING:
    from starlette.types import Receive, Scope, Send

    from .daemon import NodeDaemon

PERIOD_S = 1.0  # seconds between two snapshots of one stream
TIMELINE_ROUNDS = 300  # closed rounds a snapshot holds at most (the page's chart width)
MAX_STREAMS = 32  # event streams open at once per node
ANONYMOUS_STREAMS = 8  # of which without the API token; the rest are kept for the operator
RETRY_MS = 2000  # milliseconds a browser waits before it reconnects a stream that ended
RETRY_AFTER_S = 5  # seconds a refused client is told to wait

# the page may run its own inline script and style and read /events; nothing else
PAGE_HEADERS = {
    "Content-Security-Policy": "default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; "
                               "connect-src 'self'; img-src data:; base-uri 'none'; form-action 'none'",
    "Cache-Control": "no-cache",
}


def snapshot(daemon: NodeDaemon, after: int | None = None) -> dict:
    """What the page shows: status, peers, the node's clock `now` (s since the epoch) and the
    closed rounds newer than round `after` (any when None), at most `TIMELINE_ROUNDS`, oldest first."""
    newer = itertools.takewhile(lambda r: after is None or r["round"] > after, reversed(daemon.timeline))
    rounds = list(itertools.islice(newer, TIMELINE_ROUNDS))[::-1]
    return {"status": daemon.status(), "peers": daemon.peer_table(), "now": round(time.time(), 3), "timeline": rounds}


def event(data: dict) -> str:
    """One server-sent event of type `snapshot` carrying `data` as one line of JSON."""
    return f"event: snapshot\ndata: {json.dumps(data, separators=(',', ':'))}\n\n"


async def snapshots(daemon: NodeDaemon) -> AsyncIterator[str]:
    """The body of one event stream: a reconnect delay, then a snapshot at once and every
    `PERIOD_S` seconds, each with only the rounds closed since the one before; ends when the daemon stops."""
    yield f"retry: {RETRY_MS}\n\n"
    sent = None  # newest round this stream has sent
    while not daemon.stopping.is_set():
        snap = snapshot(daemon, sent)
        if snap["timeline"]:
            sent = snap["timeline"][-1]["round"]
        yield event(snap)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(daemon.stopping.wait(), PERIOD_S)


class _EventStream(StreamingResponse):
    """A text/event-stream response that calls `on_close` once it is over, however it ends."""

    def __init__(self, body: AsyncIterator[str], on_close: Callable[[], None]):
        super().__init__(body, media_type="text/event-stream", headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})
        self._on_close = on_close

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            await super().__call__(scope, receive, send)
        finally:
            self._on_close()


def router(daemon: NodeDaemon, has_token: Callable[[Request], bool]) -> APIRouter:
    """GET / (the page) and GET /events (its stream) of one running node; both read-only, the token
    needed only for the streams beyond `ANONYMOUS_STREAMS` (`has_token(request)` checks it). Not in
    the OpenAPI schema: they are for people, not for API clients."""
    routes = APIRouter()
    open_streams = {True: 0, False: 0}  # with the token, without

    def refused(why: str) -> JSONResponse:
        return JSONResponse({"detail": why}, 503, headers={"Retry-After": str(RETRY_AFTER_S)})

    @routes.get("/", response_class=HTMLResponse, include_in_schema=False)
    def page() -> HTMLResponse:
        return HTMLResponse(PAGE, headers=PAGE_HEADERS)

    @routes.get("/events", include_in_schema=False)
    async def events(request: Request) -> Response:
        token = has_token(request)
        if "authorization" in request.headers and not token:
            return JSONResponse({"detail": "wrong bearer token"}, 401, headers={"WWW-Authenticate": "Bearer"})
        if sum(open_streams.values()) >= MAX_STREAMS:
            return refused(f"too many event streams: {MAX_STREAMS} are open, retry later")
        if not token and open_streams[False] >= ANONYMOUS_STREAMS:
            return refused(f"too many event streams without the API token: {ANONYMOUS_STREAMS} are open; "
                           "send the token (open the dashboard as /#token=<api.token>) or retry later")
        open_streams[token] += 1

        def closed() -> None:
            open_streams[token] -= 1

        return _EventStream(snapshots(daemon), closed)

    return routes


_PAGE = """<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<link rel="icon" href="data:,">
<title>QRES node</title>
<style>
  :root { --bg: #f6f7f9; --card: #fff; --ink: #1d2330; --dim: #667085; --line: #d0d5dd;
          --calm: #3a9a5b; --prestorm: #e0a020; --storm: #c43d3d; --accent: #2f6fd0; }
  * { box-sizing: border-box; }
  body { margin: 0; font: 14px/1.4 system-ui, sans-serif; background: var(--bg); color: var(--ink); }
  header { display: flex; flex-wrap: wrap; gap: 0.5em 1em; align-items: baseline; padding: 12px 20px;
           background: var(--ink); color: #fff; }
  header h1 { margin: 0; font-size: 18px; }
  #did { font-family: ui-monospace, monospace; font-size: 13px; word-break: break-all; }
  #conn { margin-left: auto; padding: 1px 8px; border-radius: 9px; background: #555; font-size: 12px; }
  #conn.live { background: var(--calm); }
  main { padding: 16px 20px; display: grid; gap: 16px; }
  .tiles { display: grid; grid-template-columns: repeat(auto-fill, minmax(150px, 1fr)); gap: 10px; }
  .tile { background: var(--card); border: 1px solid var(--line); border-radius: 6px; padding: 8px 10px; }
  .tile b { display: block; font-size: 20px; font-weight: 600; font-variant-numeric: tabular-nums; word-break: break-all; }
  .tile span { color: var(--dim); font-size: 12px; }
  .mono { font-family: ui-monospace, monospace; }
  .tile b.mono { font-size: 16px; }
  .waiting { color: var(--storm); }
  .regime-calm { color: var(--calm); } .regime-prestorm { color: var(--prestorm); } .regime-storm { color: var(--storm); }
  section { background: var(--card); border: 1px solid var(--line); border-radius: 6px; padding: 10px 14px; }
  section h2 { margin: 0 0 6px; font-size: 14px; }
  .charts { display: grid; grid-template-columns: repeat(auto-fit, minmax(320px, 1fr)); gap: 16px; }
  svg { width: 100%; height: 90px; display: block; background: #fbfcfd; border: 1px solid var(--line); }
  svg polyline { fill: none; stroke: var(--accent); stroke-width: 1.5; vector-effect: non-scaling-stroke; }
  .caption { color: var(--dim); font-size: 12px; font-variant-numeric: tabular-nums; }
  table { width: 100%; border-collapse: collapse; }
  th, td { text-align: left; padding: 4px 8px; border-bottom: 1px solid var(--line); }
  td { font-variant-numeric: tabular-nums; }
  td:first-child { font-family: ui-monospace, monospace; font-size: 12px; word-break: break-all; }
  tr.banned td { color: var(--storm); }
  .legend i { display: inline-block; width: 10px; height: 10px; margin: 0 3px 0 8px; }
</style>
</head>
<body>
<header>
  <h1>QRES node</h1>
  <span id="did">connecting&hellip;</span>
  <span id="conn">connecting</span>
</header>
<main>
  <div class="tiles">
    <div class="tile"><span>round</span><b id="round">&ndash;</b></div>
    <div class="tile"><span>regime</span><b id="regime">&ndash;</b></div>
    <div class="tile"><span>peers (banned)</span><b id="peers">&ndash;</b></div>
    <div class="tile"><span>quorum: peers heard / needed</span><b id="quorum">&ndash;</b></div>
    <div class="tile"><span>swarm model id</span><b id="model-id" class="mono">&ndash;</b></div>
    <div class="tile"><span>codec model id</span><b id="codec-id" class="mono">&ndash;</b></div>
    <div class="tile"><span>bits per value</span><b id="bpv">&ndash;</b></div>
    <div class="tile"><span id="charge-label">charge</span><b id="charge">&ndash;</b></div>
    <div class="tile"><span>brownouts (modelled)</span><b id="brownouts">&ndash;</b></div>
    <div class="tile"><span>radio sleep ratio (modelled)</span><b id="sleep">&ndash;</b></div>
    <div class="tile"><span>models committed</span><b id="committed">&ndash;</b></div>
    <div class="tile"><span>messages accepted / dropped</span><b id="messages">&ndash;</b></div>
    <div class="tile"><span>uptime</span><b id="uptime">&ndash;</b></div>
    <div class="tile"><span>energy profile</span><b id="profile">&ndash;</b></div>
  </div>
  <div class="charts">
    <section><h2>regime <span class="legend"><i style="background:var(--calm)"></i>calm<i style="background:var(--prestorm)"></i>prestorm<i style="background:var(--storm)"></i>storm</span></h2>
      <svg id="chart-regime" viewBox="0 0 600 100" preserveAspectRatio="none"><g></g></svg>
      <div class="caption" id="caption-regime"></div></section>
    <section><h2>bits per value</h2>
      <svg id="chart-bpv" viewBox="0 0 600 100" preserveAspectRatio="none"><polyline points=""></polyline></svg>
      <div class="caption" id="caption-bpv"></div></section>
    <section><h2>charge (modelled battery, real time)</h2>
      <svg id="chart-charge" viewBox="0 0 600 100" preserveAspectRatio="none"><polyline points=""></polyline></svg>
      <div class="caption" id="caption-charge"></div></section>
  </div>
  <section><h2>peers</h2>
    <table><thead><tr><th>DID</th><th>reputation</th><th>banned</th><th>last seen</th></tr></thead>
    <tbody id="peer-rows"></tbody></table>
  </section>
</main>
<script>
"use strict";
const KEEP = __TIMELINE_ROUNDS__, RETRY_MS = __RETRY_MS__, W = 600, H = 100, SVGNS = "http://www.w3.org/2000/svg";
const REGIME_COLOR = { calm: "var(--calm)", prestorm: "var(--prestorm)", storm: "var(--storm)" };
let timeline = [];

const el = id => document.getElementById(id);
const show = (id, text) => { el(id).textContent = text; };
const num = (x, digits) => (x === null || x === undefined) ? "\\u2013" : Number(x).toFixed(digits);

function merge(rounds) {
  // a stream sends only new rounds; a reconnected one starts over with the newest KEEP
  if (!rounds.length) return;
  const first = rounds[0].round;
  timeline = timeline.filter(r => r.round < first).concat(rounds).slice(-KEEP);
}

function x(round) {
  const r0 = timeline[0].round, span = Math.max(1, timeline[timeline.length - 1].round - r0);
  return (round - r0) / span * W;
}

function span() {
  return timeline.length ? `rounds ${timeline[0].round}\\u2013${timeline[timeline.length - 1].round}` : "no rounds yet";
}

function lineChart(name, key, digits, fixed) {
  const rows = timeline.filter(r => r[key] !== null && r[key] !== undefined);
  const values = rows.map(r => r[key]);
  let lo = fixed ? fixed[0] : Math.min(...values), hi = fixed ? fixed[1] : Math.max(...values);
  if (hi - lo < 1e-9) { lo -= 0.5; hi += 0.5; }
  const points = rows.map(r => `${x(r.round).toFixed(1)},${(H - (r[key] - lo) / (hi - lo) * H).toFixed(1)}`);
  el("chart-" + name).querySelector("polyline").setAttribute("points", points.join(" "));
  show("caption-" + name, rows.length
    ? `${span()} \\u00b7 min ${num(Math.min(...values), digits)} \\u00b7 max ${num(Math.max(...values), digits)} \\u00b7 now ${num(values[values.length - 1], digits)}`
    : "no rounds yet");
}

function regimeChart() {
  const g = el("chart-regime").querySelector("g");
  g.replaceChildren();
  for (let i = 0; i < timeline.length;) {
    let j = i;
    while (j + 1 < timeline.length && timeline[j + 1].regime === timeline[i].regime) j++;
    const rect = document.createElementNS(SVGNS, "rect");
    const x0 = x(timeline[i].round), x1 = j + 1 < timeline.length ? x(timeline[j + 1].round) : W;
    rect.setAttribute("x", x0.toFixed(1));
    rect.setAttribute("width", Math.max(1, x1 - x0).toFixed(1));
    rect.setAttribute("y", 0);
    rect.setAttribute("height", H);
    rect.setAttribute("fill", REGIME_COLOR[timeline[i].regime] || "#999");
    g.appendChild(rect);
    i = j + 1;
  }
  const changes = timeline.filter((r, i) => i && r.regime !== timeline[i - 1].regime).length;
  show("caption-regime", `${span()} \\u00b7 ${changes} regime changes`);
}

function peerRows(peers, now) {
  const rows = peers.map(p => {
    const tr = document.createElement("tr");
    if (p.banned) tr.className = "banned";
    const seen = p.last_seen === null ? "never" : `${num(Math.max(0, now - p.last_seen), 1)} s ago`;
    for (const text of [p.did, num(p.reputation, 3), p.banned ? "yes" : "no", seen]) {
      const td = document.createElement("td");
      td.textContent = text;
      tr.appendChild(td);
    }
    return tr;
  });
  el("peer-rows").replaceChildren(...rows);
}

function render(snap) {
  const s = snap.status, e = s.energy;
  show("did", s.did);
  show("round", s.round);
  show("regime", s.regime);
  el("regime").className = "regime-" + s.regime;
  show("peers", `${s.peers} (${s.banned})`);
  const q = s.quorum;
  show("quorum", q.waiting ? `${q.peers} / ${q.needed}: waiting for peers` : `${q.peers} / ${q.needed}`);
  el("quorum").className = q.waiting ? "waiting" : "";
  show("model-id", s.swarm_model_id);
  show("codec-id", s.codec_model_id || "\\u2013");
  show("bpv", num(s.bits_per_value, 2));
  const battery = e.battery === "modelled";
  show("charge-label", battery ? "charge (modelled battery, real time)" : "power");
  show("charge", battery ? `${num(100 * e.charge, 1)} %` : "mains");
  show("brownouts", battery ? e.brownouts : "\\u2013");
  show("sleep", battery ? num(e.sleep_ratio, 3) : "\\u2013");
  show("committed", s.models_committed);
  show("messages", `${s.messages_accepted} / ${s.messages_dropped}`);
  show("uptime", `${num(s.uptime_s, 0)} s`);
  show("profile", e.profile);
  peerRows(snap.peers, snap.now);
  regimeChart();
  lineChart("bpv", "bits_per_value", 2, null);
  lineChart("charge", "charge", 3, [0, 1]);
  if (!battery) show("caption-charge", "mains power: no battery is modelled");
}

// the API token, when the page was opened as /#token=...: sent with the stream (which then gets one
// of the slots kept for the operator), and taken out of the address bar
const token = new URLSearchParams(location.hash.slice(1)).get("token");
if (token) history.replaceState(null, "", location.pathname + location.search);

function onEvent(block) {
  // one server-sent event: "event: snapshot" and "data: <json>" lines
  let name = "message", data = "";
  for (const line of block.split("\\n")) {
    if (line.startsWith("event: ")) name = line.slice(7);
    else if (line.startsWith("data: ")) data += line.slice(6);
  }
  if (name !== "snapshot" || !data) return;
  const snap = JSON.parse(data);
  merge(snap.timeline);
  render(snap);
}

async function stream() {
  // GET /events read with fetch (an EventSource cannot send the token); reconnects after RETRY_MS
  for (;;) {
    try {
      const resp = await fetch("events", { headers: token ? { Authorization: "Bearer " + token } : {}, cache: "no-store" });
      if (!resp.ok) throw new Error(resp.status === 503 ? "busy: too many viewers" : `HTTP ${resp.status}`);
      show("conn", "live"); el("conn").className = "live";
      const reader = resp.body.pipeThrough(new TextDecoderStream()).getReader();
      let buffer = "";
      for (;;) {
        const { value, done } = await reader.read();
        if (done) break;
        buffer += value;
        let end;
        while ((end = buffer.indexOf("\\n\\n")) >= 0) {
          onEvent(buffer.slice(0, end));
          buffer = buffer.slice(end + 2);
        }
      }
      show("conn", "reconnecting\\u2026");
    } catch (err) {
      show("conn", `reconnecting\\u2026 (${err.message})`);
    }
    el("conn").className = "";
    await new Promise(resolve => setTimeout(resolve, RETRY_MS));
  }
}
stream();
</script>
</body>
</html>
"""

# the page keeps as many rounds for its charts as the first snapshot sends
PAGE = _PAGE.replace("__TIMELINE_ROUNDS__", str(TIMELINE_ROUNDS)).replace("__RETRY_MS__", str(RETRY_MS))
