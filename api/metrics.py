"""Prometheus metrics for HTTP requests, labelled by route template, never by raw path."""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable

from fastapi import Request, Response
from prometheus_client import Counter, Histogram

HTTP_REQUESTS = Counter(
    "fairstream_http_requests_total",
    "HTTP requests served by the API.",
    ["route", "method", "status"],
)
HTTP_DURATION = Histogram(
    "fairstream_http_request_duration_seconds",
    "HTTP request duration.",
    ["route", "method"],
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0),
)


async def record_request(
    request: Request, call_next: Callable[[Request], Awaitable[Response]]
) -> Response:
    """Time the request and count it by route template, method and status."""
    started = time.perf_counter()
    response = await call_next(request)
    route = request.scope.get("route")
    template = getattr(route, "path", "unmatched")
    HTTP_REQUESTS.labels(template, request.method, str(response.status_code)).inc()
    HTTP_DURATION.labels(template, request.method).observe(time.perf_counter() - started)
    return response
