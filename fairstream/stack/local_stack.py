"""Compose the components into the local stack: up, down, status and the env file."""

from __future__ import annotations

import json
import shutil
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from fairstream.settings import Settings
from fairstream.stack.component import Component, file_lock, port_answers
from fairstream.stack.config import COMPONENTS, StackConfig
from fairstream.stack.exceptions import ComponentError, StackError
from fairstream.stack.ferretdb import FerretDBServer
from fairstream.stack.kafka import KafkaCluster
from fairstream.stack.postgres import PostgresServer
from fairstream.stack.redis import RedisServer
from fairstream.stack.supervisor import ManagedProcess

__all__ = ["LocalStack", "parse_only", "render_env_file"]

Report = Callable[[str], None]


def parse_only(value: str | Iterable[str] | None) -> list[str]:
    """Parse a component selection ("kafka,redis" or a list); empty means all."""
    if value is None:
        return list(COMPONENTS)
    items = value.split(",") if isinstance(value, str) else list(value)
    names = [item.strip().lower() for item in items if item.strip()]
    unknown = sorted(set(names) - set(COMPONENTS))
    if unknown:
        raise StackError(f"unknown component(s) {unknown}; choose from {list(COMPONENTS)}")
    return [name for name in COMPONENTS if name in names] or list(COMPONENTS)


def render_env_file(variables: dict[str, str]) -> str:
    """Render KEY=value lines readable by `set -a; . FILE`, make and python-dotenv."""
    lines = ["# Written by `fairstream stack up`; endpoints of the local stack."]
    lines += [f"{key}={value}" for key, value in variables.items()]
    return "\n".join(lines) + "\n"


class LocalStack:
    """Run Kafka, PostgreSQL, Redis and FerretDB as local processes under one state dir."""

    def __init__(self, config: StackConfig | None = None, settings: Settings | None = None):
        self.settings = settings or Settings()
        self.config = config or StackConfig(stack_dir=self.settings.stack_dir)
        self.layout = self.config.layout

    # Selection ----------------------------------------------------------------------

    def _running_kafka_config(self) -> StackConfig:
        """Return the config of the Kafka cluster this stack runs (or last ran), else ours."""
        state_file = self.layout.run / "kafka.json"
        try:
            state = json.loads(state_file.read_text())
        except (FileNotFoundError, ValueError):
            return self.config
        brokers = int(state.get("brokers", 0))
        if not any(
            ManagedProcess(f"kafka-{i + 1}", ["true"], self.layout.root).running()
            for i in range(brokers)
        ):
            return self.config
        return self.config.model_copy(
            update={
                "kafka_version": state["version"],
                "kafka_tools_version": state.get("tools_version"),
                "brokers": brokers,
                "kafka_port": int(state["kafka_port"]),
                "kafka_controller_port": int(state["kafka_controller_port"]),
                "kafka_security": state.get("security", "plaintext"),
            }
        )

    def component(self, name: str, *, running: bool = False) -> Component:
        """Return one component; `running` describes the Kafka cluster actually running."""
        if name == "kafka":
            return KafkaCluster(self._running_kafka_config() if running else self.config)
        factories: dict[str, type[Component]] = {
            "postgres": PostgresServer,
            "redis": RedisServer,
            "ferretdb": FerretDBServer,
        }
        try:
            return factories[name](self.config)
        except KeyError:
            raise StackError(f"unknown component {name!r}") from None

    def components(
        self, only: str | Iterable[str] | None = None, *, running: bool = False
    ) -> list[Component]:
        """Return the selected components in start order."""
        return [self.component(name, running=running) for name in parse_only(only)]

    # Commands -----------------------------------------------------------------------

    def up(self, only: str | Iterable[str] | None = None, report: Report = print) -> None:
        """Start the selected components and wait until each answers; write the env file."""
        names = parse_only(only)
        if "ferretdb" in names and self.config.ferretdb_backend == "postgresql":
            names = parse_only([*names, "postgres"])
        self.config.planned_ports()
        for directory in (self.layout.root, self.layout.data, self.layout.run, self.layout.logs):
            directory.mkdir(parents=True, exist_ok=True)
            directory.chmod(0o755)
        with file_lock(self.layout.run / "stack.lock"):
            for component in self.components(names):
                started = time.monotonic()
                already = component.running()
                report(f"{component.name}: {'checking' if already else 'starting'} ...")
                component.up(self.config.ready_timeout)
                pids = ", ".join(str(p.pid) for p in component.processes())
                endpoint = next(iter(component.endpoints().values()))
                report(
                    f"{component.name}: up at {endpoint} (pid {pids}; "
                    f"{time.monotonic() - started:.1f}s)"
                )
            self.write_env_file()
        report(f"env: {self.layout.env_file}")

    def down(
        self,
        only: str | Iterable[str] | None = None,
        *,
        purge: bool = False,
        purge_cache: bool = False,
        report: Report = print,
    ) -> None:
        """Stop the selected components (reverse order); optionally delete their state."""
        selected = self.components(only, running=True)
        with file_lock(self.layout.run / "stack.lock"):
            for component in reversed(selected):
                stopped = component.down()
                report(f"{component.name}: {'stopped' if stopped else 'not running'}")
            if purge:
                for component in selected:
                    paths = component.data_paths()
                    if component.name == "kafka":
                        paths = KafkaCluster(self.config).data_paths()
                    for path in paths:
                        _remove(path)
                if only is None:
                    for path in (self.layout.conf, self.layout.logs, self.layout.env_file):
                        _remove(path)
                    for path in self.layout.run.glob("*"):
                        if path.name != "stack.lock":
                            _remove(path)
                report("purged data" + (", logs and configs" if only is None else ""))
        if purge_cache:
            if self.layout.root in self.layout.cache.parents:
                _remove(self.layout.cache)
                report(f"purged cache {self.layout.cache}")
            else:
                report(f"cache {self.layout.cache} is outside the stack dir; left in place")

    def status(self) -> dict[str, Any]:
        """Return every endpoint, whether it answers, and its pids."""
        result: dict[str, Any] = {"stack_dir": str(self.layout.root)}
        for name in COMPONENTS:
            try:
                result[name] = self.component(name, running=True).status().as_dict()
            except ComponentError as exc:
                result[name] = {"up": False, "running": False, "error": exc.message}
        api_url = f"http://{self.settings.api_host}:{self.settings.api_port}"
        result["api"] = {
            "up": port_answers(self.settings.api_host, self.settings.api_port),
            "url": api_url,
            "managed_by_stack": False,
        }
        result["env_file"] = str(self.layout.env_file)
        return result

    def env_vars(self) -> dict[str, str]:
        """Return the FAIRSTREAM_* variables that point a process at this stack."""
        kafka = self._running_kafka_config()
        return {
            "FAIRSTREAM_STACK_DIR": str(self.layout.root),
            "FAIRSTREAM_KAFKA_BOOTSTRAP": kafka.kafka_bootstrap,
            "FAIRSTREAM_KAFKA_VERSION": kafka.kafka_version,
            **KafkaCluster(kafka).client_env(),
            "FAIRSTREAM_POSTGRES_DSN": self.config.postgres_dsn,
            "FAIRSTREAM_REDIS_URL": self.config.redis_url,
            "FAIRSTREAM_MONGO_URL": self.config.mongo_url,
            "FAIRSTREAM_API_HOST": self.settings.api_host,
            "FAIRSTREAM_API_PORT": str(self.settings.api_port),
        }

    def write_env_file(self) -> Path:
        """Write `<stack_dir>/env`; return its path."""
        path = self.layout.env_file
        tmp = path.with_suffix(".tmp")
        tmp.write_text(render_env_file(self.env_vars()))
        tmp.replace(path)
        return path


def _remove(path: Path) -> None:
    if path.is_symlink() or path.is_file():
        path.unlink()
    elif path.is_dir():
        shutil.rmtree(path)
