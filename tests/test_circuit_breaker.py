"""The circuit breaker: after repeated model failures the pipeline answers offline, then returns to the model.

The model is the scripted OpenAI-protocol server; the breaker's clock is injected so the reset
period passes without sleeping. The offline answers come from the real offline engine.
"""

from __future__ import annotations

import pytest

from bot.agent.circuit import CircuitBreaker
from bot.agent.registry import ToolRegistry
from bot.knowledge.recipes import RecipeBook
from bot.knowledge.search import RecipeSearch
from bot.offline import OfflineAnswerer
from bot.pipeline import Pipeline, model_from_settings
from bot.settings import load_settings
from bot.turns import Turn
from tests.fakes.model_api import SUITE_MODEL, error, text

QUESTION = "how do I rate limit calls to an external API?"


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def pipeline(fresh_model, clock, prefect_api_url) -> Pipeline:
    settings = load_settings(openai_api_key="sk-test-circuit-123456", openai_base_url=fresh_model.base_url,
                             openai_model=SUITE_MODEL, bot_model_max_attempts=2,
                             bot_model_retry_max_wait_seconds=0.05, bot_circuit_failure_threshold=2,
                             bot_circuit_reset_seconds=30.0, bot_answer_timeout_seconds=30.0)
    return Pipeline(
        settings=settings,
        tools_for_turn=lambda turn, created: ToolRegistry(),
        model=model_from_settings(settings),
        offline=OfflineAnswerer(RecipeSearch(RecipeBook.load())),
        system_prompt="You answer Prefect concurrency questions.",
        breaker=CircuitBreaker(settings.bot_circuit_failure_threshold, settings.bot_circuit_reset_seconds,
                               clock=clock),
    )


async def test_opens_after_repeated_failures_and_closes_when_the_model_is_back(pipeline, fresh_model, clock):
    fresh_model.default = error(500, message="provider down")
    turn = Turn(QUESTION, "U1", channel="C1")

    first = await pipeline.answer(turn)  # failure 1 of 2: a short apology, the breaker stays closed
    assert first.failed and not first.offline
    assert len(fresh_model.requests) == 2  # both attempts were made

    second = await pipeline.answer(turn)  # failure 2: the breaker opens and this very turn is answered offline
    assert second.offline and not second.failed
    assert "The model is off (the model is unreachable)" in second.text
    assert "Rate limiting with slot decay" in second.text

    asked = len(fresh_model.requests)
    third = await pipeline.answer(turn)  # open: straight to offline, the model is not even asked
    assert third.offline and "Rate limiting with slot decay" in third.text
    assert len(fresh_model.requests) == asked

    fresh_model.default = text("The model is back: use a GCL with slot decay and rate_limit().")
    clock.now += 29  # still inside the reset period
    assert (await pipeline.answer(turn)).offline
    assert len(fresh_model.requests) == asked

    clock.now += 2  # past it: one trial goes to the model, succeeds, and the breaker closes
    back = await pipeline.answer(turn)
    assert not back.offline and not back.failed
    assert back.text.startswith("The model is back")
    assert not pipeline.breaker.is_open and pipeline.breaker.failures == 0
    again = await pipeline.answer(turn)
    assert not again.offline and len(fresh_model.requests) == asked + 2


async def test_a_failed_trial_opens_the_breaker_again(pipeline, fresh_model, clock):
    fresh_model.default = error(503)
    turn = Turn(QUESTION, "U1")
    await pipeline.answer(turn)
    assert (await pipeline.answer(turn)).offline
    clock.now += 31
    trial = await pipeline.answer(turn)  # the half-open trial fails: offline again, breaker re-opened
    assert trial.offline
    assert pipeline.breaker.is_open
    asked = len(fresh_model.requests)
    assert (await pipeline.answer(turn)).offline and len(fresh_model.requests) == asked
