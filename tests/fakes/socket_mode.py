"""A local Socket Mode WebSocket server: says hello, sends envelopes, and records the acks."""

from __future__ import annotations

import asyncio
import json
import threading
from typing import Any

from aiohttp import WSMsgType, web

from tests.fakes.prefect_server import free_port
from tests.waiting import wait_until


class FakeSocketMode:
    def __init__(self) -> None:
        self.port = free_port()
        self.acks: list[dict[str, Any]] = []
        self.connections = 0
        self._outbox: asyncio.Queue | None = None
        self.loop: asyncio.AbstractEventLoop | None = None
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    @property
    def url(self) -> str:
        return f"ws://127.0.0.1:{self.port}/link"

    def start(self) -> FakeSocketMode:
        self._thread.start()
        self._ready.wait(10)
        return self

    def _run(self) -> None:
        self.loop = asyncio.new_event_loop()
        asyncio.set_event_loop(self.loop)
        self._outbox = asyncio.Queue()
        app = web.Application()
        app.router.add_get("/link", self._socket)
        runner = web.AppRunner(app)
        self.loop.run_until_complete(runner.setup())
        self.loop.run_until_complete(web.TCPSite(runner, "127.0.0.1", self.port).start())
        self._ready.set()
        self.loop.run_forever()

    async def _socket(self, request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse()
        await ws.prepare(request)
        self.connections += 1
        await ws.send_str(json.dumps({"type": "hello", "num_connections": 1,
                                      "debug_info": {"host": "fake"}, "connection_info": {"app_id": "A1"}}))

        async def pump() -> None:
            assert self._outbox is not None
            while True:
                envelope = await self._outbox.get()
                await ws.send_str(json.dumps(envelope))

        sender = asyncio.ensure_future(pump())
        try:
            async for message in ws:
                if message.type == WSMsgType.TEXT:
                    self.acks.append(json.loads(message.data))
        finally:
            sender.cancel()
        return ws

    def send_event(self, body: dict[str, Any], envelope_id: str, retry_attempt: int = 0) -> None:
        envelope = {"envelope_id": envelope_id, "type": "events_api", "accepts_response_payload": False,
                    "retry_attempt": retry_attempt, "retry_reason": "timeout" if retry_attempt else "",
                    "payload": body}
        self._send(envelope)

    def send_interactive(self, payload: dict[str, Any], envelope_id: str) -> None:
        """block_actions, view_submission …: Slack sends them as `interactive` envelopes."""
        self._send({"envelope_id": envelope_id, "type": "interactive", "payload": payload,
                    "accepts_response_payload": payload.get("type") == "view_submission"})

    def send_slash_command(self, payload: dict[str, str], envelope_id: str) -> None:
        """A slash command's form fields arrive as a JSON object in a `slash_commands` envelope."""
        self._send({"envelope_id": envelope_id, "type": "slash_commands", "payload": payload,
                    "accepts_response_payload": True})

    def _send(self, envelope: dict[str, Any]) -> None:
        assert self.loop is not None and self._outbox is not None
        self.loop.call_soon_threadsafe(self._outbox.put_nowait, envelope)

    def wait_connected(self, timeout: float = 20.0) -> None:
        wait_until(lambda: self.connections, timeout, "the bot to open the WebSocket")

    def wait_for_acks(self, count: int, timeout: float = 20.0) -> list[dict[str, Any]]:
        wait_until(lambda: len(self.acks) >= count, timeout, f"{count} acks (got {len(self.acks)})")
        return self.acks

    def stop(self) -> None:
        if self.loop:
            self.loop.call_soon_threadsafe(self.loop.stop)
