"""Checking a `webhook_url` against `domain.webhook_targets`: when a policy is written, and
before every delivery attempt.

The host's name is resolved and every address it resolves to must pass; a delivery then
connects to the address that was checked (the URL's host stays in the `Host` header and, for
https, in TLS's server name and certificate check), so a name that resolves to a public address
at the check and to a private one at the connection (DNS rebinding) reaches nothing it should
not.
"""

from __future__ import annotations

import socket
from dataclasses import dataclass
from urllib.parse import urlsplit

import anyio

from service.domain.tenancy.policy import Policy
from service.domain.webhooks.targets import Network, address_problem, url_problem
from service.errors import InvalidRequest

ALLOW_HINT = "the operator may allow a network with TUNEGATE_WEBHOOK_ALLOW_NETWORKS"


class DestinationRefused(Exception):
    """The callback may not go there; `lasting` unless the name merely failed to resolve."""

    def __init__(self, message: str, *, lasting: bool = True) -> None:
        super().__init__(message)
        self.message = message
        self.lasting = lasting


@dataclass(frozen=True)
class Destination:
    host: str
    address: str


async def check_destination(url: str, allowed: tuple[Network, ...]) -> Destination:
    """The address to connect to for `url`; DestinationRefused when it may not be reached."""
    problem = url_problem(url)
    if problem is not None:
        raise DestinationRefused(problem)
    parts = urlsplit(url)
    host = parts.hostname or ""
    port = parts.port or (443 if parts.scheme == "https" else 80)
    try:
        found = await anyio.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except OSError:
        raise DestinationRefused(f"its host '{host}' does not resolve", lasting=False) from None
    addresses = list(dict.fromkeys(str(info[4][0]) for info in found))
    for address in addresses:
        refusal = address_problem(address, allowed)
        if refusal is not None:
            raise DestinationRefused(f"'{host}' resolves to {refusal}")
    return Destination(host=host, address=addresses[0])


async def check_policy(policy: Policy, allowed: tuple[Network, ...]) -> None:
    """Refuse (400 naming `webhook_url`) a policy whose callbacks could not be delivered."""
    if policy.webhook_url is None:
        return
    try:
        await check_destination(str(policy.webhook_url), allowed)
    except DestinationRefused as refused:
        raise InvalidRequest(
            f"webhook_url {refused.message}: callbacks go to public destinations only "
            f"({ALLOW_HINT}).",
            param="webhook_url",
            code="invalid_webhook_url",
        ) from None
