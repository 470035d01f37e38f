"""The job state machine: the happy path, cancel/pause/resume, observations, terminal states."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from service.domain.jobs.states import (
    INITIAL_STATE,
    TERMINAL,
    TRANSITIONS,
    JobEvent,
    JobState,
    at_gateway,
    holds_slot,
    is_terminal,
    observe,
    observed,
    public_status,
    transition,
    upstream_call,
)
from service.errors import Conflict, UpstreamError

S, E = JobState, JobEvent


def run(*events: JobEvent, start: JobState = INITIAL_STATE) -> JobState:
    state = start
    for event in events:
        state = transition(state, event)
    return state


def test_happy_path_from_creation_to_success() -> None:
    state = run(E.FILES_READY, E.SLOT_ACQUIRED)
    assert state is S.SUBMITTING
    for seen, expected in [
        ("validating_files", S.VALIDATING_FILES),
        ("queued", S.QUEUED),
        ("running", S.RUNNING),
        ("succeeded", S.SUCCEEDED),
    ]:
        state = observe(state, seen)
        assert state is expected
    assert is_terminal(state)


def test_gateway_phases_all_show_as_queued() -> None:
    assert INITIAL_STATE is S.WAITING_FILES
    for state in (S.WAITING_FILES, S.WAITING_SLOT, S.SUBMITTING):
        assert public_status(state) == "queued"
        assert at_gateway(state)
    assert public_status(S.VALIDATING_FILES) == "validating_files"
    assert public_status(S.PAUSED) == "paused"
    assert not at_gateway(S.RUNNING)


def test_polls_may_skip_statuses() -> None:
    assert observe(S.SUBMITTING, "succeeded") is S.SUCCEEDED
    assert observe(S.VALIDATING_FILES, "running") is S.RUNNING
    assert observe(S.RUNNING, "running") is S.RUNNING


@pytest.mark.parametrize("state", [S.WAITING_FILES, S.WAITING_SLOT])
def test_cancel_while_at_the_gateway_never_calls_upstream(state: JobState) -> None:
    assert transition(state, E.CANCEL) is S.CANCELLED
    assert upstream_call(state, E.CANCEL) is None


@pytest.mark.parametrize("state", [S.VALIDATING_FILES, S.QUEUED, S.RUNNING, S.PAUSED])
def test_cancel_while_upstream_calls_upstream(state: JobState) -> None:
    assert transition(state, E.CANCEL) is S.CANCELLED
    assert upstream_call(state, E.CANCEL) == "cancel"


def test_cancel_while_submitting_asks_to_retry() -> None:
    with pytest.raises(Conflict, match="being submitted"):
        transition(S.SUBMITTING, E.CANCEL)


@pytest.mark.parametrize(
    ("state", "verb"),
    [(S.SUCCEEDED, "succeeded"), (S.FAILED, "failed"), (S.CANCELLED, "been cancelled")],
)
def test_cancel_after_the_end_is_a_conflict(state: JobState, verb: str) -> None:
    with pytest.raises(Conflict) as raised:
        transition(state, E.CANCEL)
    assert raised.value.message == f"This job has already {verb} and cannot be cancelled."
    assert raised.value.code == "invalid_job_state"


def test_pause_and_resume_go_through_upstream() -> None:
    assert transition(S.RUNNING, E.PAUSE) is S.PAUSED
    assert upstream_call(S.RUNNING, E.PAUSE) == "pause"
    assert transition(S.PAUSED, E.RESUME) is S.RUNNING
    assert upstream_call(S.PAUSED, E.RESUME) == "resume"


@pytest.mark.parametrize("state", [S.WAITING_FILES, S.SUBMITTING, S.QUEUED, S.PAUSED])
def test_pause_needs_a_running_job(state: JobState) -> None:
    with pytest.raises(Conflict, match="Only a running job can be paused; this job is"):
        transition(state, E.PAUSE)


@pytest.mark.parametrize("state", [S.WAITING_SLOT, S.QUEUED, S.RUNNING, S.SUCCEEDED])
def test_resume_needs_a_paused_job(state: JobState) -> None:
    with pytest.raises(Conflict):
        transition(state, E.RESUME)
    if not is_terminal(state):
        with pytest.raises(Conflict, match="Only a paused job can be resumed"):
            transition(state, E.RESUME)


def test_upstream_pausing_shows_as_paused() -> None:
    assert observe(S.RUNNING, "pausing") is S.PAUSED
    assert observe(S.PAUSED, "running") is S.RUNNING


def test_gateway_failure_ends_the_job_before_upstream() -> None:
    for state in (S.WAITING_FILES, S.WAITING_SLOT, S.SUBMITTING):
        assert transition(state, E.GATEWAY_FAILED) is S.FAILED
    with pytest.raises(Conflict):
        transition(S.RUNNING, E.GATEWAY_FAILED)


def test_observations_before_submission_are_conflicts() -> None:
    with pytest.raises(Conflict):
        observe(S.WAITING_SLOT, "running")


def test_late_observations_after_the_end_are_ignored() -> None:
    assert observe(S.CANCELLED, "running") is S.CANCELLED
    assert observe(S.SUCCEEDED, "succeeded") is S.SUCCEEDED


def test_unknown_upstream_status_is_an_upstream_error() -> None:
    with pytest.raises(UpstreamError, match="unknown job status"):
        observed("exploded")


def test_slots_are_held_from_submission_until_the_end() -> None:
    holding = {state for state in JobState if holds_slot(state)}
    assert holding == {S.SUBMITTING, S.VALIDATING_FILES, S.QUEUED, S.RUNNING, S.PAUSED}


def test_only_upstream_states_make_upstream_calls() -> None:
    for (state, _event), (_after, call) in TRANSITIONS.items():
        if call is not None:
            assert state in {S.VALIDATING_FILES, S.QUEUED, S.RUNNING, S.PAUSED}


@given(st.sampled_from(sorted(TERMINAL)), st.lists(st.sampled_from(list(JobEvent))))
def test_a_terminal_state_is_never_left(start: JobState, events: list[JobEvent]) -> None:
    state = start
    for event in events:
        try:
            state = transition(state, event)
        except Conflict:
            continue
        assert state is start


@settings(max_examples=60)
@given(st.lists(st.sampled_from(list(JobEvent)), max_size=20))
def test_any_event_sequence_gives_a_state_or_a_conflict(events: list[JobEvent]) -> None:
    state = INITIAL_STATE
    for event in events:
        try:
            after = transition(state, event)
        except Conflict as error:
            assert error.message
            continue
        assert (state, event) in TRANSITIONS
        if is_terminal(state):
            assert after is state
        state = after
