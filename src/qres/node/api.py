"""The node's REST API (FastAPI; OpenAPI at /docs): status, model, peers, Prometheus metrics,
frame compression with the node's current model, and sensor readings in; a live dashboard at /
(`dashboard`).

Every mutating endpoint needs `Authorization: Bearer <api.token>`; request bodies larger than
`api.max_body` bytes are refused with 413 before they are read; bad input gets a 4xx whose
`detail` says what is wrong, and is counted in /metrics.
"""

from __future__ import annotations

import base64
import binascii
import math
import re
import secrets
from typing import TYPE_CHECKING

import numpy as np
from fastapi import Depends, FastAPI, HTTPException, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, PlainTextResponse, Response
from prometheus_client import CollectorRegistry, Counter, Gauge, generate_latest
from pydantic import BaseModel, Field, ValidationError

from ..codec.frame import MAX_FRAME_ROWS
from ..errors import QresFormatError, QresModelMismatch
from . import dashboard

if TYPE_CHECKING:
    from .daemon import NodeDaemon


class Values(BaseModel):
    values: list[float | int] = Field(..., min_length=1, max_length=MAX_FRAME_ROWS, description="readings, one channel")


class Frame(BaseModel):
    model_id: str = Field(..., min_length=16, max_length=16, description="id of the model the frame was coded with")
    frame: str = Field(..., max_length=4 * MAX_FRAME_ROWS * 12, description="the frame, base64")


def _invalid(field: str | None, msg: str) -> RequestValidationError:
    """A 422 for a bad body field (None: the whole body), in the shape the schema declares for 422
    (a list of errors)."""
    return RequestValidationError([{"loc": ("body",) if field is None else ("body", field), "msg": msg, "type": "value_error"}])


BINARY = "application/octet-stream"
MODEL_HEADER = "X-Model-Id"
_MODEL_ID = re.compile(r"[0-9a-f]{16}")


def _is_binary(request: Request) -> bool:
    """Whether the request body is raw bytes (Content-Type application/octet-stream) rather than JSON."""
    return request.headers.get("content-type", "").split(";")[0].strip().lower() == BINARY


def _parse(model: type[BaseModel], raw: bytes) -> BaseModel:
    """A JSON body checked against `model`; a 422 listing what is wrong otherwise."""
    try:
        return model.model_validate_json(raw)
    except ValidationError as exc:
        raise RequestValidationError([{**e, "loc": ("body", *e["loc"])} for e in exc.errors()]) from None


def _body_doc(model: type[BaseModel], binary: str) -> dict:
    """OpenAPI for a body that is either `model` as JSON or raw bytes."""
    return {"requestBody": {"required": True, "content": {
        "application/json": {"schema": model.model_json_schema()},
        BINARY: {"schema": {"type": "string", "format": "binary", "description": binary}},
    }}}


def _ints(values: list) -> np.ndarray:
    if not all(isinstance(v, int) or (isinstance(v, float) and math.isfinite(v) and v.is_integer()) for v in values):
        raise _invalid("values", "values must be whole numbers (the node's channel is integer readings)")
    arr = np.array([int(v) for v in values], dtype=object)
    if any(abs(v) >= 2**62 for v in arr):
        raise _invalid("values", "values must lie within +-2**62")
    return arr.astype(np.int64)


class _BodyLimit:
    """ASGI middleware: a request body over `max_body` bytes gets 413 (at once from its
    Content-Length, or as soon as a chunked body passes the limit, never reading more); every 4xx
    is counted in `rejected` by status."""

    def __init__(self, app, max_body: int, rejected: Counter):
        self.app, self.max_body, self.rejected = app, max_body, rejected

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        length = dict(scope["headers"]).get(b"content-length")
        if length is not None and (not length.isdigit() or int(length) > self.max_body):
            return await self._too_large(scope, receive, send)
        seen = 0

        async def bounded_receive():
            nonlocal seen
            message = await receive()
            seen += len(message.get("body", b""))
            if seen > self.max_body:  # the handler's body read fails with this 413
                raise HTTPException(413, f"request body over {self.max_body} bytes")
            return message

        async def counting_send(message):
            if message["type"] == "http.response.start":
                if 400 <= message["status"] < 500:
                    self.rejected.labels(str(message["status"])).inc()
            await send(message)

        await self.app(scope, bounded_receive, counting_send)

    async def _too_large(self, scope, receive, send):
        self.rejected.labels("413").inc()
        await JSONResponse({"detail": f"request body over {self.max_body} bytes"}, status_code=413)(scope, receive, send)


def create_app(daemon: NodeDaemon) -> FastAPI:
    """The API of one running node."""
    app = FastAPI(title="QRES node", version="1", description="One node of a QRES swarm.")
    registry = CollectorRegistry()
    rejected = Counter("qres_api_rejected_requests", "HTTP requests refused (4xx)", ["reason"], registry=registry)
    gossip = Gauge("qres_gossip_events", "gossip counters of the node (messages, drops, rounds, models)", ["event"], registry=registry)
    round_g = Gauge("qres_round", "the node's current round", registry=registry)
    peers_g = Gauge("qres_peers", "peers in the node's table", registry=registry)

    app.add_middleware(_BodyLimit, max_body=daemon.cfg.max_body, rejected=rejected)

    @app.exception_handler(RequestValidationError)
    async def invalid_body(request: Request, exc: RequestValidationError) -> JSONResponse:
        # where and what, without echoing the input: it may hold NaN, which JSON cannot carry
        detail = [{"loc": list(e["loc"]), "msg": e["msg"], "type": e["type"]} for e in exc.errors()]
        return JSONResponse({"detail": detail}, status_code=422)

    # every handler is async: each is a few microseconds to a millisecond of work on the node's own
    # event loop, which costs less than a hop to a worker thread and keeps the node's state on one thread
    async def authorised(request: Request) -> None:
        header = request.headers.get("authorization", "")
        scheme, _, token = header.partition(" ")
        if scheme.lower() != "bearer" or not secrets.compare_digest(token.encode(), daemon.cfg.token.encode()):
            raise HTTPException(401, "missing or wrong bearer token", headers={"WWW-Authenticate": "Bearer"})

    @app.get("/health")
    async def health() -> dict:
        return {"status": "ok"}

    @app.get("/status")
    async def status() -> dict:
        return daemon.status()

    @app.get("/model")
    async def model() -> dict:
        m = daemon.codec_model()
        return {"id": m.id, "gene": base64.b64encode(m.to_bytes()).decode(), "swarm_model_id": daemon.model_id,
                "weights_q16": [int(w) for w in daemon.state.weights[0]], "round": daemon.round}

    @app.get("/peers")
    async def peers() -> list[dict]:
        return daemon.peer_table()

    @app.get("/metrics", response_class=PlainTextResponse)
    async def metrics() -> PlainTextResponse:
        for k, v in daemon.counters.items():
            gossip.labels(k).set(v)
        round_g.set(daemon.round)
        peers_g.set(len(daemon.slot_of))
        return PlainTextResponse(generate_latest(registry).decode(), media_type="text/plain; version=0.0.4")

    @app.post("/compress", dependencies=[Depends(authorised)], openapi_extra=_body_doc(Values, "little-endian int64 readings"),
              responses={200: {"content": {BINARY: {}}, "description": "JSON, or with a binary body the frame bytes (model id in X-Model-Id)"}})
    async def compress(request: Request) -> Response:
        """A frame of the readings coded with the node's current model. JSON in, JSON out (frame in
        base64); or the readings as little-endian int64 bytes in, the frame bytes out."""
        binary = _is_binary(request)
        raw = await request.body()
        if binary:
            if not raw or len(raw) % 8 or len(raw) // 8 > MAX_FRAME_ROWS:
                raise _invalid(None, f"a binary body is 1..{MAX_FRAME_ROWS} little-endian int64 values ({len(raw)} bytes given)")
            values = np.frombuffer(raw, "<i8").astype(np.int64)
        else:
            values = _ints(_parse(Values, raw).values)
        model, frame = daemon.compress(values)
        if binary:
            return Response(frame, media_type=BINARY, headers={MODEL_HEADER: model.id})
        return JSONResponse({"model_id": model.id, "frame": base64.b64encode(frame).decode(), "values": len(values), "bytes": len(frame)})

    @app.post("/decompress", dependencies=[Depends(authorised)], openapi_extra=_body_doc(Frame, "the frame bytes (model id in X-Model-Id)"),
              responses={200: {"content": {BINARY: {}}, "description": "JSON, or with a binary body little-endian int64 values"}})
    async def decompress(request: Request) -> Response:
        """The readings of a frame this node coded. JSON in and out; or the frame bytes in (model id
        in the X-Model-Id header), little-endian int64 values out."""
        binary = _is_binary(request)
        raw = await request.body()
        if binary:
            model_id = request.headers.get(MODEL_HEADER, "")
            if not _MODEL_ID.fullmatch(model_id):
                raise _invalid("X-Model-Id", "a binary frame needs the header X-Model-Id: 16 lowercase hex digits")
            frame = raw
        else:
            body = _parse(Frame, raw)
            model_id = body.model_id
            try:
                frame = base64.b64decode(body.frame, validate=True)
            except (binascii.Error, ValueError):
                raise _invalid("frame", "frame is not base64") from None
        try:
            values = daemon.decompress(model_id, frame)
        except KeyError:
            raise HTTPException(404, f"unknown model {model_id}: this node never coded with it") from None
        except QresModelMismatch as exc:
            raise HTTPException(409, f"frame was not coded with model {model_id}: {exc}") from None
        except QresFormatError as exc:
            raise _invalid("frame", f"malformed frame: {exc}") from None
        if binary:
            return Response(np.asarray(values, "<i8").tobytes(), media_type=BINARY, headers={MODEL_HEADER: model_id})
        return JSONResponse({"model_id": model_id, "values": [int(v) for v in values]})

    @app.post("/readings", dependencies=[Depends(authorised)])
    async def readings(body: Values) -> dict:
        values = _ints(body.values)
        daemon.feed(values)
        return {"accepted": len(values), "buffered": len(daemon.fed)}

    app.include_router(dashboard.router(daemon))  # GET / and /events: the live dashboard
    return app
