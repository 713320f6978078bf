"""Helpers for tests that run services: ports, polling and subprocess environments."""

from __future__ import annotations

import asyncio
import os
import socket
import time
import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TypeVar

from confluent_kafka import Consumer, Message

from events.codec import EventCodec
from events.model import Event
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


def read_topic(settings: Settings, topic: str, count: int, timeout: float = 90.0) -> list[Message]:
    """Read `count` records of `topic` from the beginning, or what arrived before the timeout."""
    consumer = Consumer(
        {
            "bootstrap.servers": settings.kafka_bootstrap,
            "group.id": f"{settings.topic_prefix}reader-{uuid.uuid4().hex[:6]}",
            "auto.offset.reset": "earliest",
        }
    )
    consumer.subscribe([topic])
    found: list[Message] = []
    deadline = time.monotonic() + timeout
    try:
        while len(found) < count and time.monotonic() < deadline:
            msg = consumer.poll(0.5)
            if msg is not None and msg.error() is None:
                found.append(msg)
    finally:
        consumer.close()
    return found


def byte_headers(message: Message) -> dict[str, bytes]:
    """Return a record's headers whose values are bytes, by name."""
    raw = message.headers() or []
    items = raw.items() if isinstance(raw, dict) else raw
    return {k: v for k, v in items if isinstance(v, bytes)}


def decode(codec: EventCodec, messages: list[Message]) -> list[Event]:
    """Decode consumed records with the project's codec."""
    return [codec.decode(m.value(), m.headers()) for m in messages]
