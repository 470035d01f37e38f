"""CPU an idle embedded `tunegate serve` uses: start it (no REDIS_URL, no OPENAI_API_KEY, as
the README's run command does), wait for `/ready`, then read the process's user+system CPU
ticks from /proc/<pid>/stat at the start and the end of a quiet window and print the share of
one core it used.

    .venv/bin/python bench/idle_bench.py              # 60 s window
    .venv/bin/python bench/idle_bench.py --seconds 20
"""

from __future__ import annotations

import argparse
import os
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
TICKS_PER_SECOND = os.sysconf("SC_CLK_TCK")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def cpu_seconds(pid: int) -> float:
    """User + system CPU of the process (all its threads) so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICKS_PER_SECOND  # utime, stime


def ready(url: str) -> bool:
    try:
        with urllib.request.urlopen(f"{url}/ready", timeout=2) as response:
            return bool(response.status == 200)
    except OSError:
        return False


def start_serve(port: int, data_dir: str, log_path: Path) -> subprocess.Popen[bytes]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("TUNEGATE_", "OPENAI_"))}
    env.pop("REDIS_URL", None)
    env.update(
        {"TUNEGATE_PORT": str(port), "TUNEGATE_DATA_DIR": data_dir, "TUNEGATE_LOG_FORMAT": "json"}
    )
    with log_path.open("wb") as log:
        return subprocess.Popen(
            [sys.executable, "-m", "service.cli", "serve"],
            cwd=ROOT,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--settle", type=float, default=5.0, help="seconds after /ready")
    args = parser.parse_args()
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    with tempfile.TemporaryDirectory() as folder:
        log_path = Path(folder) / "serve.log"
        process = start_serve(port, f"{folder}/data", log_path)
        try:
            deadline = time.monotonic() + 120
            while not ready(url):
                if process.poll() is not None or time.monotonic() > deadline:
                    print(log_path.read_text(errors="replace"), file=sys.stderr)
                    return 1
                time.sleep(0.2)
            time.sleep(args.settle)
            before, started = cpu_seconds(process.pid), time.monotonic()
            time.sleep(args.seconds)
            used, elapsed = cpu_seconds(process.pid) - before, time.monotonic() - started
        finally:
            process.terminate()
            process.wait(timeout=60)
    print(
        f"embedded serve, idle: {used:.2f} s CPU in {elapsed:.1f} s "
        f"= {100 * used / elapsed:.2f}% of one core"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
