"""Resolve names in an answer's Python against the installed Prefect, the way Python would.

Nothing is executed beyond importing Prefect's own modules. Lookups never raise: Prefect's
migration `__getattr__` raises PrefectImportError (an ImportError that `hasattr()` does not
swallow) for names removed in 3.x; those come back as `Removed`, with Prefect's hint.
"""

from __future__ import annotations

import ast
import importlib
import inspect
from functools import lru_cache
from typing import Any

from pydantic import BaseModel

__all__ = [
    "MISSING", "Removed", "attribute", "extra_keywords", "import_module", "instance_attributes", "is_async_only",
    "removed_fix", "resolve", "short_signature", "signature", "sync_twin", "where_is",
]

# Where names people import from the wrong place actually live.
_CANDIDATE_MODULES = (
    "prefect",
    "prefect.concurrency.sync",
    "prefect.concurrency.asyncio",
    "prefect.task_runners",
    "prefect.client.schemas.objects",
    "prefect.client.schemas.actions",
    "prefect.client.schemas.filters",
    "prefect.client.schemas.responses",
    "prefect.client.orchestration",
    "prefect.exceptions",
    "prefect.states",
    "prefect.deployments",
    "prefect.flows",
    "prefect.tasks",
    "prefect.context",
    "prefect.futures",
)


@lru_cache(maxsize=512)
def import_module(module: str) -> Any:
    """The module object, or None when it does not exist in the installed Prefect."""
    try:
        return importlib.import_module(module)
    except ImportError:
        return None
    except Exception:  # a module that fails on import is as good as missing for an answer
        return None


class _Missing:
    def __repr__(self) -> str:
        return "<missing>"


MISSING = _Missing()


class Removed:
    """A name Prefect removed in 3.x: its module's `__getattr__` raises PrefectImportError with a hint."""

    def __init__(self, message: str) -> None:
        self.message = message

    def __repr__(self) -> str:
        return f"<removed: {self.message}>"


def attribute(obj: Any, attr: str) -> Any:
    """getattr that never raises: MISSING when absent, Removed for Prefect's migration errors.

    `hasattr()` only swallows AttributeError; Prefect's migration `__getattr__` raises
    PrefectImportError (an ImportError), and a broken property may raise anything.
    """
    try:
        return getattr(obj, attr)
    except AttributeError:
        return MISSING
    except ImportError as exc:
        return Removed(str(exc).split("\n")[0])
    except Exception:
        return MISSING


def removed_fix(message: str) -> str | None:
    """The migration hint from Prefect's own message ("... has been removed. Use X instead.")."""
    _, sep, hint = message.partition("has been removed.")
    return hint.strip() or None if sep else None


@lru_cache(maxsize=2048)
def resolve(dotted: str) -> Any:
    """Resolve `a.b.c` as Python does: attribute first, then the submodule of that name.

    Attribute first matters when a package re-exports a function over its own submodule
    (`prefect.assets.materialize` is the function, not the module).
    """
    parts = dotted.split(".")
    obj = import_module(parts[0])
    if obj is None:
        return MISSING
    for attr in parts[1:]:
        found = attribute(obj, attr)
        if isinstance(found, Removed):
            return found
        if found is MISSING:
            found = import_module(f"{obj.__name__}.{attr}") if inspect.ismodule(obj) else None
            if found is None:
                return MISSING
        obj = found
    return obj


@lru_cache(maxsize=256)
def where_is(name: str) -> tuple[str, ...]:
    homes = []
    for module_name in _CANDIDATE_MODULES:
        module = import_module(module_name)
        if module is None:
            continue
        found = attribute(module, name)
        if found is not MISSING and not isinstance(found, Removed) and not inspect.ismodule(found):
            homes.append(module_name)
    return tuple(homes)


@lru_cache(maxsize=1024)
def signature(obj: Any) -> inspect.Signature | None:
    try:
        return inspect.signature(obj)
    except (TypeError, ValueError):
        return None


def short_signature(name: str, sig: inspect.Signature, drop_self: bool) -> str:
    params = list(sig.parameters.values())[1:] if drop_self else list(sig.parameters.values())
    parts = []
    for p in params:
        label = p.name.split("__")[-1] if "__" in p.name else p.name
        if p.kind is p.VAR_POSITIONAL:
            parts.append(f"*{label}")
        elif p.kind is p.VAR_KEYWORD:
            parts.append(f"**{label}")
        elif p.default is p.empty:
            parts.append(label)
        else:
            default = p.default
            shown = default.__name__ if isinstance(default, type) else repr(default)
            if len(shown) > 30:
                shown = "..."
            parts.append(f"{label}={shown}")
    return f"{name}({', '.join(parts)})"


def is_async_only(target: Any) -> bool:
    """A coroutine function: calling it without await does nothing."""
    try:
        return inspect.iscoroutinefunction(target)
    except Exception:
        return False


def extra_keywords(target: Any) -> dict[str, Any]:
    """Keywords a call accepts beyond its signature: pydantic fields and async_dispatch's `_sync`.

    A pydantic model's `__init__` signature can hide inherited fields (DeploymentCompoundTrigger),
    and Prefect's `@async_dispatch` wrappers take `_sync=` without declaring it.
    """
    extra: dict[str, Any] = {}
    if isinstance(target, type) and issubclass(target, BaseModel):
        for name, info in target.model_fields.items():
            extra[name] = info
            if isinstance(info.alias, str):
                extra[info.alias] = info
    if hasattr(target, "aio") or hasattr(getattr(target, "__func__", None), "aio"):
        extra["_sync"] = None
    return extra


@lru_cache(maxsize=64)
def instance_attributes(cls: type) -> frozenset[str]:
    """Names a class's `__init__` assigns on self (`Task.fn`, `Flow.fn`): real attributes of instances."""
    import textwrap

    names: set[str] = set()
    for klass in getattr(cls, "__mro__", ()):
        init = klass.__dict__.get("__init__")
        if init is None:
            continue
        try:
            tree = ast.parse(textwrap.dedent(inspect.getsource(init)))
        except (OSError, TypeError, SyntaxError, ValueError):
            continue
        for node in ast.walk(tree):
            if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and node.value.id == "self":
                if isinstance(node.ctx, ast.Store):
                    names.add(node.attr)
    return frozenset(names)


def sync_twin(target: Any) -> str | None:
    """The sync variant a sync caller should import instead, when Prefect has one."""
    module = getattr(target, "__module__", "") or ""
    name = getattr(target, "__name__", "")
    if module.startswith("prefect.concurrency") and name:
        sync = import_module("prefect.concurrency.sync")
        if sync is not None and attribute(sync, name) is not MISSING:
            return f"from prefect.concurrency.sync import {name}"
    return None
