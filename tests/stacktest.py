"""Helpers for tests that run services: ports, polling and subprocess environments."""

from __future__ import annotations

import asyncio
import os
import socket
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TypeVar

from fairstream.settings import Settings

REPO_ROOT = Path(__file__).resolve().parent.parent
ARTIFACTS = REPO_ROOT / "tests" / "artifacts"
T = TypeVar("T")


def settings_env(settings: Settings) -> dict[str, str]:
    """Return the environment that makes a subprocess read the same settings."""
    env = dict(os.environ)
    for name, value in settings.model_dump().items():
        if value is None:
            continue
        raw = value.get_secret_value() if hasattr(value, "get_secret_value") else value
        env[f"FAIRSTREAM_{name.upper()}"] = str(raw)
    return env


def free_port() -> int:
    """Return a free TCP port on loopback."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def wait_for(
    predicate: Callable[[], Awaitable[T]], timeout: float = 60.0, interval: float = 0.25
) -> T:
    """Poll an async predicate until it returns a truthy value or the timeout passes."""
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        result = await predicate()
        if result or asyncio.get_running_loop().time() > deadline:
            return result
        await asyncio.sleep(interval)
