"""The front door: `/` points to the docs, and `/docs` works with no network beyond tunegate."""

from __future__ import annotations

import re

from service import __version__
from service.http.controllers.docs import ASSETS_DIR
from tests.api.conftest import Gateway


def test_root_points_to_the_docs_the_api_and_health(gateway: Gateway) -> None:
    with gateway.client() as client:
        body = client.get("/").json()
        assert body["name"] == "tunegate"
        assert body["version"] == __version__
        assert body["links"]["api"] == "/v1"
        for name in ("docs", "openapi", "health"):
            assert client.get(body["links"][name]).status_code == 200


def test_docs_load_only_assets_tunegate_serves(gateway: Gateway) -> None:
    with gateway.client() as client:
        page = client.get("/docs")
        assert page.status_code == 200
        assert page.headers["content-type"].startswith("text/html")
        urls = re.findall(r'<(?:script|link)[^>]*(?:src|href)="([^"]*)"', page.text)
        assert len(urls) == 3
        for url in urls:
            assert url.startswith("/docs/"), url
            asset = client.get(url)
            assert asset.status_code == 200
            assert asset.content == (ASSETS_DIR / url.removeprefix("/docs/")).read_bytes()
    assert "Apache License" in (ASSETS_DIR / "LICENSE").read_text()
    assert "orgs.policy.update" in page.text  # the document is in the page
