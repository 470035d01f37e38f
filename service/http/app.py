"""`create_app(ctx)`: the Litestar application and the ASGI stack around it."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from litestar import Litestar
from litestar.openapi import OpenAPIConfig
from litestar.openapi.spec import Components, SecurityScheme, Server
from litestar.types import ASGIApp

from service import __version__
from service.http.bodies import GatewayRequest
from service.http.console import CONSOLE_HANDLERS, template_config
from service.http.controllers.admin import AdminController
from service.http.controllers.aliases import AliasesController
from service.http.controllers.audit import AuditController
from service.http.controllers.budgets import AdminBudgetsController, BudgetController
from service.http.controllers.datasets import FilesController
from service.http.controllers.docs import SWAGGER, DocsController
from service.http.controllers.eval_runs import EvalRunsController
from service.http.controllers.evals import EvalsController
from service.http.controllers.health import HealthController
from service.http.controllers.inference import InferenceController
from service.http.controllers.jobs import JobsController
from service.http.controllers.keys import KeysController
from service.http.controllers.models import ModelsController
from service.http.controllers.sweeps import SweepsController
from service.http.controllers.usage import UsageController
from service.http.controllers.webhooks import (
    OpenAIWebhookController,
    WebhookDeliveriesController,
)
from service.http.errors import EXCEPTION_HANDLERS
from service.http.metrics import Metrics
from service.http.middleware import GatewayMiddleware
from service.http.openapi import finish_document
from service.operations.budgets import leases
from service.operations.context import Context

VERSION = __version__
ROUTE_HANDLERS: list[Any] = [HealthController, AdminController, AuditController, FilesController]
ROUTE_HANDLERS += [InferenceController, ModelsController, AliasesController, UsageController]
ROUTE_HANDLERS += [JobsController, OpenAIWebhookController, WebhookDeliveriesController]
ROUTE_HANDLERS += [SweepsController, DocsController]
ROUTE_HANDLERS += [BudgetController, AdminBudgetsController]
ROUTE_HANDLERS += [EvalsController, EvalRunsController, KeysController]
ROUTE_HANDLERS += CONSOLE_HANDLERS


def openapi_config() -> OpenAPIConfig:
    return OpenAPIConfig(
        title="tunegate",
        version=VERSION,
        description=(
            "Internal gateway for fine-tuning and serving OpenAI models. OpenAI-shaped endpoints "
            "live under /v1; operator endpoints under /admin."
        ),
        servers=[Server(url="/")],
        components=Components(
            security_schemes={
                "OrgKey": SecurityScheme(type="http", scheme="bearer", description="tunegate key"),
                "AdminToken": SecurityScheme(
                    type="http", scheme="bearer", description="TUNEGATE_ADMIN_TOKEN"
                ),
            }
        ),
        path="/openapi",
        render_plugins=[SWAGGER],
        use_handler_docstrings=False,
    )


def create_app(
    ctx: Context,
    *,
    queue_depth: Callable[[], dict[str, int]] | None = None,
    on_shutdown: list[Callable[[], Any]] | None = None,
) -> Litestar:
    book = leases.open_book(ctx)
    closers = [book.aclose] if book is not None else []
    app = Litestar(
        route_handlers=ROUTE_HANDLERS,
        exception_handlers=EXCEPTION_HANDLERS,
        openapi_config=openapi_config(),
        template_config=template_config(),
        request_max_body_size=ctx.settings.max_json_body_bytes,
        request_class=GatewayRequest,
        on_shutdown=[*(on_shutdown or []), *closers, ctx.aclose],
        debug=False,
        logging_config=None,
    )
    app.state.ctx = ctx
    app.state.metrics = Metrics(queue_depth)
    finish_document(app.openapi_schema)
    return app


def asgi_stack(app: Litestar) -> ASGIApp:
    """The app wrapped in the gateway middleware, outside routing so 404s are counted too."""
    return GatewayMiddleware(app, app.state.ctx, app.state.metrics)


def openapi_document(app: Litestar) -> dict[str, Any]:
    schema: dict[str, Any] = app.openapi_schema.to_schema()
    return schema
