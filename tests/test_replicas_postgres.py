"""Two `concurrency-bot serve` processes on one Postgres store: one answer per event, one apply per proposal."""

from __future__ import annotations

import os
import time
import uuid

import pytest
from prefect import get_client
from prefect.client.schemas.actions import WorkPoolCreate
from sqlalchemy import select

from bot.slack import cards
from bot.store import Store
from bot.store.proposals import AuditEntry
from tests.fakes.model_api import SUITE_MODEL, text, tool_calls
from tests.fakes.prefect_server import create_postgres_database, drop_postgres_database, postgres_available
from tests.faults_support import BotProcess
from tests.harness import BOT_TOKEN, MODEL_KEY, SIGNING_SECRET, TEAM, SlackSender, all_at_once, mention

pytestmark = pytest.mark.skipif(not postgres_available(),
                                reason="PostgreSQL is not answering at 127.0.0.1:5432 (CI has it)")


def answer_requests(model) -> list[dict]:
    """The model requests made for questions: each `serve` also runs doctor's one-tool probe at start."""
    return [r for r in model.requests if "connectivity check" not in str(r["messages"][0].get("content"))]


@pytest.fixture
def replicas(fresh_slack, fresh_model, prefect_api_url, tmp_path):
    database = create_postgres_database("cbot_store")
    url = f"postgresql://postgres@127.0.0.1:5432/{database}"
    env = {"SLACK_BOT_TOKEN": BOT_TOKEN, "SLACK_SIGNING_SECRET": SIGNING_SECRET,
           "SLACK_API_URL": f"{fresh_slack.url}/api/", "OPENAI_API_KEY": MODEL_KEY,
           "OPENAI_BASE_URL": fresh_model.base_url, "OPENAI_MODEL": SUITE_MODEL, "BOT_DATABASE_URL": url,
           "BOT_APPROVER_IDS": "UAPPROVER", "BOT_STREAMING": "false", "PREFECT_API_URL": os.environ["PREFECT_API_URL"]}
    processes = [BotProcess(env, tmp_path).start(timeout=90), BotProcess(env, tmp_path).start(timeout=90)]
    yield processes, url
    for process in processes:
        process.stop()
    drop_postgres_database(database)


def test_an_event_delivered_to_both_processes_is_answered_once(replicas, fresh_slack, fresh_model):
    processes, _ = replicas
    fresh_model.default = text("one answer")
    event = mention("hello both", ts="1720000000.000100")
    senders = [SlackSender.at(p.port) for p in processes]
    all_at_once([lambda s=s: s.post_event(event, event_id="EvBOTH") for s in senders for _ in range(3)])
    fresh_slack.wait_for("chat.postMessage")
    time.sleep(1.5)  # give the other process every chance to answer twice
    assert fresh_slack.bot_texts("C1", "1720000000.000100") == ["one answer"]
    assert len(answer_requests(fresh_model)) == 1


async def test_a_proposal_clicked_on_both_processes_is_applied_once(replicas, fresh_slack, fresh_model):
    processes, url = replicas
    pool = f"replica-pool-{uuid.uuid4().hex[:8]}"
    async with get_client() as client:
        await client.create_work_pool(WorkPoolCreate(name=pool, type="process"))
    fresh_model.script(tool_calls(("propose_change", {"kind": "work_pool_limit", "action": "set", "name": pool,
                                                      "limit": 4, "reason": "cap the pool"})),
                       text("I proposed it; an approver must click Approve."))
    SlackSender.at(processes[0].port).post_event(mention(f"cap {pool} at 4", user="UAPPROVER",
                                                         ts="1720000000.000200"))
    deadline = time.monotonic() + 30
    card = None
    while card is None:
        assert time.monotonic() < deadline, "no proposal card was posted"
        card = next((c for c in fresh_slack.calls_to("chat.postMessage")
                     if cards.APPROVE in str(c.args.get("blocks"))), None)
        time.sleep(0.1)
    value = next(e["value"] for b in card.args["blocks"] for e in b.get("elements", [])
                 if e.get("action_id") == cards.APPROVE)
    proposal_id = cards.parse_approve_value(value)[0]
    click = {"type": "block_actions", "user": {"id": "UAPPROVER"}, "team": {"id": TEAM},
             "channel": {"id": "C1"}, "message": {"ts": "1", "thread_ts": "1720000000.000200"},
             "container": {"type": "message", "message_ts": "1"}, "trigger_id": "t",
             "actions": [{"action_id": cards.APPROVE, "type": "button", "value": value}]}
    senders = [SlackSender.at(p.port) for p in processes]
    all_at_once([lambda s=s: s.post_interaction(click) for s in senders for _ in range(3)])

    store = Store.open(url)
    try:
        def actions() -> list[str]:
            with store.sessions() as session:
                return list(session.scalars(select(AuditEntry.action).where(AuditEntry.proposal_id == proposal_id)))

        deadline = time.monotonic() + 30
        while "applied" not in actions():
            assert time.monotonic() < deadline, actions()
            time.sleep(0.2)
        time.sleep(1.5)  # every other click has had time to land; count once more
        assert actions().count("applied") == 1, actions()
    finally:
        store.close()
    async with get_client() as client:
        assert (await client.read_work_pool(pool)).concurrency_limit == 4
