"""Markdown for live results (limits, one limit, a diagnosis): what the offline answers show.

Plain Markdown, so every front end converts it the same way (Slack mrkdwn, rich in the terminal).
"""

from __future__ import annotations

import shlex

from bot.prefect_ops.models import ConcurrencyMap, Diagnosis, Holder, LimitStatus
from bot.safe_text import tick
from bot.shell_text import command_or_note

__all__ = ["limits_table", "limit_detail", "diagnosis_text", "KIND_TITLES", "unheld_slots"]

KIND_TITLES = {"deployment": "Deployment limits", "work_pool": "Work pool limits", "work_queue": "Work queue limits",
               "tag": "Tag (task) limits", "global": "Global concurrency limits"}
KIND_NOUN = {"deployment": "deployment", "work_pool": "work pool", "work_queue": "work queue", "tag": "tag limit",
             "global": "global limit"}
HOLDERS_SHOWN = 5


def _age(seconds: float | None) -> str:
    if seconds is None:
        return ""
    minutes, _ = divmod(int(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    return f" {hours} h {minutes} m" if hours else f" {minutes} m"


def holder_text(holder: Holder) -> str:
    return f"{tick(holder.name or holder.id)} ({holder.state or 'gone'}{_age(holder.seconds_in_state)})"


def occupancy(limit: LimitStatus) -> str:
    """'2/3', 'none set', with the flags that change what the number means."""
    if limit.limit is not None:
        used = f"{limit.active_slots}/{limit.limit}"
    else:
        used = f"{limit.active_slots} running, no limit"
    flags = limit.flags()
    if limit.full:  # after "disabled"/"paused", before the rest
        flags.insert(int(not limit.enabled) + int(limit.paused), "FULL")
    leaked = unheld_slots(limit)
    if leaked:  # what diagnose and the watcher call it, said where the numbers are
        flags.append(f"{leaked} leaked: counted with no holder")
    return used + (f" ({', '.join(flags)})" if flags else "")


def unheld_slots(limit: LimitStatus) -> int:
    """Slots a tag limit counts that no task run holds (0 where Prefect cannot say who holds them).

    A tag slot left counted after its lease went (Prefect's own tag reset does that in 3.9.1) blocks
    tagged tasks until someone frees it; the watcher reports the same slots as leaked. (Deployment
    slots are also held by Cancelling runs, which the holder list does not show, so they are left out.)"""
    if limit.kind != "tag" or not limit.holders_known:
        return 0
    return max(0, limit.active_slots - len(limit.holders))


def limits_table(cmap: ConcurrencyMap, busy_only: bool = False) -> str:
    """Every limit grouped by kind, with occupancy, waiting runs and the first holders."""
    sections = []
    for kind, title in KIND_TITLES.items():
        rows = [r for r in cmap.of_kind(kind) if not busy_only or r.active_slots or r.waiting or r.paused]
        if kind in ("deployment", "work_pool", "work_queue"):
            rows = [r for r in rows if r.limit is not None or r.active_slots or r.waiting or r.paused]
        if not rows:
            continue
        lines = [f"**{title}**", ""]
        for row in rows:
            line = f"- {tick(row.name)}: {occupancy(row)}"
            if row.waiting:
                line += f", {row.waiting} waiting"
            if row.holders:
                line += " · held by " + ", ".join(holder_text(h) for h in row.holders[:3])
            lines.append(line)
        sections.append("\n".join(lines))
    if not sections:
        return f"No concurrency limits are set on {tick(cmap.api_url)} yet."
    return "\n\n".join(sections)


def limit_detail(limit: LimitStatus) -> str:
    """One limit: setting, occupancy, holders, waiting runs."""
    lines = [f"**{KIND_NOUN[limit.kind]} {tick(limit.name)}**: {occupancy(limit)}"]
    if limit.gcl_name and limit.gcl_name != limit.name:
        lines.append(f"Backed by the global limit {tick(limit.gcl_name)}.")
    if limit.grace_period_seconds:
        lines.append(f"Grace period: {limit.grace_period_seconds}s.")
    if limit.holders:
        shown = ", ".join(holder_text(h) for h in limit.holders[:HOLDERS_SHOWN])
        more = f" and {len(limit.holders) - HOLDERS_SHOWN} more" if len(limit.holders) > HOLDERS_SHOWN else ""
        lines.append(f"Held by: {shown}{more}.")
    elif limit.active_slots and not limit.holders_known:
        lines.append("Prefect does not record who holds these slots (taken by `concurrency()` outside a run).")
    if limit.waiting:
        names = ", ".join(f"{tick(w.name)}" for w in limit.waiting_runs[:HOLDERS_SHOWN])
        lines.append(f"Waiting: {limit.waiting} run(s)" + (f": {names}" if names else "") + ".")
    if limit.limit is None:
        lines.append("No limit is set.")
    return "\n".join(lines)


def diagnosis_text(diagnosis: Diagnosis) -> str:
    """The blocking finding first (with evidence and the suggested change), then every check made."""
    run = f"run {tick(diagnosis.run_name)}" if diagnosis.run_name else f"{tick(diagnosis.subject)}"
    state = f" ({diagnosis.run_state})" if diagnosis.run_state else ""
    lines = [f"**Why {run}{state} is not running:** {diagnosis.summary}"]
    blocker = diagnosis.blocker
    if blocker is not None:
        lines += [f"- {item}" for item in blocker.evidence]
        if blocker.fix is not None and blocker.fix.action != "none":
            fix = blocker.fix
            change = f" ({fix.current or 'none'} → {fix.proposed})" if fix.proposed else ""
            if fix.action == "start_worker" and fix.proposed:  # a shell line: shown as a command, or not at all
                change = f": {command_or_note(*shlex.split(fix.proposed), escaped=False)}"
            lines.append(f"\n**Suggested:** {fix.action.replace('_', ' ')} on {fix.target_kind.replace('_', ' ')} "
                         f"{tick(fix.target_name)}{change}: {fix.reason}")
    lines.append("\n_Checks made:_\n")
    lines += [f"- {'⛔' if f.blocking else '✓'} {f.check.replace('_', ' ')}: {f.summary}" for f in diagnosis.findings]
    return "\n".join(lines)
