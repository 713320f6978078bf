"""What every component of the local stack provides, and the start/wait loop they share."""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import fcntl
import os
import shutil
import socket
import subprocess
import time
from abc import ABC, abstractmethod
from collections.abc import Coroutine, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from fairstream.stack.config import StackConfig
from fairstream.stack.exceptions import ComponentError
from fairstream.stack.supervisor import ManagedProcess, ProcessStartError, stop_all

__all__ = [
    "Component",
    "ComponentStatus",
    "file_lock",
    "port_answers",
    "require_executable",
    "run_checked",
    "run_coroutine",
]

_POLL_SECONDS = 0.5
_T = TypeVar("_T")


def run_coroutine(coro: Coroutine[Any, Any, _T]) -> _T:
    """Run a coroutine to completion from sync code, even when an event loop is running."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(coro)
    with concurrent.futures.ThreadPoolExecutor(max_workers=1) as pool:
        return pool.submit(asyncio.run, coro).result()


@dataclass
class ComponentStatus:
    """Report whether a component is up, where it listens and which processes run it."""

    name: str
    up: bool
    endpoints: dict[str, str]
    pids: list[int]
    running: bool
    detail: dict[str, Any] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        """Return a JSON-ready mapping."""
        return {
            "up": self.up,
            "running": self.running,
            **self.endpoints,
            "pids": self.pids,
            **self.detail,
        }


@contextlib.contextmanager
def file_lock(path: Path) -> Iterator[None]:
    """Hold an exclusive advisory lock on `path` (created if missing) for the block."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def port_answers(host: str, port: int, timeout: float = 0.5) -> bool:
    """Tell whether something accepts TCP connections on host:port."""
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def run_checked(
    component: str,
    argv: Sequence[str],
    *,
    env: Mapping[str, str] | None = None,
    cwd: Path | None = None,
    timeout: float = 600,
    log: Path | None = None,
) -> str:
    """Run a setup command to completion; raise ComponentError with its output on failure.

    When `log` is given the output is appended there as well.
    """
    try:
        result = subprocess.run(
            list(argv),
            env=dict(env) if env is not None else None,
            cwd=cwd,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            timeout=timeout,
            check=False,
        )
    except FileNotFoundError as exc:
        raise ComponentError(component, f"command not found: {argv[0]}") from exc
    except subprocess.TimeoutExpired as exc:
        out = exc.output if isinstance(exc.output, str) else ""
        raise ComponentError(
            component, f"timed out after {timeout:.0f}s: {' '.join(argv)}", _tail(out)
        ) from exc
    if log is not None:
        log.parent.mkdir(parents=True, exist_ok=True)
        with log.open("a") as handle:
            handle.write(f"\n--- {time.strftime('%Y-%m-%dT%H:%M:%S')} {' '.join(argv)}\n")
            handle.write(result.stdout)
    if result.returncode != 0:
        raise ComponentError(
            component,
            f"exit code {result.returncode}: {' '.join(argv)}",
            _tail(result.stdout),
        )
    return result.stdout


def _tail(text: str, lines: int = 30) -> str:
    return "\n".join(text.splitlines()[-lines:])


def require_executable(component: str, name: str) -> str:
    """Return the full path of an executable or raise ComponentError naming the installer."""
    found = shutil.which(name)
    if found is None:
        raise ComponentError(
            component,
            f"{name!r} not found; run deploy/native/install-system-deps.sh (as root)",
        )
    return found


class Component(ABC):
    """Install, configure, start, probe and stop one service of the local stack."""

    name: str
    start_order: int = 0

    def __init__(self, config: StackConfig) -> None:
        self.config = config
        self.layout = config.layout

    @abstractmethod
    def processes(self) -> list[ManagedProcess]:
        """Return the supervised processes of this component."""

    @abstractmethod
    def prepare(self) -> None:
        """Fetch, build, initialise and render configuration; idempotent and cached."""

    @abstractmethod
    def probe(self) -> bool:
        """Tell whether the component really answers (a protocol-level request)."""

    @abstractmethod
    def endpoints(self) -> dict[str, str]:
        """Return the endpoints clients use, e.g. {"url": ...}."""

    @abstractmethod
    def listen_ports(self) -> list[int]:
        """Return the TCP ports the component listens on."""

    def after_ready(self) -> None:  # noqa: B027 - optional hook, empty by default
        """Run one-off setup that needs the component answering (databases, users)."""

    def detail(self) -> dict[str, Any]:
        """Return extra facts for `status` (versions, paths)."""
        return {}

    def data_paths(self) -> list[Path]:
        """Return the data paths removed by `down --purge`."""
        return []

    def running(self) -> bool:
        """Tell whether every process of the component is alive."""
        procs = self.processes()
        return bool(procs) and all(p.running() for p in procs)

    def check_ports_free(self) -> None:
        """Raise when a port we need is taken by a process that is not ours."""
        procs = self.processes()
        if any(p.running() for p in procs):
            return
        for port in self.listen_ports():
            if port_answers(self.config.host, port):
                raise ComponentError(
                    self.name,
                    f"port {self.config.host}:{port} is already in use by a process this "
                    f"stack ({self.layout.root}) did not start; stop it or choose other ports",
                )

    def start(self) -> None:
        """Start every process that is not running."""
        self.check_ports_free()
        for proc in self.processes():
            try:
                proc.start()
            except ProcessStartError as exc:
                raise ComponentError(self.name, str(exc), proc.log_tail(30)) from exc

    def wait_ready(self, timeout: float) -> None:
        """Wait until the probe succeeds; raise ComponentError with the log tail otherwise."""
        deadline = time.monotonic() + timeout
        while True:
            dead = [p for p in self.processes() if not p.running()]
            if dead:
                raise ComponentError(
                    self.name,
                    f"process {dead[0].name} exited during startup (log: {dead[0].log_path})",
                    dead[0].log_tail(30),
                )
            with contextlib.suppress(Exception):
                if self.probe():
                    return
            if time.monotonic() >= deadline:
                proc = self.processes()[0]
                raise ComponentError(
                    self.name,
                    f"did not answer within {timeout:.0f}s (log: {proc.log_path})",
                    proc.log_tail(30),
                )
            time.sleep(_POLL_SECONDS)

    def up(self, timeout: float) -> None:
        """Prepare, start and wait until the component answers."""
        self.prepare()
        self.start()
        self.wait_ready(timeout)
        self.after_ready()

    def down(self) -> bool:
        """Stop every process; return whether any was running."""
        return stop_all(self.processes())

    def status(self) -> ComponentStatus:
        """Return the component's current status."""
        procs = self.processes()
        running = bool(procs) and all(p.running() for p in procs)
        up = False
        if running:
            with contextlib.suppress(Exception):
                up = self.probe()
        return ComponentStatus(
            name=self.name,
            up=up,
            endpoints=self.endpoints(),
            pids=[pid for pid in (p.pid for p in procs) if pid is not None],
            running=running,
            detail=self.detail(),
        )

    def base_env(self) -> dict[str, str]:
        """Return the environment passed to this component's processes."""
        keep = ("PATH", "HOME", "LANG", "LC_ALL", "TZ", "JAVA_HOME", "TMPDIR", "USER")
        return {k: v for k, v in os.environ.items() if k in keep}
