"""The bot against every provider shape teams bring: it adapts its request, and tells permanent from transient.

The pipeline talks through the real `openai` client to the strict test model server
(tests/fakes/model_api.py) switched to each provider's profile. One row per family/provider
answers the same question classes; the other tests pin one adaptation each.
"""

from __future__ import annotations

import json
import logging

import pytest

from bot.agent.circuit import CircuitBreaker
from bot.agent.model_health import REASONING_ROOM
from bot.agent.registry import ToolRegistry
from bot.knowledge.recipes import RecipeBook
from bot.knowledge.search import RecipeSearch
from bot.offline import OfflineAnswerer
from bot.pipeline import MISCONFIGURED, Pipeline, model_from_settings
from bot.settings import Settings
from bot.turns import HistoryMessage, Turn
from tests.fakes.model_api import (
    CLASSIC_MODEL,
    REASONING_MODEL,
    Profile,
    azure_profile,
    error,
    filtered,
    local_profile,
    openai_profile,
    quota_exhausted,
    rate_limited,
    text,
    tool_calls,
)

KEY = "sk-test-providers-key-0123456789"
RATE_QUESTION = "how do I rate limit calls to an external API?"


async def count_limits(prefix: str = "") -> dict:
    """Count limits whose name starts with a prefix."""
    return {"prefix": prefix, "count": 3}


async def big_report() -> dict:
    """A very long report."""
    return {"rows": [f"row {i:05d} with some padding text" for i in range(900)]}


class Collect(logging.Handler):
    """Log lines from the bot's model code, read on its own logger (the bot's logging setup owns the root)."""

    def __init__(self) -> None:
        super().__init__(logging.INFO)
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(record.getMessage())


@pytest.fixture
def model_log():
    collect = Collect()
    logger = logging.getLogger("bot.agent")
    logger.addHandler(collect)
    old = logger.level
    logger.setLevel(logging.INFO)
    yield collect
    logger.removeHandler(collect)
    logger.setLevel(old)


def settings_for(api, model: str, **overrides) -> Settings:
    values = dict(openai_api_key=KEY, openai_base_url=api.base_url, openai_model=model, bot_model_max_attempts=3,
                  bot_model_retry_max_wait_seconds=0.1, bot_circuit_failure_threshold=2)
    values.update(overrides)
    return Settings(_env_file=None, **values)


def pipeline_for(settings: Settings, *funcs, offline: bool = False) -> Pipeline:
    def tools(turn, created):
        registry = ToolRegistry()
        for func in funcs or (count_limits,):
            registry.add(func)
        return registry

    return Pipeline(settings=settings, tools_for_turn=tools, model=model_from_settings(settings),
                    offline=OfflineAnswerer(RecipeSearch(RecipeBook.load())) if offline else None,
                    system_prompt="You answer Prefect concurrency questions.",
                    breaker=CircuitBreaker(settings.bot_circuit_failure_threshold, 60.0))


def budget_of(request: dict) -> tuple[str, int]:
    name = "max_completion_tokens" if "max_completion_tokens" in request else "max_tokens"
    return name, request.get(name)


# --- one row per family and provider ------------------------------------------------------------
ROWS: list[tuple[str, Profile, str, str]] = [
    ("openai-classic", openai_profile(), CLASSIC_MODEL, "max_tokens"),
    ("openai-reasoning", openai_profile(), REASONING_MODEL, "max_completion_tokens"),
    ("openai-o-series", openai_profile(), "o4-mini", "max_completion_tokens"),
    ("azure-v1-reasoning", azure_profile({"prod-chat": REASONING_MODEL}), "prod-chat", "max_completion_tokens"),
    ("azure-v1-classic", azure_profile({"legacy-chat": CLASSIC_MODEL}), "legacy-chat", "max_tokens"),
    ("local-server", local_profile(), "qwen2.5-7b-instruct", "max_tokens"),
]


@pytest.mark.parametrize("name, profile, model, budget_param", ROWS, ids=[r[0] for r in ROWS])
async def test_every_provider_answers_every_question_class(fresh_model, prefect_api_url, name, profile, model,
                                                           budget_param):
    fresh_model.use(profile)
    pipeline = pipeline_for(settings_for(fresh_model, model), offline=True)

    fresh_model.script(tool_calls(("count_limits", {"prefix": "etl"})), text("There are **3** etl limits."))
    lookup = await pipeline.answer(Turn("how many etl limits?", "U1"))
    assert lookup.text == "There are **3** etl limits." and not lookup.failed and lookup.tool_calls == ["count_limits"]
    tool_answer = [m for m in fresh_model.requests[-1]["messages"] if m["role"] == "tool"]
    assert json.loads(tool_answer[0]["content"]) == {"prefix": "etl", "count": 3}

    fresh_model.script(text("Use a global concurrency limit with slot decay."))
    howto = await pipeline.answer(Turn(RATE_QUESTION, "U1", history=[HistoryMessage("user", "earlier question")]))
    assert howto.text.startswith("Use a global concurrency limit") and not howto.offline

    # the request form the provider accepted is the one the bot remembers, and it is the family's
    assert all(budget_of(r)[0] == budget_param for r in fresh_model.requests[-1:])
    forms = pipeline.model.health.report()["forms"]
    assert forms.get(model, "").startswith(budget_param) or model not in forms
    if profile.usage:
        assert lookup.prompt_tokens > 0
    else:
        assert lookup.prompt_tokens == 0  # a local server sends no usage; the bot copes


# --- adapting the request form ----------------------------------------------------------------------
async def test_a_reasoning_deployment_with_a_plain_name_is_adapted_once_and_remembered(fresh_model, model_log):
    fresh_model.use(azure_profile({"prod-chat": REASONING_MODEL}))
    pipeline = pipeline_for(settings_for(fresh_model, "prod-chat", bot_model_max_tokens=700))
    fresh_model.script(text("first"), text("second"))
    assert (await pipeline.answer(Turn("q1", "U1"))).text == "first"
    assert (await pipeline.answer(Turn("q2", "U1"))).text == "second"
    sent = [budget_of(r) for r in fresh_model.requests]
    # the name says nothing: max_tokens first, refused, then the compatible form with room for reasoning
    assert sent == [("max_tokens", 700), ("max_completion_tokens", 700 + REASONING_ROOM["low"]),
                    ("max_completion_tokens", 700 + REASONING_ROOM["low"])]
    assert [r.get("reasoning_effort") for r in fresh_model.requests] == [None, "low", "low"]
    learned = [line for line in model_log.lines if "needs another request form" in line]
    assert len(learned) == 1 and "max_completion_tokens" in learned[0]
    assert "learned from the provider" in pipeline.model.health.report()["forms"]["prod-chat"]


async def test_reasoning_effort_goes_only_where_the_model_takes_it(fresh_model):
    fresh_model.use(azure_profile({"gpt-5-gateway": CLASSIC_MODEL}))  # a name that looks like a reasoning model
    pipeline = pipeline_for(settings_for(fresh_model, "gpt-5-gateway", bot_model_reasoning_effort="medium"))
    fresh_model.script(text("ok"), text("ok again"))
    assert (await pipeline.answer(Turn("q", "U1"))).text == "ok"
    assert (await pipeline.answer(Turn("q", "U1"))).text == "ok again"
    efforts = [r.get("reasoning_effort") for r in fresh_model.requests]
    assert efforts == ["medium", None, None]  # refused once, never sent again
    classic = pipeline_for(settings_for(fresh_model, "gpt-5-gateway"))
    assert classic.model is not None


async def test_an_empty_answer_at_the_budget_gets_one_larger_budget_then_the_offline_answer(
        fresh_model, prefect_api_url):
    pipeline = pipeline_for(settings_for(fresh_model, REASONING_MODEL, bot_model_max_tokens=300,
                                         bot_model_reasoning_effort="minimal"), offline=True)
    room = 300 + REASONING_ROOM["minimal"]
    fresh_model.script(text("thought hard", reasoning_tokens=room + 10), text("Use slot decay.", reasoning_tokens=room))
    grown = await pipeline.answer(Turn(RATE_QUESTION, "U1"))
    assert grown.text == "Use slot decay." and not grown.offline
    assert [budget_of(r)[1] for r in fresh_model.requests] == [room, 2 * room]

    fresh_model.script(text("x", reasoning_tokens=10 ** 5), text("x", reasoning_tokens=10 ** 5))
    starved = await pipeline.answer(Turn(RATE_QUESTION, "U1"))
    assert starved.offline and "whole token budget on hidden reasoning" in starved.text
    assert "Rate limiting with slot decay" in starved.text  # the offline answer itself
    assert len(fresh_model.requests) == 4 and not pipeline.breaker.failures


async def test_a_content_filter_ending_gets_the_offline_answer_with_a_note(fresh_model, prefect_api_url):
    pipeline = pipeline_for(settings_for(fresh_model, CLASSIC_MODEL), offline=True)
    fresh_model.script(filtered())
    reply = await pipeline.answer(Turn(RATE_QUESTION, "U1"))
    assert reply.offline and "content filter" in reply.text and "Rate limiting with slot decay" in reply.text


# --- permanent is not transient ------------------------------------------------------------------------
PERMANENT = [
    ("bad key", lambda api: api.revoke(KEY), CLASSIC_MODEL, "OPENAI_API_KEY", "Incorrect API key provided"),
    ("unknown model", lambda api: None, "gpt-4o-mini-typo", "OPENAI_MODEL", "does not exist"),
    ("no quota", lambda api: api.script(quota_exhausted()), CLASSIC_MODEL, "billing", "exceeded your current quota"),
    ("unadaptable parameter", lambda api: api.script(error(
        400, code="unsupported_parameter", type_="invalid_request_error", param="tools",
        message="Unsupported parameter: 'tools' is not supported with this model.")),
     CLASSIC_MODEL, "OPENAI_MODEL", "'tools' is not supported"),
]


@pytest.mark.parametrize("case, arrange, model, setting, provider_says", PERMANENT, ids=[p[0] for p in PERMANENT])
async def test_a_permanent_error_answers_offline_once_logs_the_setting_and_stops_asking(
        fresh_model, prefect_api_url, model_log, case, arrange, model, setting, provider_says):
    pipeline = pipeline_for(settings_for(fresh_model, model), offline=True)
    arrange(fresh_model)
    first = await pipeline.answer(Turn(RATE_QUESTION, "U1"))
    second = await pipeline.answer(Turn(RATE_QUESTION, "U1"))
    for reply in (first, second):
        assert reply.offline and not reply.failed
        assert f"The model is off ({MISCONFIGURED})" in reply.text and "try again" not in reply.text.lower()
        assert "Rate limiting with slot decay" in reply.text
    assert len(fresh_model.requests) == 1  # no retries, and the second question did not ask the model
    assert pipeline.breaker.failures == 0 and not pipeline.breaker.is_open
    lines = [line for line in model_log.lines if "model misconfigured" in line]
    assert len(lines) == 1 and setting in lines[0] and provider_says in lines[0]
    report = pipeline.model.health.report(model)
    assert report["state"] == "misconfigured" and setting in report["problem"]["setting"]
    assert "misconfigured" in pipeline.model.health.notice()


async def test_a_budget_the_model_cannot_give_names_bot_model_max_tokens(fresh_model, model_log):
    pipeline = pipeline_for(settings_for(fresh_model, CLASSIC_MODEL, bot_model_max_tokens=50_000))
    reply = await pipeline.answer(Turn("q", "U1"))
    assert MISCONFIGURED in reply.text and len(fresh_model.requests) == 1
    assert pipeline.model.health.problem.setting == "BOT_MODEL_MAX_TOKENS"
    assert any("BOT_MODEL_MAX_TOKENS" in line and "at most 16384" in line for line in model_log.lines)


async def test_without_an_offline_helper_the_misconfigured_line_is_the_answer(fresh_model):
    pipeline = pipeline_for(settings_for(fresh_model, "no-such-model"))
    reply = await pipeline.answer(Turn("q", "U1"))
    assert reply.failed and MISCONFIGURED in reply.text and "try again" not in reply.text.lower()


async def test_a_rate_limit_is_transient_and_retried(fresh_model):
    pipeline = pipeline_for(settings_for(fresh_model, CLASSIC_MODEL))
    fresh_model.script(rate_limited(0.05), text("after the rate limit"))
    reply = await pipeline.answer(Turn("q", "U1"))
    assert reply.text == "after the rate limit" and len(fresh_model.requests) == 2
    assert pipeline.model.health.problem is None


async def test_a_fixed_problem_clears_at_the_next_trial(fresh_model, prefect_api_url):
    pipeline = pipeline_for(settings_for(fresh_model, CLASSIC_MODEL), offline=True)
    fresh_model.script(quota_exhausted(), text("billing fixed"))
    assert (await pipeline.answer(Turn(RATE_QUESTION, "U1"))).offline
    pipeline.model.health.recheck_seconds = 0  # the trial is due
    back = await pipeline.answer(Turn(RATE_QUESTION, "U1"))
    assert back.text == "billing fixed" and pipeline.model.health.problem is None


# --- context overflow --------------------------------------------------------------------------------
async def test_an_overlong_history_is_trimmed_oldest_first_and_the_answer_says_so(fresh_model):
    fresh_model.use(local_profile(context_window=1500))
    pipeline = pipeline_for(settings_for(fresh_model, "small-local", bot_history_max_chars=50_000))
    history = [HistoryMessage("user" if i % 2 == 0 else "assistant", f"message {i}: " + "words " * 150)
               for i in range(10)]
    fresh_model.script(text("answered within the window"))
    reply = await pipeline.answer(Turn("and now?", "U1", history=history))
    assert reply.text.startswith("answered within the window")
    assert "left out the" in reply.text and "oldest messages" in reply.text
    refused, accepted = fresh_model.requests[-2], fresh_model.requests[-1]
    assert len(accepted["messages"]) < len(refused["messages"])
    assert accepted["messages"][-1]["content"] == "and now?"  # the question itself stays
    kept = [m["content"] for m in accepted["messages"] if m["role"] != "system"]
    assert kept[-2].startswith("message 9")  # the newest history is what survives


async def test_an_overlong_tool_result_is_shortened_before_any_history(fresh_model):
    fresh_model.use(local_profile(context_window=4000))
    pipeline = pipeline_for(settings_for(fresh_model, "small-local", bot_tool_result_max_chars=60_000), big_report)
    fresh_model.script(tool_calls(("big_report", {})), text("summarised"))
    reply = await pipeline.answer(Turn("give me the report", "U1", history=[HistoryMessage("user", "hello")]))
    assert reply.text.startswith("summarised") and "part of 1 tool result" in reply.text
    assert "oldest" not in reply.text
    last = fresh_model.requests[-1]["messages"]
    assert any(m["role"] == "user" and m["content"] == "hello" for m in last)
    assert "left out" in next(m["content"] for m in last if m["role"] == "tool")


# --- local servers' tool-call ids --------------------------------------------------------------------
@pytest.mark.parametrize("ids", ["reused", "missing"])
async def test_missing_or_reused_tool_call_ids_still_get_one_answer_each(fresh_model, ids):
    fresh_model.use(local_profile(tool_call_ids=ids))
    pipeline = pipeline_for(settings_for(fresh_model, "local-model"))
    fresh_model.script(tool_calls(("count_limits", {"prefix": "a"}), ("count_limits", {"prefix": "b"})),
                       tool_calls(("count_limits", {"prefix": "c"})), text("three lookups done"))
    reply = await pipeline.answer(Turn("count", "U1"))
    assert reply.text == "three lookups done" and reply.tool_calls == ["count_limits"] * 3
    final = fresh_model.requests[-1]["messages"]
    ids_asked = [c["id"] for m in final for c in m.get("tool_calls") or []]
    ids_answered = [m["tool_call_id"] for m in final if m["role"] == "tool"]
    assert ids_asked == ids_answered and len(set(ids_asked)) == 3
    prefixes = [json.loads(m["content"])["prefix"] for m in final if m["role"] == "tool"]
    assert prefixes == ["a", "b", "c"]


# --- end to end: built as `serve` builds it ----------------------------------------------------------
def test_a_bad_key_is_shown_in_the_thread_the_home_tab_and_healthz(fresh_slack, fresh_model, prefect_api_url,
                                                                    tmp_path, model_log):
    import time
    import urllib.request

    from tests.harness import MODEL_KEY, BotHarness, mention

    fresh_model.revoke(MODEL_KEY)
    bot = BotHarness(fresh_slack, fresh_model, f"sqlite:///{tmp_path / 'bot.db'}", bot_streaming=False,
                     bot_metrics_token="metrics-token-123456").start()
    try:
        for ts in ("1700000100.000100", "1700000100.000200"):
            assert bot.post_event(mention(RATE_QUESTION, ts=ts)).status == 200
            bot.wait_idle()
        for ts in ("1700000100.000100", "1700000100.000200"):
            said = "\n".join(fresh_slack.bot_texts("C1", ts))
            assert MISCONFIGURED in said and "try again" not in said.lower()
            assert "slot decay" in said.lower()  # the offline answer itself
        assert len(fresh_model.requests) == 1  # asked once, not retried, not asked again
        lines = [line for line in model_log.lines if "model misconfigured" in line]
        assert len(lines) == 1 and "OPENAI_API_KEY" in lines[0] and "Incorrect API key provided" in lines[0]
        assert MODEL_KEY not in lines[0]

        request = urllib.request.Request(f"{bot.url}/healthz?detail=1",
                                         headers={"Authorization": "Bearer metrics-token-123456"})
        with urllib.request.urlopen(request, timeout=10) as response:
            detail = json.loads(response.read())
        assert detail["ok"] is True and detail["model"]["state"] == "misconfigured"
        assert detail["model"]["problem"]["setting"] == "OPENAI_API_KEY"
        with urllib.request.urlopen(f"{bot.url}/healthz", timeout=10) as response:
            assert json.loads(response.read()) == {"ok": True}  # the detail only with the token

        before = len(fresh_slack.calls_to("views.publish"))
        event = {"type": "app_home_opened", "user": "U1", "channel": "D1", "tab": "home",
                 "event_ts": f"{time.time():.6f}"}
        assert bot.post_event(event).status == 200
        view = fresh_slack.wait_for("views.publish", before + 1, timeout=60)[-1].args["view"]
        assert "The model is misconfigured" in json.dumps(view) and "OPENAI_API_KEY" in json.dumps(view)
    finally:
        bot.stop()
