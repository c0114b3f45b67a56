"""The version check inside the approve transition's database write, raced (issue 23, point 9).

An edit lands between approve's read of the proposal and its conditional write (another replica, or
the requester in the modal). The approver saw version 1; the row is at version 2 with another value.
The write must lose: nothing is applied, the proposal stays pending at version 2, and the approver is
told the card changed. The edit is made through the store, by the service's own injected clock at
the moment approve asks the time between its read and its write: no code under test is patched.
"""

from __future__ import annotations

import uuid
from datetime import datetime

from bot.approvals.policy import ApprovalPolicy
from bot.approvals.service import ApprovalService
from bot.prefect_ops.changes import WorkPoolLimitChange, change_to_json
from bot.settings import load_settings
from bot.store import Store
from bot.store import proposals as db
from tests.approvals_support import make_pool, pool_limit


class EditingClock:
    """Real time; armed, its next reading also commits an edit (as another replica would)."""

    def __init__(self) -> None:
        self.edit: tuple | None = None
        self.edited = False

    def __call__(self) -> datetime:
        from bot.prefect_ops.runs import utcnow

        if self.edit is not None and not self.edited:
            sessions, proposal_id, change = self.edit
            self.edited = db.replace_pending_change(sessions, proposal_id, 1, change_to_json(change),
                                                    f"edited to {change.limit}", "UEDITOR")
        return utcnow()


async def test_an_edit_between_read_and_write_makes_approve_lose(prefect_api_url, tmp_path):
    pool = await make_pool(limit=2)
    clock = EditingClock()
    store = Store.open(f"sqlite:///{tmp_path / 'race.db'}")
    cfg = load_settings(bot_approver_ids=["UAPPROVER"])
    service = ApprovalService(store, ApprovalPolicy(cfg), ttl_seconds=3600, clock=clock)
    proposal = await service.create_proposal(WorkPoolLimitChange(action="set", pool=pool, limit=5), "UASKER",
                                             "more room", "C1", f"{uuid.uuid4().hex}")
    assert proposal.version == 1

    clock.edit = (store.sessions, proposal.id, WorkPoolLimitChange(action="set", pool=pool, limit=9))
    decision = await service.approve(proposal.id, "UAPPROVER", version=1)

    assert clock.edited, "the edit did not land between the read and the write"
    assert decision.outcome == "already_decided" and "edited" in decision.message
    current = await service.get(proposal.id)
    assert current.status == "pending" and current.version == 2 and current.change.limit == 9
    assert await pool_limit(pool) == 2  # read back from Prefect: neither 5 nor 9 was applied
