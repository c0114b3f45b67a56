"""One expiry pass: mark overdue pending proposals expired and update their cards.

The runtime calls this periodically. The card renderer is injected; by default it is the Slack
card module, imported only when a card needs rendering so `approvals` stays free of Slack at import.
"""

from __future__ import annotations

from typing import Any

from bot.approvals.service import ApprovalService


async def sweep_expired(service: ApprovalService, slack_client: Any, updater: Any | None = None) -> int:
    """Expire what is due; returns how many proposals this pass expired."""
    if updater is None:
        from bot.slack.approval_handlers import update_card as updater
    expired = await service.expire_due()
    for proposal in expired:
        await updater(slack_client, proposal)
    return len(expired)
