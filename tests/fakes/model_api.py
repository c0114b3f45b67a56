"""A local server speaking the OpenAI chat-completions protocol, scripted per test.

A script is a list of steps. Each step is either a reply (`text(...)`, `tool_calls(...)`),
an error (`error(status, retry_after=...)`), a stall (`hang(seconds)`), a dropped connection
(`disconnect()`), or a callable that receives the request JSON and
returns one of those. Requests are recorded so tests can read what the model was shown.
"""

from __future__ import annotations

import itertools
import json
import threading
import time
from collections.abc import Callable
from typing import Any

from tests.fakes.http_fake import Disconnect, FakeServer

Step = dict[str, Any] | Callable[[dict[str, Any]], dict[str, Any]]
_ids = itertools.count(1)


def text(content: str, prompt_tokens: int = 50, completion_tokens: int = 20) -> dict[str, Any]:
    return {"kind": "reply", "message": {"role": "assistant", "content": content},
            "usage": (prompt_tokens, completion_tokens)}


def tool_calls(*calls: tuple[str, dict[str, Any] | str]) -> dict[str, Any]:
    built = []
    for name, arguments in calls:
        args = arguments if isinstance(arguments, str) else json.dumps(arguments)
        built.append({"id": f"call_{next(_ids)}", "type": "function",
                      "function": {"name": name, "arguments": args}})
    return {"kind": "reply", "message": {"role": "assistant", "content": None, "tool_calls": built},
            "usage": (60, 10)}


def error(status: int, retry_after: float | None = None, message: str = "scripted error") -> dict[str, Any]:
    return {"kind": "error", "status": status, "retry_after": retry_after, "message": message}


def hang(seconds: float) -> dict[str, Any]:
    return {"kind": "hang", "seconds": seconds}


def disconnect() -> dict[str, Any]:
    """Drop the connection with a TCP reset, as a crashing proxy or provider would."""
    return {"kind": "disconnect"}


class FakeModelAPI(FakeServer):
    """`script(...)` queues steps; when the queue is empty, `default` answers (a plain text)."""

    def __init__(self, latency: float = 0.0) -> None:
        super().__init__()
        self.latency = latency
        self.requests: list[dict[str, Any]] = []
        self._steps: list[Step] = []
        self.default: Step = text("Default scripted answer.")
        self.cond = threading.Condition()

    @property
    def base_url(self) -> str:
        return f"{self.url}/v1"

    def script(self, *steps: Step) -> None:
        with self.lock:
            self._steps.extend(steps)

    def reset(self) -> None:
        with self.lock:
            self._steps.clear()
            self.requests.clear()
        self.default = text("Default scripted answer.")

    def handle(self, method: str, path: str, headers: dict[str, str], raw: bytes) -> tuple[int, dict, Any]:
        if not path.rstrip("/").endswith("/chat/completions"):
            return 404, {}, {"error": {"message": f"no route {path}"}}
        request = json.loads(raw or b"{}")
        with self.lock:
            self.requests.append(request)
            step = self._steps.pop(0) if self._steps else self.default
        with self.cond:
            self.cond.notify_all()
        if callable(step):
            step = step(request)
        if self.latency:
            time.sleep(self.latency)
        if step["kind"] == "hang":
            time.sleep(step["seconds"])
            step = text("late answer")
        if step["kind"] == "disconnect":
            raise Disconnect()
        if step["kind"] == "error":
            hdrs = {"Retry-After": str(step["retry_after"])} if step.get("retry_after") is not None else {}
            return step["status"], hdrs, {"error": {"message": step["message"], "type": "server_error"}}
        prompt, completion = step["usage"]
        return 200, {}, {
            "id": f"chatcmpl-{next(_ids)}", "object": "chat.completion", "created": int(time.time()),
            "model": request.get("model", "fake"),
            "choices": [{"index": 0, "message": step["message"],
                         "finish_reason": "tool_calls" if step["message"].get("tool_calls") else "stop"}],
            "usage": {"prompt_tokens": prompt, "completion_tokens": completion,
                      "total_tokens": prompt + completion},
        }
