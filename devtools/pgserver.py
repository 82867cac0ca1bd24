"""A throwaway PostgreSQL server for tests and measurements, started the way pytest-postgresql
does it: `initdb` into a temporary directory, `pg_ctl start` on a free loopback port with the
unix socket inside that directory, `pg_ctl stop` and the directory removed at the end.

PostgreSQL refuses to run as root, and CI runs as root: then the server runs as the `postgres`
system user (created here when missing) in a directory under /tmp that it owns. pytest-postgresql
cannot switch users, which is why this is ours.

    with PostgresServer.start() as server:
        server.create_database("t1")   # -> "postgresql://postgres@127.0.0.1:PORT/t1"
"""

from __future__ import annotations

import contextlib
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

__all__ = ["PostgresServer", "ServerUnavailable", "find_bin_dir"]

_USER = "postgres"
_SEARCH = ("/usr/lib/postgresql/17/bin", "/usr/lib/postgresql/16/bin", "/usr/lib/postgresql/15/bin")


class ServerUnavailable(RuntimeError):
    """No PostgreSQL server could be started; the message says why and what to install."""


def find_bin_dir() -> Path:
    """Where initdb, pg_ctl and postgres are (PATH first, then Debian's versioned dirs)."""
    found = shutil.which("initdb")
    candidates = [Path(found).parent] if found else []
    candidates += [Path(d) for d in _SEARCH]
    for d in candidates:
        if all((d / tool).exists() for tool in ("initdb", "pg_ctl", "postgres")):
            return d
    raise ServerUnavailable(
        "PostgreSQL server binaries not found (initdb, pg_ctl, postgres on PATH or in "
        "/usr/lib/postgresql/*/bin): install them with `apt-get install -y postgresql`"
    )


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class PostgresServer:
    root: Path
    port: int
    bin_dir: Path
    as_user: str | None  # run the tools as this user (we are root), or as ourselves

    @property
    def url(self) -> str:
        return self.url_for("postgres")

    def url_for(self, database: str) -> str:
        return f"postgresql://{_USER}@127.0.0.1:{self.port}/{database}"

    @classmethod
    @contextlib.contextmanager
    def start(cls) -> Iterator[PostgresServer]:
        server = cls._init()
        try:
            server._run(
                "pg_ctl",
                "start",
                "-w",
                "-t",
                "60",
                "-D",
                str(server.root / "data"),
                "-l",
                str(server.root / "server.log"),
                "-o",
                # Tests and benches: durability off (fsync, full pages), sockets in our dir.
                f"-p {server.port} -k {server.root} -c listen_addresses=127.0.0.1 "
                "-c fsync=off -c synchronous_commit=off -c full_page_writes=off "
                "-c max_connections=200",
            )
        except ServerUnavailable:
            shutil.rmtree(server.root, ignore_errors=True)
            raise
        try:
            yield server
        finally:
            with contextlib.suppress(ServerUnavailable):
                server._run("pg_ctl", "stop", "-m", "immediate", "-D", str(server.root / "data"))
            shutil.rmtree(server.root, ignore_errors=True)

    @classmethod
    def _init(cls) -> PostgresServer:
        bin_dir = find_bin_dir()
        as_user = _USER if os.geteuid() == 0 else None
        if as_user is not None:
            _ensure_user(as_user)
        # Not under /root or a home the postgres user cannot enter: /tmp is world-traversable.
        root = Path(tempfile.mkdtemp(prefix="sa-pg-", dir="/tmp"))
        if as_user is not None:
            entry = pwd.getpwnam(as_user)
            os.chown(root, entry.pw_uid, entry.pw_gid)
        server = cls(root=root, port=_free_port(), bin_dir=bin_dir, as_user=as_user)
        try:
            server._run(
                "initdb",
                "-D",
                str(root / "data"),
                "-U",
                _USER,
                "--auth=trust",
                "-E",
                "UTF8",
                "--no-sync",
                "--locale=C",
            )
        except ServerUnavailable:
            shutil.rmtree(root, ignore_errors=True)
            raise
        return server

    def create_database(self, name: str) -> str:
        """A fresh, empty database on this server; returns its URL."""
        import psycopg

        with psycopg.connect(self.url, autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}"'.encode())
        return self.url_for(name)

    def _run(self, tool: str, *args: str) -> None:
        self._exec([str(self.bin_dir / tool), *args])

    def _exec(self, argv: Sequence[str]) -> None:
        if self.as_user is not None:
            argv = ["runuser", "-u", self.as_user, "--", *argv]
        done = subprocess.run(
            argv, capture_output=True, text=True, cwd=self.root, timeout=120, check=False
        )
        if done.returncode != 0:
            log = self.root / "server.log"
            tail = log.read_text(errors="replace")[-1500:] if log.exists() else ""
            raise ServerUnavailable(
                f"{Path(argv[0] if self.as_user is None else argv[4]).name} failed "
                f"(exit {done.returncode}): {(done.stderr or done.stdout).strip()[-1500:]}"
                + (f"\nserver log:\n{tail}" if tail else "")
            )


def _ensure_user(name: str) -> None:
    try:
        pwd.getpwnam(name)
    except KeyError:
        done = subprocess.run(
            ["useradd", "--system", "--no-create-home", "--shell", "/usr/sbin/nologin", name],
            capture_output=True,
            text=True,
            check=False,
        )
        if done.returncode != 0:
            raise ServerUnavailable(
                f"PostgreSQL will not run as root and user {name!r} could not be created: "
                f"{done.stderr.strip()}"
            ) from None
