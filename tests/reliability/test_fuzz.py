"""Every operation of `openapi/openapi.json`, fuzzed against a running gateway with valid auth.

Cases are generated from the committed document (schemathesis), sent with an org admin key (the
operator token on `/admin`), and checked: never a 5xx, and status code, content type, headers and
body as the document declares. Path ids are, for half of the cases, the ids of real objects, so
the handlers behind a found object are exercised too; the operator routes act on an org of their
own, so the fuzzing org's key and policy stay as they are.

The cases are derandomized: every run, in CI or not, sends the same ones, so a failure is
found again by running the test again, and a pass does not depend on the run's luck. The
examples fuzzing once found bugs with stay as explicit cases (`FOUND`). A long exploratory run,
random and with as many examples per operation as asked (see the README):
`TUNEGATE_FUZZ_EXAMPLES=2000 .venv/bin/pytest tests/reliability/test_fuzz.py --timeout=0`.
"""

from __future__ import annotations

import os
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from service.logging import configure_logging
from tests.api.conftest import ADMIN_TOKEN, Gateway
from tests.reliability.proof_gateway import (
    create_job,
    hook_receiver,
    make_tenant,
    proof_gateway,
    upload_file,
    wait_job,
)
from tests.support import ROOT

EXPLORING = int(os.environ.get("TUNEGATE_FUZZ_EXAMPLES") or 0)
MAX_EXAMPLES = EXPLORING or 25
FRAMING = frozenset({"content-length", "transfer-encoding", "host", "connection"})
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
]


@dataclass
class FuzzTarget:
    gateway: Gateway
    org_key: str
    ids: dict[str, list[str]]


@pytest.fixture(scope="module")
def fuzz_target(tmp_path_factory: pytest.TempPathFactory) -> Iterator[FuzzTarget]:
    configure_logging("json", "info")
    with hook_receiver() as receiver, proof_gateway(tmp_path_factory.mktemp("fuzz")) as gateway:
        caller = make_tenant(gateway, "fuzzer", {"pii": "allow", "webhook_url": receiver.url})
        target = make_tenant(gateway, "fuzzed")
        with gateway.client(caller.admin) as client:
            files = [upload_file(client) for _ in range(3)]
            job_id = create_job(client, files[0])
            model = wait_job(client, job_id)["fine_tuned_model"]
            running = create_job(client, files[1])
            client.put("/v1/aliases/fuzz", json={"model": model}).raise_for_status()
        ids = {
            "file_id": files,
            "job_id": [job_id, running],
            "model_id": [model, "gpt-4o-mini"],
            "name": ["fuzz"],
            "org_id": [target.org_id],
            "key_id": [target.key_ids["member"], target.key_ids["inference"]],
        }
        yield FuzzTarget(gateway, caller.admin, ids)


schema = schemathesis.openapi.from_path(ROOT / "openapi" / "openapi.json")


def use_real_ids(case: Any, ids: dict[str, list[str]]) -> None:
    """Swap half of the generated path ids for real ones (chosen from the generated value, so a
    derandomized run stays reproducible)."""
    for name, value in (case.path_parameters or {}).items():
        known = ids.get(name)
        digest = zlib.crc32(str(value).encode())
        if known and digest % 2 == 0:
            case.path_parameters[name] = known[digest // 2 % len(known)]


@schema.parametrize()
@settings(
    max_examples=MAX_EXAMPLES,
    suppress_health_check=list(HealthCheck),
    derandomize=not EXPLORING,
    database=None,
)
def test_every_operation_conforms_and_never_fails(case: Any, fuzz_target: FuzzTarget) -> None:
    use_real_ids(case, fuzz_target.ids)
    for name in list(case.headers or {}):
        if name.lower() in FRAMING:  # the HTTP server's business, answered before the app
            del case.headers[name]
    token = ADMIN_TOKEN if case.path.startswith("/admin") else fuzz_target.org_key
    case.call_and_validate(
        base_url=fuzz_target.gateway.url,
        headers={"Authorization": f"Bearer {token}"},
        checks=CHECKS,
        timeout=30,
    )


# Requests fuzzing found a 5xx with, and what they must get instead.
FOUND: list[tuple[str, str, dict[str, Any], int]] = [
    ("GET", "/v1/files/{file_id}:report", {}, 404),  # read the report as a file: 500
    ("GET", "/v1/fine_tuning/jobs/{job_id}:events", {}, 404),  # a list as a job: 503
    ("GET", "/v1/fine_tuning/jobs/{job_id}:metrics", {}, 404),
    ("GET", "/v1/audit?cursor=18446744073709551616-0", {}, 400),  # past 64 bits: 503
    ("GET", "/v1/audit?cursor=0-0", {}, 200),  # nothing before it: Redis refused the range
    ("POST", "/v1/fine_tuning/jobs", {"content": b"[" * 100_000 + b"]" * 100_000}, 400),
]


@pytest.mark.parametrize(("method", "path", "send", "status"), FOUND)
def test_what_fuzzing_found_stays_fixed(
    fuzz_target: FuzzTarget, method: str, path: str, send: dict[str, Any], status: int
) -> None:
    real = {name: values[0] for name, values in fuzz_target.ids.items()}
    headers = {"Authorization": f"Bearer {fuzz_target.org_key}"}
    if "content" in send:
        headers["Content-Type"] = "application/json"
    with httpx.Client(base_url=fuzz_target.gateway.url, timeout=30) as client:
        response = client.request(method, path.format(**real), headers=headers, **send)
    assert response.status_code == status, response.text


def test_the_fuzzing_org_key_still_works(fuzz_target: FuzzTarget) -> None:
    with httpx.Client(base_url=fuzz_target.gateway.url, timeout=30) as client:
        response = client.get(
            "/v1/models", headers={"Authorization": f"Bearer {fuzz_target.org_key}"}
        )
    assert response.status_code == 200
