"""The fault run's own local stack, driven through `fairstream stack` on its own ports."""

from __future__ import annotations

import os
import shlex
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path

from fairstream.stack.supervisor import ManagedProcess

FS = str(Path(sys.executable).with_name("fairstream"))

# Ports of the fault stack: away from the shared stack's defaults and from tests/run.sh.
DEFAULT_PORTS: Mapping[str, str] = {
    "FAIRSTREAM_STACK_KAFKA_PORT": "39092",
    "FAIRSTREAM_STACK_KAFKA_CONTROLLER_PORT": "39093",
    "FAIRSTREAM_STACK_POSTGRES_PORT": "35433",
    "FAIRSTREAM_STACK_REDIS_PORT": "36380",
    "FAIRSTREAM_STACK_FERRETDB_PORT": "37017",
    "FAIRSTREAM_API_PORT": "18080",
}


class StackCommandError(RuntimeError):
    """Raise when a `fairstream stack` command fails."""


class FaultStack:
    """Start, break and stop the stack under `stack_dir` with the FAIRSTREAM_STACK_* in `env`."""

    def __init__(self, stack_dir: Path, env: Mapping[str, str]) -> None:
        self.stack_dir = stack_dir
        self.env = {**os.environ, **env, "FAIRSTREAM_STACK_DIR": str(stack_dir)}
        self.brokers = 1

    def _run(self, *args: str, timeout: float = 600.0) -> str:
        done = subprocess.run(
            [FS, "stack", *args], env=self.env, capture_output=True, text=True, timeout=timeout
        )
        if done.returncode != 0:
            raise StackCommandError(f"stack {' '.join(args)}: {done.stderr[-2000:]}")
        return done.stdout

    def up(self, brokers: int = 1, only: str | None = None) -> None:
        """Start every component (or `only` some) with `brokers` Kafka nodes."""
        self.brokers = brokers
        args = ["up", "--brokers", str(brokers)]
        if only:
            args += ["--only", only]
        self._run(*args)

    def down(self, only: str | None = None) -> None:
        """Stop every component (or `only` some)."""
        self._run("down", *(["--only", only] if only else []))

    def client_env(self) -> dict[str, str]:
        """Return the FAIRSTREAM_* variables that point clients at this stack."""
        out: dict[str, str] = {}
        for line in self._run("env").splitlines():
            words = shlex.split(line)
            if len(words) == 2 and words[0] == "export" and "=" in words[1]:
                name, _, value = words[1].partition("=")
                out[name] = value
        return out

    def restart_kafka(self) -> None:
        """Stop every broker gracefully and start them again."""
        self.down("kafka")
        self.up(self.brokers, "kafka")

    def kill_broker(self, name: str) -> None:
        """SIGKILL one Kafka node (e.g. `kafka-2`)."""
        ManagedProcess(name, ["true"], self.stack_dir).kill()

    def stop_postgres(self) -> None:
        """Stop PostgreSQL (FerretDB, stored in it, stays up but cannot answer)."""
        self.down("postgres")

    def start_postgres(self) -> None:
        """Start PostgreSQL again."""
        self.up(self.brokers, "postgres")
