"""End to end: signed block_actions and view_submission POSTs → the running HTTP app → real Prefect.

The bot runs as in production (tests/harness.py): Bolt over aiohttp, the fake Slack Web API, the
scripted model, and the shared Prefect server. Proposals are made by the model's `propose_change`
tool in one test and straight through the service in the others (same code path for the card).
"""

from __future__ import annotations

import json
import threading
import time
from datetime import timedelta
from typing import Any

import pytest
from prefect import get_client
from prefect.client.schemas.actions import WorkPoolUpdate

from bot.prefect_ops.changes import WorkPoolLimitChange
from bot.slack import cards
from bot.slack.approval_handlers import post_proposal_cards
from bot.store.proposals import utcnow
from tests.approvals_support import make_pool, make_service, pool_limit
from tests.fakes.model_api import text, tool_calls
from tests.harness import BotHarness, mention, wait_until

APPROVER, OTHER, STRANGER, ASKER = "UAPPROVER", "UOTHER", "USTRANGER", "UASKER"
THREAD = "1700000100.000100"


@pytest.fixture
def db_url(tmp_path) -> str:
    return f"sqlite:///{tmp_path / 'bot.db'}"


@pytest.fixture
def bot(fresh_slack, fresh_model, prefect_api_url, db_url):
    harness = BotHarness(fresh_slack, fresh_model, db_url, bot_approver_ids=[APPROVER, OTHER]).start()
    yield harness
    harness.stop()


def propose(bot: BotHarness, change, requester: str = ASKER) -> str:
    """A pending proposal with its card posted in THREAD, as after a model turn; returns its id."""
    service = bot.runtime.approvals
    proposal = bot.call(lambda: service.create_proposal(change, requester, "the model's reason", "C1", THREAD))
    bot.call(lambda: post_proposal_cards(service, bot.runtime.app.client, "C1", THREAD, [proposal.id]))
    return proposal.id


def proposal(bot: BotHarness, proposal_id: str):
    return bot.call(lambda: bot.runtime.approvals.get(proposal_id))


def card_ts(bot: BotHarness, proposal_id: str) -> str:
    return proposal(bot, proposal_id).message_ts


def click(bot: BotHarness, action_id: str, proposal_id: str, user: str, ts: str | None = None):
    ts = ts or card_ts(bot, proposal_id) or "1700000100.999999"
    payload: dict[str, Any] = {
        "type": "block_actions", "token": "legacy", "api_app_id": "A1", "trigger_id": f"trig-{time.time_ns()}",
        "user": {"id": user, "username": user.lower(), "team_id": "T1"}, "team": {"id": "T1", "domain": "t"},
        "container": {"type": "message", "message_ts": ts, "channel_id": "C1", "is_ephemeral": False},
        "channel": {"id": "C1", "name": "ops"},
        "message": {"type": "message", "ts": ts, "thread_ts": THREAD, "text": "Proposed limit change"},
        "response_url": "https://hooks.invalid/response",
        "actions": [{"type": "button", "action_id": action_id, "block_id": "proposal:x", "value": proposal_id,
                     "action_ts": f"{time.time():.6f}"}],
    }
    return bot.post_interaction(payload)


def submit(bot: BotHarness, callback_id: str, metadata: dict[str, Any], values: dict[str, Any], user: str):
    payload = {
        "type": "view_submission", "token": "legacy", "api_app_id": "A1", "team": {"id": "T1", "domain": "t"},
        "user": {"id": user, "username": user.lower(), "team_id": "T1"}, "trigger_id": "trig-view",
        "view": {"id": "V1", "type": "modal", "callback_id": callback_id, "team_id": "T1",
                 "private_metadata": json.dumps(metadata), "state": {"values": values}, "hash": "h"},
    }
    return bot.post_interaction(payload)


def card_updates(slack, ts: str) -> list[dict[str, Any]]:
    return [c.args for c in slack.calls_to("chat.update") if c.args.get("ts") == ts]


def blocks_text(blocks: list[dict[str, Any]]) -> str:
    return json.dumps(blocks, ensure_ascii=False)


def wait_status(bot: BotHarness, proposal_id: str, status: str):
    return wait_until(lambda: proposal(bot, proposal_id).status == status and proposal(bot, proposal_id),
                      what=f"proposal {status}")


async def test_model_proposes_card_is_posted_and_approval_applies(bot, fresh_slack, fresh_model):
    pool = await make_pool(limit=3)
    fresh_model.script(
        tool_calls(("propose_change", {"kind": "work_pool_limit", "action": "set", "name": pool, "limit": 5,
                                       "reason": "runs wait for slots every night"})),
        text("I proposed raising the limit to 5; an approver must click Approve."),
    )
    assert bot.post_event(mention("raise the pool limit to 5", ts=THREAD)).status == 200
    bot.wait_idle()
    posts = [c.args for c in fresh_slack.calls_to("chat.postMessage") if c.args.get("blocks")]
    card = next(p for p in posts if cards.APPROVE in blocks_text(p["blocks"]))
    assert card["thread_ts"] == THREAD
    assert f"work pool `{pool}`: limit 3 → 5" in blocks_text(card["blocks"])
    assert f"<@{'U1'}>" in blocks_text(card["blocks"]) and "runs wait for slots" in blocks_text(card["blocks"])
    buttons = [b for b in card["blocks"] if b["type"] == "actions"][0]["elements"]
    assert [b["action_id"] for b in buttons] == [cards.APPROVE, cards.EDIT, cards.REJECT]
    proposal_id, version = cards.parse_approve_value(buttons[0]["value"])
    assert version == 1 and all(b["value"] == proposal_id for b in buttons[1:]) and "confirm" in buttons[0]
    assert buttons[0]["style"] == "primary"
    assert await pool_limit(pool) == 3, "nothing changes before the click"

    posted = click(bot, cards.APPROVE, proposal_id, APPROVER)
    assert posted.status == 200  # ack latency is a bench row (make bench), not a timed test
    ts = card_ts(bot, proposal_id)
    update = wait_until(lambda: card_updates(fresh_slack, ts), what="card update")[-1]
    assert await pool_limit(pool) == 5
    shown = blocks_text(update["blocks"])
    assert "Applied" in shown and f"<@{APPROVER}>" in shown and cards.APPROVE not in shown


async def test_reject_leaves_the_value(bot, fresh_slack):
    pool = await make_pool(limit=2)
    pid = propose(bot, WorkPoolLimitChange(action="set", pool=pool, limit=4))
    assert click(bot, cards.REJECT, pid, APPROVER).status == 200
    opened = fresh_slack.wait_for("views.open")[-1].args["view"]
    assert opened["callback_id"] == cards.REJECT_VIEW
    meta = json.loads(opened["private_metadata"])
    values = {cards.REASON_BLOCK: {cards.REASON_ACTION: {"type": "plain_text_input", "value": "not today"}}}
    assert submit(bot, cards.REJECT_VIEW, meta, values, APPROVER).status == 200
    wait_status(bot, pid, "rejected")
    update = wait_until(lambda: card_updates(fresh_slack, card_ts(bot, pid)), what="card update")[-1]
    assert "Rejected" in blocks_text(update["blocks"]) and "not today" in blocks_text(update["blocks"])
    assert await pool_limit(pool) == 2


async def test_non_approver_click_changes_nothing_and_gets_an_ephemeral(bot, fresh_slack):
    pool = await make_pool(limit=2)
    pid = propose(bot, WorkPoolLimitChange(action="set", pool=pool, limit=4))
    assert click(bot, cards.APPROVE, pid, STRANGER).status == 200
    note = fresh_slack.wait_for("chat.postEphemeral")[-1].args
    assert note["user"] == STRANGER and note["channel"] == "C1" and "not an approver" in note["text"]
    assert await pool_limit(pool) == 2
    assert card_updates(fresh_slack, card_ts(bot, pid)) == []
    assert proposal(bot, pid).status == "pending"
    assert click(bot, cards.EDIT, pid, STRANGER).status == 200  # nor may they open the edit modal
    fresh_slack.wait_for("chat.postEphemeral", count=2)
    assert fresh_slack.calls_to("views.open") == []
    refused = bot.call(lambda: bot.runtime.approvals.audit_log(proposal_id=pid, action="refused"))
    assert [r.actor for r in refused] == [STRANGER, STRANGER]


async def test_edit_then_approve_applies_the_edited_value(bot, fresh_slack):
    pool = await make_pool(limit=1)
    pid = propose(bot, WorkPoolLimitChange(action="set", pool=pool, limit=2))
    assert click(bot, cards.EDIT, pid, APPROVER).status == 200
    view = fresh_slack.wait_for("views.open")[-1].args["view"]
    element = [b for b in view["blocks"] if b["type"] == "input"][0]["element"]
    assert element["initial_value"] == "2" and view["callback_id"] == cards.EDIT_VIEW
    meta = json.loads(view["private_metadata"])

    def value(v: str) -> dict[str, Any]:
        return {cards.VALUE_BLOCK: {cards.VALUE_ACTION: {"type": "number_input", "value": v}}}

    invalid = submit(bot, cards.EDIT_VIEW, meta, value("lots"), APPROVER)
    assert invalid.status == 200
    assert json.loads(invalid.body)["response_action"] == "errors"
    assert cards.VALUE_BLOCK in json.loads(invalid.body)["errors"]
    assert submit(bot, cards.EDIT_VIEW, meta, value("7"), APPROVER).status == 200
    wait_until(lambda: proposal(bot, pid).version == 2, what="edit stored")
    edited = wait_until(lambda: card_updates(fresh_slack, card_ts(bot, pid)), what="card update")[-1]
    assert "limit 1 → 7" in blocks_text(edited["blocks"]) and cards.APPROVE in blocks_text(edited["blocks"])
    assert await pool_limit(pool) == 1
    approve = next(e["value"] for b in edited["blocks"] for e in b.get("elements", [])
                   if e.get("action_id") == cards.APPROVE)
    assert approve == f"{pid}:2"  # the redrawn card approves the version it shows
    assert click(bot, cards.APPROVE, approve, OTHER, ts=card_ts(bot, pid)).status == 200
    wait_status(bot, pid, "applied")
    assert await pool_limit(pool) == 7


def _click_together(bot: BotHarness, pid: str, users: list[str]) -> None:
    ts = card_ts(bot, pid)
    barrier = threading.Barrier(len(users))
    statuses: list[int] = []

    def go(user: str) -> None:
        barrier.wait()
        statuses.append(click(bot, cards.APPROVE, pid, user, ts).status)

    threads = [threading.Thread(target=go, args=(u,)) for u in users]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert statuses == [200] * len(users)


def _applied_once(bot: BotHarness, pid: str, clicks: int) -> None:
    def settled():
        rows = bot.call(lambda: bot.runtime.approvals.audit_log(proposal_id=pid))
        actions = [r.action for r in rows]
        return actions if actions.count("applied") + actions.count("refused") >= clicks else None

    actions = wait_until(settled, what="every click decided")
    assert actions.count("applied") == 1 and actions.count("refused") == clicks - 1


async def test_double_click_applies_once(bot, fresh_slack):
    pool = await make_pool(limit=1)
    pid = propose(bot, WorkPoolLimitChange(action="set", pool=pool, limit=3))
    _click_together(bot, pid, [APPROVER, APPROVER])
    _applied_once(bot, pid, 2)
    assert await pool_limit(pool) == 3


async def test_concurrent_clicks_from_several_threads_apply_once(bot, fresh_slack):
    pool = await make_pool(limit=1)
    pid = propose(bot, WorkPoolLimitChange(action="set", pool=pool, limit=4))
    _click_together(bot, pid, [APPROVER, OTHER] * 4)
    _applied_once(bot, pid, 8)
    assert await pool_limit(pool) == 4


async def test_stale_value_is_not_applied_and_the_card_says_why(bot, fresh_slack):
    pool = await make_pool(limit=1)
    pid = propose(bot, WorkPoolLimitChange(action="set", pool=pool, limit=5))
    async with get_client() as client:
        await client.update_work_pool(pool, WorkPoolUpdate(concurrency_limit=2))
    assert click(bot, cards.APPROVE, pid, APPROVER).status == 200
    stale = wait_status(bot, pid, "stale")
    update = wait_until(lambda: card_updates(fresh_slack, card_ts(bot, pid)), what="card update")[-1]
    shown = blocks_text(update["blocks"])
    assert "stale" in shown and "changed since" in shown and cards.APPROVE not in shown
    assert await pool_limit(pool) == 2
    fresh_card = wait_until(lambda: [c.args for c in fresh_slack.calls_to("chat.postMessage")
                                     if stale.superseded_by in json.dumps(c.args.get("blocks", ""))],
                            what="fresh card")[-1]
    assert fresh_card["thread_ts"] == THREAD and "limit 2 → 5" in blocks_text(fresh_card["blocks"])


async def test_expired_proposal_is_refused(bot, fresh_slack, db_url):
    pool = await make_pool(limit=1)
    yesterday = make_service(db_url)
    yesterday.clock = lambda: utcnow() - timedelta(hours=25)
    old = bot.call(lambda: yesterday.create_proposal(WorkPoolLimitChange(action="set", pool=pool, limit=3),
                                                     ASKER, "", "C1", THREAD))
    bot.call(lambda: post_proposal_cards(bot.runtime.approvals, bot.runtime.app.client, "C1", THREAD, [old.id]))
    assert click(bot, cards.APPROVE, old.id, APPROVER).status == 200
    note = fresh_slack.wait_for("chat.postEphemeral")[-1].args
    assert note["user"] == APPROVER and "expired" in note["text"]
    update = wait_until(lambda: card_updates(fresh_slack, card_ts(bot, old.id)), what="card update")[-1]
    assert "Expired" in blocks_text(update["blocks"]) and cards.APPROVE not in blocks_text(update["blocks"])
    assert await pool_limit(pool) == 1


async def test_forged_or_unknown_proposal_id_is_refused(bot, fresh_slack):
    pool = await make_pool(limit=1)
    pid = propose(bot, WorkPoolLimitChange(action="set", pool=pool, limit=3))
    assert click(bot, cards.APPROVE, "0" * 32, APPROVER, ts=card_ts(bot, pid)).status == 200
    note = fresh_slack.wait_for("chat.postEphemeral")[-1].args
    assert "does not exist" in note["text"]
    meta = {"id": "not-a-proposal", "min": 0}
    values = {cards.VALUE_BLOCK: {cards.VALUE_ACTION: {"type": "number_input", "value": "9"}}}
    assert submit(bot, cards.EDIT_VIEW, meta, values, APPROVER).status == 200
    # a click that Slack did not sign never reaches the handlers
    unsigned = bot.post_interaction({"type": "block_actions", "user": {"id": APPROVER},
                                     "actions": [{"action_id": cards.APPROVE, "value": pid}]}, signed=False)
    assert unsigned.status == 401
    wait_until(lambda: len(bot.call(lambda: bot.runtime.approvals.audit_log(action="refused"))) >= 2,
               what="refusals audited")
    assert await pool_limit(pool) == 1 and proposal(bot, pid).status == "pending"
    assert card_updates(fresh_slack, card_ts(bot, pid)) == []


async def test_restart_between_proposal_and_approval(bot, fresh_slack):
    pool = await make_pool(limit=1)
    pid = propose(bot, WorkPoolLimitChange(action="set", pool=pool, limit=6))
    bot.restart()
    assert click(bot, cards.APPROVE, pid, APPROVER).status == 200
    wait_status(bot, pid, "applied")
    assert await pool_limit(pool) == 6
    assert wait_until(lambda: card_updates(fresh_slack, card_ts(bot, pid)), what="card update")
