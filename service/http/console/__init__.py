"""The web console at `/console`: server-rendered pages (Jinja templates in `templates/`) over the
same operations as the API, with htmx vendored in `static/` (pinned, with its licence)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from litestar import get
from litestar.plugins.jinja import JinjaTemplateEngine
from litestar.response import File
from litestar.template.config import TemplateConfig

from service.http.console.charts import register_filters
from service.http.console.datasets import DatasetPages
from service.http.console.evals import EvalPages
from service.http.console.jobs import JobPages
from service.http.console.keys import KeyPages
from service.http.console.models import ModelPages
from service.http.console.operator import OperatorPages
from service.http.console.reports import ReportPages
from service.http.console.signin import SignInController
from service.http.console.sweeps import SweepPages

HERE = Path(__file__).resolve().parent
HTMX = "htmx-2.0.4.min.js"


@get(f"/console/static/{HTMX}", include_in_schema=False, opt={"audit": "never"})
async def static_htmx() -> File:
    headers = {"cache-control": "public, max-age=86400"}
    return File(
        HERE / "static" / HTMX,
        media_type="text/javascript",
        headers=headers,
        content_disposition_type="inline",
    )


CONSOLE_HANDLERS: list[Any] = [SignInController, JobPages, DatasetPages, SweepPages]
CONSOLE_HANDLERS += [EvalPages, ModelPages, ReportPages, OperatorPages, KeyPages, static_htmx]


def template_config() -> TemplateConfig[JinjaTemplateEngine]:
    return TemplateConfig(
        directory=HERE / "templates", engine=JinjaTemplateEngine, engine_callback=register_filters
    )
