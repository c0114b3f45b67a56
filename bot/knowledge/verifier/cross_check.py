"""Checks across the blocks of one answer: the limit it creates must be the kind its code uses.

A tag limit (`prefect concurrency-limit create db 2`) only limits task runs tagged `db`;
`concurrency("db")` and `rate_limit("db")` look for a global concurrency limit named `db` and,
when none exists, run unguarded. The reverse mix-up is as common: a GCL named `db` does not
limit tasks tagged `db`. And `rate_limit()` needs a GCL with slot decay.
"""

from __future__ import annotations

import ast
import re
from dataclasses import dataclass, field

from bot.knowledge.verifier.extract import split_command
from bot.knowledge.verifier.report import Finding
from bot.shell_text import shell_line

__all__ = ["Uses", "cross_check", "python_uses"]

_TAG_CREATE = re.compile(r"^prefect (?:concurrency-limits?|concurrency_limits?) create$")
_GCL_CREATE = re.compile(r"^prefect (?:gcl|global-concurrency-limits?|global_concurrency_limits?) create$")


@dataclass
class Uses:
    """Limit names an answer creates and uses, by kind."""

    tag_limits: dict[str, str] = field(default_factory=dict)  # tag -> the snippet creating it
    gcls: dict[str, tuple[str, bool]] = field(default_factory=dict)  # name -> (snippet, has decay)
    slot_names: set[str] = field(default_factory=set)  # passed to concurrency()
    rate_names: set[str] = field(default_factory=set)  # passed to rate_limit()
    task_tags: set[str] = field(default_factory=set)  # tags given to tasks


def _strings(node: ast.AST | None) -> list[str]:
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return [node.value]
    if isinstance(node, ast.List | ast.Tuple | ast.Set):
        return [e.value for e in node.elts if isinstance(e, ast.Constant) and isinstance(e.value, str)]
    return []


def _arg(call: ast.Call, index: int, name: str) -> ast.AST | None:
    for keyword in call.keywords:
        if keyword.arg == name:
            return keyword.value
    return call.args[index] if len(call.args) > index else None


def _callee(call: ast.Call) -> str:
    func = call.func
    return func.attr if isinstance(func, ast.Attribute) else func.id if isinstance(func, ast.Name) else ""


def python_uses(code: str, uses: Uses) -> None:
    """Add what one Python block creates and uses to `uses` (a block that does not parse adds nothing)."""
    try:
        tree = ast.parse(code)
    except (SyntaxError, ValueError, RecursionError, MemoryError):
        return
    source = code
    for node in ast.walk(tree):
        if not isinstance(node, ast.Call):
            continue
        name = _callee(node)
        if name == "concurrency":
            uses.slot_names.update(_strings(_arg(node, 0, "names")))
        elif name == "rate_limit":
            uses.rate_names.update(_strings(_arg(node, 0, "names")))
        elif name == "create_concurrency_limit":
            for tag in _strings(_arg(node, 0, "tag")):
                uses.tag_limits.setdefault(tag, ast.get_source_segment(source, node) or tag)
        elif name in ("task", "with_options"):
            uses.task_tags.update(_strings(_arg(node, 99, "tags")))
        elif name == "tags":
            uses.task_tags.update(s for a in node.args for s in _strings(a))
        elif name == "create_global_concurrency_limit":
            _gcl_from_python(node, source, uses)


def _gcl_from_python(node: ast.Call, source: str, uses: Uses) -> None:
    spec = _arg(node, 0, "concurrency_limit")
    if not isinstance(spec, ast.Call):
        return
    names = _strings(_arg(spec, 99, "name"))
    decay = _arg(spec, 99, "slot_decay_per_second")
    has_decay = not (decay is None or isinstance(decay, ast.Constant) and not decay.value)
    for name in names:
        uses.gcls.setdefault(name, (ast.get_source_segment(source, node) or name, has_decay))


def command_uses(command: str, uses: Uses) -> None:
    """Add the limit one `prefect ...` command creates."""
    tokens = split_command(command)
    head = " ".join(tokens[:3]).lower()
    positional = [t for i, t in enumerate(tokens[3:], 3) if not t.startswith("-") and not _is_value(tokens, i)]
    if _TAG_CREATE.match(head) and positional:
        uses.tag_limits.setdefault(positional[0], command)
    elif _GCL_CREATE.match(head) and positional:
        has_decay = any(t.startswith("--slot-decay-per-second") for t in tokens)
        uses.gcls.setdefault(positional[0], (command, has_decay))


def _is_value(tokens: list[str], index: int) -> bool:
    """The token follows an option that takes a value (`--limit 5`)."""
    before = tokens[index - 1]
    return before.startswith("-") and "=" not in before and before not in ("--disable", "--enable")


def cross_check(uses: Uses) -> list[Finding]:
    findings: list[Finding] = []
    # A name with both a tag limit and a GCL in the answer is deliberate (tasks and code blocks).
    for name in sorted((uses.slot_names | uses.rate_names) & set(uses.tag_limits) - set(uses.gcls)):
        call = "rate_limit" if name in uses.rate_names else "concurrency"
        decay = " --slot-decay-per-second 1.0" if call == "rate_limit" else ""
        findings.append(
            Finding(
                kind="command",
                severity="error",
                snippet=uses.tag_limits[name],
                message=f"This creates a tag limit for task runs tagged {name!r}, but the answer passes "
                f"{name!r} to {call}(), which uses a global concurrency limit (GCL) named {name!r}. The tag "
                f"limit has no effect on it, and without the GCL {call}() runs unguarded.",
                fix=shell_line("prefect", "gcl", "create", name, "--limit", "2", *decay.split()),
            )
        )
    used_by_code = uses.slot_names | uses.rate_names
    for name in sorted(uses.task_tags & set(uses.gcls) - used_by_code - set(uses.tag_limits)):
        findings.append(
            Finding(
                kind="command",
                severity="error",
                snippet=uses.gcls[name][0],
                message=f"This creates a global concurrency limit named {name!r}, but nothing calls "
                f"concurrency({name!r}); tasks tagged {name!r} are limited only by a tag limit.",
                fix=shell_line("prefect", "concurrency-limit", "create", name, "2"),
            )
        )
    for name in sorted(uses.rate_names & set(uses.gcls)):
        snippet, has_decay = uses.gcls[name]
        if not has_decay:
            findings.append(
                Finding(
                    kind="command",
                    severity="error",
                    snippet=snippet,
                    message=f"rate_limit({name!r}) needs a limit with slot decay; without "
                    "--slot-decay-per-second it fails with 422 (Only concurrency limits with slot decay "
                    "can be used for rate limiting).",
                    fix=shell_line("prefect", "gcl", "create", name, "--limit", "5", "--slot-decay-per-second", "1.0"),
                )
            )
    return findings
