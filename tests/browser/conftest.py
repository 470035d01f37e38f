"""Browser tests: a whole gateway (sandbox upstream over real HTTP) driven by Debian's headless
Chromium through Playwright. No browser is downloaded: without `/usr/bin/chromium` the tests skip
locally and fail under CI=true. Every page a test visits is saved under `screenshots/`."""

from __future__ import annotations

import os
import re
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from service.logging import configure_logging
from service.sandbox import SandboxConfig, start_in_thread
from tests.api.conftest import (
    ADMIN_TOKEN,
    GATEWAY_RUN,
    UPSTREAM_KEY,
    Gateway,
    gateway_settings,
    running_gateway,
)

CHROMIUM = os.environ.get("TUNEGATE_CHROMIUM", "/usr/bin/chromium")
SCREENSHOTS = Path(__file__).resolve().parent / "screenshots"
ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
# Long enough that the job page is seen running and its chart redrawn while it does.
WATCHABLE_SANDBOX = SandboxConfig(
    api_key=UPSTREAM_KEY,
    org_name="browser-org",
    validating_seconds=0.1,
    queued_seconds=0.1,
    step_seconds=0.4,
    total_steps=16,
)


def _missing() -> str | None:
    if not Path(CHROMIUM).exists():
        return f"no Chromium at {CHROMIUM} (apt-get install chromium)"
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        return "the playwright package is not installed"
    return None


# Module scope, not session: Playwright's sync API keeps an event loop running in the thread
# while it is open, and under `--dist loadfile` the next module in this process may call
# `asyncio.run`, which a running loop refuses.
@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    reason = _missing()
    if reason:
        if os.environ.get("CI") == "true":
            pytest.fail(f"browser tests need Chromium under CI: {reason}")
        pytest.skip(reason)
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=CHROMIUM, args=ARGS, headless=True)
        yield launched
        launched.close()


@pytest.fixture(scope="module")
def gateway(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Gateway]:
    configure_logging("json", "info")
    sandbox = start_in_thread(WATCHABLE_SANDBOX)
    settings = gateway_settings(tmp_path_factory.mktemp("data"), sandbox.base_url_for(GATEWAY_RUN))
    try:
        with running_gateway(settings, sandbox) as running:
            yield running
    finally:
        sandbox.stop()


@pytest.fixture()
def page(browser: Any, request: pytest.FixtureRequest) -> Iterator[Any]:
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    opened = context.new_page()
    opened.set_default_timeout(30_000)
    opened.shots = Shots(opened, request.node.name)  # type: ignore[attr-defined]
    yield opened
    context.close()


class Shots:
    """Saves a screenshot of the page as it is now, numbered in the order the test took them."""

    def __init__(self, page: Any, test_name: str) -> None:
        self.page, self.count = page, 0
        self.folder = SCREENSHOTS / re.sub(r"[^\w.-]+", "_", test_name)
        shutil.rmtree(self.folder, ignore_errors=True)
        self.folder.mkdir(parents=True)

    def take(self, what: str) -> None:
        self.count += 1
        self.page.screenshot(path=str(self.folder / f"{self.count:02d}-{what}.png"), full_page=True)


def sign_in(page: Any, url: str, secret: str) -> None:
    page.goto(f"{url}/console/sign-in")
    page.shots.take("sign-in")
    page.get_by_label("Key or operator token").fill(secret)
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url(re.compile(r".*/console(/orgs)?$"))


def admin_token() -> str:
    return ADMIN_TOKEN
