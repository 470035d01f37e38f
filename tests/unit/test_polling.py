"""Poll delays (fast, backing off, capped, jittered), picking new upstream events, and the poll
cycle's choices: which listed jobs to poll, how often to walk, in what order jobs fall due."""

from __future__ import annotations

import random
import statistics

from hypothesis import given
from hypothesis import strategies as st

from service.domain.jobs.polling import (
    CYCLE_MIN_SECONDS,
    EVENTS_EVERY_SECONDS,
    FAST_DELAY,
    JITTER,
    MAX_DELAY,
    MAX_POLL_DELAY,
    MIN_POLL_DELAY,
    TRIAL_EVENTS_EVERY_SECONDS,
    Watched,
    cycle_seconds,
    fair_order,
    listing_mark,
    needs_poll,
    new_events,
    next_poll_delay,
)


def test_first_poll_and_changes_are_fast() -> None:
    rng = random.Random(0)
    for previous in (None, 2.0, 45.0, 60.0):
        delay = next_poll_delay(previous, changed=True, rng=rng)
        assert FAST_DELAY * (1 - JITTER) <= delay <= FAST_DELAY * (1 + JITTER)
    assert next_poll_delay(None, changed=False, rng=rng) <= FAST_DELAY * (1 + JITTER)


def test_quiet_jobs_back_off_to_the_cap() -> None:
    rng = random.Random(1)
    delay = None
    delays = []
    for _ in range(30):
        delay = next_poll_delay(delay, changed=False, rng=rng)
        delays.append(delay)
    assert delays[1] > delays[0] * 1.15
    assert statistics.mean(delays[-10:]) > MAX_DELAY * 0.85
    assert max(delays) <= MAX_POLL_DELAY


def test_delays_are_spread_out() -> None:
    rng = random.Random(2)
    quiet = [next_poll_delay(60.0, changed=False, rng=rng) for _ in range(1000)]
    assert max(quiet) - min(quiet) > MAX_DELAY * JITTER
    assert len({round(delay, 3) for delay in quiet}) > 900


@given(
    st.one_of(st.none(), st.floats(min_value=0, max_value=1e9, allow_nan=False)),
    st.booleans(),
    st.integers(0, 2**32),
)
def test_delays_stay_within_bounds(previous: float | None, changed: bool, seed: int) -> None:
    delay = next_poll_delay(previous, changed, random.Random(seed))
    assert MIN_POLL_DELAY <= delay <= MAX_POLL_DELAY


def event(n: int, created_at: int | None = None) -> dict[str, object]:
    return {"id": f"ftevent-{n}", "created_at": n * 10 if created_at is None else created_at}


def test_new_events_stop_at_the_last_seen_and_come_oldest_first() -> None:
    page = [event(5), event(4), event(3), event(2), event(1)]
    found = new_events(page, "ftevent-2")
    assert [e["id"] for e in found.events] == ["ftevent-3", "ftevent-4", "ftevent-5"]
    assert found.complete
    assert found.last_id == "ftevent-5"


def test_first_poll_takes_everything() -> None:
    found = new_events([event(2), event(1)], None)
    assert [e["id"] for e in found.events] == ["ftevent-1", "ftevent-2"]
    assert found.complete


def test_nothing_new() -> None:
    found = new_events([event(3), event(2)], "ftevent-3")
    assert found.events == [] and found.complete and found.last_id is None


def test_missing_last_seen_means_more_pages_are_needed() -> None:
    found = new_events([event(9), event(8)], "ftevent-2")
    assert not found.complete
    assert len(found.events) == 2


def test_overlapping_pages_give_each_event_once() -> None:
    pages = [event(6), event(5), event(4), event(4), event(3)]
    found = new_events(pages, "ftevent-3")
    assert [e["id"] for e in found.events] == ["ftevent-4", "ftevent-5", "ftevent-6"]


def test_same_second_events_keep_api_order() -> None:
    page = [event(3, created_at=100), event(2, created_at=100), event(1, created_at=90)]
    found = new_events(page, None)
    assert [e["id"] for e in found.events] == ["ftevent-1", "ftevent-2", "ftevent-3"]


@given(st.integers(1, 40), st.data())
def test_polling_in_any_increments_stores_each_event_once(total: int, data: st.DataObject) -> None:
    history = [event(n) for n in range(1, total + 1)]  # oldest first, as created
    stored: list[str] = []
    visible = 0
    while visible < total:
        visible = data.draw(st.integers(visible + 1, total))
        page = list(reversed(history[:visible]))  # the API: newest first
        found = new_events(page, stored[-1] if stored else None)
        assert found.complete
        stored += [str(e["id"]) for e in found.events]
    assert stored == [f"ftevent-{n}" for n in range(1, total + 1)]


def test_a_listed_job_is_polled_when_what_it_says_changed() -> None:
    watched = Watched("ftjob-a", "org-a", listing_mark("queued", None, None), 100.0, 1)
    assert not needs_poll(watched, listing_mark("queued", None, None), 101.0)
    assert needs_poll(watched, listing_mark("running", None, None), 101.0)
    done = listing_mark("succeeded", "ft:gpt-4o-mini:x", 1200)
    assert needs_poll(
        Watched("ftjob-a", "org-a", listing_mark("succeeded", None, 1200), 0, 1), done, 1
    )


def test_a_running_job_is_polled_for_its_metrics_now_and_then() -> None:
    running = listing_mark("running", None, None)
    watched = Watched("ftjob-a", "org-a", running, 1000.0, 1)
    assert not needs_poll(watched, running, 1000.0 + EVENTS_EVERY_SECONDS - 1)
    assert needs_poll(watched, running, 1000.0 + EVENTS_EVERY_SECONDS)
    queued = Watched("ftjob-a", "org-a", listing_mark("queued", None, None), 0.0, 1)
    assert not needs_poll(queued, listing_mark("queued", None, None), 10 * EVENTS_EVERY_SECONDS)


def test_the_walk_slows_down_as_the_list_grows() -> None:
    assert cycle_seconds(0) == cycle_seconds(100) == CYCLE_MIN_SECONDS
    assert cycle_seconds(1000) == 5.0  # 10 pages at 2 a second
    assert cycle_seconds(10_000) == 50.0


def test_one_orgs_many_changes_fall_due_after_every_other_orgs_first() -> None:
    many = [Watched(f"ftjob-a{i}", "org-a", "", 0.0, 1) for i in range(1000)]
    one = Watched("ftjob-b", "org-b", "", 0.0, 1)
    order = dict(fair_order([*many, one]))
    assert order["ftjob-b"] == 0.0
    assert sum(1 for offset in order.values() if offset <= order["ftjob-b"]) == 2
    assert order["ftjob-a999"] > order["ftjob-a1"] > order["ftjob-a0"]


def test_a_sweeps_running_trial_is_polled_for_its_metrics_every_cycle() -> None:
    running = listing_mark("running", None, None)
    trial = Watched("ftjob-t", "org-a", running, 1000.0, 1, TRIAL_EVENTS_EVERY_SECONDS)
    assert needs_poll(trial, running, 1000.0 + TRIAL_EVENTS_EVERY_SECONDS)
