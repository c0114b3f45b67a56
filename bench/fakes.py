"""The test fakes, timed: when each Slack call and each model round happened, per question.

All timestamps are `time.monotonic()`, which on Linux is one clock for every process, so the
load generator (another process) and these servers can be compared directly.
"""

from __future__ import annotations

import json
import re
import sys
import threading
import time
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs

from tests.fakes.model_api import FakeModelAPI, text, tool_calls
from tests.fakes.slack_api import FakeSlackAPI

REF = re.compile(r"\(ref (?P<kind>[a-z]+)-(?P<n>\d+)\)")
RECIPE_CONTEXT = "Verified recipes from our book"
CHARS_PER_TOKEN = 4
BACKLOG = 1024


def widen_backlog(server: Any) -> None:
    """http.server listens with a backlog of 5; a burst of 200 connections would see SYN retries.

    Also keeps quiet about clients that hang up mid-answer (a bot stopped with answers in flight).
    """
    server.httpd.socket.listen(BACKLOG)
    default = server.httpd.handle_error

    def handle_error(request: Any, client_address: Any) -> None:
        if not isinstance(sys.exc_info()[1], ConnectionError):
            default(request, client_address)

    server.httpd.handle_error = handle_error


def estimate_tokens(chars: int) -> int:
    return max(1, chars // CHARS_PER_TOKEN)


class TimedSlackAPI(FakeSlackAPI):
    """Adds, per message ts: first visible feedback (👀 or a status) and when the answer was complete."""

    def __init__(self) -> None:
        super().__init__()
        self.first_feedback: dict[str, float] = {}
        self.answered: dict[str, float] = {}
        self._stream_threads: dict[str, str] = {}
        widen_backlog(self)

    def handle(self, method: str, path: str, headers: dict[str, str], raw: bytes) -> tuple[int, dict, Any]:
        received = time.monotonic()
        status, out_headers, body = super().handle(method, path, headers, raw)
        api_method = path.split("?")[0].rstrip("/").rsplit("/", 1)[-1]
        args = self._parse(headers, raw)
        if "?" in path:
            args.update({k: v[0] for k, v in parse_qs(path.split("?", 1)[1]).items()})
        with self.lock:
            self._note(api_method, args, body, received)
        return status, out_headers, body

    def _note(self, method: str, args: dict[str, Any], body: Any, at: float) -> None:
        if method == "reactions.add":
            self.first_feedback.setdefault(str(args.get("timestamp")), at)
        elif method == "assistant.threads.setStatus":
            self.first_feedback.setdefault(str(args.get("thread_ts")), at)
        elif method == "chat.startStream" and isinstance(body, dict):
            self._stream_threads[str(body.get("ts"))] = str(args.get("thread_ts"))
        elif method == "chat.stopStream":
            thread = self._stream_threads.get(str(args.get("ts")))
            if thread:
                self.answered[thread] = at
        elif method == "chat.postMessage" and args.get("thread_ts"):
            self.answered[str(args["thread_ts"])] = at

    def clear_timings(self) -> None:
        with self.lock:
            self.first_feedback.clear()
            self.answered.clear()
            self._stream_threads.clear()
            self.calls.clear()
            self.messages.clear()


@dataclass(frozen=True)
class Plan:
    """How the scripted model answers one kind of question (a stand-in for a competent model)."""

    answer: str
    needs_recipes: bool = False
    lookups: tuple[tuple[str, dict[str, Any]], ...] = ()


@dataclass
class ModelRound:
    ref: str
    kind: str
    started: float
    finished: float
    prompt_tokens: int
    completion_tokens: int
    tool_names: list[str] = field(default_factory=list)
    cached_tokens: int = 0  # of prompt_tokens: served from the provider's prompt cache

    @property
    def seconds(self) -> float:
        return self.finished - self.started


class BenchModelAPI(FakeModelAPI):
    """Answers by plan, not by queue, so hundreds of concurrent questions each get the right script.

    A question carries `(ref <kind>-<n>)`. Round one: the plan's lookups, plus `search_recipes`
    when the plan needs recipes and the prompt carries none (the naive bot). Later rounds answer.
    Time per round: `latency` (to the first token) + completion tokens / `token_rate`. The bot
    asks for whole completions (it streams only the verified answer to Slack), so the tokens'
    time is spent before the response is sent. Usage is estimated at 4 characters per token.
    """

    def __init__(self, plans: dict[str, Plan], latency: float = 0.8, token_rate: float = 0.0) -> None:
        super().__init__(latency=latency)
        self.plans = plans
        self.token_rate = token_rate
        self.rounds: list[ModelRound] = []
        self.default = self._step
        self._rounds_lock = threading.Lock()
        widen_backlog(self)

    def _step(self, request: dict[str, Any]) -> dict[str, Any]:
        messages = request.get("messages", [])
        question = next((m.get("content") or "" for m in reversed(messages) if m.get("role") == "user"), "")
        match = REF.search(question)
        plan = self.plans.get(match.group("kind")) if match else None
        prompt = estimate_tokens(len(json.dumps(messages)) + len(json.dumps(request.get("tools", []))))
        if plan is None:
            return text("I can't tell what this question is about.", prompt, 12)
        has_tool_results = any(m.get("role") == "tool" for m in messages)
        calls = [] if has_tool_results or not request.get("tools") else list(plan.lookups)
        if calls or (plan.needs_recipes and not has_tool_results and request.get("tools")):
            if plan.needs_recipes and not any(RECIPE_CONTEXT in (m.get("content") or "") for m in messages
                                              if m.get("role") == "system"):
                calls.append(("search_recipes", {"query": REF.sub("", question).strip()}))
        if calls:
            step = tool_calls(*calls)
            step["usage"] = (prompt, estimate_tokens(len(json.dumps(step["message"]["tool_calls"]))))
            return step
        return text(plan.answer, prompt, estimate_tokens(len(plan.answer)))

    def handle(self, method: str, path: str, headers: dict[str, str], raw: bytes) -> tuple[int, dict, Any]:
        started = time.monotonic()
        status, out_headers, body = super().handle(method, path, headers, raw)
        usage = body.get("usage", {}) if isinstance(body, dict) else {}
        completion = usage.get("completion_tokens", 0)
        if self.token_rate > 0 and completion:
            time.sleep(completion / self.token_rate)
        request = json.loads(raw or b"{}")
        question = next((m.get("content") or "" for m in reversed(request.get("messages", []))
                         if m.get("role") == "user"), "")
        match = REF.search(question)
        message = body["choices"][0]["message"] if isinstance(body, dict) and body.get("choices") else {}
        with self._rounds_lock:
            self.rounds.append(ModelRound(
                ref=f"{match.group('kind')}-{match.group('n')}" if match else "?",
                kind=match.group("kind") if match else "?", started=started, finished=time.monotonic(),
                prompt_tokens=usage.get("prompt_tokens", 0), completion_tokens=completion,
                tool_names=[c["function"]["name"] for c in message.get("tool_calls") or []],
                cached_tokens=(usage.get("prompt_tokens_details") or {}).get("cached_tokens", 0)))
        return status, out_headers, body

    def rounds_for(self, ref: str) -> list[ModelRound]:
        with self._rounds_lock:
            return [r for r in self.rounds if r.ref == ref]

    def clear_rounds(self) -> None:
        with self._rounds_lock:
            self.rounds.clear()
        with self.lock:
            self.requests.clear()
