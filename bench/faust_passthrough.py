"""Run a Faust worker that copies ContentSubmitted records and does nothing else.

The floor under the bias processor: the same app options, the same batch size and the
same produce-then-ack path (`send_and_wait`) as `processors/bias/app.py`, without
decoding, scoring or encoding. `bias_throughput.py` runs it as a subprocess; its rate is
the most any Faust processor can reach on this machine and this broker.

    .venv/bin/python bench/faust_passthrough.py SINK_TOPIC
"""

from __future__ import annotations

import sys
from typing import cast

import faust

from fairstream.bootstrap import configure_service_logging, wait_for_kafka
from fairstream.settings import Settings, load_settings
from processors.bias.app import ROUNDS_PER_TAKE, app_and_source
from processors.deadletter import OutgoingMessage
from processors.faust_app import raw_message, send_and_wait


def create_app(settings: Settings, sink: str) -> faust.App:
    """Create the app: take batches like the bias app, send one copy of each record."""
    app, source = app_and_source(settings)
    take = max(1, settings.bias_batch_max) * ROUNDS_PER_TAKE
    wait = settings.bias_batch_wait_ms / 1000.0

    @app.agent(source, name="copy-content")
    async def copy_content(stream: faust.StreamT[bytes]) -> None:
        async for batch in cast(faust.Stream[bytes], stream).take_events(take, within=wait):
            raw = [raw_message(e.message) for e in batch]
            out = [OutgoingMessage(sink, m.key, m.value, m.headers) for m in raw]
            await send_and_wait(app, out)

    return app


def main() -> int:
    """Run the passthrough worker until SIGTERM."""
    settings = load_settings()
    configure_service_logging(settings, "bench-passthrough")
    app = create_app(settings, sys.argv[1])
    wait_for_kafka(settings, "bench-passthrough")
    worker = faust.Worker(app, loglevel=settings.log_level, quiet=True, override_logging=False)
    worker.spinner = None
    worker.execute_from_commandline()
    return 0


if __name__ == "__main__":
    sys.exit(main())
