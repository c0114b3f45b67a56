"""Where a call sits in the code: awaited, handed to something, or used as if it returned a value.

An async-only Prefect callable (a client method, `prefect.concurrency.asyncio.rate_limit`) that is
called without `await` returns a coroutine that never runs: the rate limit is never taken, the
read never happens. Calling it is fine when the coroutine is awaited or handed to something that
will run it (`asyncio.run(...)`, `gather`, a list for later); it is a bug when the call is a bare
statement, or its result is used as a value (attribute, index, iteration).
"""

from __future__ import annotations

import ast

__all__ = ["Parents", "async_in_sync_def", "awaited_names", "parent_map", "unawaited_use"]

Parents = dict[ast.AST, ast.AST]


def parent_map(tree: ast.AST) -> Parents:
    """Each node's parent, for questions about a call's context."""
    parents: Parents = {}
    for node in ast.walk(tree):
        for child in ast.iter_child_nodes(node):
            parents[child] = node
    return parents


def awaited_names(tree: ast.AST) -> set[str]:
    """Names that are awaited or handed to a call somewhere (`await coro`, `asyncio.run(coro)`)."""
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Await):
            names.update(n.id for n in ast.walk(node.value) if isinstance(n, ast.Name))
        elif isinstance(node, ast.Call):
            for arg in [*node.args, *(k.value for k in node.keywords)]:
                names.update(_handed(arg))
    return names


def _handed(arg: ast.expr) -> set[str]:
    """Names given whole to a call (`run(coro)`, `gather(*coros)`, `wait([a, b])`), not `print(x.attr)`."""
    if isinstance(arg, ast.Name):
        return {arg.id}
    if isinstance(arg, ast.Starred):
        return _handed(arg.value)
    if isinstance(arg, ast.List | ast.Tuple | ast.Set):
        return set().union(*(_handed(e) for e in arg.elts)) if arg.elts else set()
    return set()


def unawaited_use(call: ast.Call, parents: Parents, handed_off: set[str]) -> str | None:
    """How the un-awaited coroutine from `call` is misused, or None when that is fine."""
    parent = parents.get(call)
    while isinstance(parent, ast.Starred | ast.NamedExpr):
        parent = parents.get(parent)
    if isinstance(parent, ast.Await):
        return None
    if isinstance(parent, ast.Expr):
        return "is called without await, so it never runs"
    if isinstance(parent, ast.Attribute | ast.Subscript) and parent.value is call:
        return "is used without await: its result is a coroutine, not the value"
    if isinstance(parent, ast.For | ast.comprehension) and parent.iter is call:
        return "is iterated without await: its result is a coroutine, not the value"
    if isinstance(parent, ast.Assign | ast.AnnAssign):
        targets = parent.targets if isinstance(parent, ast.Assign) else [parent.target]
        names = {n.id for t in targets for n in ast.walk(t) if isinstance(n, ast.Name)}
        if names and not names & handed_off:
            return "is assigned without await, so it holds a coroutine that never runs"
    return None


def async_in_sync_def(func: ast.FunctionDef) -> ast.AST | None:
    """The first `await` / `async with` / `async for` directly inside a plain `def` (a SyntaxError)."""
    stack: list[ast.AST] = list(func.body)
    while stack:
        node = stack.pop(0)
        if isinstance(node, ast.Await | ast.AsyncWith | ast.AsyncFor):
            return node
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.Lambda | ast.ClassDef):
            continue  # a nested scope decides for itself
        stack.extend(ast.iter_child_nodes(node))
    return None
