"""The README's Responses, embeddings and moderations examples run as written, offline, against
a gateway whose upstream is the sandbox."""

from __future__ import annotations

import re

from tests.api.proxy_helpers import Proxy, proxy, upstream
from tests.support import ROOT

__all__ = ["proxy", "upstream"]


def examples() -> list[str]:
    readme = (ROOT / "README.md").read_text()
    section = readme[readme.index("## Responses API") : readme.index("## The sandbox upstream")]
    return re.findall(r"```python\n(.*?)```", section, re.DOTALL)


def test_the_readme_examples_run(upstream: Proxy) -> None:
    _, key = upstream.org({"force_store_false": False})
    with upstream.http(key) as http:
        alias = http.put("/v1/aliases/support-bot", json={"model": "gpt-4o-mini"})
        assert alias.status_code == 200, alias.text
    blocks = examples()
    assert len(blocks) == 3
    with upstream.sdk(key) as client:
        for block in blocks:
            exec(block, {"client": client})
    paths = {(e["method"], e["path"].split("/")[2]) for e in upstream.upstream_requests()}
    assert {("POST", "responses"), ("POST", "embeddings"), ("POST", "moderations")} <= paths
