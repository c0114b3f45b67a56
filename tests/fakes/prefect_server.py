"""Start a real `prefect server start` on 127.0.0.1 with its own PREFECT_HOME.

It uses the machine's PostgreSQL when it answers (SQLite locks under concurrent state changes),
and falls back to SQLite otherwise. Start-up can take over a minute on a 2-core machine.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path

from bot.embedded_prefect import pid_alive
from tests.fakes.processes import wait_until_healthy

PG_DSN = "postgresql://postgres@127.0.0.1:5432/postgres"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def postgres_available() -> bool:
    """PostgreSQL answers at 127.0.0.1:5432 (CBOT_TESTS_WITHOUT_POSTGRES=1 pretends it does not,
    to check what a fresh machine without it runs)."""
    if os.environ.get("CBOT_TESTS_WITHOUT_POSTGRES") == "1":
        return False
    try:
        import psycopg

        with psycopg.connect(PG_DSN, connect_timeout=2):
            return True
    except Exception:
        return False


def run_owner() -> int:
    """The pid of the test run that owns what we create: the xdist controller for a worker, else us."""
    return os.getppid() if os.environ.get("PYTEST_XDIST_WORKER") else os.getpid()


def worker_name() -> str:
    """gw0, gw1, ... under pytest-xdist; "main" in a run without workers."""
    return os.environ.get("PYTEST_XDIST_WORKER") or "main"


# Every database we create is named <prefix>_p<owner pid>_<suffix>, so a run killed before its
# teardown leaves databases that a later run can recognise as nobody's and drop.
_OWNED = re.compile(r"^cbot_[a-z]+_p(?P<pid>[0-9]+)_")


def create_postgres_database(prefix: str, suffix: str | None = None) -> str:
    """A new empty database. With a fixed `suffix` (a worker's name) any earlier one is dropped first."""
    import psycopg

    name = f"{prefix}_p{run_owner()}_{suffix or uuid.uuid4().hex[:10]}"
    with psycopg.connect(PG_DSN, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{name}"')
    return name


def drop_stale_databases() -> list[str]:
    """Drop the databases of earlier runs whose owning process is gone (killed runs); returns their names."""
    import psycopg

    dropped = []
    try:
        with psycopg.connect(PG_DSN, autocommit=True) as conn:
            names = [row[0] for row in conn.execute("SELECT datname FROM pg_database")]
            for name in names:
                owned = _OWNED.match(name)
                if owned and not pid_alive(int(owned["pid"])):
                    try:
                        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
                        dropped.append(name)
                    except psycopg.Error:  # another run is dropping it at the same moment
                        pass
    except psycopg.Error:  # PostgreSQL went away: the server falls back or fails on its own
        pass
    return dropped


def drop_postgres_database(name: str) -> None:
    import psycopg

    try:
        with psycopg.connect(PG_DSN, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    except Exception:
        pass


class PrefectServer:
    """One Prefect API server process; `url` is what PREFECT_API_URL should point at."""

    def __init__(self, port: int | None = None, use_postgres: bool | None = None,
                 executable: Path | None = None, database_suffix: str | None = None) -> None:
        """`executable` is another venv's `prefect` (an older release); the default is this venv's.
        `database_suffix` names the PostgreSQL database (a worker's name); the default is unique."""
        self.port = port or free_port()
        self.executable = executable
        self.database_suffix = database_suffix
        self.home = Path(tempfile.mkdtemp(prefix="prefect-home-"))
        self.use_postgres = postgres_available() if use_postgres is None else use_postgres
        self.database: str | None = None
        self.process: subprocess.Popen | None = None
        self.log_path = self.home / "server.log"

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/api"

    def environment(self) -> dict[str, str]:
        env = dict(os.environ)
        env.update(
            PREFECT_HOME=str(self.home),
            PREFECT_API_URL=self.url,
            PREFECT_SERVER_ANALYTICS_ENABLED="false",
            PREFECT_UI_ENABLED="false",
            PREFECT_LOGGING_LEVEL="WARNING",
        )
        if self.database:
            env["PREFECT_SERVER_DATABASE_CONNECTION_URL"] = (
                f"postgresql+asyncpg://postgres@127.0.0.1:5432/{self.database}"
            )
        return env

    def start(self, timeout: float = 240.0) -> PrefectServer:
        if self.use_postgres and self.database is None:
            self.database = create_postgres_database("cbot_prefect", self.database_suffix)
        prefect = self.executable or Path(sys.executable).with_name("prefect")
        log = open(self.log_path, "ab")
        self.process = subprocess.Popen(
            [str(prefect), "server", "start", "--host", "127.0.0.1", "--port", str(self.port), "--no-ui"],
            env=self.environment(), stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
        )
        try:
            wait_until_healthy(f"{self.url}/health", self.process, timeout, self.log_path.read_text,
                               "prefect server")
        except RuntimeError:
            self.stop()
            raise
        return self

    def restart(self, timeout: float = 240.0) -> PrefectServer:
        """Stop the server process and start it again on the same port and database: what an operator's
        restart does (in-memory state such as slot leases is lost, the database is kept)."""
        self._terminate()
        return self.start(timeout)

    def _terminate(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.process.kill()

    def stop(self) -> None:
        self._terminate()
        if self.database:
            drop_postgres_database(self.database)
        shutil.rmtree(self.home, ignore_errors=True)


@contextlib.contextmanager
def server_for_script() -> Iterator[None]:
    """For bench scripts: the Prefect server PREFECT_API_URL names, or a local one started for the
    script and stopped after it; the model key is dropped so answers are the offline ones."""
    server = None
    if not os.environ.get("PREFECT_API_URL"):
        server = PrefectServer().start()
        os.environ["PREFECT_API_URL"] = server.url
    os.environ.pop("OPENAI_API_KEY", None)
    try:
        yield
    finally:
        if server is not None:
            server.stop()
