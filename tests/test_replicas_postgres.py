"""Two bot processes on one Postgres store: one answer per event, one apply per proposal."""

from __future__ import annotations

import asyncio
import threading
import time
import uuid

import pytest
from prefect import get_client
from prefect.client.schemas.actions import WorkPoolCreate

from bot.slack import cards
from tests.fakes.model_api import text, tool_calls
from tests.fakes.prefect_server import create_postgres_database, drop_postgres_database, postgres_available
from tests.harness import TEAM, BotHarness, mention

pytestmark = pytest.mark.skipif(not postgres_available(),
                                reason="PostgreSQL is not answering at 127.0.0.1:5432 (CI has it)")


@pytest.fixture
def two_replicas(fresh_slack, fresh_model, prefect_api_url):
    database = create_postgres_database("cbot_store")
    url = f"postgresql://postgres@127.0.0.1:5432/{database}"
    first = BotHarness(fresh_slack, fresh_model, url, bot_streaming=False).start()
    second = BotHarness(fresh_slack, fresh_model, url, bot_streaming=False).start()
    yield first, second
    first.stop()
    second.stop()
    drop_postgres_database(database)


def test_an_event_delivered_to_both_replicas_is_answered_once(two_replicas, fresh_slack, fresh_model):
    fresh_model.default = text("one answer")
    event = mention("hello both", ts="1720000000.000100")
    threads = [threading.Thread(target=bot.post_event, args=(event,), kwargs={"event_id": "EvBOTH"})
               for bot in two_replicas for _ in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    for bot in two_replicas:
        bot.wait_idle()
    assert fresh_slack.bot_texts("C1", "1720000000.000100") == ["one answer"]
    assert len(fresh_model.requests) == 1


async def test_a_proposal_clicked_on_both_replicas_is_applied_once(two_replicas, fresh_slack, fresh_model):
    pool = f"replica-pool-{uuid.uuid4().hex[:8]}"
    async with get_client() as client:
        await client.create_work_pool(WorkPoolCreate(name=pool, type="process"))
    first, second = two_replicas
    fresh_model.script(tool_calls(("propose_change", {"kind": "work_pool_limit", "action": "set", "name": pool,
                                                      "limit": 4, "reason": "cap the pool"})),
                       text("I proposed it; an approver must click Approve."))
    first.post_event(mention(f"cap {pool} at 4", user="UAPPROVER", ts="1720000000.000200"))
    first.wait_idle()
    card = next(c for c in fresh_slack.calls_to("chat.postMessage") if c.args.get("blocks")
                and cards.APPROVE in str(c.args["blocks"]))
    proposal_id = next(e["value"] for b in card.args["blocks"] for e in b.get("elements", [])
                       if e.get("action_id") == cards.APPROVE)
    click = {"type": "block_actions", "user": {"id": "UAPPROVER"}, "team": {"id": TEAM},
             "channel": {"id": "C1"}, "message": {"ts": card.args.get("ts", "1"), "thread_ts": "1720000000.000200"},
             "container": {"type": "message", "message_ts": "1"}, "trigger_id": "t",
             "actions": [{"action_id": cards.APPROVE, "type": "button", "value": proposal_id}]}
    threads = [threading.Thread(target=bot.post_interaction, args=(click,)) for bot in two_replicas for _ in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    for bot in two_replicas:
        bot.wait_idle()
    deadline = time.monotonic() + 30
    actions: list[str] = []
    while time.monotonic() < deadline:
        actions = [entry.action for entry in await first.runtime.approvals.audit_log(proposal_id=proposal_id)]
        if "applied" in actions and len(fresh_slack.calls_to("chat.update")) >= 1:
            break
        await asyncio.sleep(0.2)
    await asyncio.sleep(1.0)  # let every other click finish, then count
    actions = [entry.action for entry in await first.runtime.approvals.audit_log(proposal_id=proposal_id)]
    assert actions.count("applied") == 1, actions
    async with get_client() as client:
        assert (await client.read_work_pool(pool)).concurrency_limit == 4
