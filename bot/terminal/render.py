"""How replies look in a terminal: rich Markdown with highlighted code, and a spinner while working."""

from __future__ import annotations

from contextlib import AbstractContextManager

from rich.console import Console
from rich.markdown import Markdown
from rich.panel import Panel
from rich.text import Text

from bot.turns import Reply

__all__ = ["TerminalRenderer"]

CODE_THEME = "monokai"


class TerminalRenderer:
    """Writes replies and notices to one rich console (stdout by default)."""

    def __init__(self, console: Console | None = None) -> None:
        self.console = console or Console()

    def working(self, message: str = "Thinking…") -> AbstractContextManager:
        """A spinner shown while the pipeline works; rich hides it when output is not a terminal."""
        return self.console.status(message, spinner="dots")

    def reply(self, reply: Reply) -> None:
        self.console.print(Markdown(reply.text, code_theme=CODE_THEME, hyperlinks=False))
        footer = []
        if reply.offline:
            footer.append("offline")
        if reply.model_rounds:
            footer.append(f"{reply.model_rounds} model round(s)")
        if reply.tool_calls:
            footer.append("tools: " + ", ".join(dict.fromkeys(reply.tool_calls)))
        if "total" in reply.timings:
            footer.append(f"{reply.timings['total']:.1f} s")
        if footer:
            self.console.print(Text(" · ".join(footer), style="dim"))

    def proposal(self, diff: str, proposal_id: str, reason: str, destructive: bool,
                 what_if: str | None = None) -> None:
        body = Text(diff, style="bold")
        if what_if:  # the same live line a Slack card shows
            body.append(f"\nWhat if: {what_if}")
        if reason:
            body.append(f"\n{reason}", style="dim")
        if destructive:
            body.append("\nThis change removes state (clear, delete or reset).", style="yellow")
        self.console.print(Panel(body, title=f"Proposal {proposal_id[:8]}", border_style="cyan", expand=False))

    def notice(self, text: str, style: str = "dim") -> None:
        self.console.print(Text(text, style=style))

    def error(self, text: str) -> None:
        self.console.print(Text(text, style="bold red"))
