"""Prompt cost: the static part of every request comes first and is byte-identical, so providers cache it.

The pipeline is built as `serve` builds it (real system prompt, real tool schemas) and talks to the
strict test model server, which reports `usage.prompt_tokens_details.cached_tokens` as OpenAI does.
"""

from __future__ import annotations

import json

from bot.pipeline import asks_about_live_state, build_pipeline
from bot.settings import Settings
from bot.turns import HistoryMessage, Turn
from tests.fakes.model_api import SUITE_MODEL, text, tool_calls


def pipeline_for(api, tmp_path):
    settings = Settings(_env_file=None, openai_api_key="sk-test-prompt-cost-0123456789",
                        openai_base_url=api.base_url, openai_model=SUITE_MODEL, bot_data_dir=tmp_path)
    return build_pipeline(settings)


def static_prefix(request: dict) -> str:
    return json.dumps(request["messages"][0]) + json.dumps(request["tools"])


async def test_the_static_prefix_is_byte_identical_and_first_across_questions_and_rounds(fresh_model, tmp_path,
                                                                                        prefect_api_url):
    pipeline = pipeline_for(fresh_model, tmp_path)
    fresh_model.script(text("Use a global concurrency limit with slot decay."),
                       tool_calls(("list_global_concurrency_limits", {})), text("You have none."),
                       text("Guests get answers too."))
    first = await pipeline.answer(Turn("how do I rate limit calls to an external API?", "U1"))
    await pipeline.answer(Turn("what global limits do we have right now?", "U2", channel="C9",
                               history=[HistoryMessage("user", "hello", "U2")]))
    await pipeline.answer(Turn("how do I limit a work pool?", "U3", may_propose=False))
    requests = fresh_model.requests
    assert len(requests) == 4
    assert requests[0]["messages"][0]["role"] == "system" and "Prefect" in requests[0]["messages"][0]["content"]
    assert len({static_prefix(r) for r in requests[:3]}) == 1  # the same bytes, question after question
    assert list(requests[0])[:3] == ["model", "messages", "tools"]
    # a guest's tool list has no proposal tool, so its prefix is the system prompt alone: still first, still same
    assert requests[3]["messages"][0] == requests[0]["messages"][0]
    assert first.cached_tokens == 0
    # the how-to question brought recipes, after the static part; the live lookup brought none
    assert "Verified recipes" in requests[0]["messages"][1]["content"]
    assert [m for m in requests[1]["messages"] if m["role"] == "system"] == [requests[1]["messages"][0]]


async def test_a_repeated_prefix_is_counted_as_cached_in_the_reply(fresh_model, tmp_path, prefect_api_url):
    pipeline = pipeline_for(fresh_model, tmp_path)
    fresh_model.script(text("one"), text("two"))
    one = await pipeline.answer(Turn("how do I rate limit calls to an external API?", "U1"))
    two = await pipeline.answer(Turn("skip the run if it is already running", "U1"))
    assert one.cached_tokens == 0
    assert two.cached_tokens >= 1024 and two.cached_tokens % 128 == 0 and two.cached_tokens < two.prompt_tokens


def test_live_state_questions_get_no_pre_retrieved_recipes():
    for question in ("does etl/nightly have a concurrency limit right now?", "why is run brave-otter stuck?",
                     "show all limits", "what is full?", "do we have leaked slots?", "inspect pool etl"):
        assert asks_about_live_state(question), question
    for question in ("how do I rate limit calls to an external API?", "only one run of a deployment at a time",
                     "what happens to leases with several server replicas?"):
        assert not asks_about_live_state(question), question
