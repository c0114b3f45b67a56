"""Check a Python snippet against the installed Prefect: syntax, imports, call signatures.

Nothing in the snippet is executed. Imports of `prefect...` are resolved with importlib; calls
whose target we can resolve statically (imported names, `@flow`/`@task` functions and their
methods, `get_client()` clients) are bound against the real signature. Imports and signatures
are cached, so checking an answer costs milliseconds after the first one.
"""

from __future__ import annotations

import ast
import inspect
from difflib import get_close_matches
from typing import Any

from pydantic import BaseModel, ValidationError

from bot.knowledge.verifier.call_context import (
    Parents,
    async_in_sync_def,
    awaited_names,
    parent_map,
    unawaited_use,
)
from bot.knowledge.verifier.report import Finding
from bot.knowledge.verifier.resolve import (
    MISSING,
    Removed,
    attribute,
    extra_keywords,
    import_module,
    instance_attributes,
    is_async_only,
    removed_fix,
    resolve,
    short_signature,
    signature,
    sync_twin,
    where_is,
)

__all__ = ["check_python", "SKIP_IF_BUSY_FIX"]

SKIP_IF_BUSY_FIX = """from contextlib import ExitStack, contextmanager
from prefect.concurrency.sync import concurrency

@contextmanager
def skip_if_busy(name: str, timeout_seconds: float = 1.0):  # must be > 0
    with ExitStack() as stack:
        try:
            stack.enter_context(concurrency(name, timeout_seconds=timeout_seconds, strict=True))
        except TimeoutError:  # AcquireConcurrencySlotTimeoutError subclasses TimeoutError
            acquired = False
        else:
            acquired = True
        yield acquired  # body exceptions propagate; ExitStack releases the slot"""

_SYNC_CONCURRENCY = "prefect.concurrency.sync.concurrency"
_ASYNC_CONCURRENCY = "prefect.concurrency.asyncio.concurrency"


class _Kind:
    """A statically known value: a Flow/Task object or a client, by its class."""

    def __init__(self, cls: type, label: str) -> None:
        self.cls = cls
        self.label = label


class _Checker(ast.NodeVisitor):
    def __init__(self, code: str, tree: ast.AST) -> None:
        self.code = code
        self.parents: Parents = parent_map(tree)
        self.handed_off = awaited_names(tree)
        self.findings: list[Finding] = []
        self.bindings: dict[str, Any] = {}  # local name -> resolved object or _Kind
        self.dotted: dict[str, str] = {}  # local name -> dotted path of what it was imported as

    # --- helpers -----------------------------------------------------------------------------
    def _src(self, node: ast.AST) -> str:
        return ast.get_source_segment(self.code, node) or ast.dump(node)[:80]

    def _add(self, node: ast.AST, severity: str, message: str, fix: str | None = None) -> None:
        self.findings.append(
            Finding(
                kind="python",
                severity=severity,
                snippet=self._src(node),  # type: ignore[arg-type]
                message=message,
                fix=fix,
            )
        )

    def _dotted_of(self, node: ast.AST) -> str | None:
        if isinstance(node, ast.Name):
            return self.dotted.get(node.id)
        if isinstance(node, ast.Attribute):
            base = self._dotted_of(node.value)
            return f"{base}.{node.attr}" if base else None
        return None

    def _value_of(self, node: ast.AST) -> Any:
        """What an expression statically is: an imported object, a _Kind, or None if unknown."""
        if isinstance(node, ast.Name):
            return self.bindings.get(node.id)
        if isinstance(node, ast.Await):
            return None
        if isinstance(node, ast.Attribute):
            base = self._value_of(node.value)
            if isinstance(base, _Kind):
                found = attribute(base.cls, node.attr)
                return None if found is MISSING or isinstance(found, Removed) else found
            dotted = self._dotted_of(node)
            if dotted:
                obj = resolve(dotted)
                return None if obj is MISSING or isinstance(obj, Removed) else obj
            return None
        if isinstance(node, ast.Call):
            return self._returns(node)
        return None

    def _returns(self, call: ast.Call) -> Any:
        """Static return kinds we know: from_source/with_options keep the Flow/Task kind."""
        func = call.func
        if isinstance(func, ast.Attribute) and func.attr in ("from_source", "with_options"):
            base = self._value_of(func.value)
            if isinstance(base, _Kind):
                return base
            flows = resolve("prefect.flows.Flow")
            if base is resolve("prefect.flow") or base is flows:
                return _Kind(flows, "flow")
        if self._is(func, "prefect.get_client") or self._is(func, "prefect.client.orchestration.get_client"):
            sync = any(
                k.arg == "sync_client" and isinstance(k.value, ast.Constant) and k.value.value
                for k in call.keywords
            )
            name = "SyncPrefectClient" if sync else "PrefectClient"
            return _Kind(resolve(f"prefect.client.orchestration.{name}"), "client")
        return None

    def _is(self, node: ast.AST, dotted: str) -> bool:
        target = resolve(dotted)
        return target is not MISSING and self._value_of(node) is target

    # --- imports -----------------------------------------------------------------------------
    def visit_Import(self, node: ast.Import) -> None:
        for alias in node.names:
            if alias.name.split(".")[0] != "prefect":
                continue
            if import_module(alias.name) is None:
                self._add(node, "error", f"No module named {alias.name!r} in the installed Prefect.")
                continue
            local = alias.asname or alias.name.split(".")[0]
            self.dotted[local] = alias.name if alias.asname else alias.name.split(".")[0]
            self.bindings[local] = import_module(self.dotted[local])

    def visit_ImportFrom(self, node: ast.ImportFrom) -> None:
        module = node.module or ""
        if node.level or module.split(".")[0] != "prefect":
            return
        mod = import_module(module)
        if mod is None:
            self._add(
                node,
                "error",
                f"No module named {module!r} in the installed Prefect.",
                self._import_fix([a.name for a in node.names]),
            )
            return
        for alias in node.names:
            if alias.name == "*":
                continue
            obj = resolve(f"{module}.{alias.name}")
            if isinstance(obj, Removed):
                self._add(node, "error", obj.message, removed_fix(obj.message))
                continue
            if obj is MISSING:
                self._add(
                    node,
                    "error",
                    f"cannot import name {alias.name!r} from {module!r}.",
                    self._import_fix([alias.name]),
                )
                continue
            local = alias.asname or alias.name
            self.bindings[local] = obj
            self.dotted[local] = f"{module}.{alias.name}"

    def _import_fix(self, names: list[str]) -> str | None:
        lines = []
        for name in names:
            homes = where_is(name)
            if homes:
                lines.append(f"from {homes[0]} import {name}")
        return "\n".join(lines) or None

    def visit_Attribute(self, node: ast.Attribute) -> None:
        """`prefect.agent.PrefectAgent` used through a module import: a removed 2.x name."""
        dotted = self._dotted_of(node)
        if dotted and dotted.startswith("prefect."):
            obj = resolve(dotted)
            if isinstance(obj, Removed):
                self._add(node, "error", obj.message, removed_fix(obj.message))
                return
        self.generic_visit(node)

    # --- definitions -------------------------------------------------------------------------
    def _visit_function(self, node: ast.FunctionDef | ast.AsyncFunctionDef) -> None:
        for decorator in node.decorator_list:
            target = decorator.func if isinstance(decorator, ast.Call) else decorator
            if self._is(target, "prefect.flow"):
                self.bindings[node.name] = _Kind(resolve("prefect.flows.Flow"), "flow")
            elif self._is(target, "prefect.task"):
                self.bindings[node.name] = _Kind(resolve("prefect.tasks.Task"), "task")
            if (
                isinstance(target, ast.Name)
                and target.id in ("contextmanager", "asynccontextmanager")
                or isinstance(target, ast.Attribute)
                and target.attr in ("contextmanager", "asynccontextmanager")
            ):
                self._check_yield_in_handler(node)
        if isinstance(node, ast.FunctionDef):
            misplaced = async_in_sync_def(node)
            if misplaced is not None:
                keyword = {ast.Await: "await", ast.AsyncWith: "async with"}.get(type(misplaced), "async for")
                self._add(
                    misplaced,
                    "error",
                    f"`{keyword}` inside the plain function {node.name}() is a SyntaxError; make it "
                    f"`async def {node.name}`, or use the sync API (prefect.concurrency.sync, "
                    "get_client(sync_client=True)).",
                )
        self.generic_visit(node)

    visit_FunctionDef = _visit_function
    visit_AsyncFunctionDef = _visit_function

    def _check_yield_in_handler(self, func: ast.FunctionDef | ast.AsyncFunctionDef) -> None:
        """The broken skip-if-busy helper: a context manager that yields in try AND in except."""
        for node in ast.walk(func):
            if not isinstance(node, ast.Try):
                continue
            body_yields = any(isinstance(n, ast.Yield) for stmt in node.body for n in ast.walk(stmt))
            handler_yields = any(isinstance(n, ast.Yield) for h in node.handlers for n in ast.walk(h))
            if body_yields and handler_yields:
                self._add(
                    func,
                    "error",
                    "This context manager yields inside `try` and again in `except`: if the caller's "
                    "body raises, the exception is thrown into the generator, caught, and it yields "
                    "again (RuntimeError: generator didn't stop after throw()). It also turns every "
                    "error, including a missing or misspelled limit, into a silent 'busy'.",
                    SKIP_IF_BUSY_FIX,
                )
                return

    def visit_Assign(self, node: ast.Assign) -> None:
        value = self._value_of(node.value) if isinstance(node.value, ast.Call) else None
        if isinstance(value, _Kind):
            for target in node.targets:
                if isinstance(target, ast.Name):
                    self.bindings[target.id] = value
        self.generic_visit(node)

    # --- with / async with -------------------------------------------------------------------
    def _visit_with(self, node: ast.With | ast.AsyncWith) -> None:
        is_async = isinstance(node, ast.AsyncWith)
        for item in node.items:
            expr = item.context_expr
            if isinstance(expr, ast.Call):
                if is_async and self._is(expr.func, _SYNC_CONCURRENCY):
                    self._add(
                        expr,
                        "error",
                        "`async with` needs the asyncio variant; this `concurrency` is "
                        "imported from prefect.concurrency.sync.",
                        "from prefect.concurrency.asyncio import concurrency",
                    )
                if not is_async and self._is(expr.func, _ASYNC_CONCURRENCY):
                    self._add(
                        expr,
                        "error",
                        "prefect.concurrency.asyncio.concurrency is an async context "
                        "manager: use `async with`, or import it from prefect.concurrency.sync.",
                        "from prefect.concurrency.sync import concurrency",
                    )
                kind = self._returns(expr)
                if isinstance(kind, _Kind) and isinstance(item.optional_vars, ast.Name):
                    self.bindings[item.optional_vars.id] = kind
        self.generic_visit(node)

    visit_With = _visit_with
    visit_AsyncWith = _visit_with

    # --- calls -------------------------------------------------------------------------------
    def visit_Call(self, node: ast.Call) -> None:
        self._check_call(node)
        self.generic_visit(node)

    def _check_call(self, node: ast.Call) -> None:
        func = node.func
        drop_self = False
        label = self._src(func)
        if isinstance(func, ast.Attribute):
            base = self._value_of(func.value)
            if isinstance(base, _Kind):
                target = attribute(base.cls, func.attr)
                if func.attr in instance_attributes(base.cls) and target is MISSING:
                    return  # an attribute the instance sets in __init__ (e.g. Task.fn); not checkable here
                if target is MISSING or isinstance(target, Removed):
                    near = get_close_matches(
                        func.attr, [n for n in dir(base.cls) if not n.startswith("_")], n=3
                    )
                    self._add(
                        node,
                        "error",
                        f"{base.cls.__name__} has no method {func.attr!r}.",
                        ("Did you mean: " + ", ".join(near)) if near else None,
                    )
                    return
                drop_self = inspect.isfunction(target)
                label = f"{base.cls.__name__}.{func.attr}"
            else:
                target = self._value_of(func)
        else:
            target = self._value_of(func)
        if inspect.ismodule(target):
            self._module_called(node, target)
            return
        if target is None or isinstance(target, _Kind) or not callable(target):
            return
        if is_async_only(target):
            misuse = unawaited_use(node, self.parents, self.handed_off)
            if misuse:
                self._add(
                    node,
                    "error",
                    f"{label}() is a coroutine function and {misuse}; write `await {label}(...)` "
                    "inside an async function.",
                    sync_twin(target),
                )
        sig = signature(target)
        if sig is None:
            return
        self._bind(node, label, target, sig, drop_self)
        self._check_values(node, target)

    def _module_called(self, node: ast.Call, module: Any) -> None:
        name = module.__name__.rsplit(".", 1)[-1]
        fix = self._import_fix([name])
        self._add(
            node,
            "error",
            f"{self._src(node.func)} is the module {module.__name__}, which is not callable "
            "(TypeError: 'module' object is not callable).",
            fix,
        )

    def _bind(self, node: ast.Call, label: str, target: Any, sig: inspect.Signature, drop_self: bool) -> None:
        params = list(sig.parameters.values())[1:] if drop_self else list(sig.parameters.values())
        by_name = {
            p.name: p for p in params if p.kind not in (p.POSITIONAL_ONLY, p.VAR_POSITIONAL, p.VAR_KEYWORD)
        }
        has_var_kw = any(p.kind is p.VAR_KEYWORD for p in params)
        has_var_pos = any(p.kind is p.VAR_POSITIONAL for p in params)
        fix = short_signature(label, sig, drop_self)
        starred = any(isinstance(a, ast.Starred) for a in node.args) or any(
            k.arg is None for k in node.keywords
        )
        by_name.update(extra_keywords(target))
        for keyword in node.keywords:
            if keyword.arg is None or has_var_kw or keyword.arg in by_name:
                continue
            near = get_close_matches(keyword.arg, list(by_name), n=2, cutoff=0.6)
            hint = f" Did you mean {' or '.join(near)}?" if near else ""
            self._add(
                node, "error", f"{label}() got an unexpected keyword argument {keyword.arg!r}.{hint}", fix
            )
        if starred:
            return
        positional_slots = [p for p in params if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
        if len(node.args) > len(positional_slots) and not has_var_pos:
            self._add(
                node,
                "error",
                f"{label}() takes at most {len(positional_slots)} positional "
                f"argument(s) but {len(node.args)} were given.",
                fix,
            )
            return
        given = {k.arg for k in node.keywords} | {p.name for p in positional_slots[: len(node.args)]}
        missing = [
            p.name.split("__")[-1]
            for p in params
            if p.default is p.empty
            and p.name not in given
            and p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)
        ]
        if missing and not (isinstance(target, type) and issubclass(target, BaseModel)):
            self._add(node, "error", f"{label}() is missing required argument(s): {', '.join(missing)}.", fix)

    def _check_values(self, node: ast.Call, target: Any) -> None:
        """Literal values the server or a pydantic model would reject."""
        if isinstance(target, type) and issubclass(target, BaseModel) and not node.args:
            literal: dict[str, Any] = {}
            for keyword in node.keywords:
                try:
                    literal[keyword.arg or ""] = ast.literal_eval(keyword.value)
                except ValueError:
                    return
            try:
                target.model_validate(literal)
            except ValidationError as exc:
                errors = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors())
                self._add(node, "error", f"{target.__name__} rejects these values: {errors}.")
            return
        if target in (resolve(_SYNC_CONCURRENCY), resolve(_ASYNC_CONCURRENCY)):
            for keyword in node.keywords:
                value = keyword.value.value if isinstance(keyword.value, ast.Constant) else None
                if keyword.arg == "timeout_seconds" and value == 0:
                    self._add(
                        node,
                        "warning",
                        "timeout_seconds=0 raises the timeout error even when the slot "
                        "is free; use a small positive timeout such as 1.0 to 'try once'.",
                    )
                if keyword.arg == "lease_duration" and isinstance(value, int | float) and value < 60:
                    self._add(
                        node,
                        "error",
                        "The server rejects lease_duration below 60 seconds (422).",
                        "lease_duration between 60 and 86400 (default 300)",
                    )


def check_python(code: str) -> list[Finding]:
    """Findings for one Python snippet (an empty list means it looks right)."""
    try:
        tree = ast.parse(code)
    except SyntaxError as exc:
        line = (exc.text or "").strip()
        return [
            Finding(
                kind="python",
                severity="error",
                snippet=line or code[:120],
                message=f"SyntaxError: {exc.msg} (line {exc.lineno}).",
            )
        ]
    except ValueError as exc:  # "source code string cannot contain null bytes"
        return [Finding(kind="python", severity="error", snippet=code[:120], message=f"SyntaxError: {exc}.")]
    except (RecursionError, MemoryError):
        return [_too_deep(code)]
    checker = _Checker(code, tree)
    try:
        checker.visit(tree)
    except RecursionError:
        return [*checker.findings, _too_deep(code)]
    return checker.findings


def _too_deep(code: str) -> Finding:
    return Finding(
        kind="python",
        severity="warning",
        snippet=code[:120],
        message="This snippet is nested too deeply to check; it was not verified.",
    )
