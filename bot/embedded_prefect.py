"""A local Prefect server for laptops with none: started on demand, reused, stopped on exit.

When `PREFECT_API_URL` is unset (and the active Prefect profile does not set it), the terminal
front ends start `prefect server start` on 127.0.0.1 with its data (SQLite, PREFECT_HOME) under the
bot's data folder. The server we start is recorded in `<data>/prefect/server.json`; a later run
that finds it answering `/api/health` reuses it instead of starting another. Each session using it
leaves a marker; the last session out stops it, whichever started it. Start-up takes 15-70 s on a
small machine, so progress is shown.

Prefect reads its settings once, when it is first imported, so `PREFECT_API_URL` is set in this
process's environment before anything imports prefect (and the root settings context is
refreshed if something already did).
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
import tomllib
import urllib.request
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

__all__ = ["EmbeddedPrefect", "PrefectStartError", "configured_api_url", "free_port", "prepare_prefect", "use_api_url"]

STATE_FILE = "server.json"
HEALTH_TIMEOUT = 2.0
START_TIMEOUT = 300.0
Progress = Callable[[str], None]


class PrefectStartError(RuntimeError):
    """The local Prefect server did not come up; the message says why and where its log is."""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def healthy(api_url: str, timeout: float = HEALTH_TIMEOUT) -> bool:
    try:
        with urllib.request.urlopen(f"{api_url.rstrip('/')}/health", timeout=timeout) as response:
            return response.status == 200
    except (OSError, ValueError):
        return False


def _profile_api_url(env: dict[str, str]) -> str | None:
    """PREFECT_API_URL from the active Prefect profile, read without importing prefect (slow)."""
    home = Path(env.get("PREFECT_HOME") or Path.home() / ".prefect").expanduser()
    path = Path(env.get("PREFECT_PROFILES_PATH") or home / "profiles.toml").expanduser()
    try:
        data = tomllib.loads(path.read_text())
    except (OSError, tomllib.TOMLDecodeError):
        return None
    active = env.get("PREFECT_PROFILE") or data.get("active")
    profile = data.get("profiles", {}).get(active or "", {})
    value = profile.get("PREFECT_API_URL") if isinstance(profile, dict) else None
    return str(value) if value else None


def configured_api_url(env: dict[str, str] | None = None) -> str | None:
    """The Prefect API the user configured (environment first, then the active profile), if any."""
    env = dict(os.environ) if env is None else env
    return env.get("PREFECT_API_URL") or _profile_api_url(env)


def use_api_url(url: str) -> None:
    """Point this process's Prefect client at `url`, whether or not prefect is imported yet."""
    os.environ["PREFECT_API_URL"] = url
    if "prefect.context" in sys.modules:
        import prefect.context

        prefect.context.refresh_global_settings_context()


def pid_alive(pid: int) -> bool:
    """Whether process `pid` exists; one we may not signal still counts (the test fixture shares it)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _stop_process_group(pid: int, process: subprocess.Popen | None) -> None:
    """SIGTERM the server's process group (it runs in its own session), SIGKILL if it lingers."""
    try:
        os.killpg(pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    deadline = time.monotonic() + 20
    while (process.poll() is None) if process is not None else pid_alive(pid):
        if time.monotonic() > deadline:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(pid, signal.SIGKILL)
            break
        time.sleep(0.1)


def default_command(port: int) -> list[str]:
    prefect = Path(sys.executable).with_name("prefect")
    exe = str(prefect) if prefect.exists() else "prefect"
    return [exe, "server", "start", "--host", "127.0.0.1", "--port", str(port)]


@dataclass
class EmbeddedPrefect:
    """One local Prefect server under `data_dir`. `ensure()` returns its API URL; `stop()` ends what we started."""

    data_dir: Path
    command: Callable[[int], Sequence[str]] = default_command
    progress: Progress = lambda _message: None
    start_timeout: float = START_TIMEOUT
    process: subprocess.Popen | None = field(default=None, init=False)
    api_url: str | None = field(default=None, init=False)
    reused: bool = field(default=False, init=False)

    @property
    def home(self) -> Path:
        return Path(self.data_dir) / "prefect"

    @property
    def state_path(self) -> Path:
        return self.home / STATE_FILE

    @property
    def log_path(self) -> Path:
        return self.home / "server.log"

    # --- the record of the server we started ----------------------------------------------------
    def recorded(self) -> dict | None:
        try:
            return json.loads(self.state_path.read_text())
        except (OSError, ValueError):
            return None

    def _record(self, port: int, pid: int) -> None:
        self.home.mkdir(parents=True, exist_ok=True)
        self.state_path.write_text(json.dumps({"port": port, "pid": pid, "url": self._url(port),
                                               "started_at": time.time()}))

    @staticmethod
    def _url(port: int) -> str:
        return f"http://127.0.0.1:{port}/api"

    # --- lifecycle ------------------------------------------------------------------------------
    def ensure(self) -> str:
        """Reuse the recorded server if it answers (or is still starting), else start one; return its URL."""
        record = self.recorded()
        if record:
            url = record.get("url") or self._url(int(record["port"]))
            if healthy(url):
                self.progress(f"Reusing the local Prefect server at {url}")
                self.api_url, self.reused = url, True
                self._join()
                return url
            pid = int(record.get("pid") or 0)
            if pid and pid_alive(pid) and self._wait_for(url, lambda: pid_alive(pid)):
                self.api_url, self.reused = url, True
                self._join()
                return url
        return self._start()

    def _start(self) -> str:
        self.home.mkdir(parents=True, exist_ok=True)
        port = free_port()
        url = self._url(port)
        env = dict(os.environ)
        env.update(PREFECT_HOME=str(self.home), PREFECT_API_URL=url, PREFECT_SERVER_ANALYTICS_ENABLED="false")
        env.pop("PREFECT_SERVER_DATABASE_CONNECTION_URL", None)  # ours is SQLite in PREFECT_HOME
        self.progress(f"Starting a local Prefect server on 127.0.0.1:{port} (data in {self.home})")
        with open(self.log_path, "ab") as log:
            self.process = subprocess.Popen(list(self.command(port)), env=env, stdout=log, stderr=subprocess.STDOUT,
                                            stdin=subprocess.DEVNULL, start_new_session=True)
        self._record(port, self.process.pid)
        process = self.process
        if not self._wait_for(url, lambda: process.poll() is None):
            tail = self._log_tail()
            self.stop()
            raise PrefectStartError(f"the local Prefect server did not start (log: {self.log_path}){tail}")
        self.api_url = url
        self._join()
        return url

    def _wait_for(self, url: str, alive: Callable[[], bool]) -> bool:
        started = time.monotonic()
        while time.monotonic() - started < self.start_timeout:
            if healthy(url):
                self.progress(f"Prefect server ready at {url} after {time.monotonic() - started:.0f} s")
                return True
            if not alive():
                return False
            self.progress(f"Waiting for the Prefect server ({time.monotonic() - started:.0f} s; "
                          "the first start runs database migrations and can take a minute)")
            time.sleep(0.5)
        return False

    def _log_tail(self) -> str:
        try:
            lines = self.log_path.read_text(errors="replace").strip().splitlines()[-8:]
        except OSError:
            return ""
        return (":\n" + "\n".join(lines)) if lines else ""

    # --- who is using it ----------------------------------------------------------------------
    @property
    def _sessions(self) -> Path:
        return self.home / "sessions"

    @property
    def _session_file(self) -> Path:
        return self._sessions / f"{os.getpid()}-{id(self)}"

    def _join(self) -> None:
        self._sessions.mkdir(parents=True, exist_ok=True)
        self._session_file.touch()

    def _others_using(self) -> bool:
        """Another chat/ask still running on this server (its process alive)?"""
        self._session_file.unlink(missing_ok=True)
        alive = False
        for entry in self._sessions.glob("*-*") if self._sessions.exists() else []:
            if pid_alive(int(entry.name.split("-", 1)[0])):
                alive = True
            else:
                entry.unlink(missing_ok=True)  # a session that died without leaving
        return alive

    def stop(self) -> None:
        """Leave the server; the last session out stops it (whether it started it or reused it)."""
        process, self.process = self.process, None
        if self.api_url is None and process is None:
            return
        if self._others_using():
            return
        record = self.recorded()
        pid = process.pid if process is not None else int((record or {}).get("pid") or 0)
        if pid > 0:
            _stop_process_group(pid, process)
        if record and record.get("pid") == pid:
            self.state_path.unlink(missing_ok=True)

    def __enter__(self) -> EmbeddedPrefect:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def prepare_prefect(data_dir: Path, progress: Progress = lambda _m: None,
                    env: dict[str, str] | None = None) -> EmbeddedPrefect | None:
    """For the terminal front ends: use the configured Prefect, else an embedded one (returned, to stop)."""
    if configured_api_url(env) is not None:
        return None
    embedded = EmbeddedPrefect(Path(data_dir), progress=progress)
    use_api_url(embedded.ensure())
    return embedded
