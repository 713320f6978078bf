"""The fault harness's API probe: which unanswered requests are the API's own fault."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator

import pytest

from operations.faults.probe import ApiProbe


@pytest.fixture
def hangup_port() -> Iterator[int]:
    """Listen on a free port and close every connection without an answer."""
    server = socket.create_server(("127.0.0.1", 0))
    server.settimeout(0.2)
    stop = threading.Event()

    def serve() -> None:
        while not stop.is_set():
            try:
                conn, _ = server.accept()
            except TimeoutError:
                continue
            conn.recv(4096)
            conn.close()

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    yield server.getsockname()[1]
    stop.set()
    thread.join(5)
    server.close()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _poll(probe: ApiProbe, until: int = 2) -> dict[str, int]:
    probe.start()
    deadline = time.monotonic() + 10
    while sum(probe.statuses.values()) < until and time.monotonic() < deadline:
        time.sleep(0.05)
    return probe.stop()


def test_nothing_listening_is_the_api_down() -> None:
    statuses = _poll(ApiProbe(f"http://127.0.0.1:{_free_port()}", "key"))
    assert set(statuses) == {"api-down"}


def test_a_hangup_by_a_running_api_is_an_error(hangup_port: int) -> None:
    statuses = _poll(ApiProbe(f"http://127.0.0.1:{hangup_port}", "key"))
    assert set(statuses) == {"error"}


def test_a_hangup_while_the_api_was_killed_is_the_api_down(hangup_port: int) -> None:
    kills = iter(range(1_000_000))  # a kill between every request and its failure
    probe = ApiProbe(f"http://127.0.0.1:{hangup_port}", "key", api_kills=lambda: next(kills))
    assert set(_poll(probe)) == {"api-down"}
