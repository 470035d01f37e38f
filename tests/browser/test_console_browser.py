"""The console in headless Chromium: each role signs in, a dataset is uploaded through the file
picker, a job is watched to `succeeded` with its chart redrawn, a key is created and revoked (by
the operator, and by an org admin on its Keys page, which a member cannot open), another org's
ids are 404 pages, a form without its CSRF token is refused, and no key is left in the page
source or in the browser's storage."""

from __future__ import annotations

import re
import secrets
import time
from typing import Any

from openai import OpenAI

from tests.api.conftest import ADMIN_TOKEN, Gateway
from tests.api.datasets import chat_jsonl
from tests.browser.conftest import sign_in
from tests.support import wait_for


def org_with_key(gateway: Gateway, role: str) -> tuple[str, str]:
    org = gateway.create_org(f"web-{secrets.token_hex(3)}", policy={"pii": "allow"})
    return org, gateway.create_key(org, role)[1]


def assert_no_secret_in_browser(page: Any, secret: str) -> None:
    assert secret not in page.content()
    stored = page.evaluate(
        "() => JSON.stringify([Object.entries(localStorage), Object.entries(sessionStorage)])"
    )
    assert stored == "[[],[]]", stored
    cookies = page.context.cookies()
    assert [cookie["name"] for cookie in cookies] == ["tg_console"]
    assert cookies[0]["httpOnly"] and cookies[0]["sameSite"] == "Strict"
    assert secret not in cookies[0]["value"]


def test_each_role_signs_in_and_no_key_reaches_the_browser(page: Any, gateway: Gateway) -> None:
    for role in ("admin", "member", "inference"):
        _, key = org_with_key(gateway, role)
        sign_in(page, gateway.url, key)
        page.shots.take(f"overview-{role}")
        assert page.get_by_role("heading", name="Overview").is_visible()
        jobs_link = page.get_by_role("link", name="Jobs")
        assert jobs_link.count() == (0 if role == "inference" else 1)
        assert_no_secret_in_browser(page, key)
        if role == "admin":
            for name, heading in (
                ("Usage", "Usage, last 30 days"),
                ("Models", "Models"),
                ("Audit", "Audit"),
            ):
                page.get_by_role("link", name=name, exact=True).click()
                page.shots.take(name.lower())
                assert page.get_by_role("heading", name=heading, exact=True).is_visible()
            assert "console.sign_in" in page.content()  # the audit page shows this sign-in
        if role == "inference":
            page.get_by_role("link", name="Playground").click()
            page.get_by_label("Prompt").fill("Say hi.")
            page.get_by_role("button", name="Send to both").click()
            page.shots.take("playground")
            assert page.locator("p.answer").count() == 2
        page.get_by_role("button", name="Sign out").click()
        page.wait_for_url(re.compile(r".*/console/sign-in$"))
        assert "tg_console" not in {cookie["name"] for cookie in page.context.cookies()}
    sign_in(page, gateway.url, ADMIN_TOKEN)
    page.shots.take("orgs-operator")
    assert page.get_by_role("heading", name="Orgs").is_visible()
    assert_no_secret_in_browser(page, ADMIN_TOKEN)
    page.get_by_role("link", name="Health").click()
    page.shots.take("health")
    assert page.text_content("#redis") == "reachable"
    assert page.text_content("#upstream") == "reachable"
    assert page.locator("#queues tbody tr").count() == 1


def test_upload_a_dataset_and_watch_a_job_succeed(
    page: Any, gateway: Gateway, tmp_path: Any
) -> None:
    _, key = org_with_key(gateway, "member")
    sign_in(page, gateway.url, key)
    page.get_by_role("link", name="Datasets").click()
    dataset = tmp_path / "train.jsonl"
    dataset.write_bytes(chat_jsonl(20, salt=secrets.token_hex(4)))
    page.get_by_label("JSONL file").set_input_files(str(dataset))
    page.shots.take("datasets-picked")
    page.get_by_role("button", name="Upload").click()
    page.wait_for_url(re.compile(r".*/console/datasets/file-[\w-]+$"))
    page.shots.take("dataset-report")
    assert "20 examples" in page.content()
    file_id = page.url.rsplit("/", 1)[-1]
    with OpenAI(base_url=f"{gateway.url}/v1", api_key=key, max_retries=0) as sdk:
        job = sdk.fine_tuning.jobs.create(model="gpt-4o-mini", training_file=file_id)
    page.goto(f"{gateway.url}/console/jobs/{job.id}")
    page.shots.take("job-started")
    charts: set[str] = set()

    def succeeded() -> bool:
        charts.add(page.get_attribute("#job-chart", "src") or "")
        return page.text_content("#job-status") == "succeeded"

    wait_for(succeeded, timeout=120, interval=0.25, what=f"{job.id} to show succeeded")
    page.shots.take("job-succeeded")
    assert len(charts) >= 2, charts  # the chart was redrawn while the job ran
    assert "No events yet" not in page.content()
    page.get_by_role("link", name="Jobs").click()
    page.shots.take("jobs-list")
    assert job.id in page.content()


def test_the_operator_creates_a_key_shown_once_and_revokes_it(page: Any, gateway: Gateway) -> None:
    org, _ = org_with_key(gateway, "admin")
    sign_in(page, gateway.url, ADMIN_TOKEN)
    page.goto(f"{gateway.url}/console/orgs/{org}")
    page.get_by_label("Name", exact=True).fill("browser")
    page.get_by_label("Role").select_option("member")
    page.get_by_role("button", name="Create key").click()
    page.shots.take("key-created")
    new_key = page.text_content("#new-key") or ""
    assert new_key.startswith("tgk_")
    with gateway.client(new_key) as api:
        assert api.get("/v1/models").status_code == 200
    page.goto(f"{gateway.url}/console/orgs/{org}")
    assert new_key not in page.content()
    key_id = new_key.split("_")[1]
    page.get_by_role("button", name=f"Revoke key {key_id}").click()
    page.shots.take("key-revoked")
    with gateway.client(new_key) as api:
        assert api.get("/v1/models").status_code == 401
    assert page.get_by_role("button", name=f"Revoke key {key_id}").count() == 0


def test_an_org_admin_creates_a_key_seen_once_and_revokes_it(page: Any, gateway: Gateway) -> None:
    _, admin = org_with_key(gateway, "admin")
    sign_in(page, gateway.url, admin)
    page.get_by_role("link", name="Keys", exact=True).click()
    page.shots.take("keys")
    assert page.get_by_role("heading", name="Keys", exact=True).is_visible()
    page.get_by_label("Name", exact=True).fill("browser-made")
    page.get_by_label("Role").select_option("inference")
    page.get_by_role("button", name="Create key").click()
    page.shots.take("key-created")
    new_key = page.text_content("#new-key") or ""
    assert new_key.startswith("tgk_")
    page.get_by_role("button", name="Copy to clipboard").click()
    wait_for(lambda: page.text_content("#copy-done"), timeout=30, what="the copy hint")
    assert new_key not in page.url
    assert_no_secret_in_browser_storage(page, new_key)
    with gateway.client(new_key) as api:
        assert api.get("/v1/models").status_code == 200
    page.get_by_role("link", name="Keys", exact=True).click()
    page.shots.take("keys-listed")
    assert new_key not in page.content()
    key_id = new_key.split("_")[1]
    page.get_by_role("link", name=f"Revoke key {key_id}").click()
    page.shots.take("key-revoke-confirm")
    assert page.locator("#own-key-warning").count() == 0
    page.get_by_role("button", name=f"Revoke key {key_id}").click()
    page.wait_for_url(re.compile(r".*/console/keys$"))
    page.shots.take("key-revoked")
    with gateway.client(new_key) as api:
        assert api.get("/v1/models").status_code == 401
    assert page.get_by_role("link", name=f"Revoke key {key_id}").count() == 0
    assert new_key not in page.content()


def test_a_member_has_no_keys_page(page: Any, gateway: Gateway) -> None:
    _, member = org_with_key(gateway, "member")
    sign_in(page, gateway.url, member)
    assert page.get_by_role("link", name="Keys", exact=True).count() == 0
    answer = page.goto(f"{gateway.url}/console/keys")
    page.shots.take("keys-refused")
    assert answer.status == 403
    assert page.get_by_role("heading", name="Not allowed").is_visible()


def assert_no_secret_in_browser_storage(page: Any, secret: str) -> None:
    """The new key is on the page, as it must be once, and nowhere the browser keeps."""
    stored = page.evaluate(
        "() => JSON.stringify([Object.entries(localStorage), Object.entries(sessionStorage)])"
    )
    assert stored == "[[],[]]", stored
    assert all(secret not in cookie["value"] for cookie in page.context.cookies())
    history = page.evaluate("() => JSON.stringify([location.href, history.state])")
    assert secret not in history


def test_another_orgs_ids_are_404_pages_and_forms_need_their_csrf_token(
    page: Any, gateway: Gateway
) -> None:
    _, key_a = org_with_key(gateway, "member")
    _, key_b = org_with_key(gateway, "member")
    with OpenAI(base_url=f"{gateway.url}/v1", api_key=key_a, max_retries=0) as sdk:
        data = chat_jsonl(20, salt=secrets.token_hex(4))
        file_id = sdk.files.create(file=("a.jsonl", data), purpose="fine-tune").id
        job = sdk.fine_tuning.jobs.create(model="gpt-4o-mini", training_file=file_id)
    sign_in(page, gateway.url, key_b)
    for path in (f"/console/jobs/{job.id}", f"/console/datasets/{file_id}"):
        answer = page.goto(f"{gateway.url}{path}")
        assert answer.status == 404
        page.shots.take("other-org-404")
        assert page.get_by_role("heading", name="Not found").is_visible()
    page.get_by_role("button", name="Sign out").click()
    sign_in(page, gateway.url, key_a)
    page.goto(f"{gateway.url}/console/jobs/{job.id}")
    wait_for(
        lambda: (
            page.get_by_role("button", name="Cancel").count()
            or page.text_content("#job-status") == "succeeded"
        ),
        timeout=60,
        what="the job page",
    )
    if page.get_by_role("button", name="Cancel").count():
        page.evaluate(
            "() => document.querySelectorAll('input[name=csrf_token]')"
            ".forEach(input => input.remove())"
        )
        with page.expect_navigation():
            page.get_by_role("button", name="Cancel").click()
        page.shots.take("csrf-refused")
        assert "CSRF" in page.content()
    refused = page.request.post(f"{gateway.url}/console/sign-out", form={})
    assert refused.status == 403
    time.sleep(0)  # the session is still there: the refused sign-out changed nothing
    assert page.goto(f"{gateway.url}/console/jobs").status == 200


def test_a_sweeps_trials_beside_its_chart_and_the_best_promoted(
    page: Any, gateway: Gateway
) -> None:
    _, key = org_with_key(gateway, "member")
    with OpenAI(base_url=f"{gateway.url}/v1", api_key=key, max_retries=0) as sdk:
        train, valid = (
            sdk.files.create(
                file=(name, chat_jsonl(20, salt=secrets.token_hex(4))), purpose="fine-tune"
            ).id
            for name in ("train.jsonl", "valid.jsonl")
        )
    body = {
        "model": "gpt-4o-mini",
        "training_file": train,
        "validation_file": valid,
        "search": {"type": "grid"},
        "space": {"learning_rate_multiplier": [0.3, 1.0]},
        "seed": 7,
    }
    with gateway.client(key) as api:
        created = api.post("/v1/sweeps", json=body)
        assert created.status_code == 200, created.text
        sweep_id = created.json()["id"]
    sign_in(page, gateway.url, key)
    page.get_by_role("link", name="Sweeps").click()
    page.shots.take("sweeps")
    page.get_by_role("link", name=sweep_id).click()
    page.shots.take("sweep-running")

    def ended() -> bool:
        page.reload()
        return page.text_content("#sweep-status") in ("succeeded", "failed", "cancelled")

    wait_for(ended, timeout=180, interval=1.0, what=f"{sweep_id} to end")
    assert page.text_content("#sweep-status") == "succeeded"
    assert "★ best" in page.content()
    page.get_by_label("Alias").fill("web-best")
    page.get_by_role("button", name="Promote").click()
    page.shots.take("sweep-promoted")
    assert "web-best" in (page.text_content("#promoted") or "")
    with gateway.client(key) as api:
        alias = api.get("/v1/aliases/web-best").json()
        sweep = api.get(f"/v1/sweeps/{sweep_id}").json()
    assert alias["model"] == sweep["best_trial"]["fine_tuned_model"]
