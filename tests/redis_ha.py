"""Redis with failover for tests: one master, one replica and three sentinels, each a real
`redis-server` process on a loopback port of its own, stopped when the block ends."""

from __future__ import annotations

import shutil
import signal
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import redis

from tests.support import free_port, stop_process, wait_for

SERVICE = "tgmaster"
DOWN_AFTER_MS = 1000


@dataclass
class RedisHA:
    master_port: int
    replica_port: int
    sentinel_ports: list[int]
    processes: dict[int, subprocess.Popen[bytes]] = field(default_factory=dict)

    @property
    def url(self) -> str:
        hosts = ",".join(f"127.0.0.1:{port}" for port in self.sentinel_ports)
        return f"redis+sentinel://{hosts}/{SERVICE}/0"

    def client(self, port: int) -> redis.Redis:
        return redis.Redis(port=port, socket_timeout=5, socket_connect_timeout=5)

    def current_master(self) -> int | None:
        """The master's port as the sentinels see it."""
        try:
            with self.client(self.sentinel_ports[0]) as sentinel:
                _, port = sentinel.sentinel_get_master_addr_by_name(SERVICE)
                return int(port)
        except (redis.RedisError, TypeError):
            return None

    def kill_master(self) -> int:
        port = self.master_port
        self.processes[port].send_signal(signal.SIGKILL)
        self.processes[port].wait(timeout=10)
        return port

    def replicated(self, timeout_ms: int = 10_000) -> bool:
        """Everything the master acknowledged so far has reached the replica (`WAIT`)."""
        with self.client(self.master_port) as master:
            return int(master.execute_command("WAIT", 1, timeout_ms)) >= 1


def _redis_server() -> str:
    found = shutil.which("redis-server")
    if found is None:
        raise RuntimeError("redis-server is not installed")
    return found


def _start(args: list[str], log: Path) -> subprocess.Popen[bytes]:
    with log.open("ab") as out:
        return subprocess.Popen(
            [_redis_server(), *args], stdout=out, stderr=subprocess.STDOUT, start_new_session=True
        )


def _answers(client: redis.Redis) -> bool:
    try:
        return bool(client.ping())
    except redis.RedisError:
        return False


@contextmanager
def redis_ha(folder: Path) -> Iterator[RedisHA]:
    ha = RedisHA(free_port(), free_port(), [free_port() for _ in range(3)])
    common = ["--bind", "127.0.0.1", "--save", "", "--appendonly", "no", "--dir", str(folder)]
    try:
        ha.processes[ha.master_port] = _start(
            ["--port", str(ha.master_port), *common], folder / "master.log"
        )
        ha.processes[ha.replica_port] = _start(
            [
                "--port",
                str(ha.replica_port),
                "--replicaof",
                "127.0.0.1",
                str(ha.master_port),
                *common,
            ],
            folder / "replica.log",
        )
        for port in (ha.master_port, ha.replica_port):
            wait_for(lambda p=port: _answers(ha.client(p)), timeout=30, what=f"redis :{port}")
        with ha.client(ha.replica_port) as replica:
            wait_for(
                lambda: replica.info("replication").get("master_link_status") == "up",
                timeout=30,
                what="the replica to sync",
            )
        for index, port in enumerate(ha.sentinel_ports):
            config = folder / f"sentinel-{index}.conf"
            config.write_text(
                f"port {port}\nbind 127.0.0.1\ndir {folder}\n"
                f"sentinel monitor {SERVICE} 127.0.0.1 {ha.master_port} 2\n"
                f"sentinel down-after-milliseconds {SERVICE} {DOWN_AFTER_MS}\n"
                f"sentinel failover-timeout {SERVICE} 10000\n"
                f"sentinel parallel-syncs {SERVICE} 1\n"
            )
            ha.processes[port] = _start(
                [str(config), "--sentinel"], folder / f"sentinel-{index}.log"
            )
        for port in ha.sentinel_ports:
            wait_for(lambda p=port: _answers(ha.client(p)), timeout=30, what=f"sentinel :{port}")
        wait_for(
            lambda: ha.current_master() == ha.master_port, timeout=30, what="sentinels' master"
        )
        yield ha
    finally:
        for process in ha.processes.values():
            stop_process(process)
