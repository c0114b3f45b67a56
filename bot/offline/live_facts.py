"""Live facts for a live-state question, read from Prefect without the model.

A question about live state (why is a run stuck, what is full, is a slot leaked) gets the same
deterministic reading the offline answers give, whatever the model writes: a small model once
answered "why is demo-nightly-2 stuck?" with a question of its own. The pipeline shows this block
beside the model's text, and first when the model's text does not name the blocker found here.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass, field
from typing import Any

from bot.offline import render
from bot.offline.intents import classify
from bot.safe_text import tick

log = logging.getLogger(__name__)

LEAK = re.compile(r"\b(?:leak(?:ed|s|ing)?|orphan(?:ed)?\s+slots?|"
                  r"slots?\s+(?:held|taken)\s+by\s+(?:nothing|no\s+run))\b", re.IGNORECASE)
FULL = re.compile(r"\bwhat(?:'s|\s+is|\s+are)\s+(?:full|busy|at\s+(?:its|their)\s+limits?)\b|\bwhich\s+limits?\s+"
                  r"(?:is|are)\s+(?:full|busy)\b", re.IGNORECASE)
HEADING = "**Live check (read from Prefect just now, not written by the model):**"


@dataclass
class LiveFacts:
    """A block of live facts and the names the model's text should mention (the blocker's)."""

    kind: str  # diagnosis | full | leaks
    text: str
    names: list[str] = field(default_factory=list)

    def block(self) -> str:
        return f"{HEADING}\n{self.text}"

    def named_by(self, answer: str) -> bool:
        """Does the model's answer name what blocks? (True when nothing blocks.)"""
        lowered = answer.lower()
        return not self.names or any(name.lower() in lowered for name in self.names if name)


def _default_client() -> AbstractAsyncContextManager[Any]:
    from prefect import get_client

    return get_client()


ClientFactory = Callable[[], AbstractAsyncContextManager[Any]]


async def live_facts(question: str, client_factory: ClientFactory = _default_client) -> LiveFacts | None:
    """The live reading for a live-state question, or None (not one, or Prefect could not say)."""
    try:
        intent = classify(question)
        if intent.kind == "diagnose" and intent.subject:
            return await _diagnosis(intent.subject, client_factory)
        if LEAK.search(question):
            return await _leaks(client_factory)
        if FULL.search(question):
            return await _full(client_factory)
    except Exception as exc:  # the model's answer stands alone; live facts are a bonus, never a failure
        log.info("no live facts for this question: %s: %s", type(exc).__name__, exc)
    return None


async def _diagnosis(subject: str, client_factory: ClientFactory) -> LiveFacts:
    from bot.prefect_ops.diagnose import diagnose_run

    async with client_factory() as client:
        diagnosis = await diagnose_run(client, subject)
    blocker = diagnosis.blocker
    names = [blocker.object_name] if blocker is not None and blocker.object_name else []
    if blocker is not None and blocker.fix is not None and blocker.fix.target_name:
        names.append(blocker.fix.target_name)
    return LiveFacts("diagnosis", render.diagnosis_text(diagnosis), names)


async def _leaks(client_factory: ClientFactory) -> LiveFacts:
    from bot.prefect_ops.leaks import find_leaked_slots

    async with client_factory() as client:
        found = await find_leaked_slots(client)
    if not found:
        return LiveFacts("leaks", "No slot looks leaked: every held slot belongs to a live run.")
    lines = [f"- {leak.kind.replace('_', ' ')} {tick(leak.limit_name)}: {leak.reason}" for leak in found[:25]]
    return LiveFacts("leaks", "Slots that look leaked:\n" + "\n".join(lines), [leak.limit_name for leak in found])


async def _full(client_factory: ClientFactory) -> LiveFacts:
    from bot.prefect_ops.concurrency_map import concurrency_map

    async with client_factory() as client:
        cmap = await concurrency_map(client)
    full = [limit.name for limit in cmap.limits if limit.full]
    return LiveFacts("full", render.limits_table(cmap, True), full)
