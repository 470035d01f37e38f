"""Import direction: only store (and queue) touch redis/rq, only upstream imports openai, only
the HTTP layer (and the sandbox server) imports litestar, and the domain imports none of them."""

from __future__ import annotations

import ast
from pathlib import Path

from tests.support import ROOT

RULES = {
    "openai": ("service/upstream.py",),
    "litestar": ("service/http/", "service/sandbox/"),
    "redis": (
        "service/store/",
        "service/queue.py",
        "service/embedded.py",
        "workers/main.py",
        "workers/shutdown.py",
    ),
    "rq": ("service/queue.py", "workers/main.py", "workers/shutdown.py"),
    "fakeredis": ("service/embedded.py",),
}
DOMAIN_FORBIDDEN = {"openai", "litestar", "redis", "rq", "fakeredis", "httpx", "httpx2", "uvicorn"}


def imported_roots(path: Path) -> set[str]:
    tree = ast.parse(path.read_text())
    roots: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            roots.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            roots.add(node.module.split(".")[0])
    return roots


def source_files() -> list[Path]:
    return sorted([*ROOT.glob("service/**/*.py"), *ROOT.glob("workers/**/*.py")])


def test_only_owners_import_infrastructure() -> None:
    offenders = []
    for path in source_files():
        relative = path.relative_to(ROOT).as_posix()
        for package in imported_roots(path) & RULES.keys():
            if not relative.startswith(RULES[package]):
                offenders.append(f"{relative} imports {package}")
    assert offenders == []


def test_domain_is_pure() -> None:
    offenders = [
        f"{path.relative_to(ROOT)} imports {sorted(imported_roots(path) & DOMAIN_FORBIDDEN)}"
        for path in ROOT.glob("service/domain/**/*.py")
        if imported_roots(path) & DOMAIN_FORBIDDEN
    ]
    assert offenders == []
