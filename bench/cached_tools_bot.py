"""What-if: the production bot with tool schemas built once per process instead of once per answer.

`python -m bench.cached_tools_bot serve --port N` (same environment as `concurrency-bot serve`).
Profiling under load showed `tools_for_turn` (pydantic `create_model` for every tool) and
`ToolRegistry.schemas()` taking about half of the event loop's time. This variant keeps the
tools and their JSON schemas from the first answer; per answer it only binds the proposal
tools to who asked and where. It exists to measure the proposed fix before it lands.
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Callable
from typing import Any

from bench.naive_bot import build_runtime_variant, main
from bot.agent.registry import Tool, ToolRegistry, build_tool
from bot.agent.toolsets import _recording, read_tools
from bot.settings import Settings
from bot.turns import Turn


@dataclasses.dataclass
class SchemaOnceTool(Tool):
    """A Tool whose JSON schema is computed on first use and then reused."""

    @functools.cached_property
    def _schema(self) -> dict[str, Any]:
        return Tool.schema(self)

    def schema(self) -> dict[str, Any]:
        return self._schema


def once(func: Callable[..., Any], changes_prefect: bool = False) -> SchemaOnceTool:
    tool = build_tool(func, changes_prefect=changes_prefect)
    return SchemaOnceTool(**{f.name: getattr(tool, f.name) for f in dataclasses.fields(Tool)})


def cached_tools_factory(approvals: Any | None) -> Callable[[Turn, list[str]], ToolRegistry]:
    shared = {tool.name: tool for tool in map(once, read_tools())}
    proposal_templates: dict[str, SchemaOnceTool] = {}

    def tools_for_turn(turn: Turn, created: list[str]) -> ToolRegistry:
        registry = ToolRegistry(tools=dict(shared))
        if approvals is not None:
            from bot.approvals.tools import proposal_tools

            for func in proposal_tools(approvals, turn.user_id, turn.channel, turn.thread_ts):
                template = proposal_templates.get(func.__name__)
                if template is None:
                    template = proposal_templates[func.__name__] = once(func, changes_prefect=True)
                registry.tools[template.name] = dataclasses.replace(template, func=_recording(func, created))
        return registry

    return tools_for_turn


def build_cached_tools_runtime(settings: Settings) -> Any:
    return build_runtime_variant(settings, tools_for_turn_factory=cached_tools_factory)


if __name__ == "__main__":
    main(build_cached_tools_runtime, "python -m bench.cached_tools_bot")
