"""A local server that plays the Slack Web API: records every call and answers like Slack."""

from __future__ import annotations

import json
import threading
import time
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs

from tests.fakes.http_fake import FakeServer

BOT_USER_ID = "UBOT"
BOT_ID = "BBOT"


@dataclass
class SlackCall:
    method: str
    args: dict[str, Any]
    headers: dict[str, str] = field(default_factory=dict)


class FakeSlackAPI(FakeServer):
    """Web API stand-in. `calls` lists every request; `fail_next` scripts errors such as a 429."""

    def __init__(self) -> None:
        super().__init__()
        self.calls: list[SlackCall] = []
        self.messages: dict[tuple[str, str], list[dict[str, Any]]] = defaultdict(list)
        self.usergroup_members: dict[str, list[str]] = {}
        self.private_channels: set[str] = set()  # C… ids answered as private by conversations.info
        self._failures: dict[str, list[tuple[int, dict[str, str], Any]]] = defaultdict(list)
        self._ts = time.time()
        self.socket_url: str | None = None  # what apps.connections.open hands out
        self.changed = threading.Condition()

    # --- scripting -------------------------------------------------------------------------
    def fail_next(self, method: str, status: int = 429, retry_after: int | None = 1,
                  body: Any | None = None, times: int = 1) -> None:
        headers = {"Retry-After": str(retry_after)} if retry_after is not None else {}
        error = "ratelimited" if status == 429 else "fatal_error"
        payload = body if body is not None else {"ok": False, "error": error}
        for _ in range(times):
            self._failures[method].append((status, headers, payload))

    def seed_thread(self, channel: str, thread_ts: str, messages: list[dict[str, Any]]) -> None:
        self.messages[(channel, thread_ts)].extend(messages)

    # --- reading back ----------------------------------------------------------------------
    def calls_to(self, method: str) -> list[SlackCall]:
        with self.lock:
            return [c for c in self.calls if c.method == method]

    def wait_for(self, method: str, count: int = 1, timeout: float = 30.0) -> list[SlackCall]:
        deadline = time.monotonic() + timeout
        with self.changed:
            while len(self.calls_to(method)) < count:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise AssertionError(
                        f"expected {count} call(s) to {method}, saw {len(self.calls_to(method))}: "
                        f"{[c.method for c in self.calls]}"
                    )
                self.changed.wait(remaining)
        return self.calls_to(method)

    def bot_texts(self, channel: str, thread_ts: str) -> list[str]:
        """The bot's messages in a thread as a reader sees them (posted, streamed or updated)."""
        with self.lock:
            return [m["text"] for m in self.messages.get((channel, thread_ts), []) if m.get("bot_id") == BOT_ID]

    def _find(self, channel: str, ts: str) -> list[dict[str, Any]]:
        return [m for (ch, _), msgs in self.messages.items() if ch == channel for m in msgs if m["ts"] == ts]

    def reset(self) -> None:
        with self.lock:
            self.calls.clear()
            self.messages.clear()
            self._failures.clear()

    # --- serving ---------------------------------------------------------------------------
    def _next_ts(self) -> str:
        with self.lock:
            self._ts += 0.001
            return f"{self._ts:.6f}"

    @staticmethod
    def _parse(headers: dict[str, str], raw: bytes) -> dict[str, Any]:
        ctype = {k.lower(): v for k, v in headers.items()}.get("content-type", "")
        if not raw:
            return {}
        if "json" in ctype:
            return json.loads(raw)
        parsed = {k: v[0] for k, v in parse_qs(raw.decode()).items()}
        for key in ("blocks", "attachments", "view", "metadata", "chunks"):
            if isinstance(parsed.get(key), str):
                try:
                    parsed[key] = json.loads(parsed[key])
                except ValueError:
                    pass
        return parsed

    def handle(self, method: str, path: str, headers: dict[str, str], raw: bytes) -> tuple[int, dict, Any]:
        api_method = path.split("?")[0].rstrip("/").rsplit("/", 1)[-1]
        args = self._parse(headers, raw)
        if "?" in path:
            args.update({k: v[0] for k, v in parse_qs(path.split("?", 1)[1]).items()})
        with self.changed:
            with self.lock:
                self.calls.append(SlackCall(api_method, args, headers))
                failure = self._failures[api_method].pop(0) if self._failures[api_method] else None
            self.changed.notify_all()
        if failure is not None:
            return failure
        return 200, {}, self._answer(api_method, args)

    def _answer(self, method: str, args: dict[str, Any]) -> dict[str, Any]:
        if method == "apps.connections.open":
            return {"ok": True, "url": self.socket_url} if self.socket_url else {"ok": False, "error": "not_set"}
        if method == "auth.test":
            return {"ok": True, "user_id": BOT_USER_ID, "bot_id": BOT_ID, "team_id": "T1", "user": "bot"}
        if method in ("chat.postMessage", "chat.startStream"):
            ts = self._next_ts()
            channel = args.get("channel", "C1")
            thread = args.get("thread_ts") or ts
            message = {"ts": ts, "text": args.get("text") or _stream_text(args),
                       "user": BOT_USER_ID, "bot_id": BOT_ID, "thread_ts": thread,
                       "streamed": method == "chat.startStream"}
            with self.lock:
                self.messages[(channel, thread)].append(message)
            return {"ok": True, "channel": channel, "ts": ts, "message": message}
        if method in ("chat.update", "chat.appendStream", "chat.stopStream"):
            with self.lock:
                for message in self._find(args.get("channel", ""), args.get("ts", "")):
                    if method == "chat.update":
                        message["text"] = args.get("text", message["text"])
                    else:
                        message["text"] += _stream_text(args)
            return {"ok": True, "channel": args.get("channel"), "ts": args.get("ts")}
        if method == "chat.delete":
            with self.lock:
                for key, msgs in self.messages.items():
                    self.messages[key] = [m for m in msgs if m["ts"] != args.get("ts")]
            return {"ok": True, "channel": args.get("channel"), "ts": args.get("ts")}
        if method == "chat.postEphemeral":
            return {"ok": True, "message_ts": self._next_ts()}
        if method == "conversations.replies":
            with self.lock:
                msgs = list(self.messages.get((args.get("channel", ""), args.get("ts", "")), []))
            return {"ok": True, "messages": msgs, "has_more": False}
        if method == "conversations.info":
            return _channel_info(args.get("channel", ""), self.private_channels)
        if method == "usergroups.users.list":
            return {"ok": True, "users": self.usergroup_members.get(args.get("usergroup", ""), [])}
        if method == "views.open":
            return {"ok": True, "view": {"id": "V1"}}
        return {"ok": True}


def _stream_text(args: dict[str, Any]) -> str:
    text = args.get("markdown_text") or ""
    chunks = args.get("chunks")
    if isinstance(chunks, str):
        chunks = json.loads(chunks)
    for chunk in chunks or []:
        if chunk.get("type") == "markdown_text":
            text += chunk.get("text", "")
    return text


def _channel_info(channel: str, private: set[str]) -> dict[str, Any]:
    """Like Slack: C… public unless marked private, G… private, D… a DM; anything else not found."""
    if not channel or channel[0] not in "CGD":
        return {"ok": False, "error": "channel_not_found"}
    is_im = channel.startswith("D")
    is_private = channel.startswith("G") or channel in private or is_im
    return {"ok": True, "channel": {"id": channel, "is_channel": not is_im and not is_private,
                                    "is_group": channel.startswith("G"), "is_im": is_im, "is_mpim": False,
                                    "is_private": is_private}}
