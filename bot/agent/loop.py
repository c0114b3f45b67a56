"""The model loop: ask, run the tools it calls (concurrently), feed results back, repeat.

Bounded by a round cap and the answer's deadline. Tool failures, unknown tools and malformed
arguments go back to the model as tool errors; they never escape the loop.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from dataclasses import dataclass, field
from typing import Any

from bot.agent.model import ModelClient
from bot.agent.registry import ToolRegistry, to_jsonable

log = logging.getLogger(__name__)

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


def truncate(text: str, limit: int) -> str:
    if len(text) <= limit:
        return text
    return text[:limit] + f"\n…[truncated {len(text) - limit} characters]"


async def run_tool_call(registry: ToolRegistry, call: Any, max_chars: int) -> dict[str, Any]:
    """One tool call → one `tool` message. Errors are results, not exceptions."""
    name = call.function.name
    tool = registry.get(name)
    if tool is None:
        content: Any = {"error": f"unknown tool `{name}`; available: {', '.join(registry.tools)}"}
    else:
        try:
            content = to_jsonable(await tool.call(call.function.arguments))
        except Exception as exc:  # a tool error is information for the model
            log.info("tool %s failed: %s", name, exc)
            content = {"error": f"{type(exc).__name__}: {exc}"}
    text = content if isinstance(content, str) else json.dumps(content, default=str, ensure_ascii=False)
    return {"role": "tool", "tool_call_id": call.id, "content": truncate(text, max_chars)}


def _assistant_message(message: Any) -> dict[str, Any]:
    out: dict[str, Any] = {"role": "assistant", "content": message.content or ""}
    if message.tool_calls:
        out["tool_calls"] = [
            {"id": c.id, "type": "function",
             "function": {"name": c.function.name, "arguments": c.function.arguments or "{}"}}
            for c in message.tool_calls
        ]
    return out


async def run_agent(model: ModelClient, messages: list[dict[str, Any]], registry: ToolRegistry,
                    max_rounds: int, deadline: float, tool_result_max_chars: int = 12_000) -> AgentResult:
    """Run until the model answers without tools, the round cap, or the deadline."""
    result = AgentResult(text="")
    schemas = registry.schemas()
    while True:
        out_of_rounds = result.rounds >= max_rounds
        if out_of_rounds:
            result.hit_round_cap = True
            messages.append({"role": "system", "content": ROUND_CAP_NOTE})
        started = time.perf_counter()
        response = await model.complete(messages, None if out_of_rounds else schemas, deadline)
        result.model_seconds += time.perf_counter() - started
        result.rounds += 1
        if response.usage:
            result.prompt_tokens += response.usage.prompt_tokens or 0
            result.completion_tokens += response.usage.completion_tokens or 0
        message = response.choices[0].message
        if not message.tool_calls or out_of_rounds:
            result.text = (message.content or "").strip()
            return result
        messages.append(_assistant_message(message))
        result.tool_calls.extend(c.function.name for c in message.tool_calls)
        started = time.perf_counter()
        messages.extend(await _run_round(registry, message.tool_calls, tool_result_max_chars, deadline))
        result.tool_seconds += time.perf_counter() - started


async def _run_round(registry: ToolRegistry, calls: list[Any], max_chars: int,
                     deadline: float) -> list[dict[str, Any]]:
    """Run one round's tool calls concurrently; calls still running at the deadline become errors."""
    tasks = [asyncio.create_task(run_tool_call(registry, c, max_chars)) for c in calls]
    await asyncio.wait(tasks, timeout=max(1.0, deadline - time.monotonic()))
    out = []
    for call, task in zip(calls, tasks, strict=True):
        if task.done():
            out.append(task.result())
        else:
            task.cancel()
            out.append({"role": "tool", "tool_call_id": call.id,
                        "content": json.dumps({"error": "the tool ran out of time"})})
    return out
