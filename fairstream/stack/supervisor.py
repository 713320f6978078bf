"""Run long-lived processes detached from the caller, tracked by pidfiles under a state dir.

A `ManagedProcess` starts its command in a new session (so it outlives the command line that
started it and can be signalled as a group), appends stdout and stderr to
`<state_dir>/logs/<name>.log` and records `<pid> <start time>` in `<state_dir>/run/<name>.pid`.
The start time (from /proc) guards against a recycled pid being mistaken for ours.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

__all__ = ["ManagedProcess", "ProcessStartError", "stop_all"]

_POLL_SECONDS = 0.1


class ProcessStartError(RuntimeError):
    """Raise when a managed process cannot be started."""


@dataclass(frozen=True)
class _PidRecord:
    pid: int
    start_time: int


def _proc_start_time(pid: int) -> int | None:
    """Return the start time (clock ticks since boot) of a live, non-zombie process."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError, PermissionError):
        return None
    # The command name (field 2) is in parentheses and may itself contain spaces or ')'.
    fields = stat[stat.rindex(")") + 2 :].split()
    state, start_time = fields[0], fields[19]
    if state in ("Z", "X"):
        return None
    return int(start_time)


def _reap(pid: int) -> None:
    """Collect the exit status of `pid` if it is our child, so it does not linger as a zombie."""
    with contextlib.suppress(ChildProcessError, OSError):
        os.waitpid(pid, os.WNOHANG)


class ManagedProcess:
    """Start, watch and stop one detached process.

    `argv[0]` is looked up on PATH (of `env` when given). `cwd` is applied with `env -C`, so the
    recorded pid is the command's own. `stop_signal` is sent to the process only (or to its whole
    process group when `signal_group` is true); SIGKILL after `stop_timeout` always goes to the
    group.
    """

    def __init__(
        self,
        name: str,
        argv: Sequence[str],
        state_dir: Path,
        env: Mapping[str, str] | None = None,
        *,
        cwd: Path | None = None,
        stop_signal: signal.Signals = signal.SIGTERM,
        signal_group: bool = True,
        stop_timeout: float = 30.0,
    ) -> None:
        if not argv:
            raise ValueError("argv must not be empty")
        self.name = name
        self.argv = list(argv)
        self.state_dir = Path(state_dir)
        self.env = dict(env) if env is not None else None
        self.cwd = cwd
        self.stop_signal = stop_signal
        self.signal_group = signal_group
        self.stop_timeout = stop_timeout

    @property
    def pidfile(self) -> Path:
        """Return the path of the pidfile."""
        return self.state_dir / "run" / f"{self.name}.pid"

    @property
    def log_path(self) -> Path:
        """Return the path of the log file that receives stdout and stderr."""
        return self.state_dir / "logs" / f"{self.name}.log"

    def _read_record(self) -> _PidRecord | None:
        try:
            parts = self.pidfile.read_text().split()
            return _PidRecord(int(parts[0]), int(parts[1]))
        except (FileNotFoundError, IndexError, ValueError):
            return None

    def _live_record(self) -> _PidRecord | None:
        record = self._read_record()
        if record is None:
            return None
        _reap(record.pid)
        if _proc_start_time(record.pid) != record.start_time:
            return None
        return record

    @property
    def pid(self) -> int | None:
        """Return the pid if the process is running, else None."""
        record = self._live_record()
        return record.pid if record else None

    def running(self) -> bool:
        """Tell whether the process recorded in the pidfile is alive."""
        return self._live_record() is not None

    def start(self) -> int:
        """Start the process unless it already runs; return its pid."""
        record = self._live_record()
        if record is not None:
            return record.pid
        self.pidfile.parent.mkdir(parents=True, exist_ok=True)
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        env = dict(os.environ) if self.env is None else dict(self.env)
        argv = list(self.argv)
        if self.cwd is not None:
            argv = ["env", "-C", str(self.cwd), "--", *argv]
        executable = shutil.which(argv[0], path=env.get("PATH", os.defpath))
        if executable is None:
            raise ProcessStartError(f"{self.name}: executable {argv[0]!r} not found on PATH")
        with self.log_path.open("ab") as log:
            log.write(f"\n--- {time.strftime('%Y-%m-%dT%H:%M:%S')} start: {argv}\n".encode())
            log.flush()
            # posix_spawn keeps no Popen object around: the child may outlive this process.
            pid = os.posix_spawn(
                executable,
                argv,
                env,
                file_actions=[
                    (os.POSIX_SPAWN_OPEN, 0, os.devnull, os.O_RDONLY, 0),
                    (os.POSIX_SPAWN_DUP2, log.fileno(), 1),
                    (os.POSIX_SPAWN_DUP2, log.fileno(), 2),
                ],
                setsid=True,
            )
        start_time = None
        for _ in range(50):
            start_time = _proc_start_time(pid)
            if start_time is not None:
                break
            _reap(pid)
            time.sleep(0.01)
        if start_time is None:
            raise ProcessStartError(f"{self.name}: exited immediately; see {self.log_path}")
        tmp = self.pidfile.with_suffix(".pid.tmp")
        tmp.write_text(f"{pid} {start_time}\n")
        tmp.replace(self.pidfile)
        return pid

    def send_stop_signal(self) -> bool:
        """Send the graceful stop signal; return False when the process was not running."""
        record = self._live_record()
        if record is None:
            self.pidfile.unlink(missing_ok=True)
            return False
        with contextlib.suppress(ProcessLookupError):
            if self.signal_group:
                os.killpg(record.pid, self.stop_signal)
            else:
                os.kill(record.pid, self.stop_signal)
        return True

    def kill(self) -> None:
        """Send SIGKILL to the process group and forget the pidfile."""
        record = self._read_record()
        if record is not None and _proc_start_time(record.pid) == record.start_time:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(record.pid, signal.SIGKILL)
            deadline = time.monotonic() + 5
            while self.running() and time.monotonic() < deadline:
                time.sleep(_POLL_SECONDS)
        self.pidfile.unlink(missing_ok=True)

    def wait_stopped(self, timeout: float) -> bool:
        """Wait up to `timeout` seconds for the process to exit; return whether it did."""
        deadline = time.monotonic() + timeout
        while self.running():
            if time.monotonic() >= deadline:
                return False
            time.sleep(_POLL_SECONDS)
        return True

    def stop(self, timeout: float | None = None) -> bool:
        """Stop the process: graceful signal, then SIGKILL after the timeout.

        Return True when it had been running.
        """
        return stop_all([self], timeout)

    def log_tail(self, lines: int = 30) -> str:
        """Return the last `lines` lines of the log file."""
        return tail_file(self.log_path, lines)

    def __repr__(self) -> str:
        return f"ManagedProcess({self.name!r}, pid={self.pid})"


def stop_all(processes: Iterable[ManagedProcess], timeout: float | None = None) -> bool:
    """Signal every process at once, wait for them together, SIGKILL the stragglers.

    Stopping cluster members together avoids the last ones waiting for a quorum that is
    already gone. Return True when any of them had been running.
    """
    procs = list(processes)
    was_running = [p for p in procs if p.send_stop_signal()]
    limit = timeout if timeout is not None else max((p.stop_timeout for p in procs), default=0)
    deadline = time.monotonic() + limit
    for proc in was_running:
        if not proc.wait_stopped(max(0.0, deadline - time.monotonic())):
            proc.kill()
        proc.pidfile.unlink(missing_ok=True)
    return bool(was_running)


def tail_file(path: Path, lines: int = 30) -> str:
    """Return the last `lines` lines of a text file ('' when it does not exist)."""
    try:
        with path.open("rb") as handle:
            handle.seek(0, os.SEEK_END)
            size = handle.tell()
            handle.seek(max(0, size - 256 * 1024))
            data = handle.read()
    except FileNotFoundError:
        return ""
    text = data.decode("utf-8", errors="replace")
    return "\n".join(text.splitlines()[-lines:])
