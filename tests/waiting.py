"""Waiting on a condition, never on a clock: one poll loop for the harness, the fakes and the tests."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import Any

POLL_SECONDS = 0.05


def poll(check: Callable[[], Any], timeout: float) -> Any:
    """What `check` returned once it was truthy, or None when `timeout` seconds passed first."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        result = check()
        if result:
            return result
        time.sleep(POLL_SECONDS)
    return None


def wait_until(check: Callable[[], Any], timeout: float = 30.0, what: str = "condition") -> Any:
    """Poll `check` until it returns something truthy (returned), or fail after `timeout` seconds."""
    result = poll(check, timeout)
    if not result:
        raise AssertionError(f"timed out waiting for {what}")
    return result


async def until(check: Callable[[], Awaitable[Any]], timeout: float, what: str, every: float = 1.0) -> Any:
    """The async form of `wait_until`, for checks that read a server: `check` is awaited every `every` s."""
    deadline = time.monotonic() + timeout
    while True:
        result = await check()
        if result:
            return result
        if time.monotonic() >= deadline:
            raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")
        await asyncio.sleep(every)
