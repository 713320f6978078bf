"""Store failures become 503 naming the dependency; NUL bytes in parameters become 422."""

from __future__ import annotations

import socket

import asyncpg
import httpx
import pytest
from fastapi import Depends, FastAPI
from pymongo import MongoClient
from pymongo.errors import ServerSelectionTimeoutError

from api.errors import failed_dependency, install_error_handlers
from api.listing import reject_nul_bytes


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def test_a_refused_postgres_connection_is_named_postgres() -> None:
    with pytest.raises(OSError) as info:
        await asyncpg.connect(host="127.0.0.1", port=_closed_port(), user="x", timeout=2)
    assert failed_dependency(info.value) == ("postgres", "PostgreSQL")


def test_an_unreachable_mongo_server_is_named_mongo() -> None:
    client: MongoClient[dict[str, object]] = MongoClient(
        f"mongodb://127.0.0.1:{_closed_port()}/", serverSelectionTimeoutMS=100
    )
    try:
        with pytest.raises(ServerSelectionTimeoutError) as info:
            client.admin.command("ping")
    finally:
        client.close()
    assert failed_dependency(info.value)[0] == "mongo"


def test_an_error_of_no_known_client_is_a_store() -> None:
    assert failed_dependency(TimeoutError("x"))[0] == "store"


def _app() -> FastAPI:
    app = FastAPI(dependencies=[Depends(reject_nul_bytes)])
    install_error_handlers(app)

    @app.get("/down")
    async def down() -> None:
        await asyncpg.connect(host="127.0.0.1", port=_closed_port(), user="x", timeout=2)

    @app.get("/echo")
    async def echo(q: str = "") -> dict[str, str]:
        return {"q": q}

    @app.get("/items/{name}")
    async def item(name: str) -> dict[str, str]:
        return {"name": name}

    return app


async def test_a_store_failure_is_a_503_problem_with_retry_after() -> None:
    transport = httpx.ASGITransport(app=_app())
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
        r = await client.get("/down")
    assert r.status_code == 503 and r.headers["Retry-After"] == "5"
    error = r.json()["error"]
    assert error["code"] == "unavailable" and error["message"].startswith("PostgreSQL")
    assert error["details"][0]["dependency"] == "postgres"


async def test_a_nul_byte_in_the_query_or_path_is_a_422_naming_it() -> None:
    transport = httpx.ASGITransport(app=_app())
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
        assert (await client.get("/echo", params={"q": "fine"})).json() == {"q": "fine"}
        r = await client.get("/echo", params={"q": "a\x00b"})
        assert r.status_code == 422 and "'q'" in r.json()["error"]["message"]
        r = await client.get("/items/a%00b")
        assert r.status_code == 422 and "path" in r.json()["error"]["message"]
