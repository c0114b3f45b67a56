"""The model client: the real `openai` async client, with tenacity retries we control.

The SDK's own retries are off (max_retries=0) so that one policy applies: exponential backoff
with jitter on rate limits, timeouts, connection errors and 5xx, honouring Retry-After, and
never past the answer's deadline.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

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

_backoff = wait_exponential_jitter(initial=0.5, max=20, jitter=0.5)


class ModelUnavailable(Exception):
    """The model could not give an answer after retries (or the deadline passed)."""


def is_retryable(exc: BaseException) -> bool:
    if isinstance(exc, openai.APITimeoutError | openai.APIConnectionError | openai.RateLimitError):
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
    max_tokens: int | None = 1500  # sent on every request: one long generation cannot hog the provider


class ModelClient:
    """Chat completions with tools, retried; `complete` raises ModelUnavailable on final failure."""

    def __init__(self, client: AsyncOpenAI, settings: ModelSettings) -> None:
        self.client = client
        self.settings = settings

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

    async def complete(self, messages: list[dict[str, Any]], tools: list[dict[str, Any]] | None,
                       deadline: float, tool_choice: str | None = None) -> Any:
        def out_of_time(state: RetryCallState) -> bool:
            return time.monotonic() >= deadline - 1.0

        retrying = AsyncRetrying(
            retry=retry_if_exception(is_retryable),
            stop=stop_after_attempt(self.settings.max_attempts) | out_of_time,
            wait=self._wait(deadline),
            reraise=True,
        )
        kwargs: dict[str, Any] = {"model": self.settings.model, "messages": messages}
        if self.settings.max_tokens:
            kwargs["max_tokens"] = self.settings.max_tokens
        if tools:
            kwargs["tools"] = tools
            if tool_choice:
                kwargs["tool_choice"] = tool_choice
        try:
            async for attempt in retrying:
                with attempt:
                    remaining = max(1.0, deadline - time.monotonic())
                    return await self._create(kwargs, min(self.settings.request_timeout, remaining))
        except openai.OpenAIError as exc:
            raise ModelUnavailable(_describe(exc)) from exc
        raise ModelUnavailable("the model gave no answer")  # pragma: no cover


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
