"""The watcher's share of the Prefect API: every call counted, a cap per minute, 429s honoured.

On Prefect Cloud all orchestration calls of an account share one rate budget (Hobby 250 a minute,
Team 1,000); the watcher must not spend the team's. Calls are counted by an httpx event hook on the
watcher's own client (nothing else in the process is counted or slowed). A 429 is not retried inside
the client: the hook raises `Throttled` with the server's Retry-After, and the watcher waits that long
before its next read. Reads use a short timeout and one retry, so a dead server fails a read in
seconds, well inside the leader lease, instead of in the client's default 2+4+8+16+32 s.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable, Iterator
from contextlib import AbstractAsyncContextManager, contextmanager
from typing import Any

import httpx

WINDOW = 60.0
DEFAULT_RETRY_AFTER = 30.0
MAX_RETRY_AFTER = 600.0


class Throttled(Exception):
    """Prefect answered 429: wait `retry_after` seconds before the next read."""

    def __init__(self, retry_after: float) -> None:
        super().__init__(f"Prefect API rate limit: retry after {retry_after:.0f} s")
        self.retry_after = retry_after


def _retry_after(response: httpx.Response) -> float:
    value = response.headers.get("Retry-After", "")
    try:
        return min(MAX_RETRY_AFTER, max(1.0, float(value)))
    except ValueError:
        return DEFAULT_RETRY_AFTER  # an HTTP-date or nothing: a safe pause


class CallMeter:
    """Counts the watcher's API calls in a sliding minute (bounded memory) and remembers 429 back-offs."""

    def __init__(self, max_per_minute: int, clock: Callable[[], float] = time.monotonic) -> None:
        self.max_per_minute = max_per_minute
        self.clock = clock
        self.recent: deque[float] = deque(maxlen=max(10 * max_per_minute, 1000))
        self.total = 0
        self.throttled = 0
        self.backoff_until = 0.0

    async def on_request(self, request: httpx.Request) -> None:
        self.recent.append(self.clock())
        self.total += 1

    async def on_response(self, response: httpx.Response) -> None:
        if response.status_code == 429:
            wait = _retry_after(response)
            self.throttled += 1
            self.backoff_until = max(self.backoff_until, self.clock() + wait)
            raise Throttled(wait)

    def last_minute(self) -> int:
        cutoff = self.clock() - WINDOW
        while self.recent and self.recent[0] < cutoff:
            self.recent.popleft()
        return len(self.recent)

    def room_for(self, cost: int) -> bool:
        """Whether `cost` more calls now stay under the cap (and no 429 back-off is running)."""
        return self.clock() >= self.backoff_until and self.last_minute() + cost <= self.max_per_minute

    def wait_for(self, cost: int) -> float:
        """Seconds until `cost` calls fit under the cap and past any back-off (0 when they fit now)."""
        now = self.clock()
        wait = max(0.0, self.backoff_until - now)
        over = self.last_minute() + cost - self.max_per_minute
        if over > 0 and self.recent:
            index = min(over, len(self.recent)) - 1
            wait = max(wait, self.recent[index] + WINDOW - now)
        return wait


def metered_client_factory(meter: CallMeter, timeout: float,
                           api_url: str | None = None) -> Callable[[], AbstractAsyncContextManager[Any]]:
    """A factory of Prefect clients whose calls `meter` counts, with a per-request timeout; `api_url`
    defaults to PREFECT_API_URL."""

    def factory() -> AbstractAsyncContextManager[Any]:
        settings = {"event_hooks": {"request": [meter.on_request], "response": [meter.on_response]},
                    "timeout": httpx.Timeout(timeout, connect=min(timeout, 5.0))}
        if api_url:
            from prefect.client.orchestration import PrefectClient

            return PrefectClient(api=api_url, httpx_settings=settings)
        from prefect import get_client

        return get_client(httpx_settings=settings)

    return factory


@contextmanager
def few_retries(retries: int = 1) -> Iterator[None]:
    """Within this block (this task and the tasks it starts) Prefect's client retries at most `retries`
    times, so a read against a dead server gives up in seconds."""
    from prefect.settings import PREFECT_CLIENT_MAX_RETRIES, temporary_settings

    with temporary_settings(updates={PREFECT_CLIENT_MAX_RETRIES: retries}):
        yield
