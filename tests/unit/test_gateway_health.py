"""How the health page names the upstream: which one, and its URL without anything secret."""

from __future__ import annotations

from pydantic import SecretStr

from service.config import Settings
from service.operations.context import Context
from service.operations.health import SANDBOX, upstream_name, upstream_url
from service.store import Store


def context(base_url: str, **extras: object) -> Context:
    settings = Settings(
        redis_url="redis://127.0.0.1:1/0",
        openai_api_key=SecretStr("sk-test"),
        openai_base_url=base_url,
    )
    return Context(settings=settings, store=Store(settings.redis_url or ""), extras=dict(extras))


def test_the_upstream_url_loses_user_info_query_and_fragment() -> None:
    assert upstream_url("https://user:sk-secret@proxy.internal:8443/v1?key=sk-x#f") == (
        "https://proxy.internal:8443/v1"
    )
    assert upstream_url("https://api.openai.com/v1") == "https://api.openai.com/v1"
    assert upstream_url("http://[::1]:9000/v1") == "http://[::1]:9000/v1"


def test_the_upstream_is_named_sandbox_openai_or_compatible() -> None:
    assert upstream_name(context("https://api.openai.com/v1")) == "OpenAI"
    assert upstream_name(context("http://127.0.0.1:9/v1", **{SANDBOX: True})) == (
        "the embedded sandbox"
    )
    assert upstream_name(context("https://llm.internal/v1")) == "an OpenAI-compatible upstream"
