"""A processor started while Kafka is away waits for it instead of exiting."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator

import pytest
from aiokafka.errors import KafkaConnectionError

from fairstream.bootstrap import wait_for_kafka
from fairstream.settings import Settings
from projections.runner import Backoff

pytestmark = pytest.mark.integration

QUICK = Backoff(initial=0.2, cap=0.5)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _pipe(src: socket.socket, dst: socket.socket) -> None:
    try:
        while data := src.recv(65536):
            dst.sendall(data)
    except OSError:
        pass
    finally:
        for s in (src, dst):
            s.close()


@pytest.fixture
def late_broker(stack_settings: Settings) -> Iterator[tuple[int, threading.Event]]:
    """Forward a free port to the stack's broker, listening only from 1.5 s on."""
    port = _free_port()
    host, broker_port = stack_settings.kafka_bootstrap.split(",")[0].rsplit(":", 1)
    stop = threading.Event()
    listening = threading.Event()

    def serve() -> None:
        time.sleep(1.5)
        server = socket.create_server(("127.0.0.1", port))
        server.settimeout(0.2)
        listening.set()
        while not stop.is_set():
            try:
                client, _ = server.accept()
            except TimeoutError:
                continue
            upstream = socket.create_connection((host, int(broker_port)))
            for a, b in ((client, upstream), (upstream, client)):
                threading.Thread(target=_pipe, args=(a, b), daemon=True).start()
        server.close()

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    yield port, listening
    stop.set()
    thread.join(5)


def test_returns_at_once_when_kafka_answers(stack_settings: Settings) -> None:
    assert wait_for_kafka(stack_settings, "test", QUICK, give_up_after=30) == 0


def test_waits_for_a_broker_that_comes_later(
    stack_settings: Settings, late_broker: tuple[int, threading.Event]
) -> None:
    port, listening = late_broker
    settings = stack_settings.model_copy(update={"kafka_bootstrap": f"127.0.0.1:{port}"})
    retries = wait_for_kafka(settings, "test", QUICK, give_up_after=30)
    assert listening.is_set()
    assert retries >= 1


def test_gives_up_only_when_told(stack_settings: Settings) -> None:
    settings = stack_settings.model_copy(update={"kafka_bootstrap": f"127.0.0.1:{_free_port()}"})
    began = time.monotonic()
    with pytest.raises(KafkaConnectionError):
        wait_for_kafka(settings, "test", QUICK, give_up_after=1.5)
    assert time.monotonic() - began >= 1.0
