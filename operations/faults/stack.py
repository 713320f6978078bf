"""The fault run's own local stack, driven through `fairstream stack` on its own ports."""

from __future__ import annotations

import os
import shlex
import subprocess
import sys
import time
from collections.abc import Mapping
from pathlib import Path

from fairstream.stack.supervisor import ManagedProcess

FS = str(Path(sys.executable).with_name("fairstream"))

# Ports of the fault stack: away from the shared stack's defaults and from tests/run.sh,
# and below the ephemeral range (32768-60999 here): while a broker is down, clients retrying
# a port in that range can connect to themselves and hold it, and the broker cannot listen.
DEFAULT_PORTS: Mapping[str, str] = {
    "FAIRSTREAM_STACK_KAFKA_PORT": "22092",
    "FAIRSTREAM_STACK_KAFKA_CONTROLLER_PORT": "22093",
    "FAIRSTREAM_STACK_POSTGRES_PORT": "22433",
    "FAIRSTREAM_STACK_REDIS_PORT": "22380",
    "FAIRSTREAM_STACK_FERRETDB_PORT": "22017",
    "FAIRSTREAM_API_PORT": "22080",
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
        # The ports lie in the ephemeral range: a client connection may hold one for a
        # moment, and the component then fails to listen. Try again after a pause.
        for attempt in range(3):
            try:
                self._run(*args)
                return
            except StackCommandError:
                if attempt == 2:
                    raise
                time.sleep(3.0)

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
