"""The node's REST API (FastAPI): status, model, peers, Prometheus metrics (`metrics`), frame
compression with the node's current model, and sensor readings in; a live dashboard at /
(`dashboard`) and the interactive OpenAPI documentation at /docs (`apidocs`).

Every mutating endpoint needs `Authorization: Bearer <api.token>`; request bodies larger than
`api.max_body` bytes are refused with 413 before they are read; bad input gets a 4xx whose
`detail` says what is wrong, and is counted in /metrics. Two model ids are named apart everywhere:
`swarm_model_id` (the weights the swarm learns) and `codec_model_id` (the model frames are coded with).
"""

from __future__ import annotations

import base64
import binascii
import math
import re
import secrets
import time
from typing import TYPE_CHECKING

import numpy as np
from fastapi import Depends, FastAPI, HTTPException, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, PlainTextResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST, Counter, Histogram, generate_latest
from pydantic import BaseModel, Field, ValidationError

from ..codec.frame import MAX_FRAME_ROWS
from ..errors import QresFormatError, QresModelMismatch
from . import apidocs, dashboard, metrics

if TYPE_CHECKING:
    from .daemon import NodeDaemon


class Values(BaseModel):
    values: list[float | int] = Field(..., min_length=1, max_length=MAX_FRAME_ROWS, description="readings, one channel")


class Frame(BaseModel):
    codec_model_id: str = Field(..., min_length=16, max_length=16, description="id of the codec model the frame was coded with")
    frame: str = Field(..., max_length=4 * MAX_FRAME_ROWS * 12, description="the frame, base64")


def _invalid(field: str | None, msg: str) -> RequestValidationError:
    """A 422 for a bad body field (None: the whole body), in the shape the schema declares for 422
    (a list of errors)."""
    return RequestValidationError([{"loc": ("body",) if field is None else ("body", field), "msg": msg, "type": "value_error"}])


BINARY = "application/octet-stream"
MODEL_HEADER = "X-Codec-Model-Id"
SWARM_HEADER = "X-Swarm-Model-Id"
_MODEL_ID = re.compile(r"[0-9a-f]{16}")
_METHODS = {"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"}  # methods with a latency label of their own


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
    is counted in `rejected` by status; the time until each response starts goes to `latency` by
    method ("other" for an unusual one) and endpoint (the route's path; "unmatched" for a path no
    route serves), so no client can add labels without bound."""

    def __init__(self, app, max_body: int, rejected: Counter, latency: Histogram):
        self.app, self.max_body, self.rejected, self.latency = app, max_body, rejected, latency

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        start = time.perf_counter()
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
                route = scope.get("route")
                method = scope["method"] if scope["method"] in _METHODS else "other"  # a client cannot mint labels
                self.latency.labels(method, getattr(route, "path", "unmatched")).observe(time.perf_counter() - start)
                if 400 <= message["status"] < 500:
                    self.rejected.labels(str(message["status"])).inc()
            await send(message)

        await self.app(scope, bounded_receive, counting_send)

    async def _too_large(self, scope, receive, send):
        self.rejected.labels("413").inc()
        await JSONResponse({"detail": f"request body over {self.max_body} bytes"}, status_code=413)(scope, receive, send)


def create_app(daemon: NodeDaemon) -> FastAPI:
    """The API of one running node."""
    app = FastAPI(title="QRES node", version="1", description="One node of a QRES swarm.", docs_url=None)
    registry, latency, rejected = metrics.registry(daemon)
    app.add_middleware(_BodyLimit, max_body=daemon.cfg.max_body, rejected=rejected, latency=latency)

    @app.exception_handler(RequestValidationError)
    async def invalid_body(request: Request, exc: RequestValidationError) -> JSONResponse:
        # where and what, without echoing the input: it may hold NaN, which JSON cannot carry
        detail = [{"loc": list(e["loc"]), "msg": e["msg"], "type": e["type"]} for e in exc.errors()]
        return JSONResponse({"detail": detail}, status_code=422)

    # every handler is async: each is a few microseconds to a millisecond of work on the node's own
    # event loop, which costs less than a hop to a worker thread and keeps the node's state on one thread
    def has_token(request: Request) -> bool:
        """Whether the request carries `Authorization: Bearer <api.token>` (compared in constant time)."""
        scheme, _, token = request.headers.get("authorization", "").partition(" ")
        return scheme.lower() == "bearer" and secrets.compare_digest(token.encode(), daemon.cfg.token.encode())

    async def authorised(request: Request) -> None:
        if not has_token(request):
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
        return {"codec_model_id": m.id, "gene": base64.b64encode(m.to_bytes()).decode(), "swarm_model_id": daemon.model_id,
                "weights_q16": [int(w) for w in daemon.state.weights[0]], "round": daemon.round}

    @app.get("/peers")
    async def peers() -> list[dict]:
        return daemon.peer_table()

    @app.get("/metrics", response_class=PlainTextResponse)
    async def metrics_text() -> PlainTextResponse:
        return PlainTextResponse(generate_latest(registry).decode(), media_type=CONTENT_TYPE_LATEST)

    @app.post("/compress", dependencies=[Depends(authorised)], openapi_extra=_body_doc(Values, "little-endian int64 readings"),
              responses={200: {"content": {BINARY: {}}, "description": "JSON, or with a binary body the frame bytes (model ids in X-Codec-Model-Id and X-Swarm-Model-Id)"}})
    async def compress(request: Request) -> Response:
        """A frame of the readings coded with the node's current codec model. JSON in, JSON out (frame
        in base64, with the codec and swarm model ids); or the readings as little-endian int64 bytes
        in, the frame bytes out (the ids in headers)."""
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
            return Response(frame, media_type=BINARY, headers={MODEL_HEADER: model.id, SWARM_HEADER: daemon.model_id})
        return JSONResponse({"codec_model_id": model.id, "swarm_model_id": daemon.model_id, "frame": base64.b64encode(frame).decode(),
                             "values": len(values), "bytes": len(frame)})

    @app.post("/decompress", dependencies=[Depends(authorised)], openapi_extra=_body_doc(Frame, "the frame bytes (codec model id in X-Codec-Model-Id)"),
              responses={200: {"content": {BINARY: {}}, "description": "JSON, or with a binary body little-endian int64 values"}})
    async def decompress(request: Request) -> Response:
        """The readings of a frame this node coded. JSON in and out; or the frame bytes in (codec model
        id in the X-Codec-Model-Id header), little-endian int64 values out."""
        binary = _is_binary(request)
        raw = await request.body()
        if binary:
            model_id = request.headers.get(MODEL_HEADER, "")
            if not _MODEL_ID.fullmatch(model_id):
                raise _invalid(MODEL_HEADER, f"a binary frame needs the header {MODEL_HEADER}: 16 lowercase hex digits")
            frame = raw
        else:
            body = _parse(Frame, raw)
            model_id = body.codec_model_id
            try:
                frame = base64.b64decode(body.frame, validate=True)
            except (binascii.Error, ValueError):
                raise _invalid("frame", "frame is not base64") from None
        try:
            values = daemon.decompress(model_id, frame)
        except KeyError:
            raise HTTPException(404, f"unknown codec model {model_id}: this node never coded with it") from None
        except QresModelMismatch as exc:
            raise HTTPException(409, f"frame was not coded with codec model {model_id}: {exc}") from None
        except QresFormatError as exc:
            raise _invalid("frame", f"malformed frame: {exc}") from None
        if binary:
            return Response(np.asarray(values, "<i8").tobytes(), media_type=BINARY, headers={MODEL_HEADER: model_id})
        return JSONResponse({"codec_model_id": model_id, "values": [int(v) for v in values]})

    @app.post("/readings", dependencies=[Depends(authorised)])
    async def readings(body: Values) -> dict:
        values = _ints(body.values)
        daemon.feed(values)
        return {"accepted": len(values), "buffered": len(daemon.fed)}

    app.include_router(dashboard.router(daemon, has_token))  # GET / and /events: the live dashboard
    app.include_router(apidocs.router(app))  # GET /docs and its assets
    return app
