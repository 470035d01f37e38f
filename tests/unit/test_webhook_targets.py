"""Which callback destinations are refused, and the operator's allow-list."""

from __future__ import annotations

import pytest

from service.config import Settings
from service.domain.webhooks.targets import address_problem, parse_networks, url_problem


@pytest.mark.parametrize(
    ("address", "kind"),
    [
        ("127.0.0.1", "loopback"),
        ("::1", "loopback"),
        ("::ffff:127.0.0.1", "loopback"),
        ("169.254.169.254", "link-local"),
        ("fe80::1%eth0", "link-local"),
        ("10.1.2.3", "private"),
        ("192.168.0.10", "private"),
        ("fd00::5", "private"),
        ("224.0.0.251", "multicast"),
        ("ff02::1", "multicast"),
        ("0.0.0.0", "unspecified"),
        ("100.64.0.1", "public"),  # shared address space: "not a public address"
    ],
)
def test_non_public_addresses_are_refused(address: str, kind: str) -> None:
    problem = address_problem(address, ())
    assert problem is not None and kind in problem


@pytest.mark.parametrize("address", ["8.8.8.8", "2606:4700::1111", "::ffff:8.8.8.8"])
def test_public_addresses_pass(address: str) -> None:
    assert address_problem(address, ()) is None


def test_the_operator_allows_private_networks() -> None:
    allowed = parse_networks("10.0.0.0/8, 127.0.0.1/32")
    assert address_problem("10.9.9.9", allowed) is None
    assert address_problem("::ffff:127.0.0.1", allowed) is None
    assert address_problem("127.0.0.2", allowed) is not None
    assert address_problem("169.254.169.254", allowed) is not None


def test_credentials_and_other_schemes_are_refused() -> None:
    assert "credentials" in (url_problem("https://user:pass@example.com/hook") or "")
    assert "credentials" in (url_problem("https://token@example.com/hook") or "")
    assert url_problem("ftp://example.com/hook") is not None
    assert url_problem("https://example.com/hook") is None


def test_allow_list_setting_is_checked_at_start(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TUNEGATE_WEBHOOK_ALLOW_NETWORKS", "10.0.0.0/8,fd00::/8")
    assert [str(n) for n in Settings().webhook_networks] == ["10.0.0.0/8", "fd00::/8"]
    monkeypatch.setenv("TUNEGATE_WEBHOOK_ALLOW_NETWORKS", "10.0.0.0/8,office")
    with pytest.raises(ValueError, match="office"):
        Settings()
