"""Getting the terminal ready: the Prefect server (embedded when none is configured) and the runtime."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from bot.settings import Settings
from bot.terminal.progress import ProgressLines
from bot.terminal.render import TerminalRenderer
from bot.terminal.setup import TerminalRuntime, build_terminal_runtime

__all__ = ["terminal_runtime"]


@contextmanager
def terminal_runtime(settings: Settings, renderer: TerminalRenderer,
                     announce: bool = True) -> Iterator[TerminalRuntime]:
    """Prefect first (it must be set before prefect is imported), then the runtime; both closed on exit."""
    from bot.embedded_prefect import prepare_prefect

    with renderer.working("Looking for a Prefect server…") as status:
        # No spinner when output is not a terminal: say the progress in lines, so a cold start is not blank.
        progress = status.update if renderer.console.is_terminal else ProgressLines(renderer.notice)
        embedded = prepare_prefect(settings.bot_data_dir, progress=progress)
    try:
        if embedded is not None and announce:
            verb = "Reusing" if embedded.reused else "Started"
            renderer.notice(f"{verb} a local Prefect server at {embedded.api_url} (PREFECT_API_URL was not set).")
        with renderer.working("Loading Prefect and the recipe book…"):
            runtime = build_terminal_runtime(settings)
        try:
            yield runtime
        finally:
            runtime.close()
    finally:
        if embedded is not None:
            embedded.stop()
