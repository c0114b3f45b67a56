"""Model checks: the key is accepted, the model exists, and a one-tool round trip works, through the
bot's own model client (so the request is the one answers send).

Two small requests with a tiny tool; no retries, so a permanent error is reported as itself.
"""

from __future__ import annotations

import json
import time
from typing import Any

import openai

from bot.doctor.report import Row, fail, ok, warn
from bot.settings import Settings

__all__ = ["check_model"]

GROUP = "Model"
PING_TOOL = {"type": "function", "function": {
    "name": "doctor_ping", "description": "Answers pong. Call it once when asked to check the tool connection.",
    "parameters": {"type": "object", "properties": {}, "additionalProperties": False}}}
SYSTEM = "You are being connection-tested. Call the doctor_ping tool once, then reply with the word it returned."
DEADLINE = 60.0


def _provider_message(exc: openai.APIStatusError) -> str:
    body = exc.body if isinstance(exc.body, dict) else {}
    error = body.get("error", body) if isinstance(body.get("error", body), dict) else {}
    message = str(error.get("message") or exc.message or "")
    return message.splitlines()[0][:200] if message else f"HTTP {exc.status_code}"


def _error_code(exc: openai.APIStatusError) -> str:
    if getattr(exc, "code", None):
        return str(exc.code)
    body = exc.body if isinstance(exc.body, dict) else {}
    error = body.get("error", body) if isinstance(body.get("error", body), dict) else {}
    return str(error.get("code") or error.get("type") or "")


def _failure_row(settings: Settings, exc: BaseException) -> Row:
    """One ✗ row naming the setting to change, from the provider's own error."""
    model = settings.openai_model
    if isinstance(exc, openai.AuthenticationError):
        return fail(GROUP, "key", f"the provider refused OPENAI_API_KEY: {_provider_message(exc)}",
                    "set OPENAI_API_KEY to a valid key for this provider (and OPENAI_BASE_URL if it is not OpenAI)")
    if isinstance(exc, openai.PermissionDeniedError):
        return fail(GROUP, "key", f"the key may not use {model}: {_provider_message(exc)}",
                    "give the key's project access to the model, or set OPENAI_MODEL to one it may use")
    if isinstance(exc, openai.NotFoundError):
        if _error_code(exc) == "model_not_found" or "model" in _provider_message(exc).lower():
            return fail(GROUP, "model", f"OPENAI_MODEL={model} does not exist for this key: "
                        f"{_provider_message(exc)}", "set OPENAI_MODEL to a model the provider lists")
        return fail(GROUP, "model", f"no chat completions at OPENAI_BASE_URL ({_provider_message(exc)})",
                    "set OPENAI_BASE_URL to the provider's OpenAI-compatible base, usually ending in /v1")
    if isinstance(exc, openai.RateLimitError):
        if _error_code(exc) == "insufficient_quota":
            return fail(GROUP, "key", f"the key has no quota left: {_provider_message(exc)}",
                        "add credit or raise the project's limit, or use another key")
        return warn(GROUP, "key", f"rate limited right now: {_provider_message(exc)}",
                    "run `concurrency-bot doctor` again in a minute; raise the provider limit if it persists")
    if isinstance(exc, openai.BadRequestError):
        return fail(GROUP, "request", f"{model} refused the bot's request: {_provider_message(exc)}",
                    "pick a model that takes tools and this request form (OPENAI_MODEL), or report it with this line")
    if isinstance(exc, openai.APIConnectionError | openai.APITimeoutError):
        where = settings.openai_base_url or "api.openai.com"
        return fail(GROUP, "key", f"could not reach the model provider at {where} ({type(exc).__name__})",
                    "check OPENAI_BASE_URL and network access to the provider")
    if isinstance(exc, openai.APIStatusError):
        return warn(GROUP, "key", f"the provider answered HTTP {exc.status_code}: {_provider_message(exc)}",
                    "the provider may be having trouble; run doctor again later")
    return fail(GROUP, "key", f"the model request failed ({type(exc).__name__})", "check OPENAI_* settings")


async def _round_trip(settings: Settings) -> tuple[list[Row], Any]:
    from bot.agent.model import ModelUnavailable
    from bot.pipeline import model_from_settings

    model = model_from_settings(settings.model_copy(update={"bot_model_max_attempts": 1}))
    assert model is not None
    deadline = time.monotonic() + DEADLINE
    messages: list[dict[str, Any]] = [{"role": "system", "content": SYSTEM}, {"role": "user", "content": "ping"}]
    try:
        first = await model.complete(messages, [PING_TOOL], deadline)
        message = first.choices[0].message
        calls = [c for c in (message.tool_calls or []) if getattr(c, "function", None)]
        head = [ok(GROUP, "key", "accepted"), ok(GROUP, "model", f"{settings.openai_model} answers")]
        if not calls or calls[0].function.name != "doctor_ping":
            return [*head, warn(GROUP, "tools", f"{settings.openai_model} answered without calling the tool",
                                "choose a model with tool (function) calling; without it answers skip live "
                                "reads")], model
        call = calls[0]
        messages.append({"role": "assistant", "content": message.content,
                         "tool_calls": [{"id": call.id, "type": "function", "function": {
                             "name": call.function.name, "arguments": call.function.arguments or "{}"}}]})
        messages.append({"role": "tool", "tool_call_id": call.id, "content": json.dumps({"result": "pong"})})
        second = await model.complete(messages, [PING_TOOL], deadline)
        if second.choices[0].message.content is None and not second.choices[0].message.tool_calls:
            return [*head, warn(GROUP, "tools", "the model called the tool but gave no answer after its result",
                                "try another model (OPENAI_MODEL); answers may come back empty")], model
        return [*head, ok(GROUP, "tools", "a one-tool round trip works")], model
    except ModelUnavailable as exc:
        return [_failure_row(settings, exc.__cause__ or exc)], model


def _form_row(settings: Settings, model: Any) -> Row:
    form = "max_tokens" if getattr(model.settings, "max_tokens", None) else "no token cap"
    return ok(GROUP, "request form", f"{settings.openai_model} takes {form} (the form answers send)")


async def check_model(settings: Settings) -> list[Row]:
    if not settings.model_configured:
        return [warn(GROUP, "model", "offline answers only: no OPENAI_API_KEY, so answers come from live Prefect "
                     "reads and the recipe book", "set OPENAI_API_KEY (and OPENAI_MODEL, OPENAI_BASE_URL for other "
                     "providers) for model answers")]
    rows, model = await _round_trip(settings)
    if all(r.status.value == "ok" for r in rows):
        rows.append(_form_row(settings, model))
    return rows
