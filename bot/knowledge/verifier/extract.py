"""Pull the checkable parts out of a Markdown answer: code blocks, inline code, commands."""

from __future__ import annotations

import re
import shlex
from dataclasses import dataclass

__all__ = ["CodeBlock", "extract_blocks", "extract_commands", "split_command"]

_FENCE = re.compile(
    r"^(?P<indent>[ \t]*)(?P<fence>`{3,}|~{3,})(?P<info>[^\n`]*)\n"
    r"(?P<body>.*?)^(?P=indent)?(?P=fence)[ \t]*$",
    re.MULTILINE | re.DOTALL,
)
_INLINE = re.compile(r"(?<!`)`([^`\n]+)`(?!`)")
_SHELL_LANGS = {"", "bash", "sh", "shell", "console", "zsh", "text", "shell-session", "sh-session"}
_PY_LANGS = {"python", "py", "python3", "pycon"}
_YAML_LANGS = {"yaml", "yml"}


@dataclass(frozen=True)
class CodeBlock:
    """A fenced block (or an inline code span) with its language and info-string flags."""

    lang: str
    text: str
    inline: bool = False
    flags: tuple[str, ...] = ()

    @property
    def kind(self) -> str:
        if self.lang in _PY_LANGS:
            return "python"
        if self.lang in _YAML_LANGS:
            return "yaml"
        if self.lang in _SHELL_LANGS:
            return "shell"
        return "other"


def extract_blocks(markdown: str) -> tuple[list[CodeBlock], str]:
    """Fenced blocks, plus the Markdown with those blocks removed (for inline code scanning)."""
    blocks: list[CodeBlock] = []

    def take(match: re.Match[str]) -> str:
        info = match.group("info").strip().split()
        lang = info[0].lower() if info else ""
        body = match.group("body")
        indent = match.group("indent")
        if indent:
            body = "\n".join(
                line[len(indent) :] if line.startswith(indent) else line for line in body.split("\n")
            )
        blocks.append(CodeBlock(lang=lang, text=body, flags=tuple(f.lower() for f in info[1:])))
        return "\n"

    rest = _FENCE.sub(take, markdown)
    return blocks, rest


def inline_spans(text: str) -> list[str]:
    return [m.group(1).strip() for m in _INLINE.finditer(text)]


def _logical_lines(text: str) -> list[str]:
    """Join backslash continuations; drop prompts like `$ ` and comments."""
    lines: list[str] = []
    current = ""
    for raw in text.split("\n"):
        line = raw.rstrip()
        if line.endswith("\\"):
            current += line[:-1] + " "
            continue
        lines.append(current + line)
        current = ""
    if current:
        lines.append(current)
    return lines


def _strip_comment(line: str) -> str:
    """Remove a trailing shell comment (a `#` after whitespace, outside quotes)."""
    quote = None
    for i, ch in enumerate(line):
        if ch in "'\"" and quote in (None, ch):
            quote = None if quote == ch else ch
        elif ch == "#" and quote is None and (i == 0 or line[i - 1] in " \t"):
            return line[:i].rstrip()
    return line


# A shell redirection (`> out.log`, `2>&1`, `>> f`, `&> f`, `< in`) ends the command's arguments;
# `<pool-name>` (no space after `<`) is a placeholder, not a redirection.
_REDIRECT = re.compile(r"\s(?:[12]?>>?|&>|<(?=\s))")


def _prefect_segments(line: str) -> list[str]:
    """The `prefect ...` pieces of one shell line (split on &&, ||, ;, |)."""
    line = _strip_comment(line.strip())
    line = re.sub(r"^(\$|>|PS>)\s+", "", line)
    pieces = re.split(r"\s*(?:&&|\|\||;|\|)\s*", line)
    found = []
    for piece in pieces:
        piece = _REDIRECT.split(piece, maxsplit=1)[0].strip()
        piece = re.sub(r"^(?:[A-Z_][A-Z0-9_]*=\S*\s+)+", "", piece)  # env assignments
        piece = re.sub(r"^(?:uv run|python -m|poetry run|\.venv/bin/)\s*", "", piece)
        if re.match(r"^prefect\s+\S", piece):
            found.append(" ".join(piece.split()))
    return found


def extract_commands(blocks: list[CodeBlock], prose: str) -> list[tuple[str, bool]]:
    """Every `prefect ...` command as (text, inline?): from shell blocks and inline code."""
    commands: list[tuple[str, bool]] = []
    for block in blocks:
        if block.kind != "shell":
            continue
        for line in _logical_lines(block.text):
            commands.extend((segment, False) for segment in _prefect_segments(line))
    for span in inline_spans(prose):
        commands.extend((segment, True) for segment in _prefect_segments(span))
    return commands


def split_command(command: str) -> list[str]:
    """Shell-like split; falls back to whitespace when quotes do not balance."""
    try:
        tokens = shlex.split(command)
    except ValueError:
        tokens = command.split()
    return _join_placeholders(tokens)


_CLOSERS = {"<": ">", "[": "]"}


def _join_placeholders(tokens: list[str]) -> list[str]:
    """Keep `<work pool name>` / `[work pool name]` one token: a placeholder with spaces is one value."""
    out: list[str] = []
    closer: str | None = None
    for token in tokens:
        if closer is not None:
            out[-1] += " " + token
            if token.endswith(closer):
                closer = None
            continue
        out.append(token)
        opener = token[:1]
        if opener in _CLOSERS and _CLOSERS[opener] not in token and not token[1:2] == "-":  # `[--limit INT]`
            closer = _CLOSERS[opener]
    if closer is not None:  # never closed: not a placeholder after all
        return tokens
    return out
