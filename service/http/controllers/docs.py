"""The front door: `/` points to the docs; `/docs` is the OpenAPI UI (Swagger UI).

Swagger UI's assets are vendored under `service/http/static/swagger-ui` (see its README) and
served from `/docs/...`, so the docs work on a machine with no way out to a CDN.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from litestar import Controller, Request, Response, get
from litestar.enums import MediaType
from litestar.openapi.plugins import SwaggerRenderPlugin
from litestar.response import File

from service import __version__
from service.http.schemas.common import Index

ASSETS_DIR = Path(__file__).resolve().parent.parent / "static" / "swagger-ui"
ASSETS = {
    "swagger-ui-bundle.js": "text/javascript",
    "swagger-ui-standalone-preset.js": "text/javascript",
    "swagger-ui.css": "text/css",
}
SWAGGER = SwaggerRenderPlugin(
    js_url="/docs/swagger-ui-bundle.js",
    css_url="/docs/swagger-ui.css",
    standalone_preset_js_url="/docs/swagger-ui-standalone-preset.js",
    path=["/", "/swagger"],
    favicon="",
)
LINKS = {"docs": "/docs", "openapi": "/openapi/openapi.json", "api": "/v1", "health": "/health"}
_NO_AUDIT = {"audit": "never"}


class DocsController(Controller):
    tags = ["health"]

    @get("/", operation_id="index", opt=_NO_AUDIT)
    async def index(self) -> Index:
        return Index(version=__version__, links=LINKS)

    @get("/docs", include_in_schema=False, opt=_NO_AUDIT, media_type=MediaType.HTML)
    async def docs(self, request: Request[Any, Any, Any]) -> Response[bytes]:
        page = SWAGGER.render(request, request.app.openapi_schema.to_schema())
        return Response(page, media_type=MediaType.HTML)

    @get([f"/docs/{name}" for name in ASSETS], include_in_schema=False, opt=_NO_AUDIT)
    async def asset(self, request: Request[Any, Any, Any]) -> File:
        name = request.url.path.rsplit("/", 1)[-1]
        return File(ASSETS_DIR / name, media_type=ASSETS[name], content_disposition_type="inline")
