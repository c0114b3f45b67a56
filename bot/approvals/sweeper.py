"""One maintenance pass: expire overdue proposals, settle applies a crash cut off, update their cards.

The runtime calls this at start and then periodically. Settling interrupted applies here (not
only at start) means a replica that died is cleaned up by the ones still running. The card
renderer is injected; by default it is the Slack card module, imported only when a card needs
rendering so `approvals` stays free of Slack at import.
"""

from __future__ import annotations

import logging
from typing import Any

from bot.approvals.service import ApprovalService

log = logging.getLogger(__name__)


async def sweep_expired(service: ApprovalService, slack_client: Any, updater: Any | None = None,
                        after_pass: Any | None = None) -> int:
    """Expire what is due and settle interrupted applies; returns how many proposals changed.

    `after_pass(slack_client)` is an optional extra maintenance step (the runtime passes the
    responder's recovery of answers cut off by a crash)."""
    if updater is None:
        from bot.slack.approval_handlers import update_card as updater
    changed = [*await service.expire_due(), *await service.recover_interrupted()]
    for proposal in changed:
        await updater(slack_client, proposal)
    if after_pass is None:
        from bot.slack.inflight import recover_unfinished_answers

        async def after_pass(client: Any) -> None:
            await recover_unfinished_answers(service.store, client, service.interrupted_after_seconds)
    try:
        await after_pass(slack_client)
    except Exception:
        log.exception("recovering unfinished answers failed")
    return len(changed)
