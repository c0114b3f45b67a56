"""Block Kit for the watcher's incident messages: open (with Snooze / Mute), resolved, and the roll-up.

Blocks stay inside Slack's limits (3,000 characters per section, 75 per button label, 2,000 per
button value); button values carry only the incident key, everything else is read server-side.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from slack_sdk.models.blocks import ActionsBlock, Block, ButtonElement, ContextBlock, MarkdownTextObject, SectionBlock

from bot.watch.incidents import KIND_TITLES, Incident
from bot.watch.render import incident_lines, name

SNOOZE = "watch_snooze"
MUTE = "watch_mute"
UNMUTE = "watch_unmute"
SECTION_MAX = 2900


def _clip(text: str) -> str:
    return text if len(text) <= SECTION_MAX else text[:SECTION_MAX - 1] + "…"


def incident_blocks(incident: Incident, now: datetime, note: str | None = None,
                    resolved: str | None = None, muted: bool = False) -> list[Block]:
    """The incident message: the seed-thread diagnosis, then buttons (or the resolution)."""
    lines = incident_lines(incident, now)
    if resolved:
        head = f":white_check_mark: *Resolved*: {resolved}"
        body = "\n".join(["~" + lines[0].replace("~", "") + "~", *lines[1:]])
    else:
        head = ":rotating_light: *Concurrency incident*"
        body = "\n".join(lines)
    blocks: list[Block] = [SectionBlock(text=MarkdownTextObject(text=_clip(f"{head}\n{body}")))]
    context = [f"incident {name(incident.key)}"]
    if incident.fix is not None and not resolved:
        context.append("the proposed fix is in the thread")
    if note:
        context.append(note)
    blocks.append(ContextBlock(elements=[MarkdownTextObject(text=_clip(" · ".join(context)))]))
    if not resolved:
        value = incident.key[:2000]
        blocks.append(ActionsBlock(block_id="watch_actions", elements=[
            ButtonElement(text="Snooze 1 h", action_id=SNOOZE, value=value),
            ButtonElement(text="Unmute", action_id=UNMUTE, value=value) if muted else
            ButtonElement(text="Mute this object", action_id=MUTE, value=value),
        ]))
    return blocks


def incident_text(incident: Incident, resolved: str | None = None) -> str:
    """Notification fallback: plain, short."""
    prefix = "Resolved: " if resolved else ""
    return f"{prefix}{KIND_TITLES[incident.kind]}: {incident.summary}"[:300]


def rollup_blocks(incidents: list[Incident], hour: str) -> list[Block]:
    """One message for the incidents beyond the hourly post limit."""
    lines = [f"• {KIND_TITLES[i.kind]}: {i.summary}" for i in incidents[:20]]
    more = f"\n…and {len(incidents) - 20} more" if len(incidents) > 20 else ""
    text = (f":bell: *{len(incidents)} more concurrency incident(s) this hour ({hour} UTC)*; the post limit "
            f"was reached, so they are listed here and on the Home tab.\n" + "\n".join(lines) + more)
    return [SectionBlock(text=MarkdownTextObject(text=_clip(text)))]


def plain(blocks: list[Block]) -> list[dict[str, Any]]:
    return [block.to_dict() for block in blocks]
