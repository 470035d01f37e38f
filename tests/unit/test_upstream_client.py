"""The upstream client's set-up: a worker builds one per task, so what is costly in it is built
once per process."""

from __future__ import annotations

import asyncio

from pydantic import SecretStr

from service.config import Settings
from service.upstream import Upstream, create_client, tls_context


def test_every_client_of_a_process_shares_one_tls_context() -> None:
    settings = Settings(openai_api_key=SecretStr("sk-test"))
    clients = [create_client(settings) for _ in range(2)]
    contexts = [client._client._transport._pool._ssl_context for client in clients]  # type: ignore[attr-defined]
    assert contexts[0] is contexts[1] is tls_context()
    assert tls_context().verify_mode.name == "CERT_REQUIRED"  # still verifies the upstream
    for client in clients:
        asyncio.run(client.close())


def test_the_client_keeps_the_configured_timeouts_and_retries() -> None:
    settings = Settings(
        openai_api_key=SecretStr("sk-test"),
        upstream_timeout_seconds=12,
        upstream_connect_timeout_seconds=3,
        upstream_max_retries=1,
    )

    async def check() -> None:
        async with Upstream.from_settings(settings) as upstream:
            client = upstream._client
            assert (client.timeout.read, client.timeout.connect) == (12, 3)
            assert client.max_retries == 1
            assert client._client.follow_redirects  # the SDK's own defaults kept

    asyncio.run(check())
