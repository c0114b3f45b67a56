"""Shared by the commands that read Prefect directly (`limits`, `diagnose`): one clear line on failure."""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from typing import Any, TypeVar

T = TypeVar("T")


def read_or_explain(command: str, read: Coroutine[Any, Any, T], console: Any) -> T | None:
    """Run a Prefect read; a PrefectOpsError (server down, not found) is printed as one line → None."""
    from bot.prefect_ops import PrefectOpsError

    try:
        return asyncio.run(read)
    except PrefectOpsError as exc:
        console.print(f"concurrency-bot {command}: {exc}", markup=False, highlight=False, soft_wrap=True)
        return None
