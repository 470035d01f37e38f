"""Ids and cursors from outside are checked at the edge: a malformed id is a 404 exactly like an
unknown one (never a Redis error, never a way to learn what another org holds), a malformed
cursor a 400 naming it, and only an unreachable Redis is a 503."""

from __future__ import annotations

import asyncio
import re
import secrets

import fakeredis.aioredis
import pytest
from redis.exceptions import ResponseError

from service.config import Settings
from service.errors import Unavailable
from service.http.app import create_app
from service.http.path_ids import PATH_IDS
from service.ids import is_stream_id, is_valid, new_id
from service.operations.context import Context
from service.store import Store, keys
from service.store.datasets.files import FileRepository
from tests.api.conftest import Gateway
from tests.api.jobs_helpers import tenant, upload
from tests.api.test_tenancy import error_of


def test_every_path_parameter_of_the_app_has_a_pattern() -> None:
    settings = Settings(redis_url="redis://127.0.0.1:1/0")
    app = create_app(Context(settings=settings, store=Store(settings.redis_url or "")))
    names = {name for route in app.routes for name in re.findall(r"\{(\w+)", route.path)}
    names.discard("path")  # the OpenAPI UI's own routes (`/openapi/{path:path}`)
    assert names and names <= set(PATH_IDS), names - set(PATH_IDS)


@pytest.mark.parametrize(
    ("kind", "good"),
    [
        ("file", new_id("file-")),
        ("job", new_id("ftjob-")),
        ("sweep", new_id("sweep-")),
        ("org", new_id("org_")),
        ("key", secrets.token_hex(8)),
        ("model", "gpt-4o-mini"),
        ("model", "gpt-4o-mini-2024-07-18"),
        ("model", "ft:gpt-4o-mini-2024-07-18:my-org:support_bot:AbC123xY"),
        ("model", "ft:gpt-4o-mini-2024-07-18:my-org::AbC123xY"),
        ("model", "ft:gpt-4o-mini-2024-07-18:my-org:s:AbC123xY:ckpt-step-88"),
        ("model", "gpt-4.1-nano"),
        ("alias", "prod.v2_candidate-1"),
    ],
    # Named, not shown: fresh ids would name the tests differently in each xdist worker.
    ids=[
        "file",
        "job",
        "sweep",
        "org",
        "key",
        "model-base",
        "model-snapshot",
        "model-tuned",
        "model-tuned-no-suffix",
        "model-checkpoint",
        "model-4.1",
        "alias",
    ],
)
def test_real_ids_are_well_formed(kind: str, good: str) -> None:
    assert is_valid(kind, good)


@pytest.mark.parametrize("kind", ["file", "job", "sweep", "org", "key", "model", "alias"])
@pytest.mark.parametrize(
    "bad", ["", "*", "a*", "x:report", "..", "a/b", "a b", "x\n", "é", "a" * 300, "-x"]
)
def test_malformed_ids_are_not(kind: str, bad: str) -> None:
    if kind == "model" and bad == "x:report":
        pytest.skip("a model id may hold ':' (ft:...)")
    assert not is_valid(kind, bad)


@pytest.mark.parametrize(
    ("cursor", "ok"),
    [
        ("1-0", True),
        ("18446744073709551615-18446744073709551615", True),
        ("18446744073709551616-0", False),
        ("0-18446744073709551616", False),
        ("1", False),
        ("-1-0", False),
        ("1-0\n", False),
    ],
)
def test_cursor_is_a_stream_id_within_64_bits(cursor: str, ok: bool) -> None:
    assert is_stream_id(cursor) is ok


def test_another_orgs_ids_with_a_suffix_are_404_like_unknown_ids(gateway: Gateway) -> None:
    """`<A's file id>:report` once read A's report as a file record (500) and
    `<A's job id>:events` A's event list as a job (503), while unknown ids were 404."""
    with tenant(gateway) as a, tenant(gateway) as b:
        file_id = upload(a.sdk)
        job_id = a.sdk.fine_tuning.jobs.create(model="gpt-4o-mini", training_file=file_id).id
        with gateway.client(b.key) as client:
            for path, unknown in [
                (f"/v1/files/{file_id}:report", f"/v1/files/{new_id('file-')}:report"),
                (
                    f"/v1/fine_tuning/jobs/{job_id}:events",
                    f"/v1/fine_tuning/jobs/{new_id('ftjob-')}:events",
                ),
                (
                    f"/v1/fine_tuning/jobs/{job_id}:checkpoints",
                    f"/v1/fine_tuning/jobs/{new_id('ftjob-')}",
                ),
            ]:
                theirs, nothing = client.get(path), client.get(unknown)
                assert theirs.status_code == nothing.status_code == 404, theirs.text
                mine, other = error_of(theirs), error_of(nothing)
                assert (mine["type"], mine["code"], mine["param"]) == (
                    other["type"],
                    other["code"],
                    other["param"],
                )


def test_a_malformed_alias_name_is_unknown_to_read_and_invalid_to_create(
    gateway: Gateway,
) -> None:
    with tenant(gateway) as a, gateway.client(a.key) as client:
        assert error_of(client.get("/v1/aliases/a*b"))["code"] == "alias_not_found"
        assert client.delete("/v1/aliases/a:b").status_code == 404
        created = client.put("/v1/aliases/a:b", json={"model": "gpt-4o-mini"})
        assert created.status_code == 400
        assert error_of(created)["param"] == "name"


@pytest.mark.parametrize("cursor", ["18446744073709551616-0", "1-99999999999999999999", "x"])
def test_a_cursor_out_of_range_is_400_naming_it(gateway: Gateway, cursor: str) -> None:
    org = gateway.create_org()
    _, key = gateway.create_key(org, "admin")
    with gateway.client(key) as client:
        response = client.get("/v1/audit", params={"cursor": cursor})
    assert response.status_code == 400, response.text
    assert error_of(response)["param"] == "cursor"


def test_the_first_possible_cursor_is_an_empty_last_page(gateway: Gateway) -> None:
    org = gateway.create_org()
    _, key = gateway.create_key(org, "admin")
    with gateway.client(key) as client:
        response = client.get("/v1/audit", params={"cursor": "0-0"})
    assert response.status_code == 200, response.text
    assert response.json()["data"] == []
    assert response.json()["has_more"] is False


def test_an_error_redis_answers_is_not_unavailable() -> None:
    async def read_a_list_as_a_file() -> None:
        redis = fakeredis.aioredis.FakeRedis(decode_responses=True)
        await redis.rpush(keys.file("file-x"), "a list, not a string")
        try:
            await FileRepository(redis).get("file-x")
        finally:
            await redis.aclose()

    with pytest.raises(ResponseError):
        asyncio.run(read_a_list_as_a_file())


def test_an_unreachable_redis_is_unavailable() -> None:
    async def read() -> None:
        store = Store("redis://127.0.0.1:1/0")
        try:
            await store.files.get("file-x")
        finally:
            await store.aclose()

    with pytest.raises(Unavailable):
        asyncio.run(read())
