"""The latest doctor report of a running bot: what `serve` found at start, refreshed now and then, for the
Home tab (approvers) and `/healthz?detail=1` (behind BOT_METRICS_TOKEN)."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from bot.doctor.report import Report

__all__ = ["REFRESH_SECONDS", "DoctorState"]

log = logging.getLogger(__name__)
REFRESH_SECONDS = 1800.0  # a setup rarely changes; each run costs two small model requests


@dataclass
class DoctorState:
    report: Report | None = None
    checked_at: datetime | None = None
    refresh: Callable[[], Awaitable[Report]] | None = None

    def set(self, report: Report) -> None:
        self.report, self.checked_at = report, datetime.now(UTC)

    async def run(self, every: float = REFRESH_SECONDS) -> None:
        """Re-check every `every` seconds while the bot runs; a failed run keeps the last report."""
        while self.refresh is not None:
            await asyncio.sleep(every)
            try:
                self.set(await self.refresh())
            except Exception:
                log.exception("doctor: the periodic check failed; keeping the last report")

    def problem_lines(self) -> list[str]:
        """One line per ✗/⚠ row: mark, group, check, what is wrong, and the fix."""
        if self.report is None:
            return []
        return [f"{r.status.mark} {r.group} · {r.name}: {r.detail} → {r.fix}" for r in self.report.problems()]

    def detail(self) -> dict[str, Any]:
        """What `/healthz?detail=1` answers."""
        if self.report is None:
            return {"checked": False}
        problems = [{"group": r.group, "name": r.name, "status": r.status.value, "detail": r.detail, "fix": r.fix}
                    for r in self.report.problems()]
        return {"checked": True, "checked_at": self.checked_at.isoformat() if self.checked_at else None,
                "summary": self.report.counts(), "problems": problems}
