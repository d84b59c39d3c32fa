"""The API's interactive documentation, GET /docs: Swagger UI served by the node itself, so it works
on a machine without internet.

Swagger UI's files (JavaScript, CSS, icon) come from the installed `fastapi-offline` package, which
ships the Swagger UI distribution; they are served under /docs/assets/. The page may load nothing
but those and the node's own /openapi.json (its Content-Security-Policy; its one inline script is
allowed by its hash).
"""

from __future__ import annotations

import base64
import functools
import hashlib
import importlib.resources
import re

from fastapi import APIRouter, FastAPI, HTTPException
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import HTMLResponse, Response

ASSETS = {"swagger-ui-bundle.js": "text/javascript", "swagger-ui.css": "text/css", "favicon.png": "image/png"}
ASSET_PATH = "/docs/assets"


@functools.cache
def _asset(name: str) -> bytes:
    """One Swagger UI file as fastapi-offline ships it (read once)."""
    return (importlib.resources.files("fastapi_offline") / "static" / name).read_bytes()


def _headers(html: str) -> dict[str, str]:
    """A CSP for the page: its own assets and API, its inline scripts by their SHA-256, nothing else."""
    hashes = " ".join(f"'sha256-{base64.b64encode(hashlib.sha256(s.encode()).digest()).decode()}'"
                      for s in re.findall(r"<script>(.*?)</script>", html, re.S))
    return {"Content-Security-Policy": f"default-src 'none'; script-src 'self' {hashes}; style-src 'self' 'unsafe-inline'; "
                                       "img-src 'self' data:; connect-src 'self'; base-uri 'none'; form-action 'none'"}


def router(app: FastAPI) -> APIRouter:
    """GET /docs (Swagger UI for `app`'s OpenAPI schema) and GET /docs/assets/{name}."""
    routes = APIRouter()
    html = get_swagger_ui_html(openapi_url=app.openapi_url, title=f"{app.title} - API", oauth2_redirect_url=None,
                               swagger_js_url=f"{ASSET_PATH}/swagger-ui-bundle.js", swagger_css_url=f"{ASSET_PATH}/swagger-ui.css",
                               swagger_favicon_url=f"{ASSET_PATH}/favicon.png").body.decode()
    headers = _headers(html)

    @routes.get("/docs", include_in_schema=False)
    async def docs() -> HTMLResponse:
        return HTMLResponse(html, headers=headers)

    @routes.get(ASSET_PATH + "/{name}", include_in_schema=False)
    async def asset(name: str) -> Response:
        if name not in ASSETS:
            raise HTTPException(404, f"no documentation asset {name!r}")
        return Response(_asset(name), media_type=ASSETS[name], headers={"Cache-Control": "max-age=86400"})

    return routes
