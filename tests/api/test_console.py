"""The console without a browser: sessions and their cookie, CSRF, role limits, other orgs' ids,
the audit of sign-in and sign-out, the org admin's keys page and the operator's health page."""

from __future__ import annotations

import asyncio
import re
from typing import Any

import httpx
from pydantic import SecretStr

from service.config import Settings
from service.domain.health import UpstreamReach
from service.http.console.session import paged
from service.runtime import build_gateway
from service.upstream import Upstream
from tests.api.conftest import ADMIN_TOKEN, GATEWAY_RUN, UPSTREAM_KEY, Gateway
from tests.api.console_helpers import csrf_of, session_csrf, sign_in
from tests.api.jobs_helpers import tenant, upload, wait_status
from tests.support import ServerThread, free_port, wait_for

JOB_LINK = re.compile(r'<td><a href="/console/jobs/([\w-]+)">')
EVAL: Any = {
    "data_source_config": {"type": "custom", "item_schema": {"type": "object"}},
    "testing_criteria": [
        {
            "type": "string_check",
            "name": "exact",
            "input": "{{sample.output_text}}",
            "reference": "{{item.answer}}",
            "operation": "eq",
        }
    ],
}
NEXT_PAGE = re.compile(r'<a href="(/console/jobs\?[^"]+)">Next page</a>')


def test_pages_need_a_session(gateway: Gateway) -> None:
    with httpx.Client(base_url=gateway.url, timeout=30) as client:
        for path in ("/console", "/console/jobs", "/console/orgs", "/console/datasets"):
            answer = client.get(path)
            assert answer.status_code == 303, path
            assert answer.headers["location"] == "/console/sign-in"


def test_sign_in_sets_an_opaque_strict_httponly_cookie(gateway: Gateway, org: str) -> None:
    _, key = gateway.create_key(org, "member")
    with httpx.Client(base_url=gateway.url, timeout=30) as client:
        token = csrf_of(client.get("/console/sign-in").text)
        answer = client.post("/console/sign-in", data={"key": key, "csrf_token": token})
        assert answer.status_code == 303 and answer.headers["location"] == "/console"
        cookie = next(
            v
            for k, v in answer.headers.multi_items()
            if k == "set-cookie" and v.startswith("tg_console=")
        )
        assert "httponly" in cookie.lower() and "samesite=strict" in cookie.lower()
        assert "secure" not in cookie.lower()
        assert key not in cookie and key.split("_")[1] not in cookie
        overview = client.get("/console")
        assert overview.status_code == 200 and "Overview" in overview.text
        assert key not in overview.text


def test_cookie_is_secure_behind_a_proxy_that_says_https(gateway: Gateway, org: str) -> None:
    _, key = gateway.create_key(org, "member")
    with httpx.Client(base_url=gateway.url, timeout=30) as client:
        token = csrf_of(client.get("/console/sign-in").text)
        answer = client.post(
            "/console/sign-in",
            data={"key": key, "csrf_token": token},
            headers={"x-forwarded-proto": "https"},
        )
    cookie = next(
        v
        for k, v in answer.headers.multi_items()
        if k == "set-cookie" and v.startswith("tg_console=")
    )
    assert "; secure" in cookie.lower()


def test_a_bad_key_or_missing_csrf_is_refused(gateway: Gateway, org: str) -> None:
    _, key = gateway.create_key(org, "member")
    with httpx.Client(base_url=gateway.url, timeout=30) as client:
        token = csrf_of(client.get("/console/sign-in").text)
        bad = client.post("/console/sign-in", data={"key": key + "x", "csrf_token": token})
        assert bad.status_code == 401 and "not accepted" in bad.text
        assert "tg_console=" not in bad.headers.get("set-cookie", "")
        forged = client.post("/console/sign-in", data={"key": key})
        assert forged.status_code == 403


def test_forms_without_their_csrf_token_are_refused(gateway: Gateway) -> None:
    with tenant(gateway, role="member") as org_tenant:
        file_id = upload(org_tenant.sdk)
        job = org_tenant.sdk.fine_tuning.jobs.create(model="gpt-4o-mini", training_file=file_id)
        with sign_in(gateway, org_tenant.key) as client:
            refused = client.post(f"/console/jobs/{job.id}/cancel", data={})
            assert refused.status_code == 403 and "CSRF" in refused.text
            wrong = client.post(f"/console/jobs/{job.id}/cancel", data={"csrf_token": "nope"})
            assert wrong.status_code == 403
            assert org_tenant.sdk.fine_tuning.jobs.retrieve(job.id).status != "cancelled"
            upload_refused = client.post("/console/datasets", files={"file": ("x.jsonl", b"{}\n")})
            assert upload_refused.status_code == 403
            ok = client.post(
                f"/console/jobs/{job.id}/cancel", data={"csrf_token": session_csrf(client)}
            )
            assert ok.status_code == 303
            assert org_tenant.sdk.fine_tuning.jobs.retrieve(job.id).status in (
                "cancelled",
                "succeeded",
            )


def test_another_orgs_ids_are_404_pages(gateway: Gateway) -> None:
    with tenant(gateway) as a, tenant(gateway) as b:
        file_id = upload(a.sdk)
        job = a.sdk.fine_tuning.jobs.create(model="gpt-4o-mini", training_file=file_id)
        with sign_in(gateway, b.key) as client:
            for path in (
                f"/console/jobs/{job.id}",
                f"/console/datasets/{file_id}",
                f"/console/jobs/{job.id}/chart.svg",
                "/console/jobs/ftjob-nope",
            ):
                answer = client.get(path)
                assert answer.status_code == 404, path
                assert answer.headers["content-type"].startswith("text/html")
                assert "Not found" in answer.text
        with sign_in(gateway, a.key) as own:
            assert own.get(f"/console/jobs/{job.id}").status_code == 200


def test_roles_limit_the_pages_like_the_api(gateway: Gateway, org: str) -> None:
    _, inference = gateway.create_key(org, "inference")
    with sign_in(gateway, inference) as client:
        assert client.get("/console").status_code == 200
        assert client.get("/console/jobs").status_code == 403
        assert client.get("/console/datasets").status_code == 403
        assert client.get("/console/orgs").status_code == 403
    with sign_in(gateway, ADMIN_TOKEN) as operator:
        assert operator.get("/console/orgs").status_code == 200
        assert operator.get("/console/jobs").status_code == 403


def test_a_revoked_key_ends_its_session_and_sign_out_ends_it_too(
    gateway: Gateway, org: str
) -> None:
    key_id, key = gateway.create_key(org, "admin")
    with sign_in(gateway, key) as client:
        assert client.get("/console/jobs").status_code == 200
        gateway.admin.delete(f"/admin/orgs/{org}/keys/{key_id}")
        assert client.get("/console/jobs").status_code == 303
    _, key2 = gateway.create_key(org, "admin")
    with sign_in(gateway, key2) as second:
        cookie = second.cookies["tg_console"]
        out = second.post("/console/sign-out", data={"csrf_token": session_csrf(second)})
        assert out.status_code == 303
    with httpx.Client(base_url=gateway.url, cookies={"tg_console": cookie}) as replay:
        assert replay.get("/console/jobs").status_code == 303
    with gateway.client(key2) as api:
        actions = [e["action"] for e in api.get("/v1/audit").json()["data"]]
    assert "console.sign_in" in actions and "console.sign_out" in actions


def test_the_operator_creates_a_key_shown_once_and_revokes_it(gateway: Gateway, org: str) -> None:
    with sign_in(gateway, ADMIN_TOKEN) as client:
        token = session_csrf(client, f"/console/orgs/{org}")
        created = client.post(
            f"/console/orgs/{org}/keys", data={"csrf_token": token, "name": "web", "role": "member"}
        )
        assert created.status_code == 200 and 'id="new-key"' in created.text
        listed = gateway.admin.get(f"/admin/orgs/{org}/keys").json()["data"]
        key_id = next(k["id"] for k in listed if k["name"] == "web")
        assert 'id="new-key"' not in client.get(f"/console/orgs/{org}").text
        revoked = client.post(
            f"/console/orgs/{org}/keys/{key_id}/revoke", data={"csrf_token": token}
        )
        assert revoked.status_code == 303
        listed = gateway.admin.get(f"/admin/orgs/{org}/keys").json()["data"]
        assert next(k for k in listed if k["id"] == key_id)["revoked_at"] is not None
        bad = client.post(
            f"/console/orgs/{org}/policy",
            data={"csrf_token": token, "policy": '{"pii": "sometimes"}'},
        )
        assert bad.status_code == 400 and "pii" in bad.text


def test_usage_audit_and_aliases_pages(gateway: Gateway) -> None:
    with tenant(gateway, role="admin") as admin:
        chat = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}]}
        assert admin.sdk.chat.completions.create(**chat).choices  # type: ignore[call-overload]
        with sign_in(gateway, admin.key) as client:
            overview = client.get("/console")
            assert 'id="spent">$0.0' in overview.text  # the call's cost, a fraction of a cent
            usage = client.get("/console/usage", params={"group": "model"})
            assert usage.status_code == 200 and "gpt-4o-mini" in usage.text
            exported = client.get("/console/usage.csv", params={"group": "model"})
            assert exported.headers["content-type"].startswith("text/csv")
            header, *rows = exported.text.strip().splitlines()
            assert header.startswith("day,model,key_id,requests")
            assert any(",gpt-4o-mini," in row and ",1," in row for row in rows), rows
            audit = client.get("/console/audit", params={"action": "console"})
            assert audit.status_code == 200 and "console.sign_in" in audit.text
            jsonl = client.get("/console/audit/export", params={"action": "console"}).text
            assert '"action":"console.sign_in"' in jsonl
            token = session_csrf(client, "/console/models")
            put = client.post(
                "/console/models/aliases",
                data={"csrf_token": token, "name": "web", "model": "gpt-4o-mini"},
            )
            assert put.status_code == 303
            with gateway.client(admin.key) as api:
                assert api.get("/v1/aliases/web").json()["model"] == "gpt-4o-mini"
                bad = client.post(
                    "/console/models/aliases",
                    data={"csrf_token": token, "name": "web2", "model": "web"},
                )
                assert bad.status_code == 400 and "text/html" in bad.headers["content-type"]
                assert "not another alias" in bad.text
                gone = client.post(
                    "/console/models/aliases/delete", data={"csrf_token": token, "name": "web"}
                )
                assert gone.status_code == 303
                assert api.get("/v1/aliases/web").status_code == 404
        _, member = gateway.create_key(admin.org_id, "member")
        with sign_in(gateway, member) as client:
            assert client.get("/console/audit").status_code == 403
            assert client.get("/console/usage").status_code == 200


def test_the_playground_asks_two_models_through_the_proxy_under_the_policy(
    gateway: Gateway,
) -> None:
    policy = {"pii": "block", "allowed_models": ["gpt-4o-mini", "gpt-4.1-nano"]}
    with tenant(gateway, policy=policy, role="inference") as org_tenant:  # noqa: SIM117
        with sign_in(gateway, org_tenant.key) as client:
            form = client.get("/console/models/playground")
            assert form.status_code == 200 and "gpt-4.1-nano" in form.text
            token = csrf_of(form.text)
            fields = {"csrf_token": token, "model_a": "gpt-4o-mini", "model_b": "gpt-4.1-nano"}
            both = client.post("/console/models/playground", data={**fields, "prompt": "Say hi."})
            assert both.status_code == 200
            assert both.text.count('class="answer"') == 2, both.text
            blocked = client.post(
                "/console/models/playground", data={**fields, "prompt": "Mail me at jo@example.com"}
            )
            assert blocked.text.count('class="error answer"') == 2
            assert "jo@example.com" in blocked.text  # the prompt echoed back, nothing sent
            refused = client.post(
                "/console/models/playground", data={**fields, "model_b": "gpt-4o", "prompt": "Hi."}
            )
            assert refused.text.count('class="error answer"') == 1
    sent = [r for r in gateway.upstream_requests("/v1/chat/completions")]
    assert not any("jo@example.com" in str(r) for r in sent)


def test_long_lists_come_in_pages() -> None:
    items = list(range(120))
    first, last = paged(items, None), paged(items, 3)
    assert first["items"] == items[:50] and first["prev_page"] is None and first["next_page"] == 2
    assert last["items"] == items[100:] and last["prev_page"] == 2 and last["next_page"] is None
    assert paged([], 1) == {"items": [], "prev_page": None, "next_page": None}


def test_an_org_admin_creates_a_key_shown_once_and_revokes_it(gateway: Gateway, org: str) -> None:
    admin_id, admin = gateway.create_key(org, "admin")
    with sign_in(gateway, admin) as client:
        keys_page = client.get("/console/keys")
        assert keys_page.status_code == 200 and 'href="/console/keys"' in keys_page.text
        token = csrf_of(keys_page.text)
        missing = client.post("/console/keys", data={"name": "web", "role": "member"})
        assert missing.status_code == 403 and "CSRF" in missing.text
        bad = client.post("/console/keys", data={"csrf_token": token, "name": "x", "role": "boss"})
        assert bad.status_code == 400 and "role" in bad.text
        created = client.post(
            "/console/keys", data={"csrf_token": token, "name": "web", "role": "member"}
        )
        assert created.status_code == 200 and 'id="new-key"' in created.text
        assert created.headers["cache-control"] == "no-store"
        secret = csrf_of_secret(created.text)
        key_id = secret.split("_")[1]
        assert secret not in str(created.url) and secret not in created.headers.get("location", "")
        assert all(secret not in value for value in created.headers.values())
        assert not any(secret in c for c in client.cookies.values())
        with gateway.client(secret) as api:
            assert api.get("/v1/files").status_code == 200
        again = client.get("/console/keys")
        assert secret not in again.text and 'id="new-key"' not in again.text
        assert key_id in again.text
        confirm = client.get(f"/console/keys/{key_id}/revoke")
        assert confirm.status_code == 200 and "own-key-warning" not in confirm.text
        assert gateway.admin.get(f"/admin/orgs/{org}/keys").json()["data"][-1]["revoked_at"] is None
        revoked = client.post(f"/console/keys/{key_id}/revoke", data={"csrf_token": token})
        assert revoked.status_code == 303 and revoked.headers["location"] == "/console/keys"
        with gateway.client(secret) as api:
            assert api.get("/v1/files").status_code == 401
        mine = client.get(f"/console/keys/{admin_id}/revoke")
        assert "own-key-warning" in mine.text
    with gateway.client(admin) as api:
        events = api.get("/v1/audit").json()["data"]
    actions = {e["action"]: e for e in events if e["outcome"] == "success"}
    for action in ("console.keys.org.create", "console.keys.org.revoke"):
        assert actions[action]["key_id"] == admin_id and actions[action]["resource_id"] == key_id
    assert secret not in str(events)


def csrf_of_secret(html: str) -> str:
    start = html.index('id="new-key">') + len('id="new-key">')
    return html[start : html.index("</code>", start)]


def test_only_admins_reach_the_keys_page_and_only_their_orgs_keys(gateway: Gateway) -> None:
    org_a, org_b = gateway.create_org("a"), gateway.create_org("b")
    a_key_id, _ = gateway.create_key(org_a, "member")
    for role in ("member", "inference"):
        _, key = gateway.create_key(org_b, role)
        with sign_in(gateway, key) as client:
            overview = client.get("/console")
            assert 'href="/console/keys"' not in overview.text
            refused = client.get("/console/keys")
            assert refused.status_code == 403 and "Not allowed" in refused.text
            token = session_csrf(client, "/console")
            posted = client.post("/console/keys", data={"csrf_token": token, "name": "x"})
            assert posted.status_code == 403
    with sign_in(gateway, ADMIN_TOKEN) as operator:
        assert operator.get("/console/keys").status_code == 403
    _, b_admin = gateway.create_key(org_b, "admin")
    with sign_in(gateway, b_admin) as client:
        token = session_csrf(client, "/console/keys")
        assert a_key_id not in client.get("/console/keys").text
        assert client.get(f"/console/keys/{a_key_id}/revoke").status_code == 404
        theirs = client.post(f"/console/keys/{a_key_id}/revoke", data={"csrf_token": token})
        assert theirs.status_code == 404 and "Not found" in theirs.text
    listed = gateway.admin.get(f"/admin/orgs/{org_a}/keys").json()["data"]
    assert listed[0]["revoked_at"] is None


def test_revoking_the_sessions_own_key_signs_it_out(gateway: Gateway, org: str) -> None:
    admin_id, admin = gateway.create_key(org, "admin")
    with sign_in(gateway, admin) as client:
        token = session_csrf(client, "/console/keys")
        revoked = client.post(f"/console/keys/{admin_id}/revoke", data={"csrf_token": token})
        assert revoked.status_code == 303
        assert client.get("/console/keys").headers["location"] == "/console/sign-in"
    with gateway.client(admin) as api:
        assert api.get("/v1/models").status_code == 401


def add_upstream_fault(gateway: Gateway, **spec: Any) -> None:
    response = httpx.post(
        f"{gateway.sandbox.url}/runs/{GATEWAY_RUN}/_sandbox/faults",
        json={"method": "GET", "path_prefix": "/v1/models", "count": 1, **spec},
        headers={"Authorization": f"Bearer {UPSTREAM_KEY}"},
        timeout=10,
    )
    assert response.status_code == 201, response.text


def cell(html: str, cell_id: str) -> str:
    match = re.search(rf'id="{cell_id}"[^>]*>(.*?)</td>', html)
    assert match, f"no #{cell_id} on the page"
    return match.group(1)


def test_the_health_page_shows_the_queue_and_whether_the_upstream_answers(
    gateway: Gateway,
) -> None:
    with sign_in(gateway, ADMIN_TOKEN) as client:
        healthy = client.get("/console/health")
        assert healthy.status_code == 200
        assert cell(healthy.text, "redis") == "reachable"
        assert cell(healthy.text, "upstream") == "reachable"
        assert re.fullmatch(r"[\d.]+ ms", cell(healthy.text, "upstream-latency"))
        assert re.search(r"<td>tunegate</td>(<td>\d+</td>){4}", healthy.text), healthy.text
        assert gateway.sandbox.url.split("//")[1] in healthy.text
        add_upstream_fault(gateway, kind="500")
        failing = client.get("/console/health")
        assert cell(failing.text, "upstream") == "unreachable"
        assert cell(failing.text, "upstream-problem") == "HTTP 500"
        add_upstream_fault(gateway, kind="hang", seconds=25)  # longer than the probe waits
        hung = client.get("/console/health")
        assert hung.status_code == 200
        assert cell(hung.text, "upstream") == "unreachable"
        assert cell(hung.text, "upstream-latency") == "—"
        assert "no answer within" in cell(hung.text, "upstream-problem")
        for page_text in (healthy.text, failing.text, hung.text):
            assert UPSTREAM_KEY not in page_text and ADMIN_TOKEN not in page_text
    _, admin = gateway.create_key(gateway.create_org(), "admin")
    with sign_in(gateway, admin) as org_admin:
        assert org_admin.get("/console/health").status_code == 403


def probe(gateway: Gateway, **overrides: Any) -> UpstreamReach:
    settings = gateway.settings.model_copy(update=overrides)

    async def run() -> UpstreamReach:
        async with Upstream.from_settings(settings) as upstream:
            return await upstream.probe(3.0)

    return asyncio.run(run())


def test_the_upstream_probe_names_a_refused_key_or_no_connection_never_the_key(
    gateway: Gateway,
) -> None:
    wrong = "sk-wrong-key-0123456789abcdef0123456789"
    refused = probe(gateway, openai_api_key=SecretStr(wrong))
    assert refused.reachable and refused.status == 401 and refused.latency_ms is not None
    assert refused.problem == "HTTP 401: the upstream refused the gateway's key"
    down = probe(gateway, openai_base_url=f"http://127.0.0.1:{free_port()}/v1")  # no listener
    assert not down.reachable and down.status is None
    assert down.problem is not None and down.problem.startswith("could not connect")
    assert wrong not in repr(refused)


def test_the_health_page_names_the_embedded_sandbox_when_no_upstream_key_is_set(
    tmp_path: Any,
) -> None:
    settings = Settings(
        openai_api_key=None,
        admin_token=SecretStr(ADMIN_TOKEN),
        data_dir=tmp_path,
        log_format="json",
    )
    built = build_gateway(settings, embedded_workers=1)
    server = ServerThread(built.asgi).start()
    try:
        local = Gateway(url=server.url, settings=built.settings, admin=None, sandbox=None)  # type: ignore[arg-type]
        with sign_in(local, ADMIN_TOKEN) as client:
            health = client.get("/console/health").text
    finally:
        server.stop()
        built.close()
    assert "the embedded sandbox at" in health
    assert cell(health, "upstream") == "reachable"
    assert (built.settings.openai_api_key or SecretStr("")).get_secret_value() not in health


def test_the_usage_page_draws_spend_and_tokens_by_day_model_and_key(gateway: Gateway) -> None:
    with tenant(gateway, role="admin") as admin:
        with sign_in(gateway, admin.key) as client:
            empty = client.get("/console/usage").text
            assert empty.count('role="img"') >= 3
            assert "No spend in these 30 days: no proxied call or training was recorded" in empty
            assert "No spend by model in these 30 days" in empty
        chat = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}]}
        assert admin.sdk.chat.completions.create(**chat).choices  # type: ignore[call-overload]
        with sign_in(gateway, admin.key) as client:
            spend = client.get("/console/usage").text
            for title in ("Spend by day", "Spend by model", "Spend by key"):
                assert f"<title>{title}</title>" in spend, title
                assert f"{title} as a table" in spend  # the text alternative beside each chart
            assert "No spend" not in spend and "gpt-4o-mini" in spend
            tokens = client.get("/console/usage", params={"measure": "tokens", "days": 7}).text
            assert "Usage, last 7 days" in tokens and "<title>Tokens by model</title>" in tokens
            assert "over 7 days" in tokens
            with gateway.client(admin.key) as api:  # the same figures as the API's
                report = api.get("/v1/usage", params={"group_by": "model"}).json()["data"]
            used = sum(row["prompt_tokens"] + row["completion_tokens"] for row in report)
            assert f"<td>{used:,}</td>" in tokens
            assert client.get("/console/usage", params={"days": 0}).status_code == 400


def test_the_jobs_filter_applies_before_paging_and_is_kept_in_the_paging_links(
    gateway: Gateway,
) -> None:
    with tenant(gateway, role="member") as org_tenant:
        file_id = upload(org_tenant.sdk)
        created = [
            org_tenant.sdk.fine_tuning.jobs.create(
                model="gpt-4o-mini", training_file=file_id, suffix=suffix
            )
            for suffix in ("alpha", "beta", "alpha", "beta", "alpha")
        ]
        for job in created:
            wait_status(org_tenant.sdk, job.id)
        alphas = [job.id for job in reversed(created) if job.user_provided_suffix == "alpha"]
        with sign_in(gateway, org_tenant.key) as client:
            first = client.get("/console/jobs", params={"model": "ALPHA", "limit": 2})
            assert first.status_code == 200
            shown = JOB_LINK.findall(first.text)
            assert shown == alphas[:2]
            following = NEXT_PAGE.search(first.text)
            assert following, "the first page links to the next"
            link = following.group(1).replace("&amp;", "&")
            assert "model=ALPHA" in link and "limit=2" in link
            second = client.get(link)
            assert JOB_LINK.findall(second.text) == alphas[2:]
            assert not NEXT_PAGE.search(second.text)
            none = client.get("/console/jobs", params={"status": "failed", "model": "alpha"})
            assert JOB_LINK.findall(none.text) == [] and "match these filters" in none.text
            ended = {job_id: org_tenant.sdk.fine_tuning.jobs.retrieve(job_id) for job_id in alphas}
            status = ended[alphas[0]].status
            same = client.get("/console/jobs", params={"status": status, "model": "alpha"})
            assert JOB_LINK.findall(same.text) == [j for j in alphas if ended[j].status == status]


def given_run(name: str, answers: list[str]) -> dict[str, Any]:
    """A run grading answers given inline (no model sampled): item i expects 'a<i>'."""
    rows = [
        {"item": {"question": f"q{i}", "answer": f"a{i}"}, "sample": {"output_text": answer}}
        for i, answer in enumerate(answers)
    ]
    source = {"type": "file_content", "content": rows}
    return {"name": name, "data_source": {"type": "jsonl", "source": source}}


def ended_run(api: httpx.Client, eval_id: str, run_id: str) -> dict[str, Any]:
    found: dict[str, Any] = wait_for(
        lambda: (
            (run := api.get(f"/v1/evals/{eval_id}/runs/{run_id}").json())["status"]
            in ("completed", "failed", "canceled")
            and run
        ),
        timeout=60,
        interval=0.1,
        what=f"run {run_id} to end",
    )
    return found


def test_eval_pages_show_runs_items_and_two_runs_compared(gateway: Gateway) -> None:
    with tenant(gateway, role="member") as owner, tenant(gateway, role="member") as other:
        with gateway.client(owner.key) as api:
            made = api.post("/v1/evals", json={**EVAL, "name": "support desk"}).json()
            # the first answers items 0-24 right; the second gets 0-2 wrong, the rest right
            first_answers = [f"a{i}" for i in range(25)]
            second_answers = ["no", "no", "no", *first_answers[3:]]
            made_runs = [
                api.post(f"/v1/evals/{made['id']}/runs", json=given_run(name, answers)).json()
                for name, answers in (("before", first_answers), ("after", second_answers))
            ]
            first, second = (ended_run(api, made["id"], run["id"]) for run in made_runs)
            compared = api.get(
                f"/v1/evals/{made['id']}/compare", params={"runs": f"{first['id']},{second['id']}"}
            ).json()["testing_criteria"][0]
        assert first["status"] == second["status"] == "completed"
        with sign_in(gateway, owner.key) as client:
            listed = client.get("/console/evals").text
            assert made["id"] in listed and "support desk" in listed and "exact" in listed
            eval_page = client.get(f"/console/evals/{made['id']}").text
            assert "100.0% (25/25)" in eval_page and "88.0% (22/25)" in eval_page
            assert "25 passed · 0 failed · 0 errored of 25" in eval_page
            assert 'name="first"' in eval_page and 'name="second"' in eval_page
            run_page = client.get(f"/console/evals/{made['id']}/runs/{second['id']}").text
            assert run_page.count('<td><pre class="answer">') == 20 and "?page=2" in run_page
            assert ">no</pre>" in run_page and "<strong>question</strong>: q0" in run_page
            last = client.get(f"/console/evals/{made['id']}/runs/{second['id']}?page=2").text
            assert last.count('<td><pre class="answer">') == 5 and "?page=1" in last
            side = client.get(
                f"/console/evals/{made['id']}/compare",
                params={"first": first["id"], "second": second["id"]},
            )
            assert side.status_code == 200
            low, high = compared["interval"]
            assert f"[{100 * low:+.1f} pts, {100 * high:+.1f} pts]" in side.text
            assert "-12.0 pts" in side.text and "First: before" in side.text
            assert side.text.count("pass → fail") == 3
            assert "<td>25</td><td>3</td>" in side.text  # items graded in both, changed
        with sign_in(gateway, other.key) as client:
            for path in (
                f"/console/evals/{made['id']}",
                f"/console/evals/{made['id']}/runs/{first['id']}",
                f"/console/evals/{made['id']}/compare?first={first['id']}&second={second['id']}",
            ):
                answer = client.get(path)
                assert answer.status_code == 404, path
                assert "text/html" in answer.headers["content-type"] and "Not found" in answer.text
        _, inference = gateway.create_key(owner.org_id, "inference")
        with sign_in(gateway, inference) as client:
            assert client.get("/console/evals").status_code == 403
            assert client.get(f"/console/evals/{made['id']}").status_code == 403
