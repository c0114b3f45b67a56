"""The model loop: ask, run the tools it calls (concurrently), feed results back, repeat.

Bounded by a round cap, a cap on tool calls per round and the answer's deadline. Tool failures,
unknown tools, calls over the cap and malformed arguments go back to the model as tool errors;
they never escape the loop. Tool results are scrubbed (`clean`) before the model sees them.
Tool-call ids that local servers leave out or reuse are replaced by our own, so every call gets
exactly one answer. A conversation too long for the model is trimmed once (bot.agent.context_fit).
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from bot.agent.context_fit import fit_to_window
from bot.agent.model import ContextTooLong, ModelClient
from bot.agent.registry import ToolRegistry, to_jsonable
from bot.redact import error_summary

log = logging.getLogger(__name__)

UNKNOWN_TOOL = "unknown"  # what an invented tool name is recorded as (bounded metric labels)
TOOL_CAP_ERROR = ("too many tool calls in one round: this one was not run (at most {cap} per round). "
                  "Use the results you have, or ask again next round for what matters most.")
ROUND_CAP_NOTE = ("You have used all your tool rounds. Answer now with what you have, and say "
                  "briefly what you could not check.")


@dataclass
class AgentResult:
    text: str
    rounds: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    tool_calls: list[str] = field(default_factory=list)
    hit_round_cap: bool = False
    model_seconds: float = 0.0
    tool_seconds: float = 0.0
    cached_tokens: int = 0
    reasoning_tokens: int = 0
    left_out: list[str] = field(default_factory=list)  # what was trimmed to fit the context window


@dataclass(frozen=True)
class _Function:
    name: str
    arguments: str


@dataclass(frozen=True)
class Call:
    """A tool call with an id we can answer: the provider's, or ours when it left it out or reused it."""

    id: str
    function: _Function


def truncate(text: str, limit: int) -> str:
    if len(text) <= limit:
        return text
    return text[:limit] + f"\n…[truncated {len(text) - limit} characters]"


def _keep(text: str) -> str:
    return text


async def run_tool_call(registry: ToolRegistry, call: Any, max_chars: int,
                        clean: Callable[[str], str] = _keep) -> dict[str, Any]:
    """One tool call → one `tool` message, scrubbed by `clean`. Errors are results, not exceptions."""
    name = call.function.name
    tool = registry.get(name)
    if tool is None:
        content: Any = {"error": f"unknown tool `{name}`; available: {', '.join(registry.tools)}"}
    else:
        try:
            content = to_jsonable(await tool.call(call.function.arguments))
        except Exception as exc:  # a tool error is information for the model
            summary = error_summary(exc)  # never the raw body: Prefect (or a proxy) may echo headers in it
            log.info("tool %s failed: %s", name, summary)
            content = {"error": summary}
    text = content if isinstance(content, str) else json.dumps(content, default=str, ensure_ascii=False)
    return {"role": "tool", "tool_call_id": call.id, "content": truncate(clean(text), max_chars)}


def unique_calls(calls: list[Any], seen: set[str], round_number: int) -> list[Call]:
    """The round's calls with ids that are present and unique in the whole conversation."""
    out = []
    for index, call in enumerate(calls):
        call_id = getattr(call, "id", None)
        if not isinstance(call_id, str) or not call_id or call_id in seen:
            call_id = f"call_r{round_number}_{index}"
        seen.add(call_id)
        out.append(Call(call_id, _Function(call.function.name or "", call.function.arguments or "{}")))
    return out


def _assistant_message(message: Any, calls: list[Call]) -> dict[str, Any]:
    out: dict[str, Any] = {"role": "assistant", "content": message.content or ""}
    if calls:
        out["tool_calls"] = [
            {"id": c.id, "type": "function", "function": {"name": c.function.name, "arguments": c.function.arguments}}
            for c in calls
        ]
    return out


def _usage(result: AgentResult, usage: Any) -> None:
    if not usage:
        return  # local servers often send none
    result.prompt_tokens += usage.prompt_tokens or 0
    result.completion_tokens += usage.completion_tokens or 0
    cached = getattr(getattr(usage, "prompt_tokens_details", None), "cached_tokens", None)
    reasoning = getattr(getattr(usage, "completion_tokens_details", None), "reasoning_tokens", None)
    result.cached_tokens += cached or 0
    result.reasoning_tokens += reasoning or 0


async def _complete(model: ModelClient, messages: list[dict[str, Any]], tools: list[dict[str, Any]] | None,
                    deadline: float, result: AgentResult, protect_from: int) -> Any:
    """One model call; on context overflow, trim once (tool results, then oldest history) and retry."""
    try:
        return await model.complete(messages, tools, deadline)
    except ContextTooLong as exc:
        if result.left_out:
            raise  # already trimmed once in this answer
        left_out = fit_to_window(messages, protect_from, str(exc.__cause__ or exc))
        if not left_out:
            raise
        result.left_out = left_out
        log.info("conversation trimmed to fit the model's context window: %s", "; ".join(left_out))
        return await model.complete(messages, tools, deadline)


async def run_agent(model: ModelClient, messages: list[dict[str, Any]], registry: ToolRegistry,
                    max_rounds: int, deadline: float, tool_result_max_chars: int = 12_000,
                    max_tool_calls: int = 0, clean: Callable[[str], str] = _keep) -> AgentResult:
    """Run until the model answers without tools, the round cap, or the deadline.

    `max_tool_calls` (0: no cap) bounds the calls run per round; `clean` scrubs every tool result."""
    result = AgentResult(text="")
    schemas = registry.schemas()
    protect_from = max((i for i, m in enumerate(messages) if m.get("role") == "user"), default=len(messages))
    seen_ids = {c["id"] for m in messages for c in m.get("tool_calls") or []}
    while True:
        out_of_rounds = result.rounds >= max_rounds
        if out_of_rounds:
            result.hit_round_cap = True
            messages.append({"role": "system", "content": ROUND_CAP_NOTE})
        started = time.perf_counter()
        response = await _complete(model, messages, None if out_of_rounds else schemas, deadline, result,
                                   protect_from)
        result.model_seconds += time.perf_counter() - started
        result.rounds += 1
        _usage(result, response.usage)
        message = response.choices[0].message
        if not message.tool_calls or out_of_rounds:
            result.text = (message.content or "").strip()
            return result
        calls = unique_calls(list(message.tool_calls), seen_ids, result.rounds)
        messages.append(_assistant_message(message, calls))
        result.tool_calls.extend(c.function.name if registry.get(c.function.name) else UNKNOWN_TOOL for c in calls)
        started = time.perf_counter()
        messages.extend(await _run_round(registry, calls, tool_result_max_chars, deadline, max_tool_calls, clean))
        result.tool_seconds += time.perf_counter() - started


async def _run_round(registry: ToolRegistry, calls: list[Any], max_chars: int, deadline: float,
                     max_calls: int = 0, clean: Callable[[str], str] = _keep) -> list[dict[str, Any]]:
    """Run one round's tool calls concurrently; calls over the cap are refused, calls still running at
    the deadline become errors. Every call gets its answer, as the protocol requires."""
    run, refused = (calls[:max_calls], calls[max_calls:]) if max_calls > 0 else (calls, [])
    tasks = [asyncio.create_task(run_tool_call(registry, c, max_chars, clean)) for c in run]
    if tasks:
        await asyncio.wait(tasks, timeout=max(1.0, deadline - time.monotonic()))
    out = []
    if refused:
        log.info("%d tool call(s) refused: over the cap of %d per round", len(refused), max_calls)
    for call, task in zip(run, tasks, strict=True):
        if task.done():
            out.append(task.result())
        else:
            task.cancel()
            out.append({"role": "tool", "tool_call_id": call.id,
                        "content": json.dumps({"error": "the tool ran out of time"})})
    out += [{"role": "tool", "tool_call_id": call.id,
             "content": json.dumps({"error": TOOL_CAP_ERROR.format(cap=max_calls)})} for call in refused]
    return out
