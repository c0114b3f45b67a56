"""Prefect Cloud's URL shape in front of a real Prefect server, for tests and `make compat`.

Cloud serves the API under `/api/accounts/{account}/workspaces/{workspace}` and wants
`Authorization: Bearer <API key>` on every request; its event stream (`…/events/out`, a
websocket) takes the key in the first message, `{"type": "auth", "token": KEY}`. This proxy mounts
a real server under that prefix and is at least as strict: anything outside the prefix, another
account or workspace, or a wrong or missing key is refused the way Cloud refuses it (404 or 401;
a websocket with a wrong key is closed with 1008). Everything else is forwarded unchanged.
"""

from __future__ import annotations

import asyncio
import json
import threading
import uuid
from collections.abc import Callable

import aiohttp
from aiohttp import web

HOP_HEADERS = {"host", "content-length", "transfer-encoding", "connection", "authorization", "upgrade",
               "content-encoding"}


class CloudProxy:
    """Start with `.start()`; `.url` is what PREFECT_API_URL should be, `.key` the API key."""

    def __init__(self, upstream_api: str, key: str | None = None) -> None:
        self.upstream = upstream_api.rstrip("/")
        self.key = key or f"pnu_{uuid.uuid4().hex}"
        self.account, self.workspace = str(uuid.uuid4()), str(uuid.uuid4())
        self.port = 0
        self.requests: list[tuple[str, str, int]] = []  # (method, path below the prefix, status)
        # Fault injection for tests, per (method, path below the prefix): True answers HTTP 500 (which
        # Prefect's client does not retry); "drop" closes the connection unanswered, as a dying server does.
        self.failing: Callable[[str, str], bool | str] = lambda method, tail: False
        self._loop: asyncio.AbstractEventLoop | None = None
        self._runner: web.AppRunner | None = None
        self._ready = threading.Event()

    @property
    def root(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def url(self) -> str:
        return f"{self.root}/api/accounts/{self.account}/workspaces/{self.workspace}"

    def start(self) -> CloudProxy:
        threading.Thread(target=self._serve, daemon=True, name="cloud-proxy").start()
        if not self._ready.wait(30):
            raise RuntimeError("the Cloud-shaped proxy did not start")
        return self

    def stop(self) -> None:
        if self._loop is not None and self._runner is not None:
            asyncio.run_coroutine_threadsafe(self._runner.cleanup(), self._loop).result(10)
            self._loop.call_soon_threadsafe(self._loop.stop)

    def _serve(self) -> None:
        self._loop = asyncio.new_event_loop()
        asyncio.set_event_loop(self._loop)
        app = web.Application(client_max_size=32 * 1024 * 1024)
        app.router.add_route("*", "/{tail:.*}", self._handle)
        self._runner = web.AppRunner(app)
        self._loop.run_until_complete(self._runner.setup())
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        self._loop.run_until_complete(site.start())
        self.port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        self._ready.set()
        self._loop.run_forever()

    def _below_prefix(self, path: str) -> str | None:
        prefix = f"/api/accounts/{self.account}/workspaces/{self.workspace}"
        if path == prefix or path.startswith(prefix + "/"):
            return path[len(prefix):] or "/"
        return None

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        tail = self._below_prefix(request.raw_path.split("?", 1)[0])
        if tail is None:
            return web.json_response({"detail": "Not Found"}, status=404)
        if request.headers.get("Upgrade", "").lower() == "websocket":
            return await self._websocket(request, tail)
        if request.headers.get("Authorization") != f"Bearer {self.key}":
            self.requests.append((request.method, tail, 401))
            return web.json_response({"detail": "Invalid authentication credentials"}, status=401)
        fault = self.failing(request.method, tail)
        if fault == "drop" and request.transport is not None:
            self.requests.append((request.method, tail, 0))
            request.transport.close()
            return web.Response(status=500)  # never reaches the client: the connection is gone
        if fault:
            self.requests.append((request.method, tail, 500))
            return web.json_response({"detail": "Internal Server Error"}, status=500)
        query = request.raw_path.split("?", 1)[1] if "?" in request.raw_path else ""
        target = self.upstream + tail + (f"?{query}" if query else "")
        headers = {k: v for k, v in request.headers.items() if k.lower() not in HOP_HEADERS}
        body = await request.read()
        async with aiohttp.ClientSession(auto_decompress=True) as session, session.request(
                request.method, aiohttp.client.URL(target, encoded=True), headers=headers,
                data=body or None) as upstream:
            payload = await upstream.read()
            self.requests.append((request.method, tail, upstream.status))
            out = {k: v for k, v in upstream.headers.items() if k.lower() not in HOP_HEADERS}
            return web.Response(status=upstream.status, body=payload, headers=out)

    async def _websocket(self, request: web.Request, tail: str) -> web.StreamResponse:
        client = web.WebSocketResponse(protocols=("prefect",))
        await client.prepare(request)
        first = await client.receive()
        try:
            auth = json.loads(first.data) if first.type == aiohttp.WSMsgType.TEXT else {}
        except ValueError:
            auth = {}
        if auth.get("type") != "auth" or auth.get("token") != self.key:
            self.requests.append(("WS", tail, 401))
            await client.close(code=1008, message=b"Invalid authentication credentials")
            return client
        self.requests.append(("WS", tail, 101))
        target = self.upstream.replace("http://", "ws://", 1) + tail
        async with aiohttp.ClientSession() as session, session.ws_connect(target, protocols=("prefect",)) as upstream:
            await upstream.send_str(json.dumps({"type": "auth", "token": None}))

            async def pump(source, sink) -> None:
                async for message in source:
                    if message.type == aiohttp.WSMsgType.TEXT:
                        await sink.send_str(message.data)
                    elif message.type == aiohttp.WSMsgType.BINARY:
                        await sink.send_bytes(message.data)
                    else:
                        break

            tasks = [asyncio.ensure_future(pump(client, upstream)), asyncio.ensure_future(pump(upstream, client))]
            await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
            for task in tasks:
                task.cancel()
        await client.close()
        return client
