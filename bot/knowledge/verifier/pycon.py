"""Turn an interactive-session transcript (`>>>` / `...` prompts and printed output) into source.

Prefect's docs and real answers paste REPL sessions in `pycon` (or plain `python`) blocks; the
prompts are not Python, and the lines without a prompt are output, not code.
"""

from __future__ import annotations

import re

__all__ = ["is_session", "session_source"]

_PROMPT = re.compile(r"^(>>>|\.\.\.)( |$)")


def is_session(text: str) -> bool:
    """True when the text is a REPL transcript: some line starts with the `>>>` prompt."""
    return any(line.lstrip().startswith(">>>") for line in text.split("\n"))


def session_source(text: str) -> str:
    """The code typed at the prompts; output lines become blank lines so line numbers still match."""
    out = []
    for raw in text.split("\n"):
        line = raw.lstrip()
        match = _PROMPT.match(line)
        out.append(line[match.end() :] if match else "")
    return "\n".join(out)
