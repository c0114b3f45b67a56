"""The model client: the real `openai` async client, with tenacity retries we control.

The SDK's own retries are off (max_retries=0) so that one policy applies: exponential backoff
with jitter on rate limits, timeouts, connection errors and 5xx, honouring Retry-After, and
never past the answer's deadline. Permanent errors are never retried: a request the model refuses
in this form is sent once more in the compatible form (remembered, bot.agent.model_health); a bad
key, unknown model or empty quota raises ModelMisconfigured. A reasoning model that spent its whole
budget thinking gets one retry with a larger budget.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from typing import Any, NoReturn

import openai
from openai import AsyncOpenAI
from openai.types.chat import ChatCompletion
from tenacity import (
    AsyncRetrying,
    RetryCallState,
    retry_if_exception,
    stop_after_attempt,
    wait_exponential_jitter,
)

from bot.agent.model_health import ModelHealth, ModelProblem, RequestForm, permanent_problem, unadaptable_problem

log = logging.getLogger(__name__)
_backoff = wait_exponential_jitter(initial=0.5, max=20, jitter=0.5)


class ModelUnavailable(Exception):
    """The model could not give an answer after retries (or the deadline passed)."""


class ModelMisconfigured(ModelUnavailable):
    """A permanent error: a setting or the provider account must change. Not retried, no breaker."""

    def __init__(self, problem: ModelProblem) -> None:
        super().__init__(problem.summary)
        self.problem = problem


class ContextTooLong(ModelUnavailable):
    """400 `context_length_exceeded`: the caller trims the conversation and asks once more."""


class ModelNoAnswer(ModelUnavailable):
    """The model ended without an answer we can use: its budget went to reasoning, or a content filter."""

    def __init__(self, reason: str, note: str) -> None:
        super().__init__(reason)
        self.note = note


ADAPTABLE = ("unsupported_parameter", "unsupported_value")
MAX_ADAPTATIONS = 3  # each one must change the form; a fourth refusal is a problem, not a loop
BUDGET_NOTE = ("The model used its whole token budget on hidden reasoning twice, so this answer comes from "
               "the offline helper.")
FILTER_NOTE = ("The model provider's content filter stopped the model's answer, so this one comes from the "
               "offline helper.")


def is_retryable(exc: BaseException) -> bool:
    if isinstance(exc, openai.RateLimitError):
        return getattr(exc, "code", None) != "insufficient_quota"  # no quota is permanent, not a rate limit
    if isinstance(exc, openai.APITimeoutError | openai.APIConnectionError):
        return True
    return isinstance(exc, openai.APIStatusError) and exc.status_code >= 500


def retry_after_seconds(exc: BaseException | None) -> float | None:
    """The server's Retry-After (seconds or `retry-after-ms`), if the error carried one."""
    response = getattr(exc, "response", None)
    if response is None:
        return None
    headers = response.headers
    try:
        if headers.get("retry-after-ms"):
            return float(headers["retry-after-ms"]) / 1000
        if headers.get("retry-after"):
            return float(headers["retry-after"])
    except ValueError:
        return None
    return None


@dataclass
class ModelSettings:
    model: str
    max_attempts: int = 4
    request_timeout: float = 60.0
    max_wait: float = 20.0
    max_tokens: int | None = 1500  # the answer's budget: one long generation cannot hog the provider
    reasoning_effort: str | None = None  # sent only to models that reason (and take it)


class ModelClient:
    """Chat completions with tools, retried; `complete` raises ModelUnavailable on final failure."""

    def __init__(self, client: AsyncOpenAI, settings: ModelSettings, health: ModelHealth | None = None) -> None:
        self.client = client
        self.settings = settings
        self.health = health or ModelHealth()

    @classmethod
    def create(cls, api_key: str, base_url: str | None, settings: ModelSettings) -> ModelClient:
        client = AsyncOpenAI(api_key=api_key, base_url=base_url, max_retries=0,
                             timeout=settings.request_timeout)
        return cls(client, settings)

    def _wait(self, deadline: float):
        def wait(state: RetryCallState) -> float:
            exc = state.outcome.exception() if state.outcome else None
            hinted = retry_after_seconds(exc)
            delay = hinted if hinted is not None else _backoff(state)
            delay = min(delay, self.settings.max_wait)
            return max(0.0, min(delay, deadline - time.monotonic() - 0.5))
        return wait

    async def _create(self, body: dict[str, Any], timeout: float) -> ChatCompletion:
        """POST /chat/completions through the client's own `post`, skipping the SDK's parameter transform.

        Our body is already plain JSON (dicts and strings). The transform walked every message of every
        request and was 13% of the answer loop's CPU under load (py-spy, bench); errors, retries off,
        auth and the typed response are the same as `chat.completions.create`.
        """
        return await self.client.post("/chat/completions", body=body, cast_to=ChatCompletion,
                                      options={"timeout": timeout})

    def body(self, form: RequestForm, messages: list[dict[str, Any]], tools: list[dict[str, Any]] | None,
             tool_choice: str | None, grow: int = 1) -> dict[str, Any]:
        """The request in `form`: the budget under the name the model takes, reasoning_effort only
        where it reasons. Key order is fixed (model, messages, tools) so the static prefix stays put."""
        body: dict[str, Any] = {"model": self.settings.model, "messages": messages}
        if tools:
            body["tools"] = tools
            if tool_choice:
                body["tool_choice"] = tool_choice
        effort = self.settings.reasoning_effort
        budget = form.budget(self.settings.max_tokens, effort, grow)
        if budget:
            body[form.token_param] = budget
        if effort and form.reasoning and form.effort:
            body["reasoning_effort"] = effort
        return body

    async def _send(self, body: dict[str, Any], deadline: float) -> ChatCompletion:
        """One request with the transient-error retries."""
        def out_of_time(state: RetryCallState) -> bool:
            return time.monotonic() >= deadline - 1.0

        retrying = AsyncRetrying(
            retry=retry_if_exception(is_retryable),
            stop=stop_after_attempt(self.settings.max_attempts) | out_of_time,
            wait=self._wait(deadline),
            reraise=True,
        )
        async for attempt in retrying:
            with attempt:
                remaining = max(1.0, deadline - time.monotonic())
                return await self._create(body, min(self.settings.request_timeout, remaining))
        raise ModelUnavailable("the model gave no answer")  # pragma: no cover

    async def complete(self, messages: list[dict[str, Any]], tools: list[dict[str, Any]] | None,
                       deadline: float, tool_choice: str | None = None) -> Any:
        model = self.settings.model
        form = self.health.form_for(model)
        adaptations = grow = 0
        while True:
            try:
                response = await self._send(self.body(form, messages, tools, tool_choice, 1 + grow), deadline)
            except openai.BadRequestError as exc:
                code = getattr(exc, "code", None)
                if code in ADAPTABLE:
                    adapted = form.adapt(getattr(exc, "param", None))
                    if adapted is None or adaptations >= MAX_ADAPTATIONS:
                        self._problem(unadaptable_problem(exc, model))
                    adaptations += 1
                    self.health.learn(model, adapted, getattr(exc, "message", str(exc)))
                    form = adapted
                    continue
                if code == "context_length_exceeded":
                    raise ContextTooLong("the conversation is longer than the model's context window") from exc
                if getattr(exc, "param", None) in ("max_tokens", "max_completion_tokens"):
                    self._problem(unadaptable_problem(exc, model))  # e.g. a budget above the model's output limit
                raise ModelUnavailable(_describe(exc)) from exc
            except openai.OpenAIError as exc:
                problem = permanent_problem(exc, model)
                if problem is not None:
                    self._problem(problem)
                raise ModelUnavailable(_describe(exc)) from exc
            self.health.record_success()
            choice = response.choices[0] if response.choices else None
            if choice is None:
                raise ModelUnavailable("the model sent no choices")
            if choice.finish_reason == "content_filter":
                raise ModelNoAnswer("the provider's content filter stopped the answer", FILTER_NOTE)
            empty = not (choice.message.content or "").strip() and not choice.message.tool_calls
            if empty and choice.finish_reason == "length":
                if grow:
                    raise ModelNoAnswer("the model spent its whole budget reasoning", BUDGET_NOTE)
                grow = 1  # one retry with twice the budget
                log.info("model %s ended empty at its token budget; asking once more with twice the budget", model)
                continue
            return response

    def _problem(self, problem: ModelProblem) -> NoReturn:
        self.health.record_problem(problem)
        raise ModelMisconfigured(problem)


def _describe(exc: openai.OpenAIError) -> str:
    if isinstance(exc, openai.RateLimitError):
        return "the model provider is rate limiting us"
    if isinstance(exc, openai.APITimeoutError):
        return "the model timed out"
    if isinstance(exc, openai.APIConnectionError):
        return "the model provider could not be reached"
    if isinstance(exc, openai.APIStatusError):
        return f"the model provider answered HTTP {exc.status_code}"
    return "the model request failed"
