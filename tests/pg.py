"""A real PostgreSQL server for the tests: Debian's postgresql, started once per test run.

initdb and pg_ctl run in a temporary directory, listening on a free loopback port only
(no Unix socket in a shared place). PostgreSQL refuses to run as root, so when the tests
run as root (CI) the server runs as the `postgres` user that Debian's package creates
(else `nobody`), through runuser; as any other user it runs as that user.
Each test gets a database of its own (`database_url`).
"""

from __future__ import annotations

import atexit
import glob
import os
import pwd
import random
import shutil
import socket
import subprocess
import tempfile
import uuid
from dataclasses import dataclass
from pathlib import Path

import pytest


@dataclass
class PostgresServer:
    base: Path
    port: int
    bin_dir: Path
    as_user: str | None

    @property
    def admin_url(self) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/postgres"

    def database_url(self) -> str:
        """A new, empty database on this server."""
        import psycopg

        name = f"t_{uuid.uuid4().hex[:12]}"
        with psycopg.connect(self.admin_url, autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        return f"postgresql://postgres@127.0.0.1:{self.port}/{name}"

    def pause(self) -> None:
        """Stop the server, keeping its data (a database outage); `start` starts it again.
        Fast mode: sessions are ended, and every committed transaction is on disk."""
        self._run("pg_ctl", "-D", str(self.base / "data"), "-m", "fast", "-w", "stop")

    def start(self) -> None:
        options = (f"-h 127.0.0.1 -p {self.port} -k '' -c fsync=off "
                   "-c synchronous_commit=off -c full_page_writes=off")
        self._run("pg_ctl", "-D", str(self.base / "data"), "-o", options,
                  "-l", str(self.base / "server.log"), "-w", "-t", "60", "start")

    def stop(self) -> None:
        self._run("pg_ctl", "-D", str(self.base / "data"), "-m", "immediate", "-w", "stop",
                  check=False)
        shutil.rmtree(self.base, ignore_errors=True)

    def _run(self, tool: str, *args: str, check: bool = True) -> None:
        command = [str(self.bin_dir / tool), *args]
        if self.as_user is not None:
            command = ["runuser", "-u", self.as_user, "--", *command]
        done = subprocess.run(command, capture_output=True, text=True, timeout=120)
        if check and done.returncode != 0:
            log = self.base / "server.log"
            tail = log.read_text()[-2000:] if log.exists() else ""
            raise RuntimeError(f"{tool} failed: {done.stderr or done.stdout}\n{tail}")


def _bin_dir() -> Path | None:
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"),
                   key=lambda p: int(Path(p).parts[4]) if Path(p).parts[4].isdigit() else 0)
    return Path(found[-1]).parent if found else None


def _free_port() -> int:
    """A free port below the ephemeral range (as tests/conftest.py picks the broker's):
    an outgoing connection cannot take it between this check and the server's bind."""
    low = int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    for _ in range(200):
        port = random.randrange(32_000 if low > 33_000 else 15_000, min(low, 60_000))
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port))
                return port
            except OSError:
                continue
    raise RuntimeError("no free port for PostgreSQL")


def _unprivileged_user() -> str:
    for name in ("postgres", "nobody"):
        try:
            pwd.getpwnam(name)
            return name
        except KeyError:
            continue
    raise RuntimeError("running as root, and neither a postgres nor a nobody user exists")


def start_postgres() -> PostgresServer:
    bin_dir = _bin_dir()
    if bin_dir is None:
        raise FileNotFoundError("PostgreSQL is not installed (apt-get install postgresql)")
    as_user = _unprivileged_user() if os.geteuid() == 0 else None
    base = Path(tempfile.mkdtemp(prefix="hookstream-pg-"))
    if as_user is not None:
        entry = pwd.getpwnam(as_user)
        os.chown(base, entry.pw_uid, entry.pw_gid)
    server = PostgresServer(base, _free_port(), bin_dir, as_user)
    server._run("initdb", "-D", str(base / "data"), "-U", "postgres", "--auth=trust",
                "-E", "UTF8", "--no-sync", "--no-instructions")
    server.start()
    return server


_server: list[PostgresServer] = []


def postgres_server() -> PostgresServer:
    """The test run's server, started on first use and stopped at exit. Skips the test
    where PostgreSQL is not installed, except in CI (CI=true), where that fails it."""
    if not _server:
        try:
            _server.append(start_postgres())
        except FileNotFoundError as e:
            if os.environ.get("CI"):
                pytest.fail(str(e))
            pytest.skip(str(e))
        atexit.register(_server[0].stop)
    return _server[0]
