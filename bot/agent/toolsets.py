"""Which tools the model gets for a turn: live Prefect reads, the recipe book, and proposals.

Read tools and their schemas are built once per process (building them per answer cost about half
the event loop's time under load). The proposal tool is bound per turn because it records who
asked and where, and reports the proposals it created back to the pipeline; its schema is reused.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

from bot.agent.registry import Tool, ToolRegistry, build_tool
from bot.turns import Turn


def read_tools() -> list[Callable[..., Any]]:
    from bot.knowledge.tools import KNOWLEDGE_TOOLS
    from bot.prefect_ops.tools import PREFECT_READ_TOOLS

    return [*PREFECT_READ_TOOLS, *KNOWLEDGE_TOOLS]


def _recording(func: Callable[..., Any], created: list[str]) -> Callable[..., Any]:
    """Wrap a proposal tool so the ids it creates reach the Reply (and then the card)."""

    @functools.wraps(func)
    async def wrapper(**kwargs: Any) -> Any:
        result = await func(**kwargs)
        proposal_id = getattr(result, "proposal_id", None)
        if proposal_id is None and isinstance(result, dict):
            proposal_id = result.get("proposal_id")
        if proposal_id:
            created.append(str(proposal_id))
        return result

    return wrapper


def tools_for_turn_factory(approvals: Any | None) -> Callable[[Turn, list[str]], ToolRegistry]:
    shared = [build_tool(func) for func in read_tools()]
    for tool in shared:
        tool.schema()
    per_turn_templates: dict[str, Tool] = {}

    def turn_tool(func: Callable[..., Any], created: list[str]) -> Tool:
        template = per_turn_templates.get(func.__qualname__)
        if template is None:
            template = per_turn_templates[func.__qualname__] = build_tool(func, changes_prefect=True)
        return template.bound_to(_recording(func, created))

    def tools_for_turn(turn: Turn, created: list[str]) -> ToolRegistry:
        registry = ToolRegistry()
        for tool in shared:
            registry.add_tool(tool)
        if approvals is not None:
            from bot.approvals.tools import proposal_tools

            for func in proposal_tools(approvals, turn.user_id, turn.channel, turn.thread_ts):
                registry.add_tool(turn_tool(func, created))
        return registry

    return tools_for_turn
