"""Path ids checked against their kind's pattern (`service.ids.PATTERNS`) before a handler runs.

A malformed id never reaches a Redis key: it is answered exactly as an unknown id of its kind
(the same 404 the handler would give), so neither its shape nor another org's objects can be
probed. Every path parameter of the app has a row here (a test holds that); a controller lists
`require_wellformed_ids` after its authentication guard, so a call without a key is still a 401.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from litestar.connection import ASGIConnection
from litestar.handlers.base import BaseRouteHandler

from service.errors import TunegateError
from service.ids import is_valid
from service.operations.datasets import files
from service.operations.evals import evals, runs
from service.operations.inference import models, proxy
from service.operations.jobs import views as job_views
from service.operations.sweeps import views as sweep_views
from service.operations.tenancy import orgs as tenancy

Refusal = Callable[[str, str], TunegateError]


def _unknown(not_found: Callable[[str], TunegateError]) -> Refusal:
    return lambda value, _method: not_found(value)


def _alias(name: str, method: str) -> TunegateError:
    """`PUT` names a new alias: a bad name is a bad request there, elsewhere an unknown alias."""
    return models.invalid_alias_name() if method == "PUT" else models.alias_not_found(name)


PATH_IDS: dict[str, tuple[str, Refusal]] = {
    "file_id": ("file", _unknown(files.file_not_found)),
    "job_id": ("job", _unknown(job_views.job_not_found)),
    "sweep_id": ("sweep", _unknown(sweep_views.sweep_not_found)),
    "eval_id": ("eval", _unknown(evals.eval_not_found)),
    "run_id": ("run", _unknown(runs.run_not_found)),
    "output_item_id": ("output_item", _unknown(runs.output_item_not_found)),
    "org_id": ("org", _unknown(tenancy.org_not_found)),
    "key_id": ("key", _unknown(tenancy.key_not_found)),
    "model_id": ("model", _unknown(models.model_not_found)),
    "name": ("alias", _alias),
    # The proxy authenticates inside its handlers, so it checks this one itself, after the key
    # (`proxy.open_stored`), and audits the refusal like any other of its calls.
    "response_id": ("response", _unknown(proxy.response_not_found)),
}


async def require_wellformed_ids(
    connection: ASGIConnection[Any, Any, Any, Any], _handler: BaseRouteHandler
) -> None:
    for name, value in connection.path_params.items():
        kind, refuse = PATH_IDS[name]
        if not is_valid(kind, str(value)):
            raise refuse(str(value), connection.scope["method"])
