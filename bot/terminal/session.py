"""The terminal conversation: read a line, answer it on the pipeline, show it, take decisions on proposals."""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Awaitable, Callable
from typing import Any

from rich.console import Console
from rich.text import Text

from bot.terminal.proposals import ProposalPrompt
from bot.terminal.render import TerminalRenderer
from bot.turns import HistoryMessage, Turn

__all__ = ["ChatSession", "stdin_reader", "EXIT_WORDS"]

EXIT_WORDS = {"exit", "quit", "/exit", "/quit", ":q", "bye"}
HELP = """Ask about Prefect concurrency, for example:
  only one run of my-flow/prod at a time, extra runs skipped
  why is run brave-otter stuck?
  show limits
  set work pool etl limit to 5
Type /pending to decide on proposals still waiting (from `ask`, Slack or earlier chats),
/help for this text, /quit (or Ctrl-D) to leave."""
ReadLine = Callable[[str], Awaitable[str | None]]


def stdin_reader(console: Console) -> ReadLine:
    """Lines from the keyboard (with line editing) or from piped stdin; None at end of input."""

    def read(prompt: str) -> str | None:
        if sys.stdin.isatty():
            try:
                return console.input(Text(prompt))  # a Text is not markup: "[a]pprove" stays as typed
            except EOFError:
                return None
        console.print(prompt, end="", markup=False, highlight=False)
        line = sys.stdin.readline()
        if not line:
            return None
        console.print(line.rstrip("\n"), markup=False, highlight=False)  # keep a readable transcript
        return line.rstrip("\n")

    async def read_line(prompt: str) -> str | None:
        return await asyncio.to_thread(read, prompt)

    return read_line


class ChatSession:
    """One conversation; the history is kept so follow-ups ("and the queue?") have context."""

    def __init__(self, pipeline: Any, renderer: TerminalRenderer, read_line: ReadLine, user_id: str,
                 approvals: Any | None = None, session_id: str = "terminal", max_history: int = 20) -> None:
        self.pipeline = pipeline
        self.renderer = renderer
        self.read_line = read_line
        self.user_id = user_id
        self.session_id = session_id
        self.max_history = max_history
        self.history: list[HistoryMessage] = []
        self.proposals = ProposalPrompt(approvals, renderer, read_line, user_id) if approvals is not None else None

    async def run(self, banner: str | None = None) -> int:
        if banner:
            self.renderer.notice(banner)
        while True:
            line = await self.read_line("you› ")
            if line is None:
                break
            text = line.strip()
            if not text:
                continue
            if text.lower() in EXIT_WORDS:
                break
            if text.lower() in ("/help", "help", "?"):
                self.renderer.notice(HELP, style="")
                continue
            if text.lower() == "/pending":
                await self.decide_pending()
                continue
            await self.ask(text)
        self.renderer.notice("Bye.")
        return 0

    async def decide_pending(self) -> None:
        if self.proposals is None:
            self.renderer.notice("Approvals are not set up in this session.")
            return
        waiting = await self.proposals.approvals.pending()
        if not waiting:
            self.renderer.notice("Nothing is waiting for a decision.")
            return
        await self.proposals.handle([proposal.id for proposal in reversed(waiting)])  # oldest first

    async def ask(self, text: str) -> None:
        turn = Turn(text=text, user_id=self.user_id, channel="terminal", thread_ts=self.session_id,
                    history=list(self.history), source="terminal")
        with self.renderer.working():
            reply = await self.pipeline.answer(turn)
        self.renderer.reply(reply)
        self.history += [HistoryMessage("user", text, self.user_id), HistoryMessage("assistant", reply.text)]
        self.history = self.history[-self.max_history:]
        if reply.proposals and self.proposals is not None:
            await self.proposals.handle(reply.proposals)
