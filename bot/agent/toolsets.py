"""Which tools the model gets for a turn: live Prefect reads, the recipe book, and proposals.

Read tools are shared; the proposal tool is built per turn because it records who asked and
where, and reports the proposals it created back to the pipeline.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

from bot.agent.registry import ToolRegistry
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
    shared = read_tools()

    def tools_for_turn(turn: Turn, created: list[str]) -> ToolRegistry:
        registry = ToolRegistry()
        for func in shared:
            registry.add(func)
        if approvals is not None:
            from bot.approvals.tools import proposal_tools

            for func in proposal_tools(approvals, turn.user_id, turn.channel, turn.thread_ts):
                registry.add(_recording(func, created), changes_prefect=True)
        return registry

    return tools_for_turn
