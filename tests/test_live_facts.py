"""Live facts never depend on the model: a live-state question carries the deterministic reading.

A real Prefect server holds a deployment limit of 1 with one run in its slot and one waiting. The
model (the strict test server) answers off topic, as a small local model did; the reply must still
lead with the diagnosis the offline answer gives, naming the blocking limit.
"""

from __future__ import annotations

import uuid

import pytest
from prefect import get_client

from bot.agent.registry import ToolRegistry
from bot.offline.live_facts import HEADING, live_facts
from bot.pipeline import Pipeline, model_from_settings
from bot.prefect_ops import by_name
from bot.settings import Settings
from bot.turns import Turn
from tests.fakes.model_api import SUITE_MODEL, local_profile, text
from tests.scenes import run_waiting_on_deployment_limit

pytestmark = pytest.mark.timeout(240)


@pytest.fixture(scope="module")
async def stuck(prefect_api_url):
    """Deployment limit 1 (ENQUEUE): `<run>-1` holds the slot, `<run>-2` waits; a second deployment's slot is
    held by no run (leaked)."""
    suffix = uuid.uuid4().hex[:6]
    names = {"pool": f"lf-pool-{suffix}", "flow": f"lf-flow-{suffix}", "dep": f"nightly-{suffix}",
             "run": f"lf-run-{suffix}", "leaky": f"leaky-{suffix}"}
    async with get_client() as client:
        flow_id = await run_waiting_on_deployment_limit(client, names)
        leaky = await client.create_deployment(flow_id, names["leaky"], work_pool_name=names["pool"],
                                               concurrency_limit=2)
        await by_name.update_gcl(client, f"deployment:{leaky}", {"active_slots": 1})
    return names


def pipeline_for(api, model: str = SUITE_MODEL) -> Pipeline:
    settings = Settings(_env_file=None, openai_api_key="sk-test-live-facts-0123456789", openai_base_url=api.base_url,
                        openai_model=model, bot_model_max_attempts=1)
    return Pipeline(settings=settings, tools_for_turn=lambda turn, created: ToolRegistry(),
                    model=model_from_settings(settings), system_prompt="You answer Prefect questions.",
                    live_facts=live_facts)


async def test_an_off_topic_model_answer_still_leads_with_the_diagnosis(stuck, fresh_model):
    fresh_model.use(local_profile())  # the small local model that wrote this
    fresh_model.script(text("What is the latest version?"))
    reply = await pipeline_for(fresh_model, "gemma-3-270m").answer(Turn(f"why is {stuck['run']}-2 stuck?", "U1"))
    assert reply.text.startswith(HEADING)
    facts, model_part = reply.text.split("**The model's answer:**")
    assert f"{stuck['run']}-2" in facts and stuck["deployment"] in facts and "Checks made" in facts
    assert model_part.strip() == "What is the latest version?"
    assert reply.live_facts == "diagnosis"


async def test_a_model_answer_that_names_the_blocker_comes_first(stuck, fresh_model):
    fresh_model.script(text(f"The deployment limit on {stuck['deployment']} is full: its one slot is taken."))
    reply = await pipeline_for(fresh_model).answer(Turn(f"why is {stuck['run']}-2 stuck?", "U1"))
    assert reply.text.startswith("The deployment limit on")
    assert f"\n\n{HEADING}\n" in reply.text and "Checks made" in reply.text


async def test_a_leak_question_gets_the_leak_reading(stuck, fresh_model):
    fresh_model.script(text("Leaks happen when workers die."))
    reply = await pipeline_for(fresh_model).answer(Turn("do we have any leaked slots?", "U1"))
    assert HEADING in reply.text and f"{stuck['flow']}/{stuck['leaky']}" in reply.text
    assert "1 slots in use but only 0" in reply.text and reply.live_facts == "leaks"
    assert reply.text.startswith(HEADING)  # the model did not name the leaked limit


async def test_a_how_to_question_carries_no_live_block(fresh_model):
    fresh_model.script(text("Use a global concurrency limit."))
    reply = await pipeline_for(fresh_model).answer(Turn("how do I rate limit calls to an external API?", "U1"))
    assert reply.text == "Use a global concurrency limit." and reply.live_facts is None
