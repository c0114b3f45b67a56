"""Progress as plain lines, for when there is no spinner to update (output piped, or a command
that prints as it goes): the embedded Prefect server reports every half second, people need a
line when something new happens and a reminder every few seconds, not a flood."""

from __future__ import annotations

import re
import time
from collections.abc import Callable

__all__ = ["ProgressLines"]


class ProgressLines:
    """Call it with each progress message; it prints the ones worth a line."""

    def __init__(self, say: Callable[[str], None], every: float = 5.0) -> None:
        self.say, self.every = say, every
        self.last_kind, self.last_at = "", 0.0

    def __call__(self, message: str) -> None:
        kind = re.sub(r"\d+", "#", message)  # "Waiting (3 s)" and "Waiting (4 s)" are the same news
        now = time.monotonic()
        if kind != self.last_kind or now - self.last_at >= self.every:
            self.say(f"… {message}")
            self.last_kind, self.last_at = kind, now
