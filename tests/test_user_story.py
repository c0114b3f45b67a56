"""DESIGN.md's user story end to end: ask for one run at a time with skips, get a verified answer grounded
in the live deployment and a proposal card; an approver clicks Approve; the deployment changes; a follow-up
needs no mention."""

from __future__ import annotations

import json

import pytest
from prefect import get_client

from bot.slack import cards
from tests.approvals_support import make_deployment, make_pool
from tests.fakes.model_api import text, tool_calls
from tests.harness import TEAM, BotHarness, mention, message, wait_until


@pytest.fixture
def bot(fresh_slack, fresh_model, prefect_api_url, tmp_path):
    harness = BotHarness(fresh_slack, fresh_model, f"sqlite:///{tmp_path / 'bot.db'}", bot_streaming=False,
                         bot_approver_ids=["UANA"]).start()
    yield harness
    harness.stop()


async def test_one_run_at_a_time_with_skips_from_question_to_applied_change(bot, fresh_slack, fresh_model):
    deployment = await make_deployment(await make_pool())
    thread = "1750000000.000100"

    def answer(request):
        tool_text = "\n".join(m["content"] for m in request["messages"] if m["role"] == "tool")
        assert deployment in tool_text and "proposal_id" in tool_text
        recipes = "\n".join(m["content"] for m in request["messages"] if m["role"] == "system")
        assert "CANCEL_NEW" in recipes, "the deployment-concurrency recipe rides along in the first call"
        return text(
            f"Use the deployment's own limit with `CANCEL_NEW`: extra runs are cancelled, not queued.\n\n"
            f"```yaml\ndeployments:\n- name: {deployment.split('/')[1]}\n  entrypoint: flows.py:etl\n"
            f"  concurrency_limit:\n    limit: 1\n    collision_strategy: CANCEL_NEW\n```\n\n"
            f"`{deployment}` has no limit today. I posted a proposal below for an approver.")

    fresh_model.script(
        tool_calls(("read_deployment_limit", {"deployment": deployment})),
        tool_calls(("propose_change", {"kind": "deployment_limit", "action": "set", "name": deployment,
                                       "limit": 1, "collision_strategy": "CANCEL_NEW",
                                       "reason": "only one run at a time; extra runs should be skipped"})),
        answer,
    )
    bot.post_event(mention(f"only one run of {deployment} at a time please, extra runs should be skipped",
                           user="UASKER", ts=thread))
    bot.wait_idle()
    posts = [c for c in fresh_slack.calls_to("chat.postMessage") if c.args.get("thread_ts") == thread]
    answer_post, card = posts[0], posts[1]
    assert "collision_strategy: CANCEL_NEW" in answer_post.args["text"]
    assert "could not verify" not in answer_post.args["text"]
    card_text = json.dumps(card.args["blocks"], ensure_ascii=False)
    assert deployment in card_text and "CANCEL_NEW" in card_text and "<@UASKER>" in card_text
    proposal_id = next(e["value"] for b in card.args["blocks"] for e in b.get("elements", [])
                       if e.get("action_id") == cards.APPROVE)

    bot.post_interaction({"type": "block_actions", "user": {"id": "UANA"}, "team": {"id": TEAM},
                          "channel": {"id": "C1"}, "message": {"ts": card.args.get("ts", "1"), "thread_ts": thread},
                          "container": {"type": "message"}, "trigger_id": "t",
                          "actions": [{"action_id": cards.APPROVE, "type": "button", "value": proposal_id}]})
    update = wait_until(lambda: fresh_slack.calls_to("chat.update"), what="the card update")[0]
    assert "<@UANA>" in json.dumps(update.args.get("blocks"), ensure_ascii=False)
    async with get_client() as client:
        read = await client.read_deployment_by_name(deployment)
    assert read.global_concurrency_limit.limit == 1
    assert read.concurrency_options.collision_strategy.value == "CANCEL_NEW"

    fresh_model.script(text("It is applied now: one run at a time, extra runs cancelled."))
    fresh_slack.seed_thread("C1", thread, [{"ts": thread, "user": "UASKER", "text": "<@UBOT> only one run…"}])
    bot.post_event(message("is it on now?", user="UASKER", ts="1750000000.000900", thread_ts=thread))
    bot.wait_idle()
    assert fresh_slack.bot_texts("C1", thread)[-1] == "It is applied now: one run at a time, extra runs cancelled."
