"""Support for the fault suite: the figures table, a fault-injecting Prefect proxy, a bot subprocess.

- `FAULTS` collects one row per case (case, expected, observed, pass); the table is printed with
  rich at the end of the run (`print_table`, or the `pytest_terminal_summary` hook when
  tests/conftest.py imports it).
- `PrefectProxy` sits between a bot and the real Prefect server and, per rule, forwards, fails
  with a status, delays, drops the connection, or holds a request (before or after forwarding it)
  until released: server down, slow, 5xx, and "killed mid-apply" without patching anything; `meet`
  holds requests until several have arrived, so a race between clients happens every time.
- `BotProcess` runs `concurrency-bot serve` as a real process that a test can SIGKILL.
"""

from __future__ import annotations

import http.client
import os
import re
import signal
import subprocess
import threading
import time
from dataclasses import asdict, dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest

from tests.fakes.prefect_server import free_port
from tests.fakes.processes import wait_until_healthy

ROOT = Path(__file__).resolve().parent.parent


# --- the table ---------------------------------------------------------------------------------
@dataclass
class FaultRow:
    group: str
    case: str
    expected: str
    observed: str
    passed: bool


@dataclass
class FaultTable:
    rows: list[FaultRow] = field(default_factory=list)
    printed: bool = False

    def record(self, group: str, case: str, expected: str, observed: str, passed: bool) -> bool:
        self.rows.append(FaultRow(group, case, expected, observed, bool(passed)))
        return bool(passed)

    def render(self, console: Any | None = None) -> None:
        from rich.console import Console
        from rich.markup import escape
        from rich.table import Table

        console = console or Console(width=200)
        table = Table(title="Fault suite: faults, bad input and hostile input", show_lines=False)
        for name in ("group", "case", "expected", "observed", "pass"):
            table.add_column(name, overflow="fold")
        for row in self.rows:
            table.add_row(escape(row.group), escape(row.case), escape(row.expected), escape(row.observed),
                          "[green]pass[/green]" if row.passed else "[red]FAIL[/red]")
        console.print(table)
        passed = sum(r.passed for r in self.rows)
        console.print(f"{passed}/{len(self.rows)} fault cases passed")
        self.printed = True


FAULTS = FaultTable()


def check(group: str, case: str, expected: str, observed: str, passed: bool) -> None:
    """Record a row, then fail the test if the case failed (the row stays in the table)."""
    FAULTS.record(group, case, expected, observed, passed)
    assert passed, f"{case}: expected {expected}; observed {observed}"


def pytest_sessionfinish(session: Any) -> None:
    """On an xdist worker, hand this worker's rows to the controller, which prints the one table."""
    output = getattr(session.config, "workeroutput", None)
    if output is not None:
        output["fault_rows"] = [asdict(row) for row in FAULTS.rows]


@pytest.hookimpl(optionalhook=True)
def pytest_testnodedown(node: Any, error: Any) -> None:
    """On the xdist controller: gather the rows a worker recorded (the hook exists only with xdist)."""
    for row in getattr(node, "workeroutput", {}).get("fault_rows", []):
        FAULTS.rows.append(FaultRow(**row))


def pytest_terminal_summary(terminalreporter: Any) -> None:
    """Print the table in the summary when tests/conftest.py imports this hook."""
    if FAULTS.rows and not FAULTS.printed:
        from rich.console import Console

        FAULTS.render(Console(file=terminalreporter._tw, width=200, force_terminal=False))


# --- the Prefect proxy -------------------------------------------------------------------------
@dataclass
class Rule:
    method: str
    path: str  # a regex searched in the request path
    action: str  # fail | delay | drop | hold_before | hold_after | meet
    status: int = 500
    seconds: float = 0.0
    times: int | None = None  # None: until removed
    headers: dict[str, str] | None = None  # extra response headers of a `fail` (e.g. Retry-After on a 429)
    count: int = 2  # `meet`: how many matching requests wait for one another before any is forwarded
    arrived: int = 0


class PrefectProxy:
    """A forwarding HTTP proxy in front of the real Prefect API, with scripted faults."""

    def __init__(self, upstream: str) -> None:
        parts = urlsplit(upstream)
        self.upstream_host, self.upstream_port = parts.hostname or "127.0.0.1", parts.port or 80
        self.api_path = parts.path.rstrip("/")
        self.port = free_port()
        self.rules: list[Rule] = []
        self.seen: list[tuple[str, str]] = []
        self.forwarded: list[tuple[str, str]] = []
        self.release = threading.Event()
        self.lock = threading.Lock()
        self.cond = threading.Condition(self.lock)
        self._server: ThreadingHTTPServer | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}{self.api_path}"

    # scripting
    def add(self, method: str, path: str, action: str, **kw: Any) -> Rule:
        rule = Rule(method.upper(), path, action, **kw)
        with self.lock:
            self.rules.append(rule)
        return rule

    def clear(self) -> None:
        with self.lock:
            self.rules.clear()
        self.release.set()
        self.release = threading.Event()

    def count(self, method: str, path: str, forwarded: bool = True) -> int:
        with self.lock:
            rows = self.forwarded if forwarded else self.seen
            return sum(1 for m, p in rows if m == method.upper() and re.search(path, p))

    def wait_seen(self, method: str, path: str, timeout: float = 30.0) -> None:
        deadline = time.monotonic() + timeout
        with self.cond:
            while not any(m == method.upper() and re.search(path, p) for m, p in self.seen):
                if time.monotonic() > deadline:
                    raise AssertionError(f"the proxy never saw {method} {path}")
                self.cond.wait(0.2)

    def _rule_for(self, method: str, path: str) -> Rule | None:
        with self.lock:
            for rule in self.rules:
                if rule.method in (method, "*") and re.search(rule.path, path):
                    if rule.times is not None:
                        rule.times -= 1
                        if rule.times <= 0:
                            self.rules.remove(rule)
                    return rule
        return None

    # serving
    def start(self) -> PrefectProxy:
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: Any) -> None:
                return

            def _any(self) -> None:
                proxy._serve(self)

            do_GET = do_POST = do_PATCH = do_PUT = do_DELETE = _any  # noqa: N815

        self._server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        self._server.daemon_threads = True
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        return self

    def stop(self) -> None:
        """Stop listening: connections are refused, as when the server is down."""
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def _serve(self, handler: BaseHTTPRequestHandler) -> None:
        method, path = handler.command, handler.path
        length = int(handler.headers.get("Content-Length") or 0)
        body = handler.rfile.read(length) if length else b""
        with self.cond:
            self.seen.append((method, path))
            self.cond.notify_all()
        rule = self._rule_for(method, path)
        if rule is not None and rule.action == "drop":
            handler.close_connection = True
            return
        if rule is not None and rule.action == "fail":
            self._reply(handler, rule.status, {"Content-Type": "application/json", **(rule.headers or {})},
                        b'{"detail":"injected failure"}')
            return
        if rule is not None and rule.action == "delay":
            time.sleep(rule.seconds)
        if rule is not None and rule.action == "meet":
            self._meet(rule)
        if rule is not None and rule.action == "hold_before":
            self.release.wait(rule.seconds or 120)
            handler.close_connection = True
            return
        status, headers, payload = self._forward(method, path, dict(handler.headers), body)
        if rule is not None and rule.action == "hold_after":
            self.release.wait(rule.seconds or 120)
            handler.close_connection = True
            return
        self._reply(handler, status, headers, payload)

    def _meet(self, rule: Rule) -> None:
        """Hold this request until `rule.count` matching ones have arrived (or `rule.seconds`, default 60,
        passed), so two clients' reads both reach the server before either writes: a race made certain."""
        deadline = time.monotonic() + (rule.seconds or 60.0)
        with self.cond:
            rule.arrived += 1
            self.cond.notify_all()
            while rule.arrived < rule.count and time.monotonic() < deadline:
                self.cond.wait(0.2)

    def _forward(self, method: str, path: str, headers: dict[str, str], body: bytes):
        conn = http.client.HTTPConnection(self.upstream_host, self.upstream_port, timeout=60)
        headers = {k: v for k, v in headers.items() if k.lower() not in ("host", "connection")}
        conn.request(method, path, body=body or None, headers=headers)
        response = conn.getresponse()
        payload = response.read()
        out = {k: v for k, v in response.getheaders()
               if k.lower() not in ("transfer-encoding", "connection", "content-length")}
        conn.close()
        with self.lock:
            self.forwarded.append((method, path))
        return response.status, out, payload

    @staticmethod
    def _reply(handler: BaseHTTPRequestHandler, status: int, headers: dict[str, str], payload: bytes) -> None:
        try:
            handler.send_response(status)
            for key, value in headers.items():
                handler.send_header(key, value)
            handler.send_header("Content-Length", str(len(payload)))
            handler.end_headers()
            handler.wfile.write(payload)
        except OSError:
            pass


# --- the bot as a real process ------------------------------------------------------------------
class BotProcess:
    """`concurrency-bot serve --port N` in its own process; `kill()` is a real SIGKILL."""

    def __init__(self, env: dict[str, str], log_dir: Path) -> None:
        self.env = env
        self.log_dir = log_dir
        self.port = 0
        self.proc: subprocess.Popen | None = None
        self.logs: list[Path] = []

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout: float = 60.0) -> BotProcess:
        self.port = free_port()
        log_path = self.log_dir / f"bot-{len(self.logs)}.log"
        self.logs.append(log_path)
        env = {**os.environ, **self.env}
        with open(log_path, "wb") as log:
            self.proc = subprocess.Popen(
                [str(ROOT / ".venv" / "bin" / "concurrency-bot"), "serve", "--host", "127.0.0.1",
                 "--port", str(self.port)], env=env, cwd=str(self.log_dir), stdout=log,
                stderr=subprocess.STDOUT)
        wait_until_healthy(f"{self.url}/healthz", self.proc, timeout, self.log_text, "the bot")
        return self

    def kill(self) -> None:
        """SIGKILL: no cleanup, no finally blocks, exactly like an OOM kill or a node loss."""
        if self.proc is not None and self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGKILL)
            self.proc.wait(10)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.kill()

    def log_text(self) -> str:
        return "\n".join(p.read_text(errors="replace") for p in self.logs if p.exists())
