"""An aiokafka client that met a broker still starting finds the cluster again.

A stand-in broker answers the client's first connection the way a starting broker does
(metadata naming no broker) and closes it; every later connection goes through to the real
broker. aiokafka alone never asks again; with `fairstream.aiokafka_rebootstrap` installed
the next metadata update bootstraps afresh.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import struct
from collections.abc import AsyncIterator, Iterator

import pytest
from aiokafka import AIOKafkaProducer
from aiokafka.client import AIOKafkaClient
from aiokafka.protocol.admin import ApiVersionResponse_v0, ApiVersionResponse_v1
from aiokafka.protocol.metadata import MetadataResponse_v0

from fairstream import aiokafka_rebootstrap
from fairstream.settings import Settings

pytestmark = pytest.mark.integration

API_VERSIONS, METADATA = 18, 3


class StartingBroker:
    """Answer the first connection with metadata naming no broker, then close it; forward
    every later connection to the real broker."""

    def __init__(self, host: str, port: int) -> None:
        self._target = (host, port)
        self._answered = False
        self.first_closed = asyncio.Event()
        self._server: asyncio.Server | None = None
        self._tasks: set[asyncio.Task[None]] = set()

    async def start(self) -> int:
        """Listen on a free port; return it."""
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        return int(self._server.sockets[0].getsockname()[1])

    async def close(self) -> None:
        """Stop listening and cut every forwarded connection."""
        assert self._server is not None
        self._server.close()
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if self._answered:
            await self._forward(reader, writer)
            return
        self._answered = True
        try:
            while True:
                size = struct.unpack(">i", await reader.readexactly(4))[0]
                request = await reader.readexactly(size)
                api_key, version, correlation = struct.unpack(">hhi", request[:8])
                if api_key == API_VERSIONS:
                    # Offer Metadata v0 only, so the answer below is the one the client reads.
                    versions = [(API_VERSIONS, 0, 2), (METADATA, 0, 0)]
                    body = (
                        ApiVersionResponse_v0(0, versions)
                        if version == 0
                        else ApiVersionResponse_v1(0, versions, 0)
                    ).encode()
                elif api_key == METADATA:
                    body = MetadataResponse_v0([], []).encode()
                else:
                    raise AssertionError(f"unexpected request {api_key} v{version}")
                message = struct.pack(">i", correlation) + body
                writer.write(struct.pack(">i", len(message)) + message)
                await writer.drain()
                if api_key == METADATA:
                    break  # the broker goes away: the client's only connection closes
        finally:
            writer.close()
            self.first_closed.set()

    async def _forward(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        up_reader, up_writer = await asyncio.open_connection(*self._target)

        async def pipe(src: asyncio.StreamReader, dst: asyncio.StreamWriter) -> None:
            with contextlib.suppress(ConnectionError, asyncio.CancelledError):
                while data := await src.read(65536):
                    dst.write(data)
                    await dst.drain()
            dst.close()

        for task in (
            asyncio.create_task(pipe(reader, up_writer)),
            asyncio.create_task(pipe(up_reader, writer)),
        ):
            self._tasks.add(task)


@pytest.fixture
async def starting_broker(stack_settings: Settings) -> AsyncIterator[tuple[StartingBroker, str]]:
    """Yield the stand-in broker and its bootstrap address."""
    host, port = stack_settings.kafka_bootstrap.split(",")[0].rsplit(":", 1)
    broker = StartingBroker(host, int(port))
    fake_port = await broker.start()
    try:
        yield broker, f"127.0.0.1:{fake_port}"
    finally:
        await broker.close()


@pytest.fixture
async def orphaned_client(
    starting_broker: tuple[StartingBroker, str],
) -> AsyncIterator[AIOKafkaClient]:
    """Yield a client bootstrapped by a starting broker whose connection then closed."""
    broker, bootstrap = starting_broker
    client = AIOKafkaClient(bootstrap_servers=bootstrap, request_timeout_ms=5000)
    try:
        await client.bootstrap()
        await asyncio.wait_for(broker.first_closed.wait(), 10)
        assert not client.cluster.brokers()
        yield client
    finally:
        await client.close()


@pytest.fixture
def rebootstrap() -> Iterator[None]:
    """Install the re-bootstrap for one test."""
    aiokafka_rebootstrap.install()
    yield
    aiokafka_rebootstrap.uninstall()


async def test_a_client_that_knows_no_broker_bootstraps_again(
    rebootstrap: None, orphaned_client: AIOKafkaClient, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger=aiokafka_rebootstrap.__name__)
    assert aiokafka_rebootstrap.orphaned(orphaned_client)

    updated = await asyncio.wait_for(orphaned_client.force_metadata_update(), 20)

    assert updated is True
    assert orphaned_client.cluster.brokers()
    assert not aiokafka_rebootstrap.orphaned(orphaned_client)
    said = [r.getMessage() for r in caplog.records if r.name == aiokafka_rebootstrap.__name__]
    assert len(said) == 2, said
    assert said[0].startswith("kafka client knows no broker: bootstrapping again from")
    assert said[1].startswith("kafka client bootstrapped again: brokers")


async def test_aiokafka_alone_stays_orphaned(orphaned_client: AIOKafkaClient) -> None:
    """Fails once aiokafka re-bootstraps by itself: then the patch can go."""
    aiokafka_rebootstrap.uninstall()
    for _ in range(3):
        updated = await asyncio.wait_for(orphaned_client.force_metadata_update(), 20)
        assert updated is False
    assert not orphaned_client.cluster.brokers()


async def test_an_idempotent_producer_started_against_a_starting_broker_starts(
    rebootstrap: None,
    starting_broker: tuple[StartingBroker, str],
    event_topics: list[str],
) -> None:
    """The projection seen stuck: its producer's start waited for a producer id forever."""
    _, bootstrap = starting_broker
    producer = AIOKafkaProducer(
        bootstrap_servers=bootstrap, enable_idempotence=True, request_timeout_ms=5000
    )
    try:
        await asyncio.wait_for(producer.start(), 30)
        sent = await asyncio.wait_for(producer.send_and_wait(event_topics[0], b"x"), 30)
        assert sent.offset >= 0
    finally:
        await producer.stop()


async def test_aiokafka_alone_never_starts_that_producer(
    starting_broker: tuple[StartingBroker, str],
) -> None:
    """Fails once aiokafka re-bootstraps by itself: then the patch can go."""
    aiokafka_rebootstrap.uninstall()
    _, bootstrap = starting_broker
    producer = AIOKafkaProducer(
        bootstrap_servers=bootstrap, enable_idempotence=True, request_timeout_ms=5000
    )
    try:
        with pytest.raises(TimeoutError):
            await asyncio.wait_for(producer.start(), 5)
    finally:
        await producer.stop()
