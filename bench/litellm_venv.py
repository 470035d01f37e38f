"""Build the throwaway LiteLLM proxy virtualenv the proxy benchmark compares against.

LiteLLM 1.109.1's `[proxy]` extra pins `certifi` and `litellm-proxy-extras` /
`litellm-enterprise` releases the package index here lacks. This installs the wheel without
dependencies, then its base requirements and its `[proxy]` extra with `certifi` unpinned and
without those two packages (database migrations and enterprise hooks, unused without a
database).

    python3 bench/litellm_venv.py [/tmp/litellm-venv]
"""

from __future__ import annotations

import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

VERSION = "1.109.1"
DROPPED = {"litellm-proxy-extras", "litellm-enterprise"}
UNPINNED = {"certifi"}


def requirements(metadata: str) -> list[str]:
    from packaging.requirements import Requirement

    kept: list[str] = []
    for line in metadata.splitlines():
        if not line.startswith("Requires-Dist: "):
            continue
        requirement = Requirement(line.removeprefix("Requires-Dist: "))
        marker = requirement.marker
        if marker is not None and not any(
            marker.evaluate({"extra": extra}) for extra in ("", "proxy")
        ):
            continue
        if requirement.name in DROPPED:
            continue
        if requirement.name in UNPINNED:
            requirement.specifier = type(requirement.specifier)("")
        text = str(requirement).split(";")[0].strip()
        kept.append(text)
    return sorted(set(kept))


def main() -> int:
    venv = Path(sys.argv[1] if len(sys.argv) > 1 else "/tmp/litellm-venv")
    pip = [str(venv / "bin" / "python"), "-m", "pip", "install", "-q"]
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    subprocess.run([*pip, "packaging"], check=True)
    with tempfile.TemporaryDirectory() as folder:
        subprocess.run(
            [*pip[:-2], "download", "-q", "--no-deps", f"litellm=={VERSION}", "-d", folder],
            check=True,
        )
        wheel = next(Path(folder).glob("litellm-*.whl"))
        with zipfile.ZipFile(wheel) as archive:
            metadata = archive.read(f"litellm-{VERSION}.dist-info/METADATA").decode()
        subprocess.run([*pip, "--no-deps", str(wheel)], check=True)
    subprocess.run([*pip, *requirements(metadata)], check=True)
    print(f"LiteLLM {VERSION} proxy ready in {venv} ({venv}/bin/litellm)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
