"""The org's policy over what a fine-tuning job makes the upstream read beyond its datasets.

A reinforcement job's grader is a model call the upstream makes on the org's behalf, so it
obeys the same policy as a completion: every `model` inside the grader (a `multi` grader's
graders included) must route for the org exactly as an inference `model` would (an alias is
replaced by its target, another org's `ft:` model and a base model outside `allowed_models`
are refused), and the grader's text passes the PII policy (`redact` rewrites it, `block`
refuses naming the path). `integrations` are off unless the policy allows each by type.
Datasets are scanned when uploaded (`datasets`), so they are not scanned again here.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Any

from service.domain.inference.request import scan_json
from service.domain.jobs.request import JobRequest
from service.domain.tenancy.policy import Policy
from service.errors import InvalidRequest

GRADER_PATH = "method.reinforcement.grader"
Route = Callable[[str], str | None]


def apply_job_policy(request: JobRequest, policy: Policy, route: Route) -> JobRequest:
    """The request with its grader routed and scanned; raises InvalidRequest when refused."""
    check_integrations(request, policy)
    method = request.method
    if method is None or method.type != "reinforcement" or not method.reinforcement:
        return request
    settings = copy.deepcopy(method.reinforcement)
    grader = settings.get("grader")
    if grader is None:
        return request
    route_graders(grader, route, GRADER_PATH)
    scan_json(grader, policy, None, param=GRADER_PATH, path=GRADER_PATH)
    routed = method.model_copy(update={"reinforcement": settings})
    return request.model_copy(update={"method": routed})


def check_integrations(request: JobRequest, policy: Policy) -> None:
    for index, integration in enumerate(request.integrations or []):
        kind = integration.get("type")
        if kind not in policy.integrations:
            raise InvalidRequest(
                f"The {kind!r} integration is not allowed by this organization's policy "
                "(integrations).",
                param=f"integrations[{index}].type",
                code="integration_not_allowed",
            )


def route_graders(grader: Any, route: Route, path: str) -> None:
    """Replace every grader `model` by the model it routes to for the org, in place."""
    pending: list[tuple[Any, str]] = [(grader, path)]
    while pending:
        item, where = pending.pop()
        if isinstance(item, list):
            pending.extend((value, f"{where}[{i}]") for i, value in enumerate(item))
            continue
        if not isinstance(item, dict):
            continue
        for key, value in item.items():
            here = f"{where}.{key}"
            if key == "model":
                item[key] = _routed(value, route, here)
            elif isinstance(value, dict | list):
                pending.append((value, here))


def _routed(name: object, route: Route, param: str) -> str:
    target = route(name) if isinstance(name, str) and name else None
    if target is None:
        raise InvalidRequest(
            f"The grader model {name!r} does not exist, is not this organization's, or is not "
            "in its allowed_models policy.",
            param=param,
            code="model_not_found",
        )
    return target
