"""The console without a browser: sessions and their cookie, CSRF, role limits, other orgs' ids,
and the audit of sign-in and sign-out."""

from __future__ import annotations

import re
from typing import Any

import httpx

from service.http.console.session import paged
from tests.api.conftest import ADMIN_TOKEN, Gateway
from tests.api.console_helpers import csrf_of, session_csrf, sign_in
from tests.api.jobs_helpers import tenant, upload, wait_status
from tests.support import wait_for

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
