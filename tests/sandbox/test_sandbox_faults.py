"""Auth, the request log, fault injection and run scoping, as documented in the package."""

from __future__ import annotations

import time
from typing import Any

import httpx2
import openai
import pytest
from openai import OpenAI
from sandbox_helpers import API_KEY, add_fault, chat_lines, upload

from service.sandbox import SandboxHandle

HELLO: Any = [{"role": "user", "content": "hello"}]
MODEL = "gpt-4o-mini"


def sdk(sandbox: SandboxHandle, run: str, **options: Any) -> OpenAI:
    return OpenAI(api_key=API_KEY, base_url=sandbox.base_url_for(run), **options)


def test_requests_need_the_key(sandbox: SandboxHandle, run: str) -> None:
    for key in ("sk-wrong", ""):
        with (
            OpenAI(api_key=key or "x", base_url=sandbox.base_url_for(run), max_retries=0) as bad,
            pytest.raises(openai.AuthenticationError) as caught,
        ):
            bad.models.list()
        assert caught.value.code == "invalid_api_key"
    with httpx2.Client() as http:
        answer = http.get(f"{sandbox.base_url}/models")
    assert answer.status_code == 401
    assert set(answer.json()["error"]) == {"message", "type", "param", "code"}


def test_unknown_path_is_an_openai_404(sandbox: SandboxHandle) -> None:
    with httpx2.Client(headers={"Authorization": f"Bearer {API_KEY}"}) as http:
        answer = http.get(f"{sandbox.base_url}/nothing/here")
    assert answer.status_code == 404
    assert answer.json()["error"]["message"] == "Invalid URL (GET /v1/nothing/here)"


def test_log_shows_what_arrived_without_credentials(client: OpenAI, inspect: httpx2.Client) -> None:
    content = chat_lines(10)
    file_id = upload(client, content)
    client.chat.completions.create(
        model=MODEL,
        messages=HELLO,
        extra_headers={"X-Api-Key": "abc", "X-Note": f"sk-{'z' * 20}", "X-Trace": "t-1"},
    )
    entries = inspect.get("/requests").json()["data"]
    assert [(e["method"], e["path"]) for e in entries] == [
        ("POST", "/v1/files"),
        ("POST", "/v1/chat/completions"),
    ]
    multipart = entries[0]["multipart"]
    assert multipart["fields"] == {"purpose": "fine-tune"}
    (part,) = multipart["files"]
    assert part["filename"] == "train.jsonl" and part["size"] == len(content)
    chat = entries[1]
    assert chat["body"] == {"model": MODEL, "messages": HELLO} and chat["status"] == 200
    assert chat["headers"]["x-trace"] == "t-1"
    assert not {"authorization", "x-api-key", "x-note"} & set(chat["headers"])
    assert API_KEY not in inspect.get("/requests").text
    assert file_id in client.files.retrieve(file_id).id

    counts = inspect.get("/counts").json()
    assert counts["requests"]["POST /v1/files"] == 1
    assert counts["files"] == {"fine-tune": 1}
    assert inspect.delete("/requests").json() == {"deleted": 3}
    assert inspect.get("/requests").json()["data"] == []


def test_429_carries_retry_after_and_the_sdk_retries(
    sandbox: SandboxHandle, run: str, inspect: httpx2.Client
) -> None:
    add_fault(inspect, kind="429", path_prefix="/v1/chat", count=2, retry_after=0.01)
    with sdk(sandbox, run, max_retries=0) as once:
        with pytest.raises(openai.RateLimitError) as caught:
            once.chat.completions.create(model=MODEL, messages=HELLO)
        assert caught.value.response.headers["retry-after"] == "1"
        assert caught.value.response.headers["retry-after-ms"] == "10"
    with sdk(sandbox, run, max_retries=2) as patient:
        assert patient.chat.completions.create(model=MODEL, messages=HELLO).choices
    statuses = [e["status"] for e in inspect.get("/requests").json()["data"]]
    assert statuses == [429, 429, 200]
    assert inspect.get("/faults").json()["data"] == []


@pytest.mark.parametrize("kind", ["500", "503"])
def test_server_errors(sandbox: SandboxHandle, run: str, inspect: httpx2.Client, kind: str) -> None:
    add_fault(inspect, kind=kind, method="GET", path_prefix="/v1/models", count=1)
    with sdk(sandbox, run, max_retries=0) as once:
        with pytest.raises(openai.InternalServerError) as caught:
            once.models.list()
        assert caught.value.status_code == int(kind)
        assert once.models.list().data
        assert once.chat.completions.create(model=MODEL, messages=HELLO).choices


def test_hang_outlasts_the_client_timeout(
    sandbox: SandboxHandle, run: str, inspect: httpx2.Client
) -> None:
    add_fault(inspect, kind="hang", seconds=5, path_prefix="/v1/models")
    with sdk(sandbox, run, max_retries=0, timeout=0.3) as impatient:
        with pytest.raises(openai.APITimeoutError):  # the client's timeout, not the hang's end
            impatient.models.list()
        assert impatient.with_options(timeout=30).models.list().data


def test_hang_then_answers(sandbox: SandboxHandle, run: str, inspect: httpx2.Client) -> None:
    add_fault(inspect, kind="hang", seconds=0.2, path_prefix="/v1/models")
    started = time.monotonic()
    with sdk(sandbox, run, max_retries=0) as client:
        assert client.models.list().data
    assert time.monotonic() - started >= 0.2


def test_drop_closes_the_connection(
    sandbox: SandboxHandle, run: str, inspect: httpx2.Client
) -> None:
    add_fault(inspect, kind="drop", path_prefix="/v1/chat")
    with sdk(sandbox, run, max_retries=0) as client:
        with pytest.raises(openai.APIConnectionError) as caught:
            client.chat.completions.create(model=MODEL, messages=HELLO)
        assert not isinstance(caught.value, openai.APITimeoutError)
        assert client.chat.completions.create(model=MODEL, messages=HELLO).choices
    (dropped, ok) = inspect.get("/requests").json()["data"]
    assert dropped["fault"] == "drop" and dropped["status"] is None and ok["status"] == 200


def test_random_faults_are_seeded(sandbox: SandboxHandle, inspect: httpx2.Client) -> None:
    def pattern(run: str) -> list[int]:
        with httpx2.Client(headers={"Authorization": f"Bearer {API_KEY}"}) as http:
            spec = {"kind": "500", "probability": 0.3, "count": None, "seed": 42}
            http.post(f"{sandbox.url}/runs/{run}/_sandbox/faults", json=spec)
            url = f"{sandbox.base_url_for(run)}/models"
            return [http.get(url).status_code for _ in range(40)]

    first, second = pattern("random-a"), pattern("random-b")
    assert first == second
    assert 4 <= first.count(500) <= 20 and first.count(200) >= 20


def test_faults_and_logs_are_scoped_per_run(sandbox: SandboxHandle) -> None:
    auth = {"Authorization": f"Bearer {API_KEY}"}
    with httpx2.Client(headers=auth) as http:
        spec = {"kind": "503", "count": 5}
        assert http.post(f"{sandbox.url}/runs/left/_sandbox/faults", json=spec).is_success
        assert http.get(f"{sandbox.base_url_for('right')}/models").status_code == 200
        assert http.get(f"{sandbox.base_url_for('left')}/models").status_code == 503
        by_header = {**auth, "X-Sandbox-Run": "left"}
        assert http.get(f"{sandbox.base_url}/models", headers=by_header).status_code == 503
        assert http.get(f"{sandbox.base_url}/models").status_code == 200

        def paths(run: str) -> list[str]:
            answer = http.get(f"{sandbox.url}/_sandbox/requests", headers={"X-Sandbox-Run": run})
            return [e["path"] for e in answer.json()["data"]]

        assert paths("right") == ["/v1/models"]
        assert paths("left") == ["/v1/models", "/v1/models"]
        assert http.post(f"{sandbox.url}/runs/left/_sandbox/reset").json() == {"reset": "left"}
        assert paths("left") == []
        assert http.get(f"{sandbox.base_url_for('left')}/models").status_code == 200


def test_objects_are_scoped_per_run(sandbox: SandboxHandle) -> None:
    with sdk(sandbox, "objects-a", max_retries=0) as a, sdk(sandbox, "objects-b") as b:
        file_id = upload(a, chat_lines(10))
        with pytest.raises(openai.NotFoundError):
            b.files.retrieve(file_id)
        assert [f.id for f in a.files.list()] == [file_id]


def test_bad_fault_specs_are_rejected(inspect: httpx2.Client) -> None:
    assert inspect.post("/faults", json={"kind": "teapot"}).status_code == 400
    assert inspect.post("/faults", json={"kind": "500", "count": None}).status_code == 400
    assert inspect.post("/faults", json={"kind": "500", "colour": "red"}).status_code == 400
