"""fairstream's own long-running services, run in the background under the stack directory."""

from __future__ import annotations

import sys
from collections.abc import Mapping
from pathlib import Path

from fairstream.settings import Settings
from fairstream.stack.supervisor import ManagedProcess


def _fairstream_argv(*args: str) -> list[str]:
    return [str(Path(sys.executable).with_name("fairstream")), *args]


def service_commands() -> dict[str, list[str]]:
    """Return every background service: each processor, each projection, then the API."""
    from fairstream.bootstrap import PROCESSORS, PROJECTIONS

    commands = {f"processor-{name}": ["processor", name] for name in ["bias", *PROCESSORS]}
    commands |= {f"projection-{name}": ["projection", name] for name in PROJECTIONS}
    commands["api"] = ["api"]
    return commands


def managed_services(
    settings: Settings,
    *,
    env: Mapping[str, str] | None = None,
    state_dir: Path | None = None,
) -> list[ManagedProcess]:
    """Return the background services, each with its log and pidfile under the stack dir.

    `env` replaces the inherited environment (e.g. another topic prefix and schema) and
    `state_dir` the `<stack dir>/services` directory, so several sets can run side by side.
    """
    state = state_dir or settings.stack_dir / "services"
    return [
        ManagedProcess(name, _fairstream_argv(*args), state, env, stop_timeout=30.0)
        for name, args in service_commands().items()
    ]
