"""Console sessions, pure: the idle and absolute ends, and the CSRF comparison."""

from __future__ import annotations

from service.domain.tenancy.access import OPERATOR, Principal
from service.domain.tenancy.sessions import (
    ABSOLUTE_SECONDS,
    IDLE_SECONDS,
    csrf_matches,
    new_session,
    seconds_left,
)

MEMBER = Principal(org_id="org_a", key_id="k1", role="member")


def test_a_new_session_lasts_its_idle_time_and_names_its_principal() -> None:
    session = new_session(MEMBER, now=1000.0)
    assert seconds_left(session, 1000.0) == IDLE_SECONDS
    assert session.principal == MEMBER
    assert new_session(OPERATOR, now=0).principal.is_operator


def test_use_restarts_the_idle_clock_but_never_past_the_absolute_end() -> None:
    session = new_session(MEMBER, now=0.0)
    assert seconds_left(session, IDLE_SECONDS + 1) == 0
    session.last_seen = ABSOLUTE_SECONDS - 60
    assert seconds_left(session, ABSOLUTE_SECONDS - 60) == 60
    assert seconds_left(session, ABSOLUTE_SECONDS) == 0


def test_sessions_do_not_share_ids_or_csrf_tokens() -> None:
    first, second = new_session(MEMBER, 0), new_session(MEMBER, 0)
    assert first.id != second.id and first.csrf != second.csrf and first.id != first.csrf


def test_csrf_must_be_present_and_equal() -> None:
    session = new_session(MEMBER, 0)
    assert csrf_matches(session.csrf, session.csrf)
    assert not csrf_matches(None, session.csrf)
    assert not csrf_matches("", session.csrf)
    assert not csrf_matches(session.csrf[:-1], session.csrf)
