"""Model checks: the key is accepted, the model exists, a one-tool round trip works, and which request form
the model needs. The round trip is `bot.agent.model_health.probe` on the bot's own model client, so the
request is the one answers send and a permanent error is classified the way answers classify it.
"""

from __future__ import annotations

from typing import Any

from bot.doctor.report import Row, fail, ok, warn
from bot.settings import Settings

__all__ = ["check_model"]

GROUP = "Model"
# Which row a permanent problem (bot.agent.model_health.ModelProblem.kind) belongs to.
ROW_OF_KIND = {"bad_key": "key", "no_access": "key", "no_quota": "key", "unknown_model": "model",
               "wrong_url": "model", "unsupported_parameter": "request form"}
TIMEOUT = 60.0


def _problem_row(problem: dict[str, Any]) -> Row:
    said = str(problem.get("provider_message") or "").splitlines()[0][:200] if problem.get("provider_message") else ""
    code = f", {problem['code']}" if problem.get("code") else ""
    detail = f"{problem.get('summary')} (HTTP {problem.get('status')}{code}: {said})"
    return fail(GROUP, ROW_OF_KIND.get(str(problem.get("kind")), "model"), detail, f"change {problem.get('setting')}")


def _transient_row(settings: Settings, detail: str) -> Row:
    if "rate limiting" in detail:
        return warn(GROUP, "key", f"{detail} right now",
                    "run `concurrency-bot doctor` again in a minute; raise the provider limit if it persists")
    where = settings.openai_base_url or "api.openai.com"
    return fail(GROUP, "key", f"{detail} ({where})", "check OPENAI_BASE_URL and network access to the provider")


async def check_model(settings: Settings) -> list[Row]:
    if not settings.model_configured:
        return [warn(GROUP, "model", "offline answers only: no OPENAI_API_KEY, so answers come from live Prefect "
                     "reads and the recipe book", "set OPENAI_API_KEY (and OPENAI_MODEL, OPENAI_BASE_URL for other "
                     "providers) for model answers")]
    from bot.agent.model_health import probe
    from bot.pipeline import model_from_settings

    client = model_from_settings(settings.model_copy(update={"bot_model_max_attempts": 1}))  # no retries here
    assert client is not None
    result = await probe(client, timeout=TIMEOUT)
    if result.problem:
        return [_problem_row(result.problem)]
    if not result.ok:
        return [_transient_row(settings, result.detail)]
    rows = [ok(GROUP, "key", "accepted"), ok(GROUP, "model", f"{settings.openai_model} answers")]
    if not result.tool_called:
        rows.append(warn(GROUP, "tools", f"{settings.openai_model} answered without calling the tool",
                         "choose a model with tool (function) calling; without it answers skip live reads"))
    elif not result.answered:
        rows.append(warn(GROUP, "tools", "the model called the tool but gave no answer after its result",
                         "try another model (OPENAI_MODEL); answers may come back empty"))
    else:
        rows.append(ok(GROUP, "tools", "a one-tool round trip works"))
    rows.append(ok(GROUP, "request form", result.form))
    return rows
