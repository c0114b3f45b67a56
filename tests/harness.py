"""Run the real bot (Bolt + aiohttp HTTP mode) in a background thread and send it signed requests.

The bot talks to the fake Slack Web API and the scripted model through its settings
(`SLACK_API_URL`, `OPENAI_BASE_URL`), exactly as it would in production.
"""

from __future__ import annotations

import asyncio
import json
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode

from slack_sdk.signature import SignatureVerifier

from bot.settings import Settings
from tests.fakes.model_api import SUITE_MODEL
from tests.fakes.prefect_server import free_port
from tests.waiting import wait_until  # noqa: F401  (tests import it from here)

SIGNING_SECRET = "test-signing-secret"
BOT_TOKEN = "xoxb-test-token-123456"
MODEL_KEY = "sk-test-model-key-abcdef123456"
APP_TOKEN = "xapp-test-app-token-123456"
TEAM = "T1"


@dataclass
class Posted:
    status: int
    elapsed: float
    body: bytes


def sign(body: str, timestamp: int | None = None, secret: str = SIGNING_SECRET) -> dict[str, str]:
    ts = str(int(time.time()) if timestamp is None else timestamp)
    signature = SignatureVerifier(secret).generate_signature(timestamp=ts, body=body)
    return {"X-Slack-Request-Timestamp": ts, "X-Slack-Signature": signature}


async def _cancel_leftovers() -> None:
    """Bolt's ack helpers may still be pending when the server stops; end them before the loop goes."""
    leftovers = [task for task in asyncio.all_tasks() if task is not asyncio.current_task()]
    for task in leftovers:
        task.cancel()
    await asyncio.gather(*leftovers, return_exceptions=True)


class SlackSender:
    """Sends signed requests shaped like Slack's to a bot's HTTP endpoint."""

    port: int
    _event_counter: int = 0

    @classmethod
    def at(cls, port: int) -> SlackSender:
        sender = cls.__new__(cls)
        sender.port = port
        return sender

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def post(self, body: str, content_type: str, headers: dict[str, str] | None = None,
             path: str = "/slack/events") -> Posted:
        request = urllib.request.Request(f"{self.url}{path}", data=body.encode(), method="POST")
        request.add_header("Content-Type", content_type)
        for key, value in (headers or {}).items():
            request.add_header(key, value)
        started = time.perf_counter()
        try:
            with urllib.request.urlopen(request, timeout=30) as response:
                return Posted(response.status, time.perf_counter() - started, response.read())
        except urllib.error.HTTPError as exc:
            return Posted(exc.code, time.perf_counter() - started, exc.read())

    def event_envelope(self, event: dict[str, Any], event_id: str | None = None) -> dict[str, Any]:
        self._event_counter += 1
        return {
            "token": "legacy", "team_id": TEAM, "api_app_id": "A1", "type": "event_callback",
            "event_id": event_id or f"Ev{time.time_ns()}{self._event_counter}",
            "event_time": int(time.time()), "event": event,
            "authorizations": [{"team_id": TEAM, "user_id": "UBOT", "is_bot": True}],
        }

    def post_event(self, event: dict[str, Any], event_id: str | None = None, retry_num: int | None = None,
                   signed: bool = True, timestamp: int | None = None) -> Posted:
        body = json.dumps(self.event_envelope(event, event_id))
        headers = sign(body, timestamp) if signed else {}
        if retry_num is not None:
            headers.update({"X-Slack-Retry-Num": str(retry_num), "X-Slack-Retry-Reason": "http_timeout"})
        return self.post(body, "application/json", headers)

    def post_interaction(self, payload: dict[str, Any], signed: bool = True) -> Posted:
        body = urlencode({"payload": json.dumps(payload)})
        return self.post(body, "application/x-www-form-urlencoded", sign(body) if signed else {})

    def post_command(self, command: str, text: str, user_id: str = "U1", channel_id: str = "C1") -> Posted:
        body = urlencode({"command": command, "text": text, "user_id": user_id, "channel_id": channel_id,
                          "team_id": TEAM, "response_url": f"{self.slack_api.url}/response",
                          "trigger_id": "trig1"})
        return self.post(body, "application/x-www-form-urlencoded", sign(body))



class BotHarness(SlackSender):
    def __init__(self, slack_api: Any, model_api: Any | None, database_url: str, socket_mode: bool = False,
                 **overrides: Any) -> None:
        self.socket_mode = socket_mode
        self.slack_api = slack_api
        self.model_api = model_api
        self.database_url = database_url
        self.overrides = overrides
        self.port = free_port()
        self.loop: asyncio.AbstractEventLoop | None = None
        self.runtime: Any = None
        self._stop: asyncio.Event | None = None
        self._thread: threading.Thread | None = None
        self._event_counter = 0

    # --- lifecycle ---------------------------------------------------------------------------
    def settings(self) -> Settings:
        values: dict[str, Any] = dict(
            slack_bot_token=BOT_TOKEN, slack_signing_secret=SIGNING_SECRET,
            slack_api_url=f"{self.slack_api.url}/api/", bot_database_url=self.database_url,
            bot_model_max_attempts=3, bot_model_retry_max_wait_seconds=1.0,
            bot_answer_timeout_seconds=60.0, bot_approver_ids=["UAPPROVER"], bot_sweep_interval_seconds=1.0,
        )
        if self.socket_mode:
            values["slack_app_token"] = APP_TOKEN
        if self.model_api is not None:
            values.update(openai_api_key=MODEL_KEY, openai_base_url=self.model_api.base_url,
                          openai_model=SUITE_MODEL)
        values.update(self.overrides)
        return Settings(_env_file=None, **values)

    def start(self, timeout: float = 60.0) -> BotHarness:
        ready: Future = Future()

        async def main() -> None:
            from bot.runtime import build_runtime

            try:  # built and run exactly as `serve` does: startup checks, sweep, health on self.port
                self.runtime = build_runtime(self.settings(), socket_mode=self.socket_mode)
                self._stop = asyncio.Event()
                started = asyncio.Event()
                server = asyncio.ensure_future(self.runtime.run(self.socket_mode, "127.0.0.1", self.port,
                                                                started, self._stop))
                await asyncio.wait([server, asyncio.ensure_future(started.wait())],
                                   return_when=asyncio.FIRST_COMPLETED)
                if server.done():
                    server.result()  # raises what stopped startup
                ready.set_result(True)
                await server
                await _cancel_leftovers()
            except BaseException as exc:
                if not ready.done():  # startup failed: `start` raises it in the test's thread
                    ready.set_exception(exc)
                    return
                raise

        def run() -> None:
            self.loop = asyncio.new_event_loop()
            self.loop.run_until_complete(main())

        self._thread = threading.Thread(target=run, daemon=True)
        self._thread.start()
        ready.result(timeout)
        return self

    def stop(self) -> None:
        if self.loop and self._stop:
            self.loop.call_soon_threadsafe(self._stop.set)
        if self._thread:
            self._thread.join(30)

    def restart(self) -> BotHarness:
        self.stop()
        self.port = free_port()
        return self.start()

    def wait_idle(self, timeout: float = 60.0) -> None:
        """Wait until every background answer the bot is working on has finished."""
        assert self.loop is not None
        asyncio.run_coroutine_threadsafe(self.runtime.responder.idle(), self.loop).result(timeout)

    def call(self, coro_factory, timeout: float = 60.0) -> Any:
        """Run a coroutine on the bot's own loop (for reading its state in tests)."""
        assert self.loop is not None
        return asyncio.run_coroutine_threadsafe(coro_factory(), self.loop).result(timeout)

def all_at_once(calls: list[Callable[[], Any]]) -> list[BaseException]:
    """Run the calls in threads started together; returns the exceptions they raised (empty: all fine)."""
    errors: list[BaseException] = []

    def guarded(call: Callable[[], Any]) -> None:
        try:
            call()
        except BaseException as exc:  # collected for the caller to assert on
            errors.append(exc)

    threads = [threading.Thread(target=guarded, args=(call,)) for call in calls]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return errors


def mention(text: str, channel: str = "C1", user: str = "U1", ts: str | None = None,
            thread_ts: str | None = None) -> dict[str, Any]:
    event = {"type": "app_mention", "user": user, "text": f"<@UBOT> {text}", "channel": channel,
             "ts": ts or f"{time.time():.6f}", "team": TEAM, "event_ts": ts}
    if thread_ts:
        event["thread_ts"] = thread_ts
    return event


def message(text: str, channel: str = "C1", user: str = "U1", ts: str | None = None,
            thread_ts: str | None = None, channel_type: str = "channel", **extra: Any) -> dict[str, Any]:
    event = {"type": "message", "user": user, "text": text, "channel": channel,
             "ts": ts or f"{time.time():.6f}", "team": TEAM, "channel_type": channel_type, **extra}
    if thread_ts:
        event["thread_ts"] = thread_ts
    return event
