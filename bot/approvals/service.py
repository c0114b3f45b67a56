"""The proposal state machine: create, decide (approve / reject / edit), expire. The only place that applies.

A decision is checked server-side in this order: does the proposal exist; may this user decide;
compare-and-set pending → approved while unexpired (so exactly one click wins, across threads and
replicas); re-read the live value and compare it with the value the card showed (else: stale, and
a fresh proposal is offered); apply; record applied or failed. Every step, including refusals,
writes an audit row.
"""

from __future__ import annotations

import asyncio
import json
import logging
import uuid
from collections.abc import Callable
from contextlib import AbstractAsyncContextManager
from datetime import datetime, timedelta
from typing import Any, Literal

from pydantic import BaseModel

from bot.approvals.policy import ApprovalPolicy
from bot.prefect_ops.changes import (
    Change,
    ChangeError,
    ChangeTargetMissing,
    Snapshot,
    change_from_json,
    change_to_json,
    nothing_to_do,
)
from bot.redact import error_summary, redact
from bot.settings import Settings
from bot.store import Store
from bot.store import proposals as db
from bot.store.proposals import from_db_time, utcnow

log = logging.getLogger(__name__)

INTERRUPTED = "interrupted by a restart; nothing is retried automatically"

Outcome = Literal["applied", "failed", "stale", "rejected", "edited", "expired", "refused",
                  "not_found", "already_decided", "invalid", "revert_proposed"]


class ProposalRefused(Exception):
    """A proposal cannot be created (read-only mode, nothing to change, missing target)."""


class ProposalView(BaseModel):
    """A proposal as the rest of the bot sees it (cards, tools, CLI)."""

    id: str
    status: str
    version: int
    change: Change
    before: Snapshot
    diff: str
    destructive: bool
    requester: str
    reason: str
    channel: str | None = None
    thread_ts: str | None = None
    message_channel: str | None = None
    message_ts: str | None = None
    created_at: datetime
    expires_at: datetime
    edited_by: str | None = None
    decided_by: str | None = None
    decided_at: datetime | None = None
    decision_note: str | None = None
    error: str | None = None
    superseded_by: str | None = None
    origin: str | None = None  # "model" when the model's tool made it, else a person's request

    @classmethod
    def from_row(cls, row: db.Proposal) -> ProposalView:
        return cls(
            id=row.id, status=row.status, version=row.version, change=change_from_json(row.change_json),
            before=json.loads(row.before_json), diff=row.diff, destructive=bool(row.destructive),
            requester=row.requester, reason=row.reason or "", channel=row.channel, thread_ts=row.thread_ts,
            message_channel=row.message_channel, message_ts=row.message_ts,
            created_at=from_db_time(row.created_at), expires_at=from_db_time(row.expires_at),
            edited_by=row.edited_by, decided_by=row.decided_by, decided_at=from_db_time(row.decided_at),
            decision_note=row.decision_note, error=row.error, superseded_by=row.superseded_by,
            origin=row.origin,
        )


class Decision(BaseModel):
    """What a click led to; `message` is short and safe to show the person who clicked."""

    outcome: Outcome
    message: str
    proposal: ProposalView | None = None
    fresh: ProposalView | None = None  # the re-proposal offered when the old one went stale


class AuditView(BaseModel):
    id: int
    at: datetime
    proposal_id: str | None
    action: str
    actor: str
    requester: str | None
    diff: str | None
    before: str | None
    after: str | None
    result: str | None
    detail: str | None


ClientFactory = Callable[[], AbstractAsyncContextManager[Any]]


def _default_client_factory() -> AbstractAsyncContextManager[Any]:
    from prefect import get_client

    return get_client()


def _normal(snapshot: Snapshot) -> Snapshot:
    return json.loads(json.dumps(snapshot, default=str, sort_keys=True))


def reached_target(change: Change, current: Snapshot) -> bool:
    """Whether Prefect already shows what `change` would make it show (reset cannot be told: False)."""
    action = change.action
    if action == "delete":
        return current.get("exists") is False
    if current.get("exists") is False or action == "reset":
        return False
    if action in ("enable", "disable"):
        return bool(current.get("active")) == (action == "enable")
    if action == "clear":
        return current.get("limit") is None
    wanted = {f: getattr(change, f, None) for f in ("limit", "collision_strategy", "grace_period_seconds",
                                                     "slot_decay_per_second")}
    return all(current.get(f) == v for f, v in wanted.items() if v is not None)


class ApprovalService:
    """Creates proposals and takes decisions on them; the store makes each decision happen once."""

    def __init__(self, store: Store, policy: ApprovalPolicy, ttl_seconds: int = 24 * 3600,
                 client_factory: ClientFactory = _default_client_factory,
                 clock: Callable[[], datetime] = utcnow, interrupted_after_seconds: float = 300.0,
                 max_proposals_per_answer: int = 3) -> None:
        self.store = store
        self.max_proposals_per_answer = max_proposals_per_answer
        self.interrupted_after_seconds = interrupted_after_seconds
        self.policy = policy
        self.ttl = timedelta(seconds=ttl_seconds)
        self.client_factory = client_factory
        self.clock = clock

    @classmethod
    def from_settings(cls, settings: Settings, store: Store,
                      slack_client: Any | None = None) -> ApprovalService:
        """The service as the app runs it: policy from settings, approver group read through Slack."""
        policy = ApprovalPolicy(settings, slack_client)
        return cls(store, policy, ttl_seconds=settings.bot_proposal_ttl_seconds,
                   interrupted_after_seconds=settings.bot_interrupted_after_seconds,
                   max_proposals_per_answer=settings.bot_max_proposals_per_answer)

    # --- small store helpers (sync SQLAlchemy off the event loop) ----------------------------
    async def _db(self, func: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        return await asyncio.to_thread(func, self.store.sessions, *args, **kwargs)

    async def get(self, proposal_id: str) -> ProposalView | None:
        row = await self._db(db.get_proposal, proposal_id) if proposal_id else None
        return ProposalView.from_row(row) if row is not None else None

    async def _audit(self, action: str, actor: str, proposal: ProposalView | None = None,
                     result: str | None = None, detail: str | None = None,
                     after: Snapshot | str | None = None) -> None:
        entry = db.AuditEntry(
            at=db.to_db_time(self.clock()), proposal_id=proposal.id if proposal else None, action=action,
            actor=actor, requester=proposal.requester if proposal else None,
            diff=proposal.diff if proposal else None,
            before_json=json.dumps(proposal.before, default=str) if proposal else None,
            after_json=after if isinstance(after, str) or after is None else json.dumps(after, default=str),
            result=result, detail=redact(detail or "")[:2000] or None,  # Prefect errors may carry secrets
        )
        await self._db(db.add_audit, entry)

    # --- creating -----------------------------------------------------------------------------
    async def create_proposal(self, change: Change, requester: str, reason: str = "",
                              channel: str | None = None, thread_ts: str | None = None,
                              origin: str = "person") -> ProposalView:
        """Pin the change to the live object, capture its value and store a pending proposal.

        Raises ProposalRefused. The stored change carries the object's id, so Approve writes to the
        object the card showed even if another one takes its name later."""
        if self.policy.read_only:
            raise ProposalRefused("the bot is in read-only mode, so it does not propose limit changes")
        try:
            async with self.client_factory() as client:
                unsupported = await change.unsupported_here(client)
                if unsupported:
                    raise ProposalRefused(unsupported)
                change = await change.resolve(client)
                before = _normal(await change.read(client))
        except ChangeTargetMissing as exc:
            raise ProposalRefused(str(exc)) from exc
        why_not = nothing_to_do(change, before)
        if why_not:
            raise ProposalRefused(why_not)
        return await self._insert(change, before, requester, reason, channel, thread_ts, origin)

    async def _insert(self, change: Change, before: Snapshot, requester: str, reason: str,
                      channel: str | None, thread_ts: str | None, origin: str | None = None) -> ProposalView:
        now = self.clock()
        row = db.Proposal(
            id=uuid.uuid4().hex, status=db.PENDING, version=1, change_json=change_to_json(change),
            before_json=json.dumps(before, sort_keys=True), diff=change.diff(before),
            destructive=int(change.destructive), requester=requester, reason=reason[:2000],
            channel=channel, thread_ts=thread_ts, created_at=db.to_db_time(now),
            expires_at=db.to_db_time(now + self.ttl), origin=origin,
        )
        await self._db(db.insert_proposal, row)
        view = ProposalView.from_row(row)
        await self._audit("proposed", requester, view, detail=reason)
        return view

    async def attach_message(self, proposal_id: str, channel: str, ts: str) -> None:
        """Remember where the card was posted, so later decisions and the sweep can update it."""
        await self._db(db.set_message, proposal_id, channel, ts)

    async def unposted(self, channel: str | None, thread_ts: str | None) -> list[ProposalView]:
        """Pending proposals of a thread whose card has not been posted yet."""
        rows = await self._db(db.unposted_in_thread, channel, thread_ts)
        return [ProposalView.from_row(r) for r in rows]

    # --- deciding -----------------------------------------------------------------------------
    async def decide(self, proposal_id: str, user: str, action: Literal["approve", "reject", "edit"],
                     value: str | None = None, note: str | None = None, guest: bool = False,
                     version: int | None = None) -> Decision:
        if action == "approve":
            return await self.approve(proposal_id, user, guest=guest, version=version)
        if action == "reject":
            return await self.reject(proposal_id, user, note, guest=guest)
        return await self.edit(proposal_id, user, value or "", guest=guest, version=version)

    async def may_decide(self, proposal_id: str, user: str, what: str = "edit",
                         guest: bool = False) -> tuple[ProposalView | None, Decision | None]:
        """Before opening an Edit or Reject modal: the proposal, or the (audited) refusal."""
        return await self._gate(proposal_id, user, what, second_person_applies=False, guest=guest)

    async def _gate(self, proposal_id: str, user: str, what: str, second_person_applies: bool,
                    guest: bool = False) -> tuple[ProposalView | None, Decision | None]:
        """Existence, permission and pending checks shared by all decisions (each refusal audited)."""
        proposal = await self.get(proposal_id)
        if proposal is None:
            await self._audit("refused", user, None, result="not_found",
                              detail=f"{what} of unknown proposal id {proposal_id[:60]!r}")
            return None, Decision(outcome="not_found",
                                  message="That proposal does not exist, so nothing changed.")
        editors = await self.editors(proposal.id) if second_person_applies else set()
        refusal = await self.policy.refusal(user, proposal.requester, proposal.destructive, guest=guest,
                                            editors=editors)
        if refusal is not None and (refusal.code != "second_person" or second_person_applies):
            await self._audit("refused", user, proposal, result=refusal.code,
                              detail=f"{what}: {refusal.message}")
            return proposal, Decision(outcome="refused", message=refusal.message, proposal=proposal)
        if proposal.status == db.PENDING and proposal.expires_at <= self.clock():
            return proposal, await self._expire(proposal, user, what)
        if proposal.status != db.PENDING:
            await self._audit("refused", user, proposal, result="already_decided",
                              detail=f"{what}: proposal is {proposal.status}")
            return proposal, Decision(outcome="already_decided", proposal=proposal,
                                      message=f"This proposal is already {proposal.status}.")
        return proposal, None

    async def _expire(self, proposal: ProposalView, user: str, what: str) -> Decision:
        if await self._db(db.transition, proposal.id, [db.PENDING], db.EXPIRED, decided_at=self.clock()):
            await self._audit("expired", "system", proposal, result="expired")
        await self._audit("refused", user, proposal, result="expired", detail=f"{what} after expiry")
        fresh = await self.get(proposal.id)
        return Decision(outcome="expired", proposal=fresh,
                        message="This proposal has expired, so nothing changed. Ask again for a fresh one.")

    async def editors(self, proposal_id: str) -> set[str]:
        """Everyone who ever edited the proposal's value (the audit keeps each edit, not just the last)."""
        rows = await self._db(db.list_audit, proposal_id=proposal_id, action="edited", limit=1000)
        return {row.actor for row in rows}

    async def approve(self, proposal_id: str, user: str, guest: bool = False,
                      version: int | None = None) -> Decision:
        """Apply the proposal if `user` may; `version` is the one the clicker saw (None: the current one)."""
        proposal, refused = await self._gate(proposal_id, user, "approve", second_person_applies=True,
                                             guest=guest)
        if refused is not None:
            return refused
        assert proposal is not None
        if version is not None and version != proposal.version:
            return await self._outdated(proposal, user, "approve", version)
        now = self.clock()
        won = await self._db(db.transition, proposal.id, [db.PENDING], db.APPROVED, not_expired_at=now,
                             version=proposal.version, decided_by=user, decided_at=now)
        if not won:
            return await self._lost_race(proposal.id, user, "approve")
        return await self._apply(await self.get(proposal.id), user)

    async def _outdated(self, proposal: ProposalView, user: str, what: str, seen: int) -> Decision:
        """A click on a card version that was edited since: refused, the card is to be redrawn."""
        await self._audit("refused", user, proposal, result="changed",
                          detail=f"{what} of version {seen}; the proposal is at version {proposal.version}")
        return Decision(outcome="already_decided", proposal=proposal,
                        message=f"The proposal was edited since you saw it (now: {proposal.diff}); nothing "
                                "changed. Check the updated card and decide again.")

    async def _lost_race(self, proposal_id: str, user: str, what: str) -> Decision:
        current = await self.get(proposal_id)
        assert current is not None
        if current.status == db.PENDING and current.expires_at <= self.clock():
            return await self._expire(current, user, what)
        if current.status == db.PENDING:  # edited between our read and our write: the card changed
            await self._audit("refused", user, current, result="changed",
                              detail=f"{what} of an outdated card")
            return Decision(outcome="already_decided", proposal=current,
                            message="The proposal was edited just now; check the card and approve again.")
        await self._audit("refused", user, current, result="already_decided",
                          detail=f"{what}: proposal is {current.status}")
        return Decision(outcome="already_decided", proposal=current,
                        message=f"This proposal is already {current.status}.")

    async def _apply(self, proposal: ProposalView, user: str) -> Decision:
        change = proposal.change
        try:
            async with self.client_factory() as client:
                try:
                    current = _normal(await change.read(client))
                except ChangeTargetMissing as exc:
                    return await self._stale(proposal, user, str(exc), None)
                if current != _normal(proposal.before):
                    return await self._stale(proposal, user, change.diff(current), current)
                await change.apply(client)
                after = _normal(await change.read(client)) if change.action != "delete" else {"deleted": True}
        except Exception as exc:  # Prefect said no, or is unreachable: record it, never raise into Slack
            error = error_summary(exc)  # shown on the card and in the audit log: a summary, never the body
            log.warning("applying proposal %s failed: %s", proposal.id, error)
            if await self._db(db.transition, proposal.id, [db.APPROVED], db.FAILED, error=error):
                await self._audit("failed", user, proposal, result="failed", detail=error)
                return Decision(outcome="failed", proposal=await self.get(proposal.id),
                                message=f"Approved, but Prefect refused the change: {error}")
            return await self._settled_meanwhile(proposal.id)
        # The sweeper may have marked this apply interrupted (failed) while Prefect was slow; we are the
        # only applier (we won the click), so our success is the truth: failed → applied, with its audit row.
        seen = await self.get(proposal.id)
        late = seen is not None and seen.status == db.FAILED
        if not await self._db(db.transition, proposal.id, [db.APPROVED, db.FAILED], db.APPLIED, error=None):
            return await self._settled_meanwhile(proposal.id)
        await self._audit("applied", user, proposal, result="applied", after=after,
                          detail="applied after the sweeper had marked it interrupted" if late else None)
        note = proposal.change.follow_up()
        return Decision(outcome="applied", proposal=await self.get(proposal.id),
                        message=f"Applied: {proposal.diff}" + (f"\n{note}" if note else ""))

    async def _settled_meanwhile(self, proposal_id: str) -> Decision:
        """Another path (the sweeper) recorded the result first; report what the store now says."""
        current = await self.get(proposal_id)
        status = current.status if current else "unknown"
        return Decision(outcome="applied" if status == db.APPLIED else "failed", proposal=current,
                        message=f"The change was already recorded as {status}.")

    async def _stale(self, proposal: ProposalView, user: str, now_text: str,
                     current: Snapshot | None) -> Decision:
        note = f"The value changed since this was proposed (now: {now_text}); nothing was applied."
        fresh: ProposalView | None = None
        if current is not None and nothing_to_do(proposal.change, current) is None:
            reason = f"Re-proposed after proposal {proposal.id[:8]} went stale. {proposal.reason}"
            fresh = await self._insert(proposal.change, current, proposal.requester, reason,
                                       proposal.channel, proposal.thread_ts, proposal.origin)
        await self._db(db.transition, proposal.id, [db.APPROVED], db.STALE, decision_note=note,
                       superseded_by=fresh.id if fresh else None)
        await self._audit("stale", user, proposal, result="stale", detail=note, after=current)
        return Decision(outcome="stale", proposal=await self.get(proposal.id), fresh=fresh, message=note)

    async def reject(self, proposal_id: str, user: str, note: str | None = None, guest: bool = False) -> Decision:
        proposal, refused = await self._gate(proposal_id, user, "reject", second_person_applies=False,
                                             guest=guest)
        if refused is not None:
            return refused
        assert proposal is not None
        now = self.clock()
        won = await self._db(db.transition, proposal.id, [db.PENDING], db.REJECTED, not_expired_at=now,
                             decided_by=user, decided_at=now, decision_note=redact(note or "")[:1000] or None)
        if not won:
            return await self._lost_race(proposal.id, user, "reject")
        await self._audit("rejected", user, proposal, result="rejected", detail=note)
        return Decision(outcome="rejected", proposal=await self.get(proposal.id),
                        message="Rejected; nothing changed.")

    async def edit(self, proposal_id: str, user: str, value: str, guest: bool = False,
                   version: int | None = None) -> Decision:
        """Replace the proposed limit with a person's value; the proposal stays pending for approval.

        `version` is the one the Edit modal was opened on: an edit over someone else's newer edit is
        refused rather than silently replacing a value the editor never saw."""
        proposal, refused = await self._gate(proposal_id, user, "edit", second_person_applies=False,
                                             guest=guest)
        if refused is not None:
            return refused
        assert proposal is not None
        if version is not None and version != proposal.version:
            return await self._outdated(proposal, user, "edit", version)
        try:
            change = proposal.change.with_limit(value)
        except ChangeError as exc:
            return Decision(outcome="invalid", proposal=proposal, message=str(exc))
        diff = change.diff(proposal.before)
        if not await self._db(db.replace_pending_change, proposal.id, proposal.version,
                              change_to_json(change), diff, user, int(change.destructive)):
            return await self._lost_race(proposal.id, user, "edit")
        await self._audit("edited", user, proposal, result="edited", detail=f"now: {diff}",
                          after=change_to_json(change))
        return Decision(outcome="edited", proposal=await self.get(proposal.id), message=f"Edited: {diff}")

    async def propose_revert(self, proposal_id: str, user: str, guest: bool = False) -> Decision:
        """Propose the inverse of an applied proposal, under the same rules; the audit links the two."""
        from bot.approvals.revert import inverse_change

        original = await self.get(proposal_id)
        if original is None or original.status != db.APPLIED:
            return Decision(outcome="invalid", proposal=original,
                            message="Only an applied change can be reverted.")
        if self.policy.read_only or guest:  # proposing is open to the workspace, as asking is
            code = "read_only" if self.policy.read_only else "guest"
            await self._audit("refused", user, original, result=code, detail="revert")
            return Decision(outcome="refused", proposal=original,
                            message="Only people in this workspace can propose a revert, and not in read-only mode.")
        inverse = inverse_change(original.change, original.before)
        if inverse is None:
            return Decision(outcome="invalid", proposal=original, message="This change has no inverse to propose.")
        try:
            fresh = await self.create_proposal(inverse, user, reason=f"Revert of proposal {original.id}",
                                               channel=original.channel, thread_ts=original.thread_ts)
        except ProposalRefused as exc:
            return Decision(outcome="invalid", proposal=original, message=f"No revert proposed: {exc}")
        await self._audit("revert_proposed", user, original, detail=f"revert proposal {fresh.id}")
        return Decision(outcome="revert_proposed", proposal=original, fresh=fresh,
                        message=f"Revert proposed: {fresh.diff}")

    # --- recovery after a crash ---------------------------------------------------------------
    async def recover_interrupted(self, older_than_seconds: float | None = None) -> list[ProposalView]:
        """Settle proposals left `approved` by a process that died between winning the click and
        recording the result. Prefect is re-read, never written: if it already shows the target
        the proposal is marked applied, otherwise failed. Proposals decided less than
        `older_than_seconds` ago are left alone (another replica may still be applying them).
        Returns the proposals this call settled; Prefect errors leave them for the next pass."""
        if older_than_seconds is None:
            older_than_seconds = self.interrupted_after_seconds
        cutoff = self.clock() - timedelta(seconds=older_than_seconds)
        settled: list[ProposalView] = []
        for proposal_id in await self._db(db.stuck_approved, cutoff):
            proposal = await self.get(proposal_id)
            if proposal is None:
                continue
            try:
                current = await self._read_now(proposal.change)
            except Exception as exc:  # Prefect unreachable: try again on the next sweep
                log.warning("could not re-read interrupted proposal %s: %s", proposal.id, type(exc).__name__)
                continue
            actor = proposal.decided_by or "system"
            if reached_target(proposal.change, current) and current != _normal(proposal.before):
                if await self._db(db.transition, proposal.id, [db.APPROVED], db.APPLIED,
                                  decision_note="confirmed after a restart"):
                    await self._audit("applied", actor, proposal, result="applied", after=current,
                                      detail="the apply was interrupted by a restart; Prefect shows the change")
            else:
                shown = "Prefect still shows the old value" if current == _normal(proposal.before) else (
                    f"Prefect now shows {json.dumps(current, default=str)}")
                error = f"{INTERRUPTED} ({shown})"
                if await self._db(db.transition, proposal.id, [db.APPROVED], db.FAILED, error=error):
                    await self._audit("failed", actor, proposal, result="failed", detail=error, after=current)
            view = await self.get(proposal.id)
            if view is not None and view.status != db.APPROVED:
                settled.append(view)
        return settled

    async def _read_now(self, change: Change) -> Snapshot:
        async with self.client_factory() as client:
            try:
                return _normal(await change.read(client))
            except ChangeTargetMissing:
                return {"exists": False}

    # --- expiry and audit -----------------------------------------------------------------------
    async def expire_due(self) -> list[ProposalView]:
        """Mark every pending proposal past its expiry as expired; returns those this call expired."""
        now = self.clock()
        expired: list[ProposalView] = []
        for proposal_id in await self._db(db.due_for_expiry, now):
            if await self._db(db.transition, proposal_id, [db.PENDING], db.EXPIRED, decided_at=now):
                view = await self.get(proposal_id)
                await self._audit("expired", "system", view, result="expired")
                expired.append(view)
        return expired

    async def pending(self, limit: int = 20) -> list[ProposalView]:
        """Proposals still waiting for a decision (Home tab, the terminal's /pending)."""
        rows = await self._db(db.pending_rows, self.clock(), limit)
        return [ProposalView.from_row(row) for row in rows]

    async def audit_log(self, **filters: Any) -> list[AuditView]:
        rows = await self._db(db.list_audit, **filters)
        return [AuditView(id=r.id, at=from_db_time(r.at), proposal_id=r.proposal_id, action=r.action,
                          actor=r.actor, requester=r.requester, diff=r.diff, before=r.before_json,
                          after=r.after_json, result=r.result, detail=r.detail) for r in rows]
