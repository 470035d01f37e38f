"""Signing in to the console over plain HTTP (no browser): a client holding the session cookie."""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager

import httpx

from tests.api.conftest import Gateway

CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')


def csrf_of(html: str) -> str:
    match = CSRF.search(html)
    assert match, "the page has no CSRF token"
    return match.group(1)


@contextmanager
def sign_in(gateway: Gateway, secret: str) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=gateway.url, timeout=30, follow_redirects=False) as client:
        form = client.get("/console/sign-in")
        assert form.status_code == 200, form.text
        answer = client.post(
            "/console/sign-in", data={"key": secret, "csrf_token": csrf_of(form.text)}
        )
        assert answer.status_code == 303, answer.text
        yield client


def session_csrf(client: httpx.Client, page: str = "/console/jobs") -> str:
    return csrf_of(client.get(page).text)
