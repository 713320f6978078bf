"""FerretDB (a MongoDB wire protocol server) built from the Go module proxy.

`resources/ferretdb/` holds a Go module that requires FerretDB at the pinned version. The
module zip has no `build/version/version.txt` (FerretDB's release tooling generates it) and
the binary panics at start without it, so the build vendors the dependencies, writes the
version into the vendored copy and builds with `-mod=vendor`, all under the stack's cache.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from pathlib import Path
from typing import Any

from fairstream.stack.component import (
    Component,
    file_lock,
    require_executable,
    run_checked,
    run_coroutine,
)
from fairstream.stack.config import FERRETDB_VERSION, RESOURCES_DIR, StackConfig
from fairstream.stack.exceptions import ComponentError
from fairstream.stack.supervisor import ManagedProcess

__all__ = ["FerretDBServer", "ensure_ferretdb_binary"]

MODULE_DIR = RESOURCES_DIR / "ferretdb"
MODULE_FILES = ("go.mod", "go.sum", "tools.go")
ID_INDEX_SQL = MODULE_DIR / "id-index.sql"
MAIN_PACKAGE = "github.com/FerretDB/FerretDB/cmd/ferretdb"
VERSION_FILE = Path("vendor/github.com/FerretDB/FerretDB/build/version/version.txt")


def _module_digest() -> str:
    digest = hashlib.sha256(FERRETDB_VERSION.encode())
    for name in MODULE_FILES:
        digest.update((MODULE_DIR / name).read_bytes())
    return digest.hexdigest()


def go_env(config: StackConfig) -> dict[str, str]:
    """Return the environment of `go` commands: caches under the stack cache, static build."""
    go_root = config.layout.cache / "go"
    env = {k: v for k, v in os.environ.items() if not k.startswith("GO")}
    for key in ("GOPROXY", "GONOSUMDB", "GONOSUMCHECK", "GOPRIVATE", "GOSUMDB"):
        if key in os.environ:
            env[key] = os.environ[key]
    env.update(
        GOPATH=str(go_root / "path"),
        GOMODCACHE=str(go_root / "mod"),
        GOCACHE=str(go_root / "build"),
        GOFLAGS="-modcacherw -buildvcs=false",
        GOTOOLCHAIN="local",
        CGO_ENABLED="0",
        HOME=env.get("HOME", str(go_root)),
    )
    return env


def _cached(binary: Path, stamp: Path, digest: str) -> bool:
    try:
        return binary.exists() and json.loads(stamp.read_text()).get("digest") == digest
    except (FileNotFoundError, ValueError):
        return False


def ensure_ferretdb_binary(config: StackConfig) -> Path:
    """Build FerretDB unless the cached binary matches the pinned module; return its path."""
    binary = config.layout.bin / "ferretdb"
    stamp = config.layout.bin / "ferretdb.json"
    digest = _module_digest()
    if _cached(binary, stamp, digest):
        return binary
    go = require_executable("ferretdb", config.go)
    with file_lock(config.layout.cache / ".ferretdb-build.lock"):
        if not _cached(binary, stamp, digest):
            _build(config, go, binary, stamp, digest)
    return binary


def _build(config: StackConfig, go: str, binary: Path, stamp: Path, digest: str) -> None:
    build = config.layout.cache / "ferretdb-build"
    log = config.layout.logs / "ferretdb-build.log"
    if build.exists():
        shutil.rmtree(build)
    build.mkdir(parents=True)
    for name in MODULE_FILES:
        shutil.copyfile(MODULE_DIR / name, build / name)
    env = go_env(config)
    run_checked("ferretdb", [go, "mod", "vendor"], env=env, cwd=build, timeout=1200, log=log)
    version_file = build / VERSION_FILE
    if not version_file.parent.is_dir():
        raise ComponentError("ferretdb", f"vendored FerretDB lacks {version_file.parent}")
    version_file.write_text(FERRETDB_VERSION + "\n")
    config.layout.bin.mkdir(parents=True, exist_ok=True)
    tmp = binary.with_suffix(".tmp")
    run_checked(
        "ferretdb",
        [go, "build", "-mod=vendor", "-trimpath", "-o", str(tmp), MAIN_PACKAGE],
        env=env,
        cwd=build,
        timeout=1800,
        log=log,
    )
    version = run_checked("ferretdb", [str(tmp), "--version"], timeout=30)
    if f"version: {FERRETDB_VERSION}" not in version:
        raise ComponentError("ferretdb", f"built binary reports {version.strip()!r}")
    tmp.replace(binary)
    stamp.write_text(json.dumps({"version": FERRETDB_VERSION, "digest": digest}) + "\n")
    shutil.rmtree(build)  # the vendor tree is only needed for the build
    _trim_go_cache(config)


def _trim_go_cache(config: StackConfig) -> None:
    """Drop the build cache and unpacked modules (~800 MB); keep the module zips (~100 MB).

    A rebuild (after go.mod changes) then unpacks from the zips without the network.
    """
    go_root = config.layout.cache / "go"
    shutil.rmtree(go_root / "build", ignore_errors=True)
    mod = go_root / "mod"
    if mod.is_dir():
        for entry in mod.iterdir():
            if entry.name != "cache":
                shutil.rmtree(entry, ignore_errors=True)


FERRETDB_POOL_MAX_CONNS = 200


class FerretDBServer(Component):
    """Run FerretDB on the PostgreSQL backend (database `ferretdb`) or on SQLite."""

    name = "ferretdb"
    start_order = 40

    @property
    def binary(self) -> Path:
        """Return the cached FerretDB binary."""
        return self.config.layout.bin / "ferretdb"

    @property
    def state_dir(self) -> Path:
        """Return FerretDB's state directory (and SQLite data, when that backend is used)."""
        return self.layout.data / "ferretdb"

    def backend_args(self) -> list[str]:
        """Return the handler flags."""
        if self.config.ferretdb_backend == "sqlite":
            return ["--handler=sqlite", f"--sqlite-url=file:{self.state_dir / 'sqlite'}/"]
        url = self.config.postgres_dsn_for(self.config.ferretdb_database)
        # FerretDB 1.x caps its pgx pool at 50 connections. A createIndexes on a new
        # database holds the metadata registry's write lock while it waits for a pooled
        # connection, and every pooled connection can be held by a request waiting for
        # that lock: under many concurrent clients FerretDB deadlocks (seen with the test
        # suite in parallel). A larger pool makes that much rarer; PostgreSQL allows 400.
        sep = "&" if "?" in url else "?"
        url += f"{sep}pool_max_conns={FERRETDB_POOL_MAX_CONNS}"
        return [
            "--handler=postgresql",
            "--postgresql-url=" + url.replace("postgresql://", "postgres://", 1),
        ]

    def processes(self) -> list[ManagedProcess]:
        """Return the FerretDB process."""
        debug = (
            f"{self.config.host}:{self.config.ferretdb_debug_port}"
            if self.config.ferretdb_debug_port is not None
            else "-"
        )
        argv = [
            str(self.binary),
            f"--listen-addr={self.config.host}:{self.config.ferretdb_port}",
            *self.backend_args(),
            f"--state-dir={self.state_dir}",
            f"--debug-addr={debug}",
            "--telemetry=disable",
            "--log-level=info",
            "--log-format=text",
        ]
        env = self.base_env()
        env["DO_NOT_TRACK"] = "1"
        return [ManagedProcess("ferretdb", argv, self.layout.root, env, stop_timeout=20.0)]

    def listen_ports(self) -> list[int]:
        """Return the MongoDB wire port (and the debug port when enabled)."""
        ports = [self.config.ferretdb_port]
        if self.config.ferretdb_debug_port is not None:
            ports.append(self.config.ferretdb_debug_port)
        return ports

    def prepare(self) -> None:
        """Build the binary once, create the state directory and index `_id` lookups."""
        ensure_ferretdb_binary(self.config)
        (self.state_dir / "sqlite").mkdir(parents=True, exist_ok=True)
        if self.config.ferretdb_backend == "postgresql":
            run_coroutine(self._install_id_index())

    async def _install_id_index(self) -> None:
        """Run `id-index.sql` in FerretDB's database (PostgreSQL is up: it starts first)."""
        import asyncpg

        conn = await asyncpg.connect(
            self.config.postgres_dsn_for(self.config.ferretdb_database), timeout=10
        )
        try:
            await conn.execute(ID_INDEX_SQL.read_text(encoding="utf-8"))
        finally:
            await conn.close()

    def probe(self) -> bool:
        """Send the MongoDB `ping` command."""
        from pymongo import MongoClient

        client: MongoClient[dict[str, Any]] = MongoClient(
            self.config.mongo_url, serverSelectionTimeoutMS=2000, connectTimeoutMS=2000
        )
        try:
            return bool(client.admin.command("ping").get("ok"))
        finally:
            client.close()

    def endpoints(self) -> dict[str, str]:
        """Return the MongoDB URL."""
        return {"url": self.config.mongo_url}

    def detail(self) -> dict[str, Any]:
        """Return version and backend."""
        return {
            "version": FERRETDB_VERSION,
            "backend": self.config.ferretdb_backend,
            "binary": str(self.binary),
        }

    def data_paths(self) -> list[Path]:
        """Return the state directory (PostgreSQL data is purged with PostgreSQL)."""
        return [self.state_dir]
