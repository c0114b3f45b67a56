"""A local server that plays the Slack Web API: records every call and answers like Slack."""

from __future__ import annotations

import json
import re
import threading
import time
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs

import yaml

from tests.fakes.block_kit import MESSAGE_TEXT, block_problems, view_problems
from tests.fakes.http_fake import FakeServer

BOT_USER_ID = "UBOT"
BOT_ID = "BBOT"
BOT_TOKENS = {"xoxb-test-token-123456", "xoxb-test", "xoxb-bench-token-123456"}  # tests, bench/botproc.py
APP_TOKENS = {"xapp-test-app-token-123456"}
USER_TOKENS = {"xoxp-test-user-token-123456"}  # a person's token: auth.test answers without a bot_id
USER_ID = re.compile(r"^[UW][A-Z0-9]+$")
MANIFEST = Path(__file__).resolve().parents[2] / "manifest.yaml"
# The scopes Slack demands per method (x-accepted-oauth-scopes); a token without one gets `missing_scope`.
# conversations.* depend on the channel's kind, see `_needed_scope`.
METHOD_SCOPES = {"users.info": "users:read", "usergroups.list": "usergroups:read",
                 "usergroups.users.list": "usergroups:read", "chat.postMessage": "chat:write",
                 "chat.update": "chat:write", "chat.postEphemeral": "chat:write", "reactions.add": "reactions:write"}
CONVERSATION_SCOPES = {"conversations.info": "read", "conversations.members": "read",
                       "conversations.replies": "history", "conversations.history": "history"}
APP_TOKEN_METHODS = {"apps.connections.open"}
NO_TOKEN_PATHS = {"response"}  # response_url posts carry no token
BLOCK_METHODS = {"chat.postMessage", "chat.update", "chat.postEphemeral", "chat.stopStream", "chat.scheduleMessage"}
VIEW_METHODS = {"views.publish", "views.open", "views.update", "views.push"}
TEXT_METHODS = {"chat.postMessage", "chat.update", "chat.postEphemeral"}


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
        self.usergroup_handles: dict[str, str] = {}  # handle -> ID, for usergroups.list
        self.enterprise_id: str | None = None  # the installation's Grid org (auth.test); None: no Grid
        self.user_enterprises: dict[str, str] = {}  # user -> their Grid org, for users.info
        self.not_in_channels: set[str] = set()  # posting there answers `not_in_channel`
        self.published: dict[str, dict[str, Any]] = {}  # user -> the last Home view published
        self.refused: list[tuple[str, str, list[str]]] = []  # (method, error, why) of every refusal
        self.private_channels: set[str] = set()  # C… ids answered as private by conversations.info
        self._failures: dict[str, list[tuple[int, dict[str, str], Any]]] = defaultdict(list)
        self._ts = time.time()
        self.socket_url: str | None = None  # what apps.connections.open hands out
        self.granted_scopes: set[str] = manifest_scopes()  # what the installed app may do (x-oauth-scopes)
        self.archived_channels: set[str] = set()
        self.absent_users: set[str] = set()  # users.info answers user_not_found
        self.deleted_users: set[str] = set()  # deactivated accounts (user.deleted)
        self.bot_users: set[str] = set()  # users that are bots (user.is_bot)
        self.changed = threading.Condition()

    # --- scripting -------------------------------------------------------------------------
    def fail_next(self, method: str, status: int = 429, retry_after: int | None = 1,
                  body: Any | None = None, times: int = 1, after_effect: bool = False) -> None:
        """The next `times` calls fail; with `after_effect` Slack does the work first (a 5xx that
        comes after the message was posted, which Slack does)."""
        headers = {"Retry-After": str(retry_after)} if retry_after is not None else {}
        error = "ratelimited" if status == 429 else "fatal_error"
        payload = body if body is not None else {"ok": False, "error": error}
        if after_effect:
            headers = {**headers, "X-Fake-After-Effect": "1"}
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

    def message(self, channel: str, ts: str) -> dict[str, Any] | None:
        """The message as Slack holds it now (text and blocks after every update), or None."""
        with self.lock:
            found = self._find(channel, ts)
        return dict(found[0]) if found else None

    def reset(self) -> None:
        with self.lock:
            self.calls.clear()
            self.messages.clear()
            self._failures.clear()
            self.usergroup_members.clear()
            self.usergroup_handles.clear()
            self.enterprise_id = None
            self.user_enterprises.clear()
            self.not_in_channels.clear()
            self.published.clear()
            self.refused.clear()
            self.granted_scopes = manifest_scopes()
            self.archived_channels.clear()
            self.absent_users.clear()
            self.deleted_users.clear()
            self.bot_users.clear()

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
        if failure is not None and not failure[1].get("X-Fake-After-Effect"):
            return failure
        refusal = self._refusal(api_method, headers, args)
        scope_headers = self._scope_headers(api_method, headers, args)
        if failure is not None:  # the work is done, then the answer fails
            if refusal is None:
                self._answer(api_method, args, headers)
            status, fail_headers, body = failure
            return status, {k: v for k, v in fail_headers.items() if k != "X-Fake-After-Effect"}, body
        if refusal is not None:
            return 200, scope_headers, refusal
        return 200, scope_headers, self._answer(api_method, args, headers)

    @staticmethod
    def _token(headers: dict[str, str], args: dict[str, Any]) -> str:
        auth = {k.lower(): v for k, v in headers.items()}.get("authorization", "")
        return auth[len("Bearer "):] if auth.startswith("Bearer ") else str(args.get("token") or "")

    def _scope_headers(self, method: str, headers: dict[str, str], args: dict[str, Any]) -> dict[str, str]:
        """Like Slack: every answer to an OAuth (bot or user) token says what the token may do
        (`x-oauth-scopes`) and what the method accepts (`x-accepted-oauth-scopes`)."""
        if self._token(headers, args) not in BOT_TOKENS | USER_TOKENS:
            return {}
        with self.lock:
            granted = ",".join(sorted(self.granted_scopes))
        return {"x-oauth-scopes": granted, "x-accepted-oauth-scopes": self._needed_scope(method, args) or ""}

    def _needed_scope(self, method: str, args: dict[str, Any]) -> str | None:
        if method in METHOD_SCOPES:
            return METHOD_SCOPES[method]
        kind = CONVERSATION_SCOPES.get(method)
        if kind is None:
            return None
        channel = str(args.get("channel") or "")
        prefix = ("im" if channel.startswith("D") else "groups" if channel.startswith("G")
                  or channel in self.private_channels else "channels")
        return f"{prefix}:{kind}"

    # --- what Slack refuses ----------------------------------------------------------------
    def _refuse(self, method: str, error: str, why: list[str] | None = None) -> dict[str, Any]:
        with self.lock:
            self.refused.append((method, error, why or []))
        answer: dict[str, Any] = {"ok": False, "error": error}
        if why:
            answer["response_metadata"] = {"messages": [f"[ERROR] {w}" for w in why]}
        return answer

    def _refusal(self, method: str, headers: dict[str, str], args: dict[str, Any]) -> dict[str, Any] | None:
        """Slack's own checks, in its order: token, then arguments; None when the call is fine."""
        if method in NO_TOKEN_PATHS:
            return None
        token = self._token(headers, args)
        if not token:
            return self._refuse(method, "not_authed")
        if token not in BOT_TOKENS | APP_TOKENS | USER_TOKENS:
            return self._refuse(method, "invalid_auth")
        wants_app = method in APP_TOKEN_METHODS
        if wants_app != (token in APP_TOKENS):
            return self._refuse(method, "not_allowed_token_type")
        needed = self._needed_scope(method, args)
        with self.lock:
            granted = set(self.granted_scopes)
        if needed and needed not in granted:
            answer = self._refuse(method, "missing_scope")
            answer.update({"needed": needed, "provided": ",".join(sorted(granted))})
            return answer
        if method in BLOCK_METHODS:
            why = block_problems(args.get("blocks"))
            if why:
                return self._refuse(method, "invalid_blocks", why)
        if method in VIEW_METHODS:
            why = view_problems(args.get("view"))
            if why:
                return self._refuse(method, "invalid_blocks", why)
        if method in TEXT_METHODS:
            if not args.get("text") and not args.get("blocks") and method != "chat.update":
                return self._refuse(method, "no_text")
            if len(str(args.get("text") or "")) > MESSAGE_TEXT:
                return self._refuse(method, "msg_too_long")
        if method.startswith("chat.") and args.get("channel") in self.not_in_channels:
            return self._refuse(method, "not_in_channel")
        return None

    def _answer(self, method: str, args: dict[str, Any], headers: dict[str, str] | None = None) -> dict[str, Any]:
        if method == "apps.connections.open":
            return {"ok": True, "url": self.socket_url} if self.socket_url else {"ok": False, "error": "not_set"}
        if method == "auth.test":
            answer = {"ok": True, "url": "https://fake-workspace.slack.com/", "team": "Fake Workspace",
                      "user_id": BOT_USER_ID, "bot_id": BOT_ID, "team_id": "T1", "user": "bot",
                      "is_enterprise_install": False}
            if self._token(headers or {}, args) in USER_TOKENS:
                answer.update({"user_id": "UPERSON", "user": "person"})
                del answer["bot_id"]
            if self.enterprise_id:
                answer["enterprise_id"] = self.enterprise_id
            return answer
        if method in ("chat.postMessage", "chat.startStream"):
            ts = self._next_ts()
            channel = args.get("channel", "C1")
            thread = args.get("thread_ts") or ts
            message = {"ts": ts, "text": args.get("text") or _stream_text(args),
                       "user": BOT_USER_ID, "bot_id": BOT_ID, "thread_ts": thread,
                       "streamed": method == "chat.startStream"}
            if args.get("blocks"):
                message["blocks"] = _as_list(args["blocks"])
            with self.lock:
                self.messages[(channel, thread)].append(message)
            return {"ok": True, "channel": channel, "ts": ts, "message": message}
        if method in ("chat.update", "chat.appendStream", "chat.stopStream"):
            with self.lock:
                for message in self._find(args.get("channel", ""), args.get("ts", "")):
                    if method == "chat.update":
                        message["text"] = args.get("text", message["text"])
                        if args.get("blocks"):
                            message["blocks"] = _as_list(args["blocks"])
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
            return self._replies(args)
        if method == "conversations.info":
            return self._conversation_info(args.get("channel", ""))
        if method == "usergroups.users.list":
            group = args.get("usergroup", "")
            if group not in self.usergroup_members:
                return self._refuse(method, "no_such_subteam")
            return {"ok": True, "users": self.usergroup_members[group]}
        if method == "usergroups.list":
            return {"ok": True, "usergroups": [{"id": gid, "handle": handle, "name": handle, "team_id": "T1"}
                                               for handle, gid in self.usergroup_handles.items()]}
        if method == "users.info":
            return self._user_info(args.get("user", ""))
        if method == "views.publish":
            with self.lock:
                self.published[args.get("user_id", "")] = args["view"]
            return {"ok": True, "view": {"id": "VHOME", **args["view"]}}
        if method in ("views.open", "views.update", "views.push"):
            return {"ok": True, "view": {"id": "V1", **args["view"]}}
        return {"ok": True}

    def _replies(self, args: dict[str, Any]) -> dict[str, Any]:
        """Oldest first, `limit` per page (Slack's default 1000 when absent), `cursor` to go on."""
        key = (args.get("channel", ""), args.get("ts", ""))
        with self.lock:
            if key not in self.messages:
                return {"ok": False, "error": "thread_not_found"}
            msgs = sorted(self.messages[key], key=lambda m: float(m["ts"]))
        try:
            limit = max(1, min(int(args.get("limit") or 1000), 1000))
            start = int(str(args.get("cursor") or "0").removeprefix("bmV4dF90czox"))
        except ValueError:
            return {"ok": False, "error": "invalid_cursor"}
        page = msgs[start:start + limit]
        has_more = start + limit < len(msgs)
        answer: dict[str, Any] = {"ok": True, "messages": page, "has_more": has_more}
        answer["response_metadata"] = {"next_cursor": f"bmV4dF90czox{start + limit}" if has_more else ""}
        return answer

    def _conversation_info(self, channel: str) -> dict[str, Any]:
        """A bot sees a private channel only when it is in it; `is_member` says whether it is."""
        answer = _channel_info(channel, self.private_channels)
        if not answer["ok"]:
            return answer
        member = channel not in self.not_in_channels
        if answer["channel"]["is_private"] and not answer["channel"]["is_im"] and not member:
            return {"ok": False, "error": "channel_not_found"}
        answer["channel"].update({"is_member": member, "is_archived": channel in self.archived_channels})
        return answer

    def _user_info(self, user: str) -> dict[str, Any]:
        if not USER_ID.match(user) or user in self.absent_users:
            return {"ok": False, "error": "user_not_found"}
        info: dict[str, Any] = {"id": user, "name": user.lower(), "team_id": "T1",
                                "deleted": user in self.deleted_users,
                                "is_bot": user in self.bot_users or user == BOT_USER_ID}
        enterprise = self.user_enterprises.get(user, self.enterprise_id)
        if enterprise:
            info["enterprise_user"] = {"id": user, "enterprise_id": enterprise, "enterprise_name": enterprise,
                                       "is_admin": False, "is_owner": False, "teams": []}
        return {"ok": True, "user": info}


def manifest_scopes() -> set[str]:
    """The bot scopes manifest.yaml asks for: what an app installed from it is granted."""
    manifest = yaml.safe_load(MANIFEST.read_text())
    return set(manifest["oauth_config"]["scopes"]["bot"])


def _as_list(blocks: Any) -> list[dict[str, Any]]:
    return json.loads(blocks) if isinstance(blocks, str) else list(blocks)


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
