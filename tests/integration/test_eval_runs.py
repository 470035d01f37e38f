"""An eval run with real worker processes and a real Redis: a worker SIGKILLed mid-run is
replaced, the sweeper requeues the run once its heartbeat stops, and the run ends with every
item sampled exactly once (the sandbox's request log counts), whether its items came inline or
from a `purpose=evals` file."""

from __future__ import annotations

from collections import Counter
from typing import Any

import pytest
from openai import OpenAI

from tests.evals_data import EXACT, SOURCE, eval_lines, held_out_items, unrelated_items
from tests.integration.conftest import Deployment
from tests.support import wait_for

pytestmark = [
    pytest.mark.integration,
    pytest.mark.filterwarnings("ignore:The Evals API is deprecated:DeprecationWarning"),
]
CHAT = "/v1/chat/completions"


def asked(entry: dict[str, Any]) -> str:
    return str(entry["body"]["messages"][-1]["content"])


@pytest.mark.parametrize("given", ["file_content", "file_id"])
def test_a_run_whose_worker_is_killed_resumes_without_sampling_an_item_twice(
    deployment: Deployment, given: str
) -> None:
    key = deployment.org_with_key("member", policy={"pii": "allow"})
    items = held_out_items() + unrelated_items()
    with OpenAI(base_url=f"{deployment.url}/v1", api_key=key, max_retries=0) as sdk:
        made = sdk.evals.create(data_source_config=SOURCE, testing_criteria=[EXACT])
        with deployment.sandbox_api() as api:
            hang = {"kind": "hang", "method": "POST", "path_prefix": CHAT, "seconds": 300}
            api.post("/faults", json=hang).raise_for_status()
        source: Any = {"type": "file_content", "content": [{"item": item} for item in items]}
        if given == "file_id":
            stored = sdk.files.create(file=("items.jsonl", eval_lines(items)), purpose="evals")
            source = {"type": "file_id", "id": stored.id}
        data_source: Any = {
            "type": "completions",
            "model": "gpt-4o-mini",
            "source": source,
            "input_messages": {
                "type": "template",
                "template": [{"role": "user", "content": "{{item.question}}"}],
            },
        }
        run = sdk.evals.runs.create(made.id, data_source=data_source)
        wait_for(
            lambda: (
                len(list(sdk.evals.runs.output_items.list(run.id, eval_id=made.id)))
                == len(items) - 1
            ),
            timeout=120,
            what="every item but the held one done",
        )
        assert sdk.evals.runs.retrieve(run.id, eval_id=made.id).status == "in_progress"
        deployment.kill_worker(deployment.workers[0])
        deployment.start_worker()
        ended = wait_for(
            lambda: (
                (found := sdk.evals.runs.retrieve(run.id, eval_id=made.id)).status
                in ("completed", "failed", "canceled")
                and found
            ),
            timeout=180,
            interval=0.5,
            what="the run resumed and ended",
        )
    assert ended.status == "completed", ended
    assert ended.result_counts.total == len(items) and ended.result_counts.errored == 0
    calls = [e for e in deployment.upstream_requests(CHAT) if e["path"] == CHAT]
    answered = Counter(asked(e) for e in calls if e["fault"] is None)
    held = [asked(e) for e in calls if e["fault"] == "hang"]
    assert answered == Counter(item["question"] for item in items)  # each sampled once
    assert len(held) == 1  # the one the dead worker was waiting for, asked again after
