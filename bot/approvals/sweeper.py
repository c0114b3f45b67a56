"""One maintenance pass: expire overdue proposals, settle applies a crash cut off, update their cards.

The runtime calls this at start and then periodically. Settling interrupted applies here (not
only at start) means a replica that died is cleaned up by the ones still running. The card
updater and any extra maintenance step are injected by the runtime, so `approvals` never
imports Slack.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Any

from bot.approvals.service import ApprovalService, ProposalView

CardUpdater = Callable[[Any, ProposalView], Awaitable[None]]

log = logging.getLogger(__name__)


async def sweep_expired(service: ApprovalService, slack_client: Any, updater: CardUpdater,
                        after_pass: Callable[[Any], Awaitable[None]] | None = None) -> int:
    """Expire what is due and settle interrupted applies; returns how many proposals changed.

    `updater(slack_client, proposal)` redraws a card; `after_pass(slack_client)` is an optional extra
    maintenance step (the runtime passes the recovery of answers cut off by a crash)."""
    changed = [*await service.expire_due(), *await service.recover_interrupted()]
    for proposal in changed:
        await updater(slack_client, proposal)
    if after_pass is not None:
        try:
            await after_pass(slack_client)
        except Exception:
            log.exception("the extra maintenance step failed")
    return len(changed)
