"""The fine-tuning job state machine: one transition table, one function.

A job first waits at the gateway: for its files to reach the upstream (`waiting_files`), for
one of its org's `max_concurrent_jobs` slots (`waiting_slot`), then for the upstream to accept
it (`submitting`). Callers see all three as OpenAI's `queued`. Once the upstream holds the job,
its state mirrors what a poll or webhook observed there, until one of the terminal states.

    waiting_files --files_ready--> waiting_slot --slot_acquired--> submitting
    submitting --upstream:<status>--> validating_files | queued | running | paused | <terminal>
    validating_files, queued, running, paused --upstream:<status>--> <that status>
    running --pause--> paused --resume--> running        (upstream call: pause / resume)
    waiting_* --cancel--> cancelled                      (never touches the upstream)
    validating_files, queued, running, paused --cancel--> cancelled   (upstream call: cancel)
    waiting_*, submitting --gateway_failed--> failed

A caller that must make an upstream call (`upstream_call`) makes it first and records the new
state only once the call succeeded. Observations are facts and never raise while the upstream
holds the job; after a terminal state they are ignored (a late poll or a repeated webhook), so a
terminal state is never left. Requests that make no sense now raise `Conflict`.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Literal

from service.errors import Conflict, UpstreamError

JobStatus = Literal[
    "validating_files", "queued", "running", "paused", "succeeded", "failed", "cancelled"
]
UpstreamCall = Literal["cancel", "pause", "resume"]


class JobState(StrEnum):
    WAITING_FILES = "waiting_files"
    WAITING_SLOT = "waiting_slot"
    SUBMITTING = "submitting"
    VALIDATING_FILES = "validating_files"
    QUEUED = "queued"
    RUNNING = "running"
    PAUSED = "paused"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELLED = "cancelled"


class JobEvent(StrEnum):
    FILES_READY = "files_ready"
    SLOT_ACQUIRED = "slot_acquired"
    GATEWAY_FAILED = "gateway_failed"  # files never reached the upstream, or it refused the job
    CANCEL = "cancel"
    PAUSE = "pause"
    RESUME = "resume"
    SAW_VALIDATING_FILES = "upstream:validating_files"
    SAW_QUEUED = "upstream:queued"
    SAW_RUNNING = "upstream:running"
    SAW_PAUSED = "upstream:paused"
    SAW_SUCCEEDED = "upstream:succeeded"
    SAW_FAILED = "upstream:failed"
    SAW_CANCELLED = "upstream:cancelled"


INITIAL_STATE = JobState.WAITING_FILES
GATEWAY = frozenset({JobState.WAITING_FILES, JobState.WAITING_SLOT, JobState.SUBMITTING})
UPSTREAM = frozenset(
    {JobState.VALIDATING_FILES, JobState.QUEUED, JobState.RUNNING, JobState.PAUSED}
)
TERMINAL = frozenset({JobState.SUCCEEDED, JobState.FAILED, JobState.CANCELLED})
_SLOT_HOLDERS = UPSTREAM | {JobState.SUBMITTING}

# What each upstream status means here. OpenAI's newer `pausing` is shown as `paused`: the
# job is on its way there, and a resume sent too early is refused upstream and passed back.
_OBSERVED: dict[str, JobEvent] = {
    "validating_files": JobEvent.SAW_VALIDATING_FILES,
    "queued": JobEvent.SAW_QUEUED,
    "running": JobEvent.SAW_RUNNING,
    "pausing": JobEvent.SAW_PAUSED,
    "paused": JobEvent.SAW_PAUSED,
    "succeeded": JobEvent.SAW_SUCCEEDED,
    "failed": JobEvent.SAW_FAILED,
    "cancelled": JobEvent.SAW_CANCELLED,
}
_SEEN_STATE: dict[JobEvent, JobState] = {
    JobEvent.SAW_VALIDATING_FILES: JobState.VALIDATING_FILES,
    JobEvent.SAW_QUEUED: JobState.QUEUED,
    JobEvent.SAW_RUNNING: JobState.RUNNING,
    JobEvent.SAW_PAUSED: JobState.PAUSED,
    JobEvent.SAW_SUCCEEDED: JobState.SUCCEEDED,
    JobEvent.SAW_FAILED: JobState.FAILED,
    JobEvent.SAW_CANCELLED: JobState.CANCELLED,
}
_PUBLIC: dict[JobState, JobStatus] = {
    JobState.WAITING_FILES: "queued",
    JobState.WAITING_SLOT: "queued",
    JobState.SUBMITTING: "queued",
    JobState.VALIDATING_FILES: "validating_files",
    JobState.QUEUED: "queued",
    JobState.RUNNING: "running",
    JobState.PAUSED: "paused",
    JobState.SUCCEEDED: "succeeded",
    JobState.FAILED: "failed",
    JobState.CANCELLED: "cancelled",
}
_ACTIONS = {JobEvent.CANCEL: "cancelled", JobEvent.PAUSE: "paused", JobEvent.RESUME: "resumed"}
_ENDED = {
    JobState.SUCCEEDED: "succeeded",
    JobState.FAILED: "failed",
    JobState.CANCELLED: "been cancelled",
}

_Move = tuple[JobState, UpstreamCall | None]


def _table() -> dict[tuple[JobState, JobEvent], _Move]:
    s, e = JobState, JobEvent
    table: dict[tuple[JobState, JobEvent], _Move] = {
        (s.WAITING_FILES, e.FILES_READY): (s.WAITING_SLOT, None),
        (s.WAITING_SLOT, e.SLOT_ACQUIRED): (s.SUBMITTING, None),
        (s.RUNNING, e.PAUSE): (s.PAUSED, "pause"),
        (s.PAUSED, e.RESUME): (s.RUNNING, "resume"),
    }
    for state in GATEWAY:
        table[state, e.GATEWAY_FAILED] = (s.FAILED, None)
    for state in GATEWAY - {s.SUBMITTING}:
        table[state, e.CANCEL] = (s.CANCELLED, None)
    for state in UPSTREAM:
        table[state, e.CANCEL] = (s.CANCELLED, "cancel")
    for state in UPSTREAM | {s.SUBMITTING}:
        table.update({(state, seen): (after, None) for seen, after in _SEEN_STATE.items()})
    for state in TERMINAL:
        table.update({(state, seen): (state, None) for seen in _SEEN_STATE})
    return table


TRANSITIONS: dict[tuple[JobState, JobEvent], _Move] = _table()


def transition(current: JobState, event: JobEvent) -> JobState:
    """The state after `event`; raises `Conflict` when the event is not allowed now."""
    return _move(current, event)[0]


def upstream_call(current: JobState, event: JobEvent) -> UpstreamCall | None:
    """The upstream call to make before recording `transition(current, event)`, if any."""
    return _move(current, event)[1]


def observe(current: JobState, upstream_status: str) -> JobState:
    """The state after a poll or webhook reported `upstream_status`."""
    return transition(current, observed(upstream_status))


def observed(upstream_status: str) -> JobEvent:
    try:
        return _OBSERVED[upstream_status]
    except KeyError:
        raise UpstreamError(
            f"The upstream reported an unknown job status {upstream_status!r}.",
            code="unknown_job_status",
        ) from None


def public_status(state: JobState) -> JobStatus:
    """What the API shows: the gateway's own waiting is OpenAI's `queued`."""
    return _PUBLIC[state]


def is_terminal(state: JobState) -> bool:
    return state in TERMINAL


def holds_slot(state: JobState) -> bool:
    """Counts toward the org's `max_concurrent_jobs`; a paused job keeps its slot so that a
    resume never has to wait for one."""
    return state in _SLOT_HOLDERS


def at_gateway(state: JobState) -> bool:
    """No upstream job exists yet (or its creation is in flight)."""
    return state in GATEWAY


def _move(current: JobState, event: JobEvent) -> _Move:
    move = TRANSITIONS.get((current, event))
    if move is None:
        raise Conflict(_refusal(current, event), code="invalid_job_state")
    return move


def _refusal(current: JobState, event: JobEvent) -> str:
    shown = public_status(current)
    action = _ACTIONS.get(event)
    if current in TERMINAL:
        ended = f"This job has already {_ENDED[current]}"
        return f"{ended} and cannot be {action}." if action else f"{ended}."
    if event is JobEvent.CANCEL:
        return "This job is being submitted upstream; try cancelling again in a few seconds."
    if event is JobEvent.PAUSE:
        return f"Only a running job can be paused; this job is {shown}."
    if event is JobEvent.RESUME:
        return f"Only a paused job can be resumed; this job is {shown}."
    return f"Event {event.value} is not allowed while the job is {current.value}."
