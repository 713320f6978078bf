"""One pipeline's services (every processor, projection and the API) under one namespace."""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from fairstream.services import managed_services
from fairstream.settings import Settings
from fairstream.stack.supervisor import ManagedProcess, stop_all

# Analytics grace while traffic flows: no window closes on event time or idleness during a
# run, so which windows close cannot depend on when a fault stalled a lane. The close phase
# restarts the processor with CLOSE_GRACE_SECONDS, and every window closes on the wall clock.
RUN_GRACE_SECONDS = 86_400.0
CLOSE_GRACE_SECONDS = 1.0


@dataclass(frozen=True)
class Namespace:
    """Name the topics, consumer groups, schema and database of one pipeline."""

    run_id: str
    name: str

    @property
    def tag(self) -> str:
        """Return `<run id>-<name>`, the stem of every name below."""
        return f"f{self.run_id}-{self.name}"

    @property
    def topic_prefix(self) -> str:
        """Return the topic prefix (with its trailing dot)."""
        return f"{self.tag}."

    @property
    def pg_schema(self) -> str:
        """Return the PostgreSQL schema of the read models."""
        return self.tag.replace("-", "_")

    def settings(
        self, base: Settings, api_port: int, session_timeout_seconds: float = 10.0
    ) -> Settings:
        """Return `base` moved into this namespace."""
        return base.model_copy(
            update={
                "topic_prefix": self.topic_prefix,
                "pg_schema": self.pg_schema,
                "mongo_database": self.pg_schema,
                "bias_processor_group": f"{self.tag}-bias-scorer",
                "bias_projection_group": f"{self.tag}-proj-bias-results",
                "analytics_processor_group": f"{self.tag}-analytics",
                "opportunity_processor_group": f"{self.tag}-opportunity",
                "campaign_processor_group": f"{self.tag}-campaign",
                "revenue_processor_group": f"{self.tag}-revenue",
                "projection_group_prefix": f"{self.tag}-proj-",
                "analytics_grace_seconds": RUN_GRACE_SECONDS,
                "campaign_screening_timeout_seconds": 10 * RUN_GRACE_SECONDS,
                "api_port": api_port,
                "processor_session_timeout_seconds": session_timeout_seconds,
            }
        )


def settings_env(settings: Settings, base: Mapping[str, str]) -> dict[str, str]:
    """Return `base` plus the FAIRSTREAM_* variables that make a subprocess read `settings`."""
    env = dict(base)
    for name, value in settings.model_dump().items():
        if value is None:
            continue
        raw = value.get_secret_value() if hasattr(value, "get_secret_value") else value
        env[f"FAIRSTREAM_{name.upper()}"] = str(raw)
    return env


class ServiceFleet:
    """Start, kill, restart and watch one namespace's services; count what happened."""

    def __init__(self, settings: Settings, env: Mapping[str, str], state_dir: Path) -> None:
        self.env = dict(env)
        self.state_dir = state_dir
        self.processes: dict[str, ManagedProcess] = {
            p.name: p for p in managed_services(settings, env=self.env, state_dir=state_dir)
        }
        self.kills: Counter[str] = Counter()
        self.unexpected_exits: Counter[str] = Counter()
        self._expected_down: set[str] = set()

    @property
    def names(self) -> list[str]:
        """Return the service names."""
        return list(self.processes)

    def start_all(self) -> None:
        """Start every service."""
        for proc in self.processes.values():
            proc.start()

    def stop_all(self) -> None:
        """Stop every service gracefully (SIGKILL after its timeout)."""
        self._expected_down |= set(self.processes)
        stop_all(self.processes.values(), timeout=30.0)

    def kill(self, name: str) -> None:
        """SIGKILL a service and start it again."""
        proc = self.processes[name]
        self._expected_down.add(name)
        self.kills[name] += 1  # first: a probe that lost its request sees the kill
        proc.kill()
        proc.start()
        self._expected_down.discard(name)

    def restart_with(self, name: str, env: Mapping[str, str]) -> None:
        """Stop a service gracefully and start it again with `env` added to its environment."""
        proc = self.processes[name]
        self._expected_down.add(name)
        proc.stop(timeout=30.0)
        proc.env = {**self.env, **env}
        proc.start()
        self._expected_down.discard(name)

    def watch(self) -> list[str]:
        """Restart services that exited on their own; return their names."""
        died = [
            name
            for name, proc in self.processes.items()
            if name not in self._expected_down and not proc.running()
        ]
        for name in died:
            self.unexpected_exits[name] += 1
            self.processes[name].start()
        return died

    def wait_ready(self, seconds: float) -> None:
        """Give the services time to join their groups, restarting any that died."""
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            self.watch()
            time.sleep(1.0)
