"""`REDIS_URL`'s Sentinel form: parsed, checked at start, and redacted in messages."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from service.config import Settings
from service.redis_url import SentinelURL, parse_sentinel_url
from service.startup import redacted_url


def test_a_sentinel_url_names_the_sentinels_the_service_and_the_database() -> None:
    parsed = parse_sentinel_url("redis+sentinel://h1:26379,h2:26380/mymaster/3")
    assert parsed == SentinelURL([("h1", 26379), ("h2", 26380)], "mymaster", 3)


def test_the_password_is_the_masters_and_the_sentinels_have_their_own() -> None:
    url = "redis+sentinel://:s%40cret@h1:26379/mymaster?sentinel_password=other"
    parsed = parse_sentinel_url(url)
    assert parsed.password == "s@cret" and parsed.sentinel_password == "other"
    assert parsed.db == 0


@pytest.mark.parametrize(
    "url",
    [
        "redis+sentinel:///mymaster/0",
        "redis+sentinel://h1:26379",
        "redis+sentinel://h1/mymaster/0",
        "redis+sentinel://h1:26379/mymaster/zero",
    ],
)
def test_a_malformed_sentinel_url_is_refused_at_start(url: str) -> None:
    with pytest.raises(ValidationError, match="redis_url"):
        Settings(redis_url=url)


def test_settings_take_a_sentinel_url() -> None:
    url = "redis+sentinel://10.0.0.1:26379,10.0.0.2:26379/mymaster/0"
    assert Settings(redis_url=url).redis_url == url


def test_a_sentinel_urls_password_is_redacted() -> None:
    url = "redis+sentinel://:hunter2@h1:26379,h2:26379/mymaster/0"
    assert redacted_url(url) == "redis+sentinel://:***@h1:26379,h2:26379/mymaster/0"
    assert redacted_url("redis://:pw@host:6379/0") == "redis://:***@host:6379/0"
