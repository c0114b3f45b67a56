"""A tool registry that builds OpenAI function schemas from typed Python functions.

A tool is an async (or sync) function with type-hinted parameters and a docstring. Its first
docstring paragraph becomes the description the model reads. Calls return JSON-able values;
exceptions become tool errors returned to the model, never raised into the loop.
"""

from __future__ import annotations

import asyncio
import inspect
import json
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field, replace
from typing import Any, get_type_hints

from pydantic import BaseModel, ValidationError, create_model

ToolFunc = Callable[..., Any] | Callable[..., Awaitable[Any]]


class ToolInputError(ValueError):
    """The model sent arguments that do not fit the tool's signature."""


@dataclass
class Tool:
    name: str
    description: str
    func: ToolFunc
    arguments_model: type[BaseModel]
    changes_prefect: bool = False  # only proposal-creating tools; nothing the model calls applies
    _schema: dict[str, Any] | None = field(default=None, repr=False, compare=False)

    def schema(self) -> dict[str, Any]:
        """The OpenAI function schema, built once: every answer sends it, so it must cost nothing."""
        if self._schema is None:
            params = self.arguments_model.model_json_schema()
            params.pop("title", None)
            for prop in params.get("properties", {}).values():
                prop.pop("title", None)
            self._schema = {"type": "function", "function": {
                "name": self.name, "description": self.description, "parameters": params}}
        return self._schema

    def bound_to(self, func: ToolFunc) -> Tool:
        """The same tool (schema, argument model) calling another function with the same signature."""
        self.schema()
        return replace(self, func=func)

    async def call(self, raw_arguments: str | dict[str, Any] | None) -> Any:
        try:
            data = raw_arguments if isinstance(raw_arguments, dict) else json.loads(raw_arguments or "{}")
        except json.JSONDecodeError as exc:
            raise ToolInputError(f"arguments are not valid JSON: {exc.msg}") from exc
        if not isinstance(data, dict):
            raise ToolInputError("arguments must be a JSON object")
        try:
            parsed = self.arguments_model.model_validate(data)
        except ValidationError as exc:
            raise ToolInputError(str(exc)) from exc
        kwargs = {name: getattr(parsed, name) for name in self.arguments_model.model_fields}
        if inspect.iscoroutinefunction(self.func):
            return await self.func(**kwargs)
        return await asyncio.to_thread(self.func, **kwargs)


def _describe(func: ToolFunc) -> str:
    doc = inspect.getdoc(func) or func.__name__.replace("_", " ")
    return doc.strip()


def build_tool(func: ToolFunc, name: str | None = None, changes_prefect: bool = False) -> Tool:
    """Turn a typed function into a Tool; its parameters become the JSON schema."""
    hints = get_type_hints(func)
    fields: dict[str, Any] = {}
    for pname, param in inspect.signature(func).parameters.items():
        if param.kind in (param.VAR_POSITIONAL, param.VAR_KEYWORD):
            continue
        annotation = hints.get(pname, str)
        default = ... if param.default is inspect.Parameter.empty else param.default
        fields[pname] = (annotation, default)
    model = create_model(f"{func.__name__}_arguments", **fields)  # type: ignore[call-overload]
    return Tool(name or func.__name__, _describe(func), func, model, changes_prefect)


@dataclass
class ToolRegistry:
    """Holds the tools offered to the model for one answer (or shared across answers)."""

    tools: dict[str, Tool] = field(default_factory=dict)

    def add(self, func: ToolFunc, name: str | None = None, changes_prefect: bool = False) -> Tool:
        return self.add_tool(build_tool(func, name, changes_prefect))

    def add_tool(self, tool: Tool) -> Tool:
        self.tools[tool.name] = tool
        return tool

    def schemas(self) -> list[dict[str, Any]]:
        return [tool.schema() for tool in self.tools.values()]

    def get(self, name: str) -> Tool | None:
        return self.tools.get(name)

    def __contains__(self, name: str) -> bool:
        return name in self.tools

    def __len__(self) -> int:
        return len(self.tools)


def to_jsonable(value: Any) -> Any:
    """Tool results go to the model as JSON: pydantic models, lists of them and plain data."""
    if isinstance(value, BaseModel):
        return value.model_dump(mode="json", exclude_none=True)
    if isinstance(value, list | tuple):
        return [to_jsonable(v) for v in value]
    if isinstance(value, dict):
        return {str(k): to_jsonable(v) for k, v in value.items()}
    return value
