"""ApprovalService against the real Prefect server and a SQLite (or Postgres) store.

Decisions go through the service exactly as the Slack handlers call it; "restart" and "replica"
mean a second ApprovalService over the same database.
"""

from __future__ import annotations

import asyncio
import threading
from datetime import timedelta

import pytest
from prefect import get_client
from prefect.client.schemas.actions import WorkPoolUpdate
from slack_sdk.web.async_client import AsyncWebClient

from bot.approvals.policy import ApprovalPolicy
from bot.approvals.service import ApprovalService, ProposalRefused
from bot.approvals.sweeper import sweep_expired
from bot.approvals.tools import proposal_tools
from bot.prefect_ops.changes import GlobalLimitChange, TagLimitChange, WorkPoolLimitChange
from bot.settings import load_settings
from bot.store import Store
from bot.store.proposals import utcnow
from tests.approvals_support import make_pool, make_service, pool_limit, unique
from tests.fakes.prefect_server import create_postgres_database, drop_postgres_database, postgres_available


@pytest.fixture
def db_url(tmp_path) -> str:
    return f"sqlite:///{tmp_path / 'bot.db'}"


@pytest.fixture
def service(db_url) -> ApprovalService:
    return make_service(db_url)


async def _actions(service: ApprovalService, proposal_id: str) -> list[str]:
    rows = await service.audit_log(proposal_id=proposal_id)
    return [r.action for r in reversed(rows)]


async def test_propose_then_approve_applies_and_audits(prefect_server, service):
    pool = await make_pool(limit=3)
    [propose] = proposal_tools(service, "UASKER", "C1", "111.1")
    result = await propose(kind="work_pool_limit", action="set", name=pool, limit=5,
                           reason="nightly runs pile up")
    assert result["ok"] and result["diff"] == f"work pool `{pool}`: limit 3 → 5"
    assert await pool_limit(pool) == 3, "proposing must not change Prefect"
    proposal = await service.get(result["proposal_id"])
    assert proposal.status == "pending" and proposal.before == {"limit": 3}
    assert [p.id for p in await service.unposted("C1", "111.1")] == [proposal.id]

    decision = await service.approve(proposal.id, "UAPPROVER")
    assert decision.outcome == "applied", decision.message
    assert await pool_limit(pool) == 5
    assert decision.proposal.status == "applied" and decision.proposal.decided_by == "UAPPROVER"
    assert await _actions(service, proposal.id) == ["proposed", "applied"]
    applied = (await service.audit_log(proposal_id=proposal.id, action="applied"))[0]
    assert applied.requester == "UASKER" and applied.actor == "UAPPROVER" and '"limit": 5' in applied.after


async def test_tool_reports_errors_instead_of_raising(prefect_server, service):
    [propose] = proposal_tools(service, "UASKER", "C1", "1.1")
    missing = await propose(kind="work_pool_limit", action="set", name=unique("nope"), limit=1, reason="x")
    assert missing == {"ok": False, "error": missing["error"]} and "no work pool" in missing["error"]
    bad = await propose(kind="deployment_limit", action="set", name="no-slash", limit=1, reason="x")
    assert not bad["ok"] and "flow-name/deployment-name" in bad["error"]
    pool = await make_pool(limit=2)
    same = await propose(kind="work_pool_limit", action="set", name=pool, limit=2, reason="x")
    assert not same["ok"] and "already has limit 2" in same["error"]


async def test_non_approver_is_refused_and_audited(prefect_server, service):
    pool = await make_pool(limit=1)
    proposal = await service.create_proposal(WorkPoolLimitChange(action="set", pool=pool, limit=2), "UASKER")
    decision = await service.approve(proposal.id, "USTRANGER")
    assert decision.outcome == "refused" and "not an approver" in decision.message
    assert await pool_limit(pool) == 1
    assert (await service.get(proposal.id)).status == "pending"
    refused = await service.audit_log(proposal_id=proposal.id, action="refused")
    assert refused[0].actor == "USTRANGER" and refused[0].result == "not_approver"
    assert (await service.approve(proposal.id, "UAPPROVER")).outcome == "applied"


async def test_reject_leaves_the_value(prefect_server, service):
    pool = await make_pool(limit=1)
    proposal = await service.create_proposal(WorkPoolLimitChange(action="clear", pool=pool), "UASKER")
    decision = await service.reject(proposal.id, "UAPPROVER", "not during the migration")
    assert decision.outcome == "rejected" and decision.proposal.decision_note == "not during the migration"
    assert await pool_limit(pool) == 1
    assert (await service.approve(proposal.id, "UAPPROVER")).outcome == "already_decided"
    assert await pool_limit(pool) == 1


async def test_edit_then_approve_applies_the_edited_value(prefect_server, service):
    pool = await make_pool(limit=1)
    proposal = await service.create_proposal(WorkPoolLimitChange(action="set", pool=pool, limit=2), "UASKER")
    assert (await service.edit(proposal.id, "UAPPROVER", "abc")).outcome == "invalid"
    edited = await service.edit(proposal.id, "UAPPROVER", "7")
    assert edited.outcome == "edited" and edited.proposal.diff == f"work pool `{pool}`: limit 1 → 7"
    assert edited.proposal.version == 2 and edited.proposal.edited_by == "UAPPROVER"
    assert await pool_limit(pool) == 1
    assert (await service.approve(proposal.id, "UOTHER")).outcome == "applied"
    assert await pool_limit(pool) == 7
    assert await _actions(service, proposal.id) == ["proposed", "edited", "applied"]


async def test_stale_value_is_not_applied_and_a_fresh_proposal_is_offered(prefect_server, service):
    pool = await make_pool(limit=1)
    proposal = await service.create_proposal(WorkPoolLimitChange(action="set", pool=pool, limit=4), "UASKER",
                                             "more room", "C1", "5.5")
    async with get_client() as client:  # someone changes the pool between proposal and click
        await client.update_work_pool(pool, WorkPoolUpdate(concurrency_limit=2))
    decision = await service.approve(proposal.id, "UAPPROVER")
    assert decision.outcome == "stale"
    assert await pool_limit(pool) == 2
    assert "changed since" in decision.proposal.decision_note and "limit 2 → 4" in decision.proposal.decision_note
    fresh = decision.fresh
    assert fresh is not None and fresh.status == "pending" and fresh.before == {"limit": 2}
    assert fresh.diff == f"work pool `{pool}`: limit 2 → 4" and decision.proposal.superseded_by == fresh.id
    assert (fresh.channel, fresh.thread_ts, fresh.requester) == ("C1", "5.5", "UASKER")
    assert (await service.approve(fresh.id, "UAPPROVER")).outcome == "applied"
    assert await pool_limit(pool) == 4


async def test_deleted_target_makes_the_proposal_stale(prefect_server, service):
    tag = unique("tag")
    async with get_client() as client:
        await client.create_concurrency_limit(tag=tag, concurrency_limit=2)
    proposal = await service.create_proposal(TagLimitChange(action="reset", tag=tag), "UASKER")
    async with get_client() as client:
        await client.delete_concurrency_limit_by_tag(tag)
    decision = await service.approve(proposal.id, "UAPPROVER")
    assert decision.outcome == "stale" and decision.fresh is None


async def test_failed_apply_is_recorded_with_the_error(prefect_server, db_url):
    pool = await make_pool(limit=1)

    class Refusing:  # a Prefect client whose writes fail, as a server-side 4xx would
        def __init__(self, real):
            self.real = real

        def __getattr__(self, name):
            return getattr(self.real, name)

        async def request(self, method, path, *args, **kwargs):  # the pool write goes out as a PATCH
            if method == "PATCH":
                raise RuntimeError("422 Unprocessable Entity")
            return await self.real.request(method, path, *args, **kwargs)

    class Factory:
        async def __aenter__(self):
            self.cm = get_client()
            return Refusing(await self.cm.__aenter__())

        async def __aexit__(self, *exc):
            return await self.cm.__aexit__(*exc)

    cfg = load_settings(bot_approver_ids=["UAPPROVER"])
    service = ApprovalService(Store.open(db_url), ApprovalPolicy(cfg), client_factory=Factory)
    proposal = await service.create_proposal(WorkPoolLimitChange(action="set", pool=pool, limit=3), "UASKER")
    decision = await service.approve(proposal.id, "UAPPROVER")
    assert decision.outcome == "failed" and "422" in decision.proposal.error
    assert await _actions(service, proposal.id) == ["proposed", "failed"]
    assert await pool_limit(pool) == 1


async def test_expired_proposals_are_refused_and_swept(prefect_server, db_url):
    pool = await make_pool(limit=1)
    service = make_service(db_url)
    first = await service.create_proposal(WorkPoolLimitChange(action="set", pool=pool, limit=2), "UASKER")
    second = await service.create_proposal(WorkPoolLimitChange(action="set", pool=pool, limit=3), "UASKER")
    later = make_service(db_url)
    later.clock = lambda: utcnow() + timedelta(hours=25)
    decision = await later.approve(first.id, "UAPPROVER")
    assert decision.outcome == "expired" and decision.proposal.status == "expired"
    assert await pool_limit(pool) == 1
    updated: list[str] = []

    async def record(_client, proposal):
        updated.append(proposal.id)

    assert await sweep_expired(later, None, updater=record) == 1
    assert updated == [second.id]
    assert await sweep_expired(later, None, updater=record) == 0
    assert (await later.approve(second.id, "UAPPROVER")).outcome == "already_decided"


async def test_unknown_proposal_id_is_refused_and_audited(service):
    decision = await service.approve("forged-id-0000", "UAPPROVER")
    assert decision.outcome == "not_found"
    rows = await service.audit_log(action="refused")
    assert rows[0].result == "not_found" and "forged-id-0000" in rows[0].detail


async def test_restart_keeps_pending_proposals(prefect_server, db_url):
    pool = await make_pool(limit=1)
    before = make_service(db_url)
    proposal = await before.create_proposal(WorkPoolLimitChange(action="set", pool=pool, limit=6), "UASKER")
    before.store.close()
    after = make_service(db_url)
    assert (await after.approve(proposal.id, "UAPPROVER")).outcome == "applied"
    assert await pool_limit(pool) == 6


async def test_second_person_rules(prefect_server, db_url):
    pool = await make_pool(limit=1)
    own = make_service(db_url)  # default: an approver may approve their own proposal
    mine = await own.create_proposal(WorkPoolLimitChange(action="set", pool=pool, limit=2), "UAPPROVER")
    assert (await own.approve(mine.id, "UAPPROVER")).outcome == "applied"

    strict = make_service(db_url, bot_destructive_require_second_person=True)
    change = WorkPoolLimitChange(action="clear", pool=pool)
    mine = await strict.create_proposal(change, "UAPPROVER")
    refused = await strict.approve(mine.id, "UAPPROVER")
    assert refused.outcome == "refused" and "second person" in refused.message
    assert await pool_limit(pool) == 2
    assert (await strict.approve(mine.id, "UOTHER")).outcome == "applied"

    everyone = make_service(db_url, bot_approval_require_second_person=True)
    mine = await everyone.create_proposal(WorkPoolLimitChange(action="set", pool=pool, limit=3), "UAPPROVER")
    assert (await everyone.approve(mine.id, "UAPPROVER")).outcome == "refused"
    assert (await everyone.reject(mine.id, "UAPPROVER", "withdrawn")).outcome == "rejected"


async def test_read_only_mode_refuses_proposals_and_approvals(prefect_server, db_url):
    pool = await make_pool(limit=1)
    normal = make_service(db_url)
    proposal = await normal.create_proposal(WorkPoolLimitChange(action="set", pool=pool, limit=2), "UASKER")
    read_only = make_service(db_url, bot_read_only=True)
    with pytest.raises(ProposalRefused, match="read-only"):
        await read_only.create_proposal(WorkPoolLimitChange(action="set", pool=pool, limit=3), "UASKER")
    assert (await read_only.approve(proposal.id, "UAPPROVER")).outcome == "refused"
    assert await pool_limit(pool) == 1


async def test_approver_group_is_read_from_slack_and_cached(fresh_slack):
    fresh_slack.usergroup_members["S123"] = ["UGROUP"]
    client = AsyncWebClient(token="xoxb-test", base_url=f"{fresh_slack.url}/api/")
    policy = ApprovalPolicy(load_settings(bot_approver_ids=["UID"], bot_approver_group="S123"), client)
    assert await policy.approvers() == {"UID", "UGROUP"}
    assert await policy.is_approver("UGROUP") and not await policy.is_approver("UNOPE")
    assert len(fresh_slack.calls_to("usergroups.users.list")) == 1
    fresh_slack.fail_next("usergroups.users.list", status=500, times=3)
    policy.cache_seconds = 0  # after the cache lapses a Slack failure keeps the last known members
    assert await policy.is_approver("UGROUP")


def _race(db_url: str, proposal_id: str, clickers: int) -> list[str]:
    """`clickers` threads, each its own event loop and service (like replicas), click at once."""
    barrier = threading.Barrier(clickers)
    outcomes: list[str] = []
    lock = threading.Lock()

    def click(n: int) -> None:
        service = make_service(db_url)

        async def go() -> str:
            barrier.wait()
            return (await service.approve(proposal_id, "UAPPROVER" if n % 2 else "UOTHER")).outcome

        outcome = asyncio.run(go())
        with lock:
            outcomes.append(outcome)
        service.store.close()

    threads = [threading.Thread(target=click, args=(n,)) for n in range(clickers)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    return outcomes


async def _race_applies_once(db_url: str) -> None:
    name = unique("race-gcl")
    service = make_service(db_url)
    # creating the same GCL twice would fail loudly, so a second apply cannot hide
    proposal = await service.create_proposal(GlobalLimitChange(action="create", name=name, limit=3), "UASKER")
    outcomes = await asyncio.to_thread(_race, db_url, proposal.id, 6)
    assert sorted(outcomes) == ["already_decided"] * 5 + ["applied"], outcomes
    actions = await _actions(service, proposal.id)
    assert (actions.count("applied"), actions.count("refused"), actions.count("failed")) == (1, 5, 0)
    async with get_client() as client:
        assert (await client.read_global_concurrency_limit_by_name(name)).limit == 3


async def test_double_click_applies_once(prefect_server, service):
    pool = await make_pool(limit=1)
    proposal = await service.create_proposal(WorkPoolLimitChange(action="set", pool=pool, limit=2), "UASKER")
    first, second = await asyncio.gather(service.approve(proposal.id, "UAPPROVER"),
                                         service.approve(proposal.id, "UAPPROVER"))
    assert sorted([first.outcome, second.outcome]) == ["already_decided", "applied"]
    assert (await _actions(service, proposal.id)).count("applied") == 1


async def test_concurrent_clicks_from_threads_apply_once_sqlite(prefect_server, db_url):
    await _race_applies_once(db_url)


@pytest.mark.postgres
async def test_concurrent_clicks_from_threads_apply_once_postgres(prefect_server):
    if not postgres_available():
        pytest.skip("PostgreSQL at 127.0.0.1:5432 does not answer; the SQLite race test still ran")
    name = create_postgres_database("cbot_approvals")
    try:
        await _race_applies_once(f"postgresql://postgres@127.0.0.1:5432/{name}")
    finally:
        drop_postgres_database(name)
