"""The PII scan's cost: bounded per request, and large bodies scanned off the event loop."""

from __future__ import annotations

import asyncio
import itertools

from service.config import Settings
from service.domain.inference.request import check_body, prepare, scan_json
from service.domain.pii import detect as pii
from service.domain.tenancy.policy import Policy
from service.errors import PayloadTooLarge
from service.operations.inference.proxy import scan_budget, scan_request

WORST = "call 415 555 2671 now "  # one valid number every 22 characters


def distinct_phones(size: int) -> str:
    """Dense, all-different valid phone numbers: no window repeats, so no cache helps."""
    parts, n = [], 0
    while sum(map(len, parts)) < size:
        parts.append(f"call 415 555 {n % 10_000:04d} or 212 {200 + n // 10_000:03d} 0100 ")
        n += 1
    return "".join(parts)[:size]


def test_a_ten_megabyte_worst_case_stops_at_the_budget_not_the_end() -> None:
    settings = Settings()
    text = (WORST * (10 * 1024 * 1024 // len(WORST)))[: 10 * 1024 * 1024 - 1024]
    budget = scan_budget(settings)
    try:
        scan_json({"messages": [{"role": "user", "content": text}]}, Policy(), budget, param="m")
    except PayloadTooLarge as refused:
        assert refused.code == "pii_scan_budget_exceeded"
    else:
        raise AssertionError("a 10 MiB body of phone numbers was scanned to the end")
    assert budget.findings == settings.pii_max_findings + 1  # stopped at the limit
    assert budget.chars < len(text) * 2  # and never scanned a second pass


def test_distinct_numbers_spend_the_candidate_budget() -> None:
    budget = pii.ScanBudget(max_chars=10**9, max_findings=10**9, max_candidates=100)
    try:
        pii.detect(distinct_phones(200_000), budget=budget)
    except pii.ScanBudgetExceeded as over:
        assert over.what == "phone-number candidates"
    else:
        raise AssertionError("thousands of distinct number windows cost no budget")


def test_overlap_resolution_keeps_precedence_in_one_sweep() -> None:
    # A card-shaped number inside an e-mail is the e-mail; spans never overlap.
    text = "4111111111111111@example.com and 4111 1111 1111 1111 " * 500
    findings = pii.detect(text)
    assert [f.kind for f in findings[:2]] == ["EMAIL", "CREDIT_CARD"]
    assert all(a.end <= b.start for a, b in itertools.pairwise(findings))


def _prepared(size: int):  # type: ignore[no-untyped-def]
    body = check_body({"model": "m", "messages": [{"role": "user", "content": "x" * size}]}, "chat")
    return prepare(body, "chat", Policy(), model="m", org_id="o", user_key=b"k")


async def _ticks_while_scanning(settings: Settings, size: int) -> int:
    """How often another task ran while `scan_request` scanned a body of `size` bytes."""
    ticks = 0

    async def tick() -> None:
        nonlocal ticks
        while True:
            ticks += 1
            await asyncio.sleep(0)

    ticker = asyncio.create_task(tick())
    await asyncio.sleep(0)
    before = ticks
    await scan_request(settings, _prepared(size), Policy(), size)
    ticker.cancel()
    return ticks - before


def test_large_bodies_are_scanned_off_the_event_loop() -> None:
    settings = Settings(pii_thread_bytes=1024)
    # Scanned inline, the coroutine never yields: no other task can run meanwhile.
    assert asyncio.run(_ticks_while_scanning(settings, 512)) == 0
    # Scanned in a worker thread, the loop keeps running other tasks.
    assert asyncio.run(_ticks_while_scanning(settings, 200_000)) > 0
