"""Redis from the distribution's `redis-server`, on its own port and data directory."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from fairstream.stack.component import Component, require_executable
from fairstream.stack.config import StackConfig
from fairstream.stack.supervisor import ManagedProcess

__all__ = ["RedisServer", "render_redis_conf"]


def render_redis_conf(config: StackConfig, data_dir: Path) -> str:
    """Render redis.conf: loopback only, RDB snapshots in the stack's data dir, log to stdout."""
    lines = [
        "# Rendered by fairstream stack; do not edit.",
        f"bind {config.host}",
        f"port {config.redis_port}",
        "protected-mode yes",
        "daemonize no",
        "supervised no",
        'pidfile ""',
        'logfile ""',
        "loglevel notice",
        f"dir {data_dir}",
        "dbfilename dump.rdb",
        "save 3600 1 300 100 60 10000",
        "appendonly no",
        "databases 16",
    ]
    return "\n".join(lines) + "\n"


class RedisServer(Component):
    """Run redis-server for caches, rate limits and dedup sets."""

    name = "redis"
    start_order = 30

    @property
    def data_dir(self) -> Path:
        """Return the directory of the RDB snapshot."""
        return self.layout.data / "redis"

    @property
    def conf_path(self) -> Path:
        """Return the rendered redis.conf."""
        return self.layout.conf / "redis.conf"

    def processes(self) -> list[ManagedProcess]:
        """Return the redis-server process."""
        return [
            ManagedProcess(
                "redis",
                [self.config.redis_server, str(self.conf_path)],
                self.layout.root,
                self.base_env(),
                stop_timeout=20.0,
            )
        ]

    def listen_ports(self) -> list[int]:
        """Return the Redis port."""
        return [self.config.redis_port]

    def prepare(self) -> None:
        """Check the binary and render the configuration."""
        require_executable("redis", self.config.redis_server)
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self.conf_path.parent.mkdir(parents=True, exist_ok=True)
        self.conf_path.write_text(render_redis_conf(self.config, self.data_dir))

    def probe(self) -> bool:
        """Send PING."""
        import redis

        client = redis.Redis(
            host=self.config.host,
            port=self.config.redis_port,
            socket_timeout=2,
            socket_connect_timeout=2,
        )
        try:
            return bool(client.ping())
        finally:
            client.close()

    def endpoints(self) -> dict[str, str]:
        """Return the Redis URL."""
        return {"url": self.config.redis_url}

    def detail(self) -> dict[str, Any]:
        """Return the data directory."""
        return {"data_dir": str(self.data_dir)}

    def data_paths(self) -> list[Path]:
        """Return the data directory."""
        return [self.data_dir]
