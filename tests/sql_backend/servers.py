"""Throw-away PostgreSQL and MariaDB servers for the tests, spawned from binaries on PATH.

Each server keeps its files in a temporary directory, listens on a free
loopback port, trades durability for speed (no fsync) and is stopped by `stop`.
Fault tests `restart` one on the same port and data directory (a clean, fast
shutdown: committed transactions survive it even without fsync).
PostgreSQL refuses to run as root, so when the tests run as root the server
runs as an unprivileged account (``postgres`` or ``nobody``).
"""

from __future__ import annotations

import os
import pwd
import shutil
import signal
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

from tests.support import free_port, port_open


def _run_as() -> pwd.struct_passwd | None:
    """The account to run PostgreSQL as, or None to stay who we are (not root)."""
    if os.geteuid() != 0:
        return None
    for name in ("postgres", "nobody"):
        try:
            return pwd.getpwnam(name)
        except KeyError:
            continue
    raise RuntimeError("running as root and no unprivileged account to run PostgreSQL as")


def postgres_binaries() -> tuple[str, str] | None:
    """Paths of ``initdb`` and ``postgres``, or None if either is missing."""
    initdb, postgres = shutil.which("initdb"), shutil.which("postgres")
    return (initdb, postgres) if initdb and postgres else None


def mariadb_binaries() -> tuple[str, str] | None:
    """Paths of ``mariadb-install-db`` and ``mariadbd``, or None if either is missing."""
    install = shutil.which("mariadb-install-db") or shutil.which("mysql_install_db")
    server = shutil.which("mariadbd") or shutil.which("mysqld")
    return (install, server) if install and server else None


class _Process:
    """A server process writing to ``server.log`` in its directory."""

    #: The signal for a quick, clean shutdown.
    shutdown_signal = signal.SIGTERM

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.port = free_port()
        self.process: subprocess.Popen[bytes] | None = None
        self._spawn: dict[str, Any] = {}

    def _start(
        self,
        args: list[str],
        *,
        cwd: Path,
        user: int | None = None,
        group: int | None = None,
        extra_groups: list[int] | None = None,
    ) -> None:
        self._spawn = {
            "args": args, "cwd": cwd, "user": user, "group": group, "extra_groups": extra_groups
        }
        with (self.directory / "server.log").open("ab") as log:
            self.process = subprocess.Popen(
                args,
                stdout=log,
                stderr=subprocess.STDOUT,
                cwd=cwd,
                user=user,
                group=group,
                extra_groups=extra_groups,
            )

    def _wait_port(self, timeout: float = 60.0) -> None:
        deadline = time.monotonic() + timeout
        while not port_open("127.0.0.1", self.port, timeout=0.2):
            assert self.process is not None
            if self.process.poll() is not None or time.monotonic() > deadline:
                log = (self.directory / "server.log").read_text(errors="replace")
                self.stop()
                raise RuntimeError(f"the test server did not start:\n{log[-3000:]}")
            time.sleep(0.05)

    def restart(self, down_seconds: float = 0.0) -> None:
        """Shut the server down (`shutdown_signal`), wait ``down_seconds``, start it again.

        Same port, same data directory; returns when it accepts connections.
        """
        assert self.process is not None and self._spawn
        self.process.send_signal(self.shutdown_signal)
        try:
            self.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        time.sleep(down_seconds)
        self._start(**self._spawn)
        self._wait_port()

    def stop(self) -> None:
        """Terminate the server, wait for it and delete its files."""
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        shutil.rmtree(self.directory, ignore_errors=True)


class PostgresProcess(_Process):
    """``initdb`` + ``postgres`` on 127.0.0.1, trust authentication, user ``postgres``."""

    #: PostgreSQL's "fast" shutdown: roll back open transactions, checkpoint, exit.
    shutdown_signal = signal.SIGINT

    def __init__(self) -> None:
        binaries = postgres_binaries()
        assert binaries is not None, "initdb/postgres are not on PATH"
        initdb, postgres = binaries
        # Not under pytest's 0700 root-owned temp tree: the server's account must reach it.
        super().__init__(Path(tempfile.mkdtemp(prefix="stateful-pg-")))
        account = _run_as()
        uid = gid = None
        groups: list[int] | None = None
        if account is not None:
            os.chown(self.directory, account.pw_uid, account.pw_gid)
            uid, gid, groups = account.pw_uid, account.pw_gid, []
        data = self.directory / "data"
        subprocess.run(
            [initdb, "-D", str(data), "-U", "postgres", "--auth=trust", "-E", "UTF8", "--no-sync"],
            check=True,
            capture_output=True,
            cwd=self.directory,
            user=uid,
            group=gid,
            extra_groups=groups,
        )
        self._start(
            [
                postgres,
                "-D", str(data),
                "-p", str(self.port),
                "-k", str(self.directory),
                "-c", "listen_addresses=127.0.0.1",
                "-c", "fsync=off",
                "-c", "synchronous_commit=off",
                "-c", "full_page_writes=off",
                "-c", "max_connections=200",
            ],
            cwd=self.directory,
            user=uid,
            group=gid,
            extra_groups=groups,
        )
        self._wait_port()

    @property
    def url(self) -> str:
        """``postgresql+asyncpg://postgres@127.0.0.1:<port>/postgres``."""
        return f"postgresql+asyncpg://postgres@127.0.0.1:{self.port}/postgres"


class MariaDBProcess(_Process):
    """``mariadb-install-db`` + ``mariadbd`` on 127.0.0.1, no grant checks."""

    def __init__(self) -> None:
        binaries = mariadb_binaries()
        assert binaries is not None, "mariadb-install-db/mariadbd are not on PATH"
        install, server = binaries
        super().__init__(Path(tempfile.mkdtemp(prefix="stateful-mariadb-")))
        data = self.directory / "data"
        user = pwd.getpwuid(os.geteuid()).pw_name
        subprocess.run(
            [
                install,
                "--no-defaults",
                f"--datadir={data}",
                f"--user={user}",
                "--auth-root-authentication-method=normal",
                "--skip-test-db",
            ],
            check=True,
            capture_output=True,
            cwd=self.directory,
        )
        self._start(
            [
                server,
                "--no-defaults",
                f"--datadir={data}",
                f"--user={user}",
                f"--port={self.port}",
                "--bind-address=127.0.0.1",
                f"--socket={self.directory / 'mariadb.sock'}",
                f"--pid-file={self.directory / 'mariadb.pid'}",
                "--skip-grant-tables",
                "--skip-log-bin",
                "--innodb-flush-log-at-trx-commit=0",
                "--innodb-buffer-pool-size=64M",
                "--max-connections=300",
            ],
            cwd=self.directory,
        )
        self._wait_port()

    @property
    def url(self) -> str:
        """``mysql+asyncmy://root@127.0.0.1:<port>/mysql``."""
        return f"mysql+asyncmy://root@127.0.0.1:{self.port}/mysql"
