"""Proposals answered in the terminal: approve, edit or reject through the same approvals service.

The service does every check (policy, pending and unexpired, live value unchanged) and writes the
audit log, exactly as for a Slack click; this module only asks the person and shows the outcome.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from bot.terminal.render import TerminalRenderer

__all__ = ["ProposalPrompt", "CHOICES", "live_what_if"]

log = logging.getLogger(__name__)
WHAT_IF_SECONDS = 10

CHOICES = "[a]pprove, [e]dit value, [r]eject, or Enter to leave it pending"
ReadLine = Callable[[str], Awaitable[str | None]]


async def live_what_if(approvals: Any, proposal: Any) -> str | None:
    """The what-if line a Slack card shows, read from live Prefect; None when Prefect cannot say in time."""
    from bot.prefect_ops.whatif import what_if

    try:
        async with approvals.client_factory() as client:
            return await asyncio.wait_for(what_if(client, proposal.change), timeout=WHAT_IF_SECONDS)
    except Exception as exc:  # the proposal is shown either way
        log.info("no what-if line for %s: %s", proposal.id, type(exc).__name__)
        return None


class ProposalPrompt:
    """Shows each new proposal and takes the person's decision on it."""

    def __init__(self, approvals: Any, renderer: TerminalRenderer, read_line: ReadLine, user_id: str) -> None:
        self.approvals = approvals
        self.renderer = renderer
        self.read_line = read_line
        self.user_id = user_id

    async def handle(self, proposal_ids: list[str]) -> None:
        for proposal_id in proposal_ids:
            await self._one(proposal_id)

    async def _one(self, proposal_id: str) -> None:
        proposal = await self.approvals.get(proposal_id)
        while proposal is not None and proposal.status == "pending":
            self.renderer.proposal(proposal.diff, proposal.id, proposal.reason, proposal.destructive,
                                   await live_what_if(self.approvals, proposal))
            answer = await self.read_line(f"{CHOICES}: ")
            choice = (answer or "").strip().lower()
            if choice in ("a", "approve", "y", "yes"):
                decision = await self.approvals.approve(proposal.id, self.user_id, version=proposal.version)
            elif choice in ("r", "reject", "n", "no"):
                note = await self.read_line("Reason (optional): ")
                decision = await self.approvals.reject(proposal.id, self.user_id, (note or "").strip() or None)
            elif choice in ("e", "edit"):
                value = await self.read_line("New limit: ")
                decision = await self.approvals.edit(proposal.id, self.user_id, (value or "").strip(),
                                                     version=proposal.version)
            else:
                self.renderer.notice(f"Left pending (proposal {proposal.id[:8]}); approvers can still decide in "
                                     "Slack or later here.")
                return
            self._show(decision)
            if decision.fresh is not None:  # went stale: the service re-proposed with the live value
                proposal = decision.fresh
            elif decision.outcome in ("edited", "invalid"):
                proposal = decision.proposal
            else:
                return

    def _show(self, decision: Any) -> None:
        ok = decision.outcome in ("applied", "edited", "rejected")
        self.renderer.notice(decision.message, style="bold green" if ok else "bold yellow")
