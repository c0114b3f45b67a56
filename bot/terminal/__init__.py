"""The terminal front end: the same pipeline, tools and proposals as Slack, rendered with rich."""

from bot.terminal.render import TerminalRenderer
from bot.terminal.session import ChatSession, stdin_reader
from bot.terminal.setup import TerminalRuntime, build_terminal_runtime, terminal_user

__all__ = ["ChatSession", "TerminalRenderer", "TerminalRuntime", "build_terminal_runtime", "stdin_reader",
           "terminal_user"]
