"""Run fairstream's own services in the foreground: processors, projections, the API."""

from __future__ import annotations

import argparse
import asyncio
import logging
from typing import Any

from fairstream.settings import load_settings

# Logging is set up by fairstream.bootstrap.configure_service_logging (FAIRSTREAM_LOG_FORMAT,
# FAIRSTREAM_LOG_LEVEL); Faust and uvicorn are told not to install handlers of their own.


def run_processor(args: argparse.Namespace) -> int:
    """Run a Faust processor worker until stopped."""
    import faust

    from fairstream.bootstrap import (
        build_processor_app,
        configure_service_logging,
        serve_metrics,
        wait_for_kafka,
    )

    settings = load_settings()
    if args.model:
        settings.bias_model = args.model
    configure_service_logging(settings, f"processor-{args.name}")
    app = build_processor_app(settings, args.name)
    serve_metrics(settings)  # after the app (and the bias model) is built: probes wait for it
    wait_for_kafka(settings, f"processor-{args.name}")  # else a restarting broker kills it
    worker = faust.Worker(app, loglevel=settings.log_level, quiet=True, override_logging=False)
    worker.spinner = None  # no terminal spinner: its escape codes would break the log lines
    worker.execute_from_commandline()
    return 0


def run_projection(args: argparse.Namespace) -> int:
    """Run one projection until stopped."""
    from fairstream.bootstrap import configure_service_logging, serve_metrics
    from fairstream.bootstrap import run_projection as run

    settings = load_settings()
    configure_service_logging(settings, f"projection-{args.name}")
    serve_metrics(settings)
    stats = asyncio.run(run(settings, args.name))
    logging.getLogger(__name__).info("projection stopped: %s", stats)
    return 0


def run_api(args: argparse.Namespace) -> int:
    """Serve the query API with uvicorn (metrics at the API's own /metrics)."""
    import uvicorn

    from fairstream.bootstrap import build_api, configure_service_logging

    settings = load_settings()
    host = args.host or settings.api_host
    port = args.port or settings.api_port
    configure_service_logging(settings, "api")
    uvicorn.run(
        build_api(settings),
        host=host,
        port=port,
        log_level=settings.log_level.lower(),
        log_config=None,
        access_log=False,
    )
    return 0


def register(subparsers: Any) -> None:
    """Add `processor`, `projection` and `api`."""
    from fairstream.bootstrap import PROCESSORS, PROJECTIONS

    proc = subparsers.add_parser("processor", help="run a stream processor (Faust worker)")
    proc.add_argument("name", choices=["bias", *PROCESSORS], help="which processor")
    proc.add_argument("--model", choices=["fast", "quality"], help="bias model (default: settings)")
    proc.set_defaults(func=run_processor)

    proj = subparsers.add_parser("projection", help="run a projection into its read model")
    proj.add_argument("name", choices=sorted(PROJECTIONS), help="which projection")
    proj.set_defaults(func=run_projection)

    api = subparsers.add_parser("api", help="serve the read-only query API")
    api.add_argument("--host", help="bind address (default FAIRSTREAM_API_HOST)")
    api.add_argument("--port", type=int, help="port (default FAIRSTREAM_API_PORT)")
    api.set_defaults(func=run_api)
