"""Run fairstream's own services in the foreground: processors, projections, the API."""

from __future__ import annotations

import argparse
import asyncio
import logging
from typing import Any

from fairstream.settings import load_settings


def _logging() -> None:
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )


def run_processor(args: argparse.Namespace) -> int:
    """Run a Faust processor worker until stopped."""
    import faust

    from fairstream.bootstrap import build_processor_app

    settings = load_settings()
    if args.model:
        settings.bias_model = args.model
    app = build_processor_app(settings, args.name)
    worker = faust.Worker(app, loglevel="INFO", quiet=True)
    worker.execute_from_commandline()
    return 0


def run_projection(args: argparse.Namespace) -> int:
    """Run one projection until stopped."""
    from fairstream.bootstrap import run_projection as run

    _logging()
    stats = asyncio.run(run(load_settings(), args.name))
    logging.getLogger(__name__).info("projection stopped: %s", stats)
    return 0


def run_api(args: argparse.Namespace) -> int:
    """Serve the query API with uvicorn."""
    import uvicorn

    from fairstream.bootstrap import build_api

    settings = load_settings()
    host = args.host or settings.api_host
    port = args.port or settings.api_port
    uvicorn.run(build_api(settings), host=host, port=port, log_level="info", access_log=False)
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
