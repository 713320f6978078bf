"""Create Faust apps with the settings every fairstream processor shares."""

from __future__ import annotations

from typing import Any

import faust

from fairstream.settings import Settings


def new_app(settings: Settings, app_id: str, **overrides: Any) -> faust.App:
    """Create a Faust app: raw bytes on the wire (the codec owns Avro), acks=all, local state
    under the stack directory, no web server; `overrides` win."""
    datadir = settings.stack_dir / "faust" / app_id
    datadir.mkdir(parents=True, exist_ok=True)
    options: dict[str, Any] = {
        "broker": f"kafka://{settings.kafka_bootstrap}",
        "store": "memory://",
        "key_serializer": "raw",
        "value_serializer": "raw",
        "producer_acks": -1,
        "consumer_auto_offset_reset": "earliest",
        "topic_allow_declare": False,
        "topic_disable_leader": True,
        "web_enabled": False,
        "datadir": str(datadir),
    }
    options.update(overrides)
    return faust.App(app_id, **options)
