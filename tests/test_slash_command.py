"""`/concurrency` through signed POSTs to the running HTTP app: list, inspect, diagnose, set, help.

No model is configured: the command runs on the offline engine. The answer arrives on the
command's response_url (the fake Slack API records it as `response`); `set` also posts an
approval card, and the change lands on the real Prefect server only after an approval.
"""

from __future__ import annotations

import uuid

import pytest
from prefect import get_client
from prefect.client.schemas.actions import WorkPoolCreate

from tests.harness import BotHarness

pytestmark = pytest.mark.timeout(180)


@pytest.fixture
def harness(fresh_slack, tmp_path, prefect_api_url):
    bot = BotHarness(fresh_slack, None, f"sqlite:///{tmp_path / 'slash.db'}").start()
    yield bot
    bot.stop()


@pytest.fixture(scope="module")
async def objects(prefect_api_url):
    pool, flow, dep, run = (f"{p}-{uuid.uuid4().hex[:6]}" for p in ("slpool", "slflow", "sldep", "slrun"))
    async with get_client() as client:
        await client.create_work_pool(WorkPoolCreate(name=pool, type="process", concurrency_limit=2))
        flow_id = await client.create_flow_from_name(flow)
        dep_id = await client.create_deployment(flow_id, dep, work_pool_name=pool)
        await client.create_flow_run_from_deployment(dep_id, name=run)
    return {"pool": pool, "run": run, "deployment": f"{flow}/{dep}"}


def _command(harness: BotHarness, text: str, count: int, user: str = "U1") -> dict:
    posted = harness.post_command("/concurrency", text, user_id=user)
    assert posted.status == 200, posted.body
    responses = harness.slack_api.wait_for("response", count=count, timeout=60)
    return responses[count - 1].args


async def _pool_limit(name: str) -> int | None:
    async with get_client() as client:
        return (await client.read_work_pool(name)).concurrency_limit


async def test_list_inspect_diagnose_and_help(harness, objects):
    listed = _command(harness, "list", 1)
    assert objects["pool"] in listed["text"] and "0/2" in listed["text"]
    assert listed["response_type"] == "ephemeral"
    assert "model is off" not in listed["text"]

    inspected = _command(harness, f"inspect {objects['pool']}", 2)
    assert f"work pool `{objects['pool']}`" in inspected["text"] or objects["pool"] in inspected["text"]

    diagnosed = _command(harness, f"diagnose {objects['run']}", 3)
    assert objects["run"] in diagnosed["text"] and "Checks made" in diagnosed["text"]

    helped = _command(harness, "", 4)
    assert "inspect NAME" in helped["text"] and "set work pool NAME limit to N" in helped["text"]

    missing = _command(harness, "inspect no-such-thing-zz9", 5)
    assert "No object named" in missing["text"]
    assert not harness.slack_api.calls_to("chat.postMessage")  # read-only commands post nothing


async def test_set_posts_a_card_and_applies_only_after_approval(harness, objects):
    answer = _command(harness, f"set work pool {objects['pool']} limit to 4", 1)
    assert "limit 2 → 4" in answer["text"] and "approver" in answer["text"]
    card = harness.slack_api.wait_for("chat.postMessage", 1, timeout=30)[0].args
    assert card["channel"] == "C1" and card.get("blocks")
    assert await _pool_limit(objects["pool"]) == 2  # proposed, not applied

    approvals = harness.runtime.approvals
    pending = [p for p in await _proposals(harness) if p.status == "pending"]
    assert len(pending) == 1 and pending[0].requester == "U1"
    refused = harness.call(lambda: approvals.approve(pending[0].id, "U1"))
    assert refused.outcome == "refused" and await _pool_limit(objects["pool"]) == 2
    applied = harness.call(lambda: approvals.approve(pending[0].id, "UAPPROVER"))
    assert applied.outcome == "applied"
    assert await _pool_limit(objects["pool"]) == 4


async def test_bad_change_text_gets_the_grammar(harness):
    answer = _command(harness, "set work pool x limit to lots", 1)
    assert "couldn't read" in answer["text"] and "clear work pool NAME limit" in answer["text"]


async def _proposals(harness: BotHarness) -> list:
    audit = harness.call(lambda: harness.runtime.approvals.audit_log(action="proposed"))
    views = [harness.call(lambda pid=row.proposal_id: harness.runtime.approvals.get(pid)) for row in audit]
    return [v for v in views if v is not None]
