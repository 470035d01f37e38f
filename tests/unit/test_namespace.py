"""`TUNEGATE_REDIS_NAMESPACE`: one Redis, several deployments, no shared key, queue or job id."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from pydantic import ValidationError

from service.config import Settings
from service.queue import queue_name
from service.store import keys


@pytest.fixture()
def staging() -> Iterator[None]:
    keys.use_namespace("staging")
    try:
        yield
    finally:
        keys.use_namespace("")


def test_default_keys_and_queue_are_unprefixed() -> None:
    assert keys.org("org_1") == "tg:org:org_1"
    assert queue_name() == "tunegate"


def test_namespace_moves_every_key_and_the_queue(staging: None) -> None:
    built = [keys.org("org_1"), keys.orgs(), keys.workers(), keys.file("file_1"), keys.sandbox()]
    assert all(key.startswith("tg:staging:") for key in built)
    assert queue_name("staging") == "tunegate-staging"


@pytest.mark.parametrize("bad", ["has space", "a:b", "x" * 49, "ünï"])
def test_bad_namespace_is_refused_naming_the_variable(bad: str) -> None:
    with pytest.raises(ValidationError, match="TUNEGATE_REDIS_NAMESPACE"):
        Settings.model_validate({"TUNEGATE_REDIS_NAMESPACE": bad})
