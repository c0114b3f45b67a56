"""Check one `prefect ...` command line against the installed CLI's command tree.

Parsing follows cyclopts' rules as Prefect uses them: command names match ignoring '-', '_' and
case; a positional argument may also be given as `--<param-name>`; options take `--opt value`
or `--opt=value`. Placeholders such as `<pool-name>`, `NAME` or `$POOL` count as values.
"""

from __future__ import annotations

import re

from bot.knowledge.verifier.extract import split_command
from bot.knowledge.verifier.report import Finding
from bot.prefect_ops.cli_help import META_OPTIONS, CliCommand, CliParam, CliTree, command_tree

__all__ = ["check_command", "is_placeholder"]

_INCOMPLETE = ("Missing required", "Option ")  # "Option --x needs a value"

_PLACEHOLDER = re.compile(
    r"^(<[^>]*>|\{\{.*\}\}|\{[^}]*\}|\$\{?\w+\}?|[A-Z][A-Z0-9_-]*|\.\.\.|…|N|X|[A-Z]+\|[A-Z|_]+)$"
)
# Values the CLI validates after parsing (pydantic or the command body), not in the signature.
_EXTRA_CHOICES: dict[str, tuple[list[str], bool]] = {
    "concurrency_limit_collision_strategy": (["ENQUEUE", "CANCEL_NEW"], True),  # case-sensitive
}


def is_placeholder(token: str) -> bool:
    """True for stand-ins like `<pool>`, `NAME`, `$POOL`, `{name}`, `...`."""
    return bool(_PLACEHOLDER.match(token.strip("'\"")))


_USAGE_WORD = re.compile(r"^\[?(OPTIONS|ARGS|COMMAND)\]?(\.\.\.)?$")


def _normalize_usage_tokens(tokens: list[str]) -> tuple[list[str], bool]:
    """Turn usage notation into plain tokens, and say whether the line is a usage synopsis.

    A synopsis (`prefect work-pool [OPTIONS] COMMAND [ARGS]...`, `prefect gcl create [OPTIONS]
    NAME`) shows a command's shape: `[OPTIONS]`/`[ARGS]` are dropped, `COMMAND` is kept as a
    stand-in for a subcommand, `[..]` is unwrapped and `--a/-b` is read as `--a`.
    """
    out: list[str] = []
    synopsis = False
    for token in tokens:
        usage = _USAGE_WORD.match(token)
        if usage and (usage.group(1) != "COMMAND" or token == "COMMAND" or token.startswith("[")):
            synopsis = True
            if usage.group(1) == "COMMAND":
                out.append("COMMAND")
            continue
        stripped = token
        if token.startswith("[") and (token.endswith("]") or token.endswith("]...")):
            synopsis = True
            stripped = token[1:].removesuffix("...").removesuffix("]")
        elif token.startswith("[") or token.endswith("]"):
            stripped = token.strip("[]")
        if stripped.endswith("...") and stripped != "..." and is_placeholder(stripped[:-3]):
            synopsis = True
            stripped = stripped[:-3]
        if not stripped:
            continue
        if stripped.startswith("-") and "/" in stripped:
            stripped = stripped.split("/")[0]
        if stripped.startswith("-") and "|" in stripped:
            stripped = stripped.split("|")[0]
        out.append(stripped)
    return out, synopsis


def _looks_like_option(token: str) -> bool:
    return token.startswith("-") and len(token) > 1 and not re.fullmatch(r"-\d+(\.\d+)?", token)


_STRICT_PLACEHOLDER = re.compile(r"^(<[^>]*>|\{\{.*\}\}|\{[^}]*\}|\$\{?\w+\}?|\.\.\.|…)$")


def _value_problem(param: CliParam, value: str) -> str | None:
    """Why `value` is not acceptable for `param`, or None."""
    choices, case_sensitive = _choices(param)
    bare = value.strip("'\"")
    if _STRICT_PLACEHOLDER.match(bare) or (not choices and is_placeholder(value)) or bare == param.value_metavar:
        return None
    alternatives = value.split("|") if "|" in value else [value]
    for alt in alternatives:
        alt = alt.strip("'\"")
        if param.value_type == "int" and not re.fullmatch(r"-?\d+", alt):
            return f"{param.flags[0]} expects an integer, got {alt!r}"
        if param.value_type == "float":
            try:
                float(alt)
            except ValueError:
                return f"{param.flags[0]} expects a number, got {alt!r}"
        if choices:
            norm = (lambda s: s) if case_sensitive else (lambda s: s.lower().replace("_", "-"))
            if norm(alt) not in {norm(c) for c in choices}:
                return f"{param.flags[0]} must be one of {', '.join(choices)}, got {alt!r}"
    return None


def _choices(param: CliParam) -> tuple[list[str] | None, bool]:
    if param.name in _EXTRA_CHOICES:
        return _EXTRA_CHOICES[param.name]
    if param.choices:
        return param.choices, False
    if param.name == "output" and "json" in param.help.lower():
        return ["json"] + (["yaml"] if "yaml" in param.help.lower() else []), False
    return None, False


class _Parse:
    """The state of parsing one command's parameters."""

    def __init__(self, command: CliCommand, synopsis: bool = False) -> None:
        self.command = command
        self.synopsis = synopsis  # a usage line: metavariables stand in for values, nothing is required
        self.options = command.option_map()
        self.provided: set[str] = set()
        self.positional_values: list[str] = []
        self.orphans: set[int] = set()  # positions of values that followed an unknown option
        self.problems: list[str] = []

    def run(self, tokens: list[str]) -> None:
        i = 0
        while i < len(tokens):
            token = tokens[i]
            if token == "--":
                self.positional_values.extend(tokens[i + 1 :])
                break
            if not _looks_like_option(token):
                self.positional_values.append(token)
                i += 1
                continue
            i = self._option(tokens, i)
        self._assign_positionals()
        if not self.synopsis:
            self._check_required()

    def _option(self, tokens: list[str], i: int) -> int:
        name, eq, inline_value = tokens[i].partition("=")
        param = self.options.get(name)
        if param is None:
            self.problems.append(f"Unknown option: {name}.")
            if not eq and i + 1 < len(tokens) and not _looks_like_option(tokens[i + 1]):
                self.orphans.add(len(self.positional_values))
            return i + 1
        self.provided.add(param.name)
        if param.is_flag or name in param.negatives:
            return i + 1
        if eq:
            value, nxt = inline_value, i + 1
        elif i + 1 < len(tokens) and (not _looks_like_option(tokens[i + 1]) or is_placeholder(tokens[i + 1])):
            value, nxt = tokens[i + 1], i + 2
        else:
            self.problems.append(f"Option {name} needs a value ({param.value_metavar}).")
            return i + 1
        problem = _value_problem(param, value)
        if problem:
            self.problems.append(problem + ".")
        return nxt

    def _assign_positionals(self) -> None:
        # A list-typed positional (`prefect config set A=1 B=2`) takes every remaining value, like *args.
        slots = [p for p in self.command.positionals() if p.name not in self.provided or p.variadic or p.multiple]
        for index, value in enumerate(self.positional_values):
            if not slots:
                if index not in self.orphans and not (self.synopsis and is_placeholder(value)):
                    self.problems.append(f"Unexpected argument: {value!r}.")
                continue
            param = slots[0]
            if not (param.variadic or param.multiple):
                slots.pop(0)
            self.provided.add(param.name)
            problem = _value_problem(param, value)
            if problem:
                self.problems.append(problem.replace(param.flags[0], param.metavar, 1) + ".")

    def _check_required(self) -> None:
        for param in self.command.params:
            if param.required and param.name not in self.provided:
                label = param.metavar if param.positional else param.flags[0]
                self.problems.append(
                    f"Missing required {'argument' if param.positional else 'option'}: {label}."
                )


def _strip_meta(tokens: list[str]) -> tuple[list[str], list[str]]:
    """Consume the root options (`--profile X`, `--no-prompt`) that come before the command."""
    problems: list[str] = []
    i = 0
    while i < len(tokens) and _looks_like_option(tokens[i]):
        name = tokens[i].split("=")[0]
        if name in META_OPTIONS:
            i += 2 if META_OPTIONS[name] and "=" not in tokens[i] else 1
        elif name in ("--help", "--version"):
            return [], problems
        else:
            problems.append(
                f"Unknown option before the command: {name} (only --profile, --prompt/--no-prompt)."
            )
            i += 1
    return tokens[i:], problems


def check_command(command: str, inline: bool = False, tree: CliTree | None = None) -> Finding | None:
    """A Finding when `command` would not parse in the installed Prefect CLI, else None."""
    tree = tree or command_tree()
    tokens, synopsis = _normalize_usage_tokens(split_command(command))
    if not tokens or tokens[0] != "prefect":
        return None
    rest, problems = _strip_meta(tokens[1:])
    node = tree.root
    while rest and not _looks_like_option(rest[0]):
        child = tree.child(node, rest[0])
        if child is None:
            break
        node, rest = child, rest[1:]
    if "--help" in rest:
        return _finding(command, problems, node) if problems else None
    if not node.runnable:
        named_command = synopsis and bool(rest) and rest[0] == "COMMAND"
        if named_command:
            rest = rest[1:]
        if rest and not _looks_like_option(rest[0]):
            near = tree.nearest(node, rest[0])
            listed = "; ".join(tree.commands[(*node.path, node.subcommands[n])].usage() for n in near)
            message = f"Unknown command: {node.display} {rest[0]}."
            return Finding(
                kind="command",
                severity="error",
                snippet=command,
                message=message,
                fix=listed or _group_fix(tree, node),
            )
        if rest:
            problems.append(f"{node.display} is a command group; options need a subcommand.")
        if not problems:
            if inline or not node.path or named_command:
                return None
            return Finding(
                kind="command",
                severity="warning",
                snippet=command,
                message=f"{node.display} is a command group, not a command.",
                fix=_group_fix(tree, node),
            )
        return _finding(command, problems, node)
    parse = _Parse(node, synopsis)
    parse.run(rest)
    problems.extend(parse.problems)
    if inline:  # an inline span often names a command or flag without spelling out its values
        problems = [p for p in problems if not p.startswith(_INCOMPLETE)]
    return _finding(command, problems, node) if problems else None


def _group_fix(tree: CliTree, node: CliCommand) -> str:
    names = sorted(set(node.subcommands.values()))
    return f"{node.display} COMMAND [ARGS]...\nCOMMAND is one of: {', '.join(names)}"


def _options_line(node: CliCommand) -> str:
    parts = []
    for p in node.params:
        if p.positional or not p.shown:
            continue
        names = "/".join(p.flags)
        parts.append(names if p.is_flag else f"{names} {p.value_metavar}")
    return "; ".join(parts)


def _finding(command: str, problems: list[str], node: CliCommand) -> Finding:
    fix = node.usage() if node.path else None
    if node.runnable:
        options = _options_line(node)
        fix = node.usage() + (f"\nOptions: {options}" if options and len(options) < 600 else "")
    return Finding(kind="command", severity="error", snippet=command, message=" ".join(problems), fix=fix)
