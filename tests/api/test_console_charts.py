"""The console draws the same charts as the API: a dataset's report page carries its token chart
with the report's own figures, and a job's page chart is the API's `metrics.svg`."""

from __future__ import annotations

import re

from tests.api.conftest import Gateway
from tests.api.console_helpers import sign_in
from tests.api.jobs_helpers import tenant, upload


def test_a_reports_page_draws_its_token_counts(gateway: Gateway) -> None:
    with tenant(gateway) as org:
        file_id = upload(org.sdk, examples=20)
        with gateway.client(org.key) as http:
            tokens = http.get(f"/v1/files/{file_id}/report").json()["tokens"]
        with sign_in(gateway, org.key) as client:
            html = client.get(f"/console/datasets/{file_id}").text
    svg = re.search(r"<svg.*?</svg>", html, re.S)
    assert svg is not None, "the report page has no chart"
    median = tokens["per_example"]["median"]
    assert f"median {median:,.0f}" in svg.group(0)
    assert f"training limit {tokens['max_example_tokens']:,} tokens" in svg.group(0)
    assert "<script" not in svg.group(0)


def test_the_job_pages_chart_is_the_apis(gateway: Gateway) -> None:
    with tenant(gateway) as org:
        job = org.sdk.fine_tuning.jobs.create(
            model="gpt-4o-mini", training_file=upload(org.sdk), suffix="charts"
        )
        with sign_in(gateway, org.key) as client:
            console = client.get(f"/console/jobs/{job.id}/chart.svg").text
    assert "gpt-4o-mini" in console and "· charts — " in console
    assert console.lstrip().startswith("<svg")
