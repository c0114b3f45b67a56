"""The installed Prefect CLI's own command tree, read in-process from its cyclopts app.

Running `prefect --help` costs ~10 s per call; walking the cyclopts `App` objects costs well
under two seconds once, and the result is cached for the life of the process. The tree is the
ground truth the verifier checks commands against and the text `cli_help` shows the model.
"""

from __future__ import annotations

import inspect
import threading
import typing
from difflib import get_close_matches
from enum import Enum
from pathlib import Path

from pydantic import BaseModel

__all__ = ["CliCommand", "CliParam", "CliTree", "cli_help", "command_tree", "normalize_name"]

# Options the root (meta) app accepts before the command name.
META_OPTIONS: dict[str, bool] = {"--profile": True, "-p": True, "--prompt": False, "--no-prompt": False}


class CliParam(BaseModel):
    """One parameter of a command: a positional argument, an option or a flag."""

    name: str
    flags: list[str]
    negatives: list[str] = []
    positional: bool = False
    variadic: bool = False
    required: bool = False
    is_flag: bool = False
    multiple: bool = False
    value_type: str = "str"
    choices: list[str] | None = None
    default: str | None = None
    help: str = ""
    shown: bool = True

    @property
    def metavar(self) -> str:
        """Positional placeholder the way Prefect's help prints it, e.g. CONCURRENCY-LIMIT."""
        return self.flags[0].lstrip("-").upper()

    @property
    def value_metavar(self) -> str:
        if self.choices:
            return "|".join(self.choices)
        return {"int": "INT", "float": "FLOAT", "path": "PATH"}.get(self.value_type, "TEXT")


class CliCommand(BaseModel):
    """A command or command group, addressed by its canonical path (without `prefect`)."""

    path: tuple[str, ...]
    aliases: list[str] = []
    help: str = ""
    runnable: bool = False
    subcommands: dict[str, str] = {}  # every accepted name (aliases too) -> canonical name
    params: list[CliParam] = []

    @property
    def display(self) -> str:
        return " ".join(("prefect", *self.path))

    def positionals(self) -> list[CliParam]:
        return [p for p in self.params if p.positional]

    def option_map(self) -> dict[str, CliParam]:
        """Every accepted option spelling (short, long, negative) -> its parameter."""
        mapping: dict[str, CliParam] = {}
        for param in self.params:
            for flag in (*param.flags, *param.negatives):
                mapping[flag] = param
        return mapping

    def usage(self) -> str:
        """One line of exact syntax: required things spelled out, optional ones bracketed."""
        parts = [self.display]
        if self.subcommands and not self.runnable:
            return f"{self.display} COMMAND"
        for param in self.positionals():
            if param.variadic:
                parts.append(f"[{param.metavar}...]")
            elif param.required:
                parts.append(param.metavar)
            else:
                parts.append(f"[{param.metavar}]")
        for param in self.params:
            if param.positional or not param.required:
                continue
            parts.append(f"{param.flags[0]} {param.value_metavar}")
        if any(not p.positional and not p.required and p.shown for p in self.params):
            parts.append("[OPTIONS]")
        return " ".join(parts)


def normalize_name(name: str) -> str:
    """Prefect matches command names ignoring '-', '_' and case (see prefect/cli/_app.py)."""
    return name.replace("-", "").replace("_", "").lower()


def _type_name(hint: object) -> tuple[str, bool]:
    """Reduce a cyclopts hint to a value type name and whether it takes several values."""
    multiple = False
    origin = typing.get_origin(hint)
    args = [a for a in typing.get_args(hint) if a is not type(None)]
    if origin in (list, tuple, set) and args:
        multiple, hint = True, args[0]
    elif args and origin is not typing.Literal:
        return _type_name(args[0])[0], False
    if hint is bool:
        return "bool", multiple
    if hint is int:
        return "int", multiple
    if hint is float:
        return "float", multiple
    if isinstance(hint, type) and issubclass(hint, Path):
        return "path", multiple
    if isinstance(hint, type) and issubclass(hint, Enum):
        return "enum", multiple
    return "str", multiple


def _clean_help(text: str | None) -> str:
    if not text:
        return ""
    return inspect.cleandoc(text).split("\n\n")[0].replace("\n", " ").strip()


def _param_from_argument(argument) -> CliParam | None:
    """Translate one cyclopts `Argument` into our plain model."""
    kind = argument.field_info.kind
    if kind is inspect.Parameter.VAR_KEYWORD:
        return None
    value_type, multiple = _type_name(argument.hint)
    negatives = [n for n in argument.names if n in argument.negatives or n.startswith(("--no-", "--empty-"))]
    flags = [n for n in argument.names if n not in negatives]
    choices = argument.get_choices()
    default = argument.field_info.default
    shown_default = None
    if default is not inspect.Parameter.empty and default is not None:
        shown_default = default.value if isinstance(default, Enum) else str(default)
    return CliParam(
        name=argument.field_info.name,
        flags=flags or [f"--{argument.field_info.name.replace('_', '-')}"],
        negatives=negatives,
        positional=kind
        in (
            inspect.Parameter.POSITIONAL_ONLY,
            inspect.Parameter.POSITIONAL_OR_KEYWORD,
            inspect.Parameter.VAR_POSITIONAL,
        ),
        variadic=kind is inspect.Parameter.VAR_POSITIONAL,
        required=bool(argument.required),
        is_flag=bool(argument.is_flag()) or (value_type == "bool" and not multiple),
        multiple=multiple,
        value_type=value_type,
        choices=list(choices) if choices else None,
        default=shown_default,
        help=_clean_help(argument.parameter.help),
        shown=bool(argument.show),
    )


class CliTree:
    """All commands of the installed CLI, keyed by canonical path; built once, then read-only."""

    def __init__(self, commands: dict[tuple[str, ...], CliCommand]) -> None:
        self.commands = commands

    @classmethod
    def from_app(cls, root) -> CliTree:
        commands: dict[tuple[str, ...], CliCommand] = {}

        def walk(app, path: tuple[str, ...], aliases: list[str]) -> None:
            children: dict[int, list[str]] = {}
            objects: dict[int, object] = {}
            for name in app:
                if name.startswith("-"):
                    continue
                sub = app[name]
                children.setdefault(id(sub), []).append(name)
                objects[id(sub)] = sub
            subcommands: dict[str, str] = {}
            for key, names in children.items():
                canonical = names[0]
                for name in names:
                    subcommands[name] = canonical
                walk(objects[key], (*path, canonical), names[1:])
            params: list[CliParam] = []
            if app.default_command is not None and path:
                for argument in app.assemble_argument_collection():
                    param = _param_from_argument(argument)
                    if param is not None:
                        params.append(param)
            commands[path] = CliCommand(
                path=path,
                aliases=aliases,
                help=_clean_help(app.help),
                runnable=app.default_command is not None and bool(path),
                subcommands=subcommands,
                params=params,
            )

        walk(root, (), [])
        return cls(commands)

    @property
    def root(self) -> CliCommand:
        return self.commands[()]

    def child(self, command: CliCommand, token: str) -> CliCommand | None:
        """The subcommand `token` names (exact, alias, or '-'/'_'/case-insensitive), if any."""
        canonical = command.subcommands.get(token)
        if canonical is None:
            matches = {
                c for n, c in command.subcommands.items() if normalize_name(n) == normalize_name(token)
            }
            canonical = matches.pop() if len(matches) == 1 else None
        return None if canonical is None else self.commands[(*command.path, canonical)]

    def resolve(self, words: list[str]) -> tuple[CliCommand, int]:
        """Walk as far as `words` name commands; returns the deepest command and words used."""
        node, used = self.root, 0
        for word in words:
            nxt = self.child(node, word)
            if nxt is None:
                break
            node, used = nxt, used + 1
        return node, used

    def nearest(self, command: CliCommand, token: str, n: int = 3) -> list[str]:
        names = [name for name in command.subcommands if not name.startswith("-")]
        return get_close_matches(token, names, n=n, cutoff=0.5)

    def leaf_paths(self) -> list[tuple[str, ...]]:
        return [path for path, cmd in self.commands.items() if cmd.runnable]


_lock = threading.Lock()
_tree: CliTree | None = None


def command_tree() -> CliTree:
    """The cached command tree of the installed Prefect CLI (built on first use, thread-safe)."""
    global _tree
    if _tree is None:
        with _lock:
            if _tree is None:
                from prefect.cli._app import _app  # the root cyclopts App of `prefect`

                _tree = CliTree.from_app(_app)
    return _tree


def describe(command: CliCommand) -> str:
    """Usage, aliases, arguments and options of one command, as plain text."""
    lines = [f"Usage: {command.usage()}"]
    if command.help:
        lines.append(command.help)
    if command.aliases:
        lines.append(
            "Aliases: " + ", ".join(" ".join(("prefect", *command.path[:-1], a)) for a in command.aliases)
        )
    if command.subcommands and not command.runnable:
        tree = command_tree()
        lines.append("Commands:")
        seen: set[str] = set()
        for canonical in command.subcommands.values():
            if canonical in seen:
                continue
            seen.add(canonical)
            sub = tree.commands[(*command.path, canonical)]
            alias = f" (alias: {', '.join(sub.aliases)})" if sub.aliases else ""
            lines.append(f"  {canonical}{alias}  {sub.help}")
        return "\n".join(lines)
    positionals = [p for p in command.positionals() if p.shown or p.required or p.name == "entrypoint"]
    if positionals:
        lines.append("Arguments (positional; may also be passed as the option shown):")
        for p in positionals:
            req = "  [required]" if p.required else ""
            lines.append(f"  {p.metavar} ({p.flags[0]})  {p.help}{req}")
    options = [p for p in command.params if not p.positional and p.shown]
    if options:
        lines.append("Options:")
        for p in options:
            names = ", ".join(p.flags + p.negatives)
            value = "" if p.is_flag else f" {p.value_metavar}"
            extra = "  [required]" if p.required else (f"  [default: {p.default}]" if p.default else "")
            lines.append(f"  {names}{value}  {p.help}{extra}")
    return "\n".join(lines)


def cli_help(command: str) -> str:
    """Exact syntax of a Prefect CLI command, e.g. "work-pool set-concurrency-limit" or "prefect gcl create".

    Aliases (gcl, work-pools, concurrency-limits...) are resolved. For an unknown command the
    answer says so and lists the nearest existing commands.
    """
    tree = command_tree()
    words = [w for w in command.replace("`", " ").split() if w]
    if words and words[0] == "prefect":
        words = words[1:]
    words = [w for w in words if not w.startswith("-")]
    node, used = tree.resolve(words)
    if used < len(words):
        unknown = words[used]
        near = tree.nearest(node, unknown)
        if not near:
            near = sorted({c for c in node.subcommands.values()})
        where = node.display
        listed = ", ".join(f"{where} {n}" for n in near)
        return f"Unknown command: {where} {unknown}. Nearest commands: {listed}.\n\n{describe(node)}"
    return describe(node)
