"""PostgreSQL from the distribution's packages, in a data directory of the stack's own.

PostgreSQL refuses to run as root, so when the stack runs as root the server (and initdb) run
as an unprivileged account (`postgres`, created by Debian's package) through `setpriv`. That
account must be able to reach the data directory: when a parent of the stack directory is
closed to it (a checkout under /root, say), data and socket go to
/var/lib/fairstream-stack/<hash of the stack dir>/ instead, with a symlink left at
`.stack/data/postgres`.
"""

from __future__ import annotations

import hashlib
import os
import pwd
import re
import shutil
import signal
import stat
from pathlib import Path
from typing import Any

from fairstream.stack.component import (
    Component,
    require_executable,
    run_checked,
    run_coroutine,
)
from fairstream.stack.config import StackConfig
from fairstream.stack.exceptions import ComponentError
from fairstream.stack.supervisor import ManagedProcess

__all__ = ["PostgresServer", "find_postgres_bin_dir", "path_reachable_by"]

FALLBACK_ROOT = Path("/var/lib/fairstream-stack")
_IDENTIFIER = re.compile(r"^[a-z_][a-z0-9_]*$")


def find_postgres_bin_dir(configured: Path | None = None) -> Path:
    """Return the directory holding initdb and postgres (newest Debian version first)."""
    if configured is not None:
        return configured
    versions = []
    for candidate in Path("/usr/lib/postgresql").glob("*/bin"):
        if (candidate / "postgres").exists() and candidate.parent.name.isdigit():
            versions.append((int(candidate.parent.name), candidate))
    if versions:
        return max(versions)[1]
    found = shutil.which("postgres")
    if found:
        return Path(found).resolve().parent
    raise ComponentError(
        "postgres",
        "PostgreSQL server binaries not found; run deploy/native/install-system-deps.sh",
    )


def path_reachable_by(path: Path, uid: int, gids: set[int]) -> bool:
    """Tell whether a user may traverse every existing ancestor of `path`."""
    for parent in [path, *path.parents]:
        try:
            st = parent.stat()
        except FileNotFoundError:
            continue
        if not stat.S_ISDIR(st.st_mode):
            continue
        if st.st_uid == uid:
            ok = bool(st.st_mode & stat.S_IXUSR)
        elif st.st_gid in gids:
            ok = bool(st.st_mode & stat.S_IXGRP)
        else:
            ok = bool(st.st_mode & stat.S_IXOTH)
        if not ok:
            return False
    return True


def _user_gids(user: pwd.struct_passwd) -> set[int]:
    return set(os.getgrouplist(user.pw_name, user.pw_gid))


class PostgresServer(Component):
    """Run a private PostgreSQL cluster with trust auth on loopback."""

    name = "postgres"
    start_order = 20

    def __init__(self, config: StackConfig) -> None:
        super().__init__(config)
        for ident in (config.postgres_user, config.postgres_database, config.ferretdb_database):
            if not _IDENTIFIER.match(ident):
                raise ComponentError("postgres", f"unsupported identifier {ident!r}")

    # Who runs the server, and where its files live ------------------------------------

    def os_user(self) -> pwd.struct_passwd | None:
        """Return the account that runs the server, or None to run as the current user."""
        if os.geteuid() != 0:
            return None
        try:
            return pwd.getpwnam(self.config.postgres_os_user)
        except KeyError as exc:
            raise ComponentError(
                "postgres",
                f"running as root needs the unprivileged user {self.config.postgres_os_user!r} "
                "(created by the postgresql package); run deploy/native/install-system-deps.sh",
            ) from exc

    def _fallback_base(self) -> Path:
        digest = hashlib.sha1(str(self.layout.root).encode()).hexdigest()[:12]
        return FALLBACK_ROOT / digest

    def _base_reachable(self) -> bool:
        user = self.os_user()
        if user is None:
            return True
        return path_reachable_by(self.layout.root, user.pw_uid, _user_gids(user))

    @property
    def data_dir(self) -> Path:
        """Return PGDATA."""
        link = self.layout.data / "postgres"
        if link.is_symlink():
            return link.resolve()
        if link.exists() or self._base_reachable():
            return link
        return self._fallback_base() / "postgres"

    @property
    def socket_dir(self) -> Path:
        """Return the unix socket directory."""
        if self.data_dir == self.layout.data / "postgres":
            return self.layout.run / "postgres"
        return self.data_dir.parent / "run"

    def _as_server_user(self, argv: list[str]) -> list[str]:
        user = self.os_user()
        if user is None:
            return argv
        setpriv = require_executable("postgres", "setpriv")
        return [
            setpriv,
            f"--reuid={user.pw_uid}",
            f"--regid={user.pw_gid}",
            "--init-groups",
            "--",
            *argv,
        ]

    def _server_env(self) -> dict[str, str]:
        env = self.base_env()
        user = self.os_user()
        if user is not None:
            env.update(HOME=user.pw_dir, USER=user.pw_name, LOGNAME=user.pw_name)
        env.update(LC_ALL="C.UTF-8", LANG="C.UTF-8")
        return env

    # Component ------------------------------------------------------------------------

    def processes(self) -> list[ManagedProcess]:
        """Return the postmaster."""
        bin_dir = find_postgres_bin_dir(self.config.postgres_bin_dir)
        argv = [
            str(bin_dir / "postgres"),
            "-D",
            str(self.data_dir),
            "-p",
            str(self.config.postgres_port),
            "-c",
            f"listen_addresses={self.config.host}",
            "-c",
            f"unix_socket_directories={self.socket_dir}",
            "-c",
            "max_connections=400",
            "-c",
            "logging_collector=off",
        ]
        return [
            ManagedProcess(
                "postgres",
                self._as_server_user(argv),
                self.layout.root,
                self._server_env(),
                cwd=Path("/"),
                # SIGINT is PostgreSQL's fast shutdown; SIGTERM would wait for every client.
                stop_signal=signal.SIGINT,
                signal_group=False,
                stop_timeout=30.0,
            )
        ]

    def listen_ports(self) -> list[int]:
        """Return the server port."""
        return [self.config.postgres_port]

    def _own(self, path: Path, mode: int) -> None:
        path.mkdir(parents=True, exist_ok=True)
        user = self.os_user()
        if user is not None:
            os.chown(path, user.pw_uid, user.pw_gid)
        path.chmod(mode)

    def prepare(self) -> None:
        """Create the cluster with initdb unless it exists."""
        bin_dir = find_postgres_bin_dir(self.config.postgres_bin_dir)
        data = self.data_dir
        for directory in (self.layout.root, self.layout.data, self.layout.run):
            directory.mkdir(parents=True, exist_ok=True)
        link = self.layout.data / "postgres"
        if data != link and not link.is_symlink():
            FALLBACK_ROOT.mkdir(parents=True, exist_ok=True)
            FALLBACK_ROOT.chmod(0o755)
            self._fallback_base().mkdir(parents=True, exist_ok=True)
            self._fallback_base().chmod(0o755)
            link.symlink_to(data, target_is_directory=True)
        self._own(self.socket_dir, 0o755)
        if (data / "PG_VERSION").exists():
            return
        if data.exists():
            shutil.rmtree(data)  # a half-finished initdb; start over
        self._own(data, 0o700)
        run_checked(
            "postgres",
            self._as_server_user(
                [
                    str(bin_dir / "initdb"),
                    "-D",
                    str(data),
                    "-U",
                    self.config.postgres_user,
                    "--auth=trust",
                    "-E",
                    "UTF8",
                    "--locale=C",
                ]
            ),
            env=self._server_env(),
            cwd=Path("/"),
            timeout=180,
            log=self.layout.logs / "postgres.log",
        )

    async def _query(self, database: str, sql: str) -> list[Any]:
        import asyncpg

        conn = await asyncpg.connect(
            host=self.config.host,
            port=self.config.postgres_port,
            user=self.config.postgres_user,
            database=database,
            timeout=3,
        )
        try:
            return list(await conn.fetch(sql))
        finally:
            await conn.close()

    def probe(self) -> bool:
        """Connect over TCP and run SELECT 1."""
        rows = run_coroutine(self._query("postgres", "SELECT 1 AS ok"))
        return bool(rows and rows[0]["ok"] == 1)

    def after_ready(self) -> None:
        """Create the application and FerretDB databases when missing."""
        run_coroutine(self._create_databases())

    async def _create_databases(self) -> None:
        import asyncpg

        conn = await asyncpg.connect(
            host=self.config.host,
            port=self.config.postgres_port,
            user=self.config.postgres_user,
            database="postgres",
            timeout=5,
        )
        try:
            for database in (self.config.postgres_database, self.config.ferretdb_database):
                exists = await conn.fetchval(
                    "SELECT 1 FROM pg_database WHERE datname = $1", database
                )
                if not exists:
                    # Identifiers are validated in __init__; CREATE DATABASE takes no parameters.
                    await conn.execute(f'CREATE DATABASE "{database}"')
        finally:
            await conn.close()

    def endpoints(self) -> dict[str, str]:
        """Return the application DSN."""
        return {"dsn": self.config.postgres_dsn}

    def detail(self) -> dict[str, Any]:
        """Return data and socket locations and the server account."""
        user = self.config.postgres_os_user if os.geteuid() == 0 else None
        return {
            "data_dir": str(self.data_dir),
            "socket_dir": str(self.socket_dir),
            "os_user": user,
        }

    def data_paths(self) -> list[Path]:
        """Return PGDATA (and its fallback location) plus the socket directory."""
        paths = [self.layout.data / "postgres", self.layout.run / "postgres"]
        if self._fallback_base().exists():
            paths.append(self._fallback_base())
        return paths
