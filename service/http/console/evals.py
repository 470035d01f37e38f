"""The console's evals: the list, an eval's criteria and runs (status, counts, pass rate per
criterion), a run's output items (sample and grades), and two runs side by side with the
`GET /v1/evals/{id}/compare` operation's differences and intervals. Same operations and role
(jobs) as `/v1/evals`; another org's eval or run is the 404 page."""

from __future__ import annotations

from typing import Annotated, Any

from litestar import Controller, Request, get
from litestar.params import FromPath, QueryParameter
from litestar.response import Template

from service.domain.tenancy.access import Capability
from service.http.auth import context_of, principal_of
from service.http.console.session import (
    EXCEPTION_HANDLERS,
    PageNo,
    page,
    paged,
    require_session,
)
from service.http.path_ids import require_wellformed_ids
from service.operations.evals import evals
from service.operations.evals import runs as eval_runs

PAGE_SIZE = 20
_JOBS = {"org": True, "capability": Capability.JOBS, "audit": "never"}
Text = Annotated[str | None, QueryParameter()]


def pass_rates(run: dict[str, Any]) -> list[dict[str, Any]]:
    """Each criterion's passed and failed items and its pass rate (None before any grade)."""
    rows = []
    for result in run["per_testing_criteria_results"]:
        graded = result["passed"] + result["failed"]
        rate = result["passed"] / graded if graded else None
        rows.append({"name": result["testing_criteria"], **result, "rate": rate})
    return rows


def sample_text(item: dict[str, Any]) -> str:
    output = (item.get("sample") or {}).get("output") or []
    return "\n".join(str(message.get("content") or "") for message in output)


def changed_items(
    rows: list[dict[str, Any]], outputs: list[list[dict[str, Any]]]
) -> list[dict[str, Any]]:
    """Each item whose verdict changed on a criterion, with its input and both runs' answers."""
    by_index = [{item["datasource_item_id"]: item for item in items} for items in outputs]
    changed = []
    for row in rows:
        for change in row["changed_items"]:
            found = [items.get(change["item"]) for items in by_index]
            item = next((i["datasource_item"] for i in found if i), {})
            texts = [sample_text(i) if i else "" for i in found]
            changed.append(
                {**change, "criterion": row["testing_criteria"], "item_data": item, "texts": texts}
            )
    return changed


def _run_view(run: Any) -> dict[str, Any]:
    shown = eval_runs.run_json(run)
    return {**shown, "rates": pass_rates(shown)}


class EvalPages(Controller):
    path = "/console/evals"
    include_in_schema = False
    guards = [require_session, require_wellformed_ids]
    exception_handlers = EXCEPTION_HANDLERS

    @get("/", opt=_JOBS)
    async def evals(self, request: Request[Any, Any, Any], after: Text = None) -> Template:
        ctx, principal = context_of(request), principal_of(request)
        found, more = await evals.list_evals(
            ctx, principal, after=after, limit=PAGE_SIZE, order="desc"
        )
        next_after = found[-1].id if more and found else None
        shown = [evals.eval_json(record) for record in found]
        return page(request, "evals.html", evals=shown, next_after=next_after)

    @get("/{eval_id:str}", opt=_JOBS)
    async def eval_page(
        self, request: Request[Any, Any, Any], eval_id: FromPath[str], after: Text = None
    ) -> Template:
        ctx, principal = context_of(request), principal_of(request)
        record = evals.eval_json(await evals.get_eval(ctx, principal, eval_id))
        found, more = await eval_runs.list_runs(
            ctx, principal, eval_id, after=after, limit=PAGE_SIZE, order="desc"
        )
        next_after = found[-1].id if more and found else None
        shown = [_run_view(run) for run in found]
        return page(request, "eval.html", eval=record, runs=shown, next_after=next_after)

    @get("/{eval_id:str}/runs/{run_id:str}", opt=_JOBS)
    async def run_page(
        self,
        request: Request[Any, Any, Any],
        eval_id: FromPath[str],
        run_id: FromPath[str],
        page_no: PageNo = None,
    ) -> Template:
        ctx, principal = context_of(request), principal_of(request)
        record = evals.eval_json(await evals.get_eval(ctx, principal, eval_id))
        run = _run_view(await eval_runs.get_run(ctx, principal, eval_id, run_id))
        items = await eval_runs.output_items(ctx, principal, eval_id, run_id)
        shown = paged(items, page_no, PAGE_SIZE)
        shown["items"] = [{**item, "text": sample_text(item)} for item in shown["items"]]
        return page(request, "eval_run.html", eval=record, run=run, items=shown)

    @get("/{eval_id:str}/compare", opt=_JOBS)
    async def compare(
        self,
        request: Request[Any, Any, Any],
        eval_id: FromPath[str],
        first: Text = None,
        second: Text = None,
        page_no: PageNo = None,
    ) -> Template:
        ctx, principal = context_of(request), principal_of(request)
        pair = f"{first or ''},{second or ''}"
        compared = await eval_runs.compare_runs(ctx, principal, eval_id, pair)
        record = evals.eval_json(await evals.get_eval(ctx, principal, eval_id))
        both = [await eval_runs.get_run(ctx, principal, eval_id, r) for r in compared["runs"]]
        outputs = [await eval_runs.output_items(ctx, principal, eval_id, r.id) for r in both]
        changed = changed_items(compared["testing_criteria"], outputs)
        return page(
            request,
            "eval_compare.html",
            eval=record,
            runs=[_run_view(run) for run in both],
            comparison=compared,
            changed=paged(changed, page_no, PAGE_SIZE),
            query={"first": first, "second": second},
        )
