"""What-if lines and Revert, end to end: a click on the running bot through to the value Prefect shows.

The what-if line is read from live Prefect data when the card is posted and again when Approve is
clicked; Revert proposes the inverse change, which applies only when an approver approves it.
"""

from __future__ import annotations

import json

import pytest
from prefect import get_client
from prefect.states import Pending

from bot.prefect_ops.changes import WorkPoolLimitChange
from bot.slack import cards
from tests.approvals_support import make_pool, pool_limit
from tests.harness import BotHarness
from tests.harness import wait_until as _wait_until
from tests.test_approvals_e2e import THREAD, click, propose
from tests.test_watch_detectors import _deployment

APPROVER, ASKER, STRANGER = "UAPPROVER", "UASKER", "USTRANGER"



def wait_until(check, timeout: float = 120.0, what: str = "condition"):
    """The harness's wait with room for a loaded machine (the shared Prefect server is busy)."""
    return _wait_until(check, timeout, what)

@pytest.fixture
def bot(fresh_slack, prefect_api_url, tmp_path):
    harness = BotHarness(fresh_slack, None, f"sqlite:///{tmp_path / 'bot.db'}", bot_approver_ids=[APPROVER]).start()
    yield harness
    harness.stop()


def _card_text(args: dict) -> str:
    return json.dumps(args.get("blocks"))


async def test_what_if_is_live_at_post_and_at_approve_and_revert_goes_through_approval(bot, fresh_slack):
    pool = await make_pool(limit=1)
    async with get_client() as client:
        dep_id, _ = await _deployment(client, pool)
        holder = await client.create_flow_run_from_deployment(dep_id)
        await client.set_flow_run_state(holder.id, Pending())
        waiting = await client.create_flow_run_from_deployment(dep_id)

    pid = propose(bot, WorkPoolLimitChange(action="set", pool=pool, limit=3), requester=ASKER)
    posted = next(c.args for c in fresh_slack.calls_to("chat.postMessage") if pid in _card_text(c.args))
    assert f"approving lets 1 waiting run start now: `{waiting.name}`" in _card_text(posted)

    async with get_client() as client:  # the world moves before anyone clicks
        more = [await client.create_flow_run_from_deployment(dep_id) for _ in range(2)]
    ts = bot.call(lambda: bot.runtime.approvals.get(pid)).message_ts
    assert click(bot, cards.APPROVE, pid, APPROVER, ts).status == 200
    applied = wait_until(lambda: [c.args for c in fresh_slack.calls_to("chat.update")
                                  if c.args.get("ts") == ts and "Applied" in _card_text(c.args)],
                         what="the applied card")[-1]
    assert await pool_limit(pool) == 3
    assert "When approved:* approving lets 2 waiting runs start now" in _card_text(applied)
    assert any(name in _card_text(applied) for name in (waiting.name, *(r.name for r in more)))
    revert_value = next(e["value"] for b in applied["blocks"] if b["type"] == "actions" for e in b["elements"]
                        if e["action_id"] == cards.REVERT)
    assert revert_value == pid

    assert click(bot, cards.REVERT, pid, ASKER, ts).status == 200  # anyone may propose; approvers decide
    revert_card = wait_until(lambda: [c.args for c in fresh_slack.calls_to("chat.postMessage")
                                      if "limit 3 → 1" in c.args.get("text", "")], what="the revert card")[0]
    assert revert_card["thread_ts"] == THREAD
    assert "still wait: 1 of 1 slots are in use" in _card_text(revert_card)
    revert_approve = next(e["value"] for b in revert_card["blocks"] if b["type"] == "actions" for e in b["elements"]
                          if e["action_id"] == cards.APPROVE)
    revert_id = cards.parse_approve_value(revert_approve)[0]
    linked = bot.call(lambda: bot.runtime.approvals.audit_log(action="revert_proposed"))
    assert [(a.proposal_id, a.actor, a.detail) for a in linked] == [(pid, ASKER, f"revert proposal {revert_id}")]
    assert await pool_limit(pool) == 3  # proposing the revert changed nothing

    revert_ts = bot.call(lambda: bot.runtime.approvals.get(revert_id)).message_ts
    assert click(bot, cards.APPROVE, revert_id, STRANGER, revert_ts).status == 200
    wait_until(lambda: bot.call(lambda: bot.runtime.approvals.audit_log(action="refused")), what="the refusal")
    assert await pool_limit(pool) == 3
    assert click(bot, cards.APPROVE, revert_id, APPROVER, revert_ts).status == 200
    wait_until(lambda: bot.call(lambda: bot.runtime.approvals.get(revert_id)).status == "applied",
               what="the revert applied")
    assert await pool_limit(pool) == 1
