"""A throwaway PostgreSQL server for the tests (real server, no mocks).

``CONSENT_TEST_POSTGRES_URL`` points the tests at an existing server instead (its databases are
created and dropped per test; stopping and starting it is then not possible).
"""

from __future__ import annotations

import contextlib
import glob
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

ENV_URL = "CONSENT_TEST_POSTGRES_URL"


def find_bindir() -> Path | None:
    """Directory holding initdb and pg_ctl: PG_BINDIR, the newest /usr/lib/postgresql/*/bin,
    then ``pg_config --bindir``, then PATH."""
    candidates: list[Path] = []
    if os.environ.get("PG_BINDIR"):
        candidates.append(Path(os.environ["PG_BINDIR"]))

    def version(path: str) -> tuple[int, ...]:
        name = Path(path).parent.name
        return tuple(int(p) for p in name.split(".") if p.isdigit())

    candidates += [
        Path(p) for p in sorted(glob.glob("/usr/lib/postgresql/*/bin"), key=version)[::-1]
    ]
    pg_config = shutil.which("pg_config")
    if pg_config:
        try:
            out = subprocess.run(
                [pg_config, "--bindir"], capture_output=True, text=True, check=True, timeout=10
            ).stdout.strip()
            candidates.append(Path(out))
        except (OSError, subprocess.SubprocessError):
            pass
    initdb = shutil.which("initdb")
    if initdb:
        candidates.append(Path(initdb).parent)
    for directory in candidates:
        if (directory / "initdb").is_file() and (directory / "pg_ctl").is_file():
            return directory
    return None


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


class PgServer:
    """A PostgreSQL cluster in a temporary directory, on 127.0.0.1, trust authentication."""

    def __init__(self, bindir: Path) -> None:
        self.bindir = bindir
        self.tmp = Path(tempfile.mkdtemp(prefix="consent-pg-"))
        self.data = self.tmp / "data"
        self.log = self.tmp / "server.log"
        self.port = free_port()
        self.user = "postgres"
        self.external = False
        self._as_postgres = os.geteuid() == 0
        if self._as_postgres:
            # PostgreSQL refuses to run as root: the cluster belongs to the postgres user.
            shutil.chown(self.tmp, user="postgres", group="postgres")
        self.tmp.chmod(0o700)

    def _run(self, *args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
        cmd = [str(self.bindir / args[0]), *args[1:]]
        if self._as_postgres:
            cmd = ["runuser", "-u", "postgres", "--", *cmd]
        return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, check=False)

    def _check(self, result: subprocess.CompletedProcess[str], what: str) -> None:
        if result.returncode != 0:
            log = self.log.read_text(errors="replace") if self.log.exists() else ""
            raise RuntimeError(f"{what} failed:\n{result.stdout}\n{result.stderr}\n{log}")

    def init(self) -> None:
        result = self._run(
            "initdb",
            "-D",
            str(self.data),
            "-U",
            self.user,
            "-A",
            "trust",
            "-E",
            "UTF8",
            "--no-locale",
            "--no-sync",
        )
        self._check(result, "initdb")

    def start(self) -> None:
        options = (
            f"-h 127.0.0.1 -p {self.port} -k {self.tmp} -c fsync=off -c full_page_writes=off "
            "-c max_connections=200"
        )
        result = self._run(
            "pg_ctl", "-D", str(self.data), "-l", str(self.log), "-o", options, "-w", "start"
        )
        self._check(result, "pg_ctl start")

    def stop(self, mode: str = "fast") -> None:
        result = self._run("pg_ctl", "-D", str(self.data), "-m", mode, "-w", "stop")
        self._check(result, "pg_ctl stop")

    def url(self, dbname: str = "postgres") -> str:
        return f"postgresql://{self.user}@127.0.0.1:{self.port}/{dbname}"

    def processes(self) -> list[int]:
        """The postmaster and its children (backends, writers, ...), from /proc."""
        main = int((self.data / "postmaster.pid").read_text().split()[0])
        children = []
        for stat in Path("/proc").glob("[0-9]*/stat"):
            try:
                fields = stat.read_text().rpartition(")")[2].split()
            except OSError:  # the process ended meanwhile
                continue
            if int(fields[1]) == main:  # the parent's pid follows the state
                children.append(int(stat.parent.name))
        return [main, *children]

    @contextlib.contextmanager
    def frozen(self) -> Iterator[None]:
        """Stop every process of the cluster (SIGSTOP), and let them go on afterwards
        (SIGCONT). The host still accepts connections and data and nothing answers, as when
        the database host hangs or the network in between drops packets."""
        stopped: list[int] = []
        try:
            for pid in self.processes():
                # (a backend may end between the listing and the signal)
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGSTOP)
                    stopped.append(pid)
            yield
        finally:
            for pid in stopped:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGCONT)

    def destroy(self) -> None:
        try:
            self._run("pg_ctl", "-D", str(self.data), "-m", "immediate", "-w", "stop", timeout=60)
        finally:
            shutil.rmtree(self.tmp, ignore_errors=True)


class ExternalPg:
    """An existing server named by CONSENT_TEST_POSTGRES_URL."""

    external = True

    def __init__(self, url: str) -> None:
        self.admin_url = url

    def url(self, dbname: str = "postgres") -> str:
        return urlunsplit(urlsplit(self.admin_url)._replace(path="/" + dbname))

    def stop(self, mode: str = "fast") -> None:  # pragma: no cover - not for a shared server
        raise RuntimeError("cannot stop an external PostgreSQL server")

    def start(self) -> None:  # pragma: no cover
        raise RuntimeError("cannot start an external PostgreSQL server")

    def destroy(self) -> None:
        return None


def admin_url(server: PgServer | ExternalPg) -> str:
    return server.admin_url if isinstance(server, ExternalPg) else server.url("postgres")


def create_database(server: PgServer | ExternalPg) -> str:
    import psycopg

    name = "consent_test_" + uuid.uuid4().hex[:12]
    with psycopg.connect(admin_url(server), autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    return name


def drop_database(server: PgServer | ExternalPg, name: str) -> None:
    import psycopg

    with psycopg.connect(admin_url(server), autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
