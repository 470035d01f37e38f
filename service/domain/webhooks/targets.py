"""Where the org's callbacks may go: a public address, unless the operator allows its network.

A `webhook_url` is refused when it carries credentials, or when its host is (or resolves to) a
loopback, link-local, private, multicast, unspecified or otherwise non-public address (cloud
metadata at 169.254.169.254, a Redis on `[::1]:6379`, the gateway's own admin API) that no
network in `TUNEGATE_WEBHOOK_ALLOW_NETWORKS` holds. IPv4 addresses written as IPv6
(`::ffff:127.0.0.1`) are judged as the IPv4 address they are.
"""

from __future__ import annotations

from ipaddress import IPv4Address, IPv4Network, IPv6Address, IPv6Network, ip_address, ip_network
from urllib.parse import urlsplit

Network = IPv4Network | IPv6Network
Address = IPv4Address | IPv6Address
_KINDS = (
    ("a loopback", "is_loopback"),
    ("a link-local", "is_link_local"),
    ("a multicast", "is_multicast"),
    ("an unspecified", "is_unspecified"),
    ("a private", "is_private"),
    ("a reserved", "is_reserved"),
)


def parse_networks(text: str) -> tuple[Network, ...]:
    """Comma-separated CIDRs (`10.0.0.0/8, fd00::/8`); ValueError naming a bad one."""
    networks = []
    for part in (item.strip() for item in text.split(",")):
        if part:
            try:
                networks.append(ip_network(part, strict=False))
            except ValueError:
                raise ValueError(f"'{part}' is not a network in CIDR form") from None
    return tuple(networks)


def url_problem(url: str) -> str | None:
    """What makes the URL itself unusable, if anything."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return "must be an http:// or https:// URL with a host"
    if parts.username is not None or parts.password is not None:
        return "must not carry credentials (user:password@)"
    return None


def address_problem(address: str, allowed: tuple[Network, ...]) -> str | None:
    """Why a callback may not go to this address, or None when it may."""
    ip: Address = ip_address(address.split("%", 1)[0])
    if isinstance(ip, IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    if any(ip in network for network in allowed if network.version == ip.version):
        return None
    for kind, test in _KINDS:
        if getattr(ip, test):
            return f"{ip} is {kind} address"
    return None if ip.is_global else f"{ip} is not a public address"
