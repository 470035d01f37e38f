"""The committed OpenAPI document is what the app generates."""

from __future__ import annotations

from service.cli import OPENAPI_PATH, render_openapi
from tests.support import ROOT


def test_openapi_document_is_current() -> None:
    committed = (ROOT / OPENAPI_PATH).read_text()
    assert committed == render_openapi(), "openapi/openapi.json is stale: run `tunegate openapi`"


def test_every_operation_has_a_stable_id() -> None:
    import json

    document = json.loads(render_openapi())
    ids = [
        operation.get("operationId")
        for path in document["paths"].values()
        for operation in path.values()
        if isinstance(operation, dict) and "responses" in operation
    ]
    assert all(ids)
    assert len(ids) == len(set(ids))
