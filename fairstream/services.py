"""fairstream's own long-running services, run in the background under the stack directory."""

from __future__ import annotations

import sys
from pathlib import Path

from fairstream.settings import Settings
from fairstream.stack.supervisor import ManagedProcess


def _fairstream_argv(*args: str) -> list[str]:
    return [str(Path(sys.executable).with_name("fairstream")), *args]


SERVICE_COMMANDS: dict[str, list[str]] = {
    "processor-bias": ["processor", "bias"],
    "processor-opportunity": ["processor", "opportunity"],
    "processor-revenue": ["processor", "revenue"],
    "processor-campaign": ["processor", "campaign"],
    "projection-bias-results": ["projection", "bias-results"],
    "api": ["api"],
}


def managed_services(settings: Settings) -> list[ManagedProcess]:
    """Return the background services, each with its log and pidfile under the stack dir."""
    state = settings.stack_dir / "services"
    return [
        ManagedProcess(name, _fairstream_argv(*args), state, stop_timeout=30.0)
        for name, args in SERVICE_COMMANDS.items()
    ]
