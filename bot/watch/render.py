"""Incident text in the seed thread's shape: what is blocked, by what, since when, the real names.

Every untrusted name (limits, pools, runs) goes through `name()`, the one place that decides how a
name is shown, so a later escaping rule is a one-line change here.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from bot.prefect_ops.models import Holder, WaitingRun
from bot.safe_text import code

SHOWN = 3


def name(text: object) -> str:
    """An untrusted name as a code span: it cannot become a ping, a link or formatting (bot.safe_text)."""
    return code(text)


def duration(seconds: float) -> str:
    minutes, secs = divmod(int(max(0.0, seconds)), 60)
    hours, minutes = divmod(minutes, 60)
    if hours:
        return f"{hours} h {minutes} min"
    return f"{minutes} min" if minutes else f"{secs} s"


def holders_text(holders: Sequence[Holder]) -> str:
    if not holders:
        return "no run we can name"
    parts = []
    for holder in holders[:SHOWN]:
        age = f" {duration(holder.seconds_in_state)}" if holder.seconds_in_state is not None else ""
        parts.append(f"{name(holder.name or holder.id)} ({holder.state or 'gone'}{age})")
    more = f" and {len(holders) - SHOWN} more" if len(holders) > SHOWN else ""
    return ", ".join(parts) + more


def runs_text(runs: Sequence[WaitingRun], total: int) -> str:
    if not runs and not total:
        return "none"
    shown = ", ".join(name(run.name) for run in runs[:SHOWN]) or "runs not listed"
    more = f" and {total - min(len(runs), SHOWN)} more" if total > min(len(runs), SHOWN) else ""
    return shown + more


def since_text(since: datetime, now: datetime) -> str:
    return f"since {since:%H:%M} UTC ({duration((now - since).total_seconds())})"


def fix_text(change: object) -> str:
    """A short description of a proposed change, before its live value is read."""
    action = getattr(change, "action", "")
    target = change.target() if hasattr(change, "target") else str(change)  # type: ignore[union-attr]
    limit = getattr(change, "limit", None)
    if action in ("set", "update") and limit is not None:
        return f"set {target} to {limit}"
    if action == "reset":
        return f"reset the active slots of {target} to 0"
    return f"{action} {target}"


def incident_lines(incident: object, now: datetime) -> list[str]:
    """The incident as the seed thread would say it: the blocker, since when, holders, waiting, the fix."""
    from bot.watch.incidents import KIND_TITLES, Incident

    assert isinstance(incident, Incident)
    lines = [f"*{KIND_TITLES[incident.kind]}*: {incident.summary}",
             f"• {since_text(incident.since, now)}"]
    if incident.holders:
        lines.append(f"• holders: {holders_text(incident.holders)}")
    if incident.waiting or incident.waiting_runs:
        lines.append(f"• waiting: {runs_text(incident.waiting_runs, incident.waiting)}")
    lines += [f"• {line}" for line in incident.evidence if "holders:" not in line and "waiting:" not in line]
    if incident.applied:
        lines.append(f"• fix applied: {incident.applied}")
    elif incident.fix is not None:
        lines.append(f"• fix: {fix_text(incident.fix)} (needs approval)")
    if incident.hint:
        lines.append(f"• fix: {incident.hint}")
    return lines
