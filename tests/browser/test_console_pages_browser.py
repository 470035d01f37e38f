"""The console's usage, evals and jobs pages in headless Chromium: the usage charts drawn from
an org's calls, a base and a tuned model's runs of one eval side by side, a jobs filter kept
from page to page, and the main pages on a phone (375x812) without sideways scrolling."""

from __future__ import annotations

import re
import secrets
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from openai import OpenAI

from tests.api.conftest import Gateway
from tests.api.datasets import chat_jsonl
from tests.browser.conftest import Shots, sign_in
from tests.evals_data import EXACT, SOURCE, held_out_items, training_lines
from tests.support import wait_for

BASE = "gpt-4o-mini"
PHONE = {"width": 375, "height": 812}


@dataclass
class Desk:
    """An admin's org with a tuned model, a dataset, and one eval run on the base and the tuned
    model (whose samples went through the proxy, so the usage page has figures)."""

    key: str
    file_id: str
    job_id: str
    eval_id: str
    runs: dict[str, str]


def completions(model: str) -> dict[str, Any]:
    items = [{"item": item} for item in held_out_items()]
    return {
        "type": "completions",
        "model": model,
        "source": {"type": "file_content", "content": items},
        "input_messages": {
            "type": "template",
            "template": [{"role": "user", "content": "{{item.question}}"}],
        },
    }


def run_to_end(api: httpx.Client, eval_id: str, name: str, model: str) -> str:
    body = {"name": name, "data_source": completions(model)}
    run_id: str = api.post(f"/v1/evals/{eval_id}/runs", json=body).json()["id"]
    wait_for(
        lambda: api.get(f"/v1/evals/{eval_id}/runs/{run_id}").json()["status"] == "completed",
        timeout=120,
        interval=0.2,
        what=f"run {run_id} to complete",
    )
    return run_id


@pytest.fixture(scope="module")
def desk(gateway: Gateway) -> Desk:
    org = gateway.create_org(f"desk-{secrets.token_hex(3)}", policy={"pii": "allow"})
    _, key = gateway.create_key(org, "admin")
    with OpenAI(base_url=f"{gateway.url}/v1", api_key=key, max_retries=0) as sdk:
        training = sdk.files.create(file=("desk.jsonl", training_lines()), purpose="fine-tune")
        job = sdk.fine_tuning.jobs.create(model=BASE, training_file=training.id, seed=3)
        done = wait_for(
            lambda: (
                (found := sdk.fine_tuning.jobs.retrieve(job.id)).status == "succeeded" and found
            ),
            timeout=180,
            interval=0.5,
            what=f"{job.id} to succeed",
        )
    with gateway.client(key) as api:
        made = api.post(
            "/v1/evals",
            json={
                "name": "support desk",
                "data_source_config": SOURCE,
                "testing_criteria": [EXACT],
            },
        ).json()
        runs = {
            name: run_to_end(api, made["id"], name, model)
            for name, model in (("base", BASE), ("tuned", done.fine_tuned_model))
        }
    return Desk(key, training.id, job.id, made["id"], runs)


def test_the_usage_page_shows_its_charts(page: Any, gateway: Gateway, desk: Desk) -> None:
    sign_in(page, gateway.url, desk.key)
    page.get_by_role("link", name="Usage", exact=True).click()
    page.shots.take("usage-spend")
    for chart in ("by-day", "by-model", "by-key"):
        drawn = page.locator(f"#chart-{chart} svg").first
        assert drawn.is_visible() and drawn.bounding_box()["width"] > 300, chart
    assert page.get_by_role("img", name="Spend by model").is_visible()
    # base and tuned samples, and the training under `fine-tuning:<base>`
    assert page.locator("#chart-by-model svg rect[fill='#0072B2']").count() == 3
    labels = page.locator("#chart-by-model svg text").all_text_contents()
    assert BASE in labels and any(label.startswith("fine-tuning:") for label in labels)
    page.get_by_label("Charts show").select_option("tokens")
    page.get_by_label("Range").select_option("7")
    page.get_by_role("button", name="Show").click()
    page.wait_for_url(re.compile(r".*measure=tokens.*"))
    page.shots.take("usage-tokens")
    assert page.get_by_role("heading", name="Usage, last 7 days").is_visible()
    assert page.get_by_role("img", name="Tokens by day").is_visible()
    page.get_by_text("Tokens by model as a table").click()
    page.shots.take("usage-table")
    assert page.locator("#chart-by-model table tbody tr").count() == 3


def test_two_runs_of_an_eval_side_by_side(page: Any, gateway: Gateway, desk: Desk) -> None:
    sign_in(page, gateway.url, desk.key)
    page.get_by_role("link", name="Evals", exact=True).click()
    page.shots.take("evals")
    page.get_by_role("link", name=desk.eval_id).click()
    page.shots.take("eval")
    n = len(held_out_items())
    assert page.get_by_role("cell", name=f"100.0% ({n}/{n})").is_visible()  # the tuned run
    page.get_by_label("First run").select_option(desk.runs["base"])
    page.get_by_label("Second run").select_option(desk.runs["tuned"])
    page.get_by_role("button", name="Compare").click()
    page.wait_for_url(re.compile(r".*/compare\?first=.*"))
    page.shots.take("compare")
    cards = page.locator(".side > section")
    assert cards.count() == 2
    first, second = (cards.nth(i).bounding_box() for i in range(2))
    assert abs(first["y"] - second["y"]) < 1 and first["x"] < second["x"]  # side by side
    row = page.locator("#comparison tbody tr").first
    assert row.locator("th").text_content() == "exact"
    cells = [cell.text_content() for cell in row.locator("td").all()]
    assert cells[:3] + cells[-2:] == ["0.0%", "100.0%", "+100.0 pts", str(n), str(n)], cells
    assert page.locator("#changed tbody tr").count() == n
    assert page.locator("#changed").get_by_text("fail → pass").count() == n
    page.get_by_role("link", name="tuned").click()
    page.shots.take("run")
    assert page.locator("table.items tbody tr").count() == n


def test_the_jobs_filter_is_kept_from_page_to_page(page: Any, gateway: Gateway) -> None:
    org = gateway.create_org(f"filter-{secrets.token_hex(3)}", policy={"pii": "allow"})
    _, key = gateway.create_key(org, "member")
    with OpenAI(base_url=f"{gateway.url}/v1", api_key=key, max_retries=0) as sdk:
        data = chat_jsonl(20, salt=secrets.token_hex(4))
        file_id = sdk.files.create(file=("f.jsonl", data), purpose="fine-tune").id
        created = [
            sdk.fine_tuning.jobs.create(model=BASE, training_file=file_id, suffix=suffix).id
            for suffix in ("alpha", "beta", "alpha", "beta", "alpha")
        ]
    alphas = [created[4], created[2], created[0]]  # newest first
    sign_in(page, gateway.url, key)
    page.goto(f"{gateway.url}/console/jobs?limit=2")
    page.get_by_label("Model or suffix").fill("alpha")
    page.get_by_role("button", name="Filter").click()
    page.wait_for_url(re.compile(r".*model=alpha.*"))
    page.shots.take("jobs-filtered-1")
    links = page.locator("tbody a")
    assert [links.nth(i).text_content() for i in range(links.count())] == alphas[:2]
    page.get_by_role("link", name="Next page").click()
    page.wait_for_url(re.compile(r".*after=.*"))
    page.shots.take("jobs-filtered-2")
    assert "model=alpha" in page.url
    assert page.get_by_label("Model or suffix").input_value() == "alpha"
    assert [links.nth(i).text_content() for i in range(links.count())] == alphas[2:]
    assert page.get_by_role("link", name="Next page").count() == 0


@pytest.fixture()
def phone(browser: Any, request: pytest.FixtureRequest) -> Iterator[Any]:
    context = browser.new_context(viewport=PHONE, is_mobile=True, has_touch=True)
    opened = context.new_page()
    opened.set_default_timeout(30_000)
    opened.shots = Shots(opened, request.node.name)  # type: ignore[attr-defined]
    yield opened
    context.close()


def test_the_main_pages_fit_a_phone(phone: Any, gateway: Gateway, desk: Desk) -> None:
    sign_in(phone, gateway.url, desk.key)
    compare = f"first={desk.runs['base']}&second={desk.runs['tuned']}"
    pages = {
        "overview": "/console",
        "datasets": "/console/datasets",
        "dataset": f"/console/datasets/{desk.file_id}",
        "jobs": "/console/jobs",
        "job": f"/console/jobs/{desk.job_id}",
        "usage": "/console/usage",
        "evals": "/console/evals",
        "eval": f"/console/evals/{desk.eval_id}",
        "run": f"/console/evals/{desk.eval_id}/runs/{desk.runs['tuned']}",
        "compare": f"/console/evals/{desk.eval_id}/compare?{compare}",
        "sweeps": "/console/sweeps",
        "models": "/console/models",
        "playground": "/console/models/playground",
        "audit": "/console/audit",
    }
    wide = {}
    for name, path in pages.items():
        assert phone.goto(f"{gateway.url}{path}").status == 200, path
        phone.shots.take(name)
        # A mobile browser widens its layout viewport to fit what overflows, so innerWidth is
        # checked against the phone's width too, not only against scrollWidth.
        width = phone.evaluate("() => [document.documentElement.scrollWidth, innerWidth]")
        if max(width) > PHONE["width"] or width[0] > width[1]:
            wide[name] = width
    assert wide == {}, wide
