"""The model loop against the scripted OpenAI-protocol server, through the real openai client."""

from __future__ import annotations

import json

from bot.agent.registry import ToolRegistry
from bot.pipeline import APOLOGY, Pipeline, model_from_settings
from bot.settings import Settings
from bot.turns import HistoryMessage, Turn
from tests.fakes.model_api import SUITE_MODEL, error, text, tool_calls

SECRET_KEY = "sk-test-model-key-abcdef123456"


def make_settings(model_api, **overrides) -> Settings:
    values = dict(openai_api_key=SECRET_KEY, openai_base_url=model_api.base_url, openai_model=SUITE_MODEL,
                  bot_model_max_attempts=5, bot_model_retry_max_wait_seconds=0.2,
                  slack_bot_token="xoxb-secret-token-999999")
    values.update(overrides)
    return Settings(_env_file=None, **values)


def pipeline_with(settings: Settings, *funcs) -> Pipeline:
    def tools(turn, created):
        registry = ToolRegistry()
        for func in funcs:
            registry.add(func)
        return registry

    return Pipeline(settings=settings, tools_for_turn=tools, model=model_from_settings(settings))


async def count_limits(prefix: str = "") -> dict:
    """Count limits whose name starts with a prefix."""
    return {"prefix": prefix, "count": 3}


async def exploding() -> dict:
    """A tool that fails."""
    raise RuntimeError("prefect said no")


async def test_tool_round_then_answer(fresh_model):
    fresh_model.script(tool_calls(("count_limits", {"prefix": "etl"})), text("There are **3** limits."))
    reply = await pipeline_with(make_settings(fresh_model), count_limits).answer(Turn("how many?", "U1"))
    assert reply.text == "There are **3** limits."
    assert reply.model_rounds == 2 and reply.tool_calls == ["count_limits"]
    tool_message = fresh_model.requests[1]["messages"][-1]
    assert tool_message["role"] == "tool" and json.loads(tool_message["content"])["count"] == 3
    assert {t["function"]["name"] for t in fresh_model.requests[0]["tools"]} == {"count_limits"}


async def test_parallel_calls_errors_and_unknown_tools_go_back_as_tool_errors(fresh_model):
    fresh_model.script(
        tool_calls(("count_limits", {}), ("exploding", {}), ("no_such_tool", {}), ("count_limits", "{oops")),
        text("done"),
    )
    reply = await pipeline_with(make_settings(fresh_model), count_limits, exploding).answer(Turn("q", "U1"))
    assert reply.text == "done"
    results = [json.loads(m["content"]) for m in fresh_model.requests[1]["messages"] if m["role"] == "tool"]
    assert results[0]["count"] == 3
    assert "prefect said no" in results[1]["error"]
    assert "unknown tool" in results[2]["error"]
    assert "not valid JSON" in results[3]["error"]


async def test_rate_limit_then_success_still_answers(fresh_model):
    fresh_model.script(error(429, retry_after=0.1), text("ok after 429"))
    reply = await pipeline_with(make_settings(fresh_model)).answer(Turn("q", "U1"))
    assert reply.text == "ok after 429" and not reply.failed
    assert len(fresh_model.requests) == 2


async def test_five_server_errors_end_in_an_apology(fresh_model):
    fresh_model.script(*[error(500)] * 5)
    reply = await pipeline_with(make_settings(fresh_model)).answer(Turn("q", "U1"))
    assert reply.failed
    assert reply.text.startswith(APOLOGY.split("(")[0])
    assert "Traceback" not in reply.text
    assert len(fresh_model.requests) == 5


async def test_round_cap_forces_a_final_answer_without_tools(fresh_model):
    fresh_model.default = tool_calls(("count_limits", {}))
    settings = make_settings(fresh_model, bot_max_tool_rounds=2)
    fresh_model.script(tool_calls(("count_limits", {})), tool_calls(("count_limits", {})), text("best effort"))
    reply = await pipeline_with(settings, count_limits).answer(Turn("q", "U1"))
    assert reply.text == "best effort"
    assert "tools" not in fresh_model.requests[-1]


async def test_history_is_bounded_and_secrets_never_reach_the_model(fresh_model):
    fresh_model.script(text("fine"))
    history = [HistoryMessage("user", f"old message {i} " + "x" * 500, "U2") for i in range(30)]
    history.append(HistoryMessage("assistant", "earlier answer"))
    settings = make_settings(fresh_model, bot_history_max_messages=5, bot_history_max_chars=1500)
    turn = Turn(f"my token is xoxb-secret-token-999999 and key {SECRET_KEY}", "U1", history=history)
    await pipeline_with(settings).answer(turn)
    sent = fresh_model.requests[0]["messages"]
    body = json.dumps(sent)
    assert "xoxb-secret-token-999999" not in body and SECRET_KEY not in body
    conversation = [m for m in sent if m["role"] in ("user", "assistant")]
    assert conversation[-2] == {"role": "assistant", "content": "earlier answer"}
    assert len(conversation) <= 6
    assert "old message 0 " not in body


async def test_verifier_outcomes_are_counted_and_a_wrong_answer_is_corrected_or_flagged(fresh_model):
    from prometheus_client import REGISTRY

    from bot.knowledge.verifier import verify_markdown

    def count(outcome: str) -> float:
        return REGISTRY.get_sample_value("bot_verifier_outcomes_total", {"outcome": outcome}) or 0.0

    settings = make_settings(fresh_model)
    pipeline = pipeline_with(settings)
    pipeline.verify = verify_markdown
    bad = "Run `prefect work-pool set-concurrency-limit etl --limit 5`."
    good = "Run `prefect work-pool set-concurrency-limit etl 5`."
    before = {o: count(o) for o in ("passed", "corrected", "caveat")}

    fresh_model.script(text(bad), text(good))
    reply = await pipeline.answer(Turn("cap etl at 5", "U1"))
    assert reply.text == good and reply.verifier.ok and reply.model_rounds == 2
    assert "Unknown option" in fresh_model.requests[-1]["messages"][-1]["content"]

    fresh_model.script(text(bad), text(bad))
    reply = await pipeline.answer(Turn("cap etl at 5", "U1"))
    assert not reply.verifier.ok and "could not verify" in reply.text

    fresh_model.script(text(good))
    await pipeline.answer(Turn("cap etl at 5", "U1"))
    assert {o: count(o) - before[o] for o in before} == {"passed": 1, "corrected": 1, "caveat": 1}
