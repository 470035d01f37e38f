"""What the OpenAPI document needs beyond what Litestar generates (`finish_document`).

Litestar documents only the success response and a 400 in its own shape; tunegate answers every
error in OpenAI's envelope (`service.http.errors`). `document_errors` adds, to each operation,
the statuses it can answer with, each as the `Error` schema. Litestar also documents a file's
`last-modified` header as an ISO date-time, where HTTP sends an HTTP-date.
"""

from __future__ import annotations

from http import HTTPStatus

from litestar.openapi.spec import (
    Components,
    OpenAPI,
    OpenAPIMediaType,
    OpenAPIResponse,
    OpenAPIType,
    Operation,
    Reference,
    Schema,
)

_NULLABLE_STRING = Schema(one_of=[Schema(type=OpenAPIType.STRING), Schema(type=OpenAPIType.NULL)])
ERROR = Schema(
    type=OpenAPIType.OBJECT,
    required=["error"],
    properties={
        "error": Schema(
            type=OpenAPIType.OBJECT,
            required=["message", "type", "param", "code"],
            properties={
                "message": Schema(type=OpenAPIType.STRING),
                "type": Schema(type=OpenAPIType.STRING),
                "param": _NULLABLE_STRING,
                "code": _NULLABLE_STRING,
            },
        )
    },
    description="OpenAI's error envelope; dataset errors add `line`, `errors`, `error_counts`.",
)
# Operations without a tunegate credential that still check one (OpenAI's signature).
SIGNED = frozenset({"webhooks.openai"})
CONFLICTING = frozenset({"jobs.create", "jobs.cancel", "jobs.pause", "jobs.resume"})
CALLS_UPSTREAM = frozenset({"models.delete", "jobs.cancel", "jobs.pause", "jobs.resume"})
# The completion proxy answers with the upstream's own status when the upstream refuses.
PROXIED = frozenset({"chat.completions.create", "completions.create"})


def error_statuses(path: str, method: str, operation: Operation) -> list[str]:
    schemes = {name for requirement in operation.security or [] for name in requirement}
    operation_id = operation.operation_id or ""
    if not schemes and operation_id not in SIGNED:
        return []
    has_body = method in ("post", "put", "patch")
    statuses = [401, 503]
    statuses += [400] if operation.parameters or has_body else []
    statuses += [404] if "{" in path or has_body else []
    statuses += [403] if "OrgKey" in schemes else []
    statuses += [413] if has_body else []
    statuses += [415] if method == "patch" else []
    statuses += [409] if operation_id in CONFLICTING else []
    statuses += [502, 504] if operation_id in CALLS_UPSTREAM else []
    found = [str(status) for status in sorted(statuses)]
    return [*found, "default"] if operation_id in PROXIED else found


def _error_response(status: str) -> OpenAPIResponse:
    description = "Any other error" if status == "default" else HTTPStatus(int(status)).phrase
    content = {"application/json": OpenAPIMediaType(schema=Reference("#/components/schemas/Error"))}
    return OpenAPIResponse(description=description, content=content)


def finish_document(openapi: OpenAPI) -> None:
    document_errors(openapi)
    document_http_dates(openapi)


def document_http_dates(openapi: OpenAPI) -> None:
    for item in (openapi.paths or {}).values():
        for method in ("get", "put", "post", "delete", "patch"):
            operation: Operation | None = getattr(item, method)
            for response in (operation.responses or {}).values() if operation else ():
                header = (getattr(response, "headers", None) or {}).get("last-modified")
                schema = getattr(header, "schema", None)
                if isinstance(schema, Schema) and schema.format is not None:
                    schema.format = None
                    schema.description = "An HTTP-date (RFC 9110)."


def document_errors(openapi: OpenAPI) -> None:
    components = openapi.components if isinstance(openapi.components, Components) else None
    if components is not None:
        components.schemas = {**(components.schemas or {}), "Error": ERROR}
    for path, item in (openapi.paths or {}).items():
        for method in ("get", "put", "post", "delete", "patch"):
            operation: Operation | None = getattr(item, method)
            if operation is None:
                continue
            responses = operation.responses if operation.responses is not None else {}
            for status in error_statuses(path, method, operation):
                responses[status] = _error_response(status)
            operation.responses = responses
