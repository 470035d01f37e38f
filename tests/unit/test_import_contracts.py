"""The layering as import-linter contracts (`[tool.importlinter]` in pyproject.toml): a
violation fails here naming the contract it broke and the import chain that broke it."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from tests.support import ROOT

LINT_IMPORTS = Path(sys.executable).parent / "lint-imports"


def test_every_import_contract_is_kept() -> None:
    result = subprocess.run(
        [str(LINT_IMPORTS), "--no-cache"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    report = result.stdout + result.stderr
    assert result.returncode == 0, report
    assert "0 broken" in report, report
