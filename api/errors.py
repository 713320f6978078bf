"""One JSON error body for every failure the API reports."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

import asyncpg
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel
from pymongo.errors import ConnectionFailure, ExecutionTimeout
from starlette.exceptions import HTTPException as StarletteHTTPException


class ErrorDetail(BaseModel):
    """Describe what went wrong."""

    code: str
    message: str
    details: list[dict[str, Any]] | None = None


class ErrorBody(BaseModel):
    """Wrap the error detail; every 4xx/5xx body has this shape."""

    error: ErrorDetail


# Failures of a store the API reads (PostgreSQL, MongoDB): answered 503, never 500.
UNAVAILABLE: tuple[type[Exception], ...] = (
    asyncpg.PostgresConnectionError,
    asyncpg.exceptions.OperatorInterventionError,  # shutdown, cannot connect now, timeouts
    asyncpg.TooManyConnectionsError,
    asyncpg.InterfaceError,
    asyncpg.UndefinedTableError,  # started before `fairstream migrate`
    ConnectionFailure,
    ExecutionTimeout,
    OSError,  # connection refused or reset, including ConnectionError
    TimeoutError,
)
RETRY_AFTER_SECONDS = 5

# Which dependency failed, told by the library whose code raised the exception.
_DEPENDENCIES = (
    ("asyncpg", "postgres", "PostgreSQL"),
    ("pymongo", "mongo", "the MongoDB document store"),
    ("motor", "mongo", "the MongoDB document store"),
    ("redis", "redis", "Redis"),
)


def failed_dependency(exc: BaseException) -> tuple[str, str]:
    """Return (id, name) of the dependency whose client raised `exc`."""
    modules: list[str] = []
    visited: set[int] = set()
    seen: BaseException | None = exc
    while seen is not None and id(seen) not in visited:
        visited.add(id(seen))
        modules.append(type(seen).__module__)
        tb = seen.__traceback__
        while tb is not None:
            modules.append(str(tb.tb_frame.f_globals.get("__name__", "")))
            tb = tb.tb_next
        seen = seen.__cause__ or seen.__context__
    for module in reversed(modules):  # the innermost frame names the client that failed
        for prefix, ident, name in _DEPENDENCIES:
            if module == prefix or module.startswith(prefix + "."):
                return ident, name
    return "store", "a read-model store"


log = logging.getLogger(__name__)

_CODES = {
    400: "bad_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    422: "invalid_parameter",
    429: "rate_limited",
    500: "internal_error",
    503: "unavailable",
}


def error_response(
    status: int,
    message: str,
    details: list[dict[str, Any]] | None = None,
    headers: Mapping[str, str] | None = None,
) -> JSONResponse:
    """Build the JSON error response for a status code."""
    body = ErrorBody(
        error=ErrorDetail(code=_CODES.get(status, "error"), message=message, details=details)
    )
    return JSONResponse(
        body.model_dump(exclude_none=True), status_code=status, headers=dict(headers or {})
    )


def install_error_handlers(app: FastAPI) -> None:
    """Render HTTP and validation errors with the one error body."""

    async def http_error(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, StarletteHTTPException)
        headers = dict(exc.headers or {})
        if exc.status_code == 503:
            headers.setdefault("Retry-After", str(RETRY_AFTER_SECONDS))
        return error_response(exc.status_code, str(exc.detail), headers=headers)

    async def validation_error(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, RequestValidationError)
        details = [
            {"location": ".".join(str(p) for p in e.get("loc", ())), "problem": e.get("msg")}
            for e in exc.errors()
        ]
        return error_response(422, "invalid request parameters", details)

    async def unavailable(request: Request, exc: Exception) -> JSONResponse:
        ident, name = failed_dependency(exc)
        log.warning("%s is unavailable: %s", name, type(exc).__name__)
        return error_response(
            503,
            f"{name} is unavailable; retry later",
            [{"dependency": ident, "problem": type(exc).__name__}],
            headers={"Retry-After": str(RETRY_AFTER_SECONDS)},
        )

    async def internal(request: Request, exc: Exception) -> JSONResponse:
        log.error("unhandled error on %s %s", request.method, request.url.path, exc_info=exc)
        return error_response(500, "internal error; it has been logged")

    app.add_exception_handler(StarletteHTTPException, http_error)
    app.add_exception_handler(RequestValidationError, validation_error)
    app.add_exception_handler(Exception, internal)
    for exc_type in UNAVAILABLE:
        app.add_exception_handler(exc_type, unavailable)
