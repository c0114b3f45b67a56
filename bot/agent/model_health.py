"""What the bot knows about its model: the request form each model needs, and the current problem.

Providers differ in what a request may carry (reasoning models refuse `max_tokens`, classic ones
refuse `reasoning_effort`), so the form is guessed from the model's name, corrected from the
provider's own `unsupported_parameter` / `unsupported_value` answers, and remembered per model for
the life of the process. A permanent error (bad key, unknown model, no quota, a parameter we cannot
adapt) is a *problem*: it is not retried, it does not trip the circuit breaker, it is logged once
for the operator with the setting to change, and the Home tab, `/healthz` and `doctor` show it.

`ModelHealth.report()` is the one read-side accessor; `probe(client)` is a one-tool round trip.
"""

from __future__ import annotations

import logging
import re
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

import openai

if TYPE_CHECKING:
    from bot.agent.model import ModelClient

log = logging.getLogger(__name__)

REASONING_NAMES = re.compile(r"^(?:[\w.-]+/)?(?:o\d|gpt-5)", re.IGNORECASE)  # o1, o3, o4-mini, gpt-5*, "openai/o3"
# Hidden reasoning spends tokens out of max_completion_tokens: room left for it on top of the answer.
REASONING_ROOM = {"none": 0, "minimal": 1024, "low": 2048, "medium": 4096, "high": 8192, "xhigh": 16384}
RECHECK_SECONDS = 300.0  # a model with a problem is tried again this often (quota and access can come back)


@dataclass(frozen=True)
class RequestForm:
    """How to shape a request for one model. `token_param` is the budget's name ('' sends none)."""

    token_param: str = "max_tokens"
    reasoning: bool = False  # hidden reasoning tokens: leave room in the budget, may take reasoning_effort
    effort: bool = True  # send BOT_MODEL_REASONING_EFFORT (only ever to a reasoning model)
    learned: bool = False  # corrected from the provider's answer, not guessed from the name

    def describe(self) -> str:
        parts = [self.token_param or "no token budget", "reasoning" if self.reasoning else "classic"]
        if self.reasoning and not self.effort:
            parts.append("no reasoning_effort")
        return ", ".join(parts) + (" (learned from the provider)" if self.learned else " (from the name)")

    def adapt(self, param: str | None) -> RequestForm | None:
        """The compatible form after the provider refused `param`, or None when we cannot adapt."""
        if param == "max_tokens" and self.token_param == "max_tokens":
            return replace(self, token_param="max_completion_tokens", reasoning=True, learned=True)
        if param == "max_completion_tokens" and self.token_param == "max_completion_tokens":
            return replace(self, token_param="max_tokens", reasoning=False, learned=True)
        if param == "reasoning_effort" and self.effort:
            return replace(self, effort=False, learned=True)
        return None

    def budget(self, answer_tokens: int | None, effort: str | None, grow: int = 1) -> int | None:
        """Completion tokens to ask for: the answer's share, plus room for reasoning on reasoning models."""
        if not answer_tokens or not self.token_param:
            return None
        room = REASONING_ROOM.get((effort if self.effort else None) or "medium", 4096) if self.reasoning else 0
        return (answer_tokens + room) * grow


def guess_form(model: str) -> RequestForm:
    """The first guess, from the name alone; the provider's answers correct it."""
    if REASONING_NAMES.match(model.strip()):
        return RequestForm(token_param="max_completion_tokens", reasoning=True)
    return RequestForm()


@dataclass(frozen=True)
class ModelProblem:
    """A permanent model error: retrying does not help, a setting (or the account) has to change."""

    kind: str  # bad_key | no_access | unknown_model | wrong_url | no_quota | unsupported_parameter
    summary: str  # plain words for people
    setting: str  # what the operator changes
    provider_message: str
    status: int | None
    code: str | None
    model: str
    at: float = field(default_factory=time.monotonic)

    def log_line(self) -> str:
        return (f"model misconfigured ({self.kind}): {self.summary}. Change {self.setting}. "
                f"Provider said (HTTP {self.status}, code {self.code}): {self.provider_message}")

    def as_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, "summary": self.summary, "setting": self.setting, "model": self.model,
                "status": self.status, "code": self.code, "provider_message": self.provider_message}


def error_code(exc: BaseException) -> str | None:
    code = getattr(exc, "code", None)
    return str(code) if code is not None else None


def _message(exc: BaseException) -> str:
    body = getattr(exc, "body", None)
    if isinstance(body, dict) and isinstance(body.get("message"), str):
        return body["message"][:500]
    return str(getattr(exc, "message", exc))[:500]


def permanent_problem(exc: BaseException, model: str) -> ModelProblem | None:
    """The problem a provider error reveals, or None when it is transient (or ours to fix per request)."""
    if not isinstance(exc, openai.APIStatusError):
        return None
    status, code, message = exc.status_code, error_code(exc), _message(exc)

    def problem(kind: str, summary: str, setting: str) -> ModelProblem:
        return ModelProblem(kind, summary, setting, message, status, code, model)

    if status == 401:
        return problem("bad_key", "the provider refused the API key", "OPENAI_API_KEY")
    if status == 403:
        return problem("no_access", "the API key may not use this model or endpoint",
                       "OPENAI_API_KEY (or the key's project permissions)")
    if status == 404:
        if code in ("model_not_found", "DeploymentNotFound") or "model" in message.lower():
            return problem("unknown_model", f"the provider has no model or deployment named {model!r}",
                           "OPENAI_MODEL (on Azure: the deployment's name)")
        return problem("wrong_url", "the provider has no chat-completions endpoint at this address", "OPENAI_BASE_URL")
    if status == 429 and code == "insufficient_quota":
        return problem("no_quota", "the provider account has no quota left",
                       "the provider account's plan or billing (or OPENAI_API_KEY for another account)")
    return None


def unadaptable_problem(exc: BaseException, model: str) -> ModelProblem:
    param = getattr(exc, "param", None) or "?"
    setting = {"reasoning_effort": "BOT_MODEL_REASONING_EFFORT", "max_tokens": "BOT_MODEL_MAX_TOKENS",
               "max_completion_tokens": "BOT_MODEL_MAX_TOKENS"}.get(param, "OPENAI_MODEL")
    return ModelProblem("unsupported_parameter", f"the model refuses the request parameter {param!r}", setting,
                        _message(exc), getattr(exc, "status_code", None), error_code(exc), model)


class ModelHealth:
    """Per-process memory of request forms and of the current permanent problem (thread-safe)."""

    def __init__(self, clock: Callable[[], float] = time.monotonic, recheck_seconds: float = RECHECK_SECONDS) -> None:
        self.clock = clock
        self.recheck_seconds = recheck_seconds
        self._forms: dict[str, RequestForm] = {}
        self._problem: ModelProblem | None = None
        self._tried_at = float("-inf")
        self._lock = threading.Lock()

    # --- request forms --------------------------------------------------------------------------
    def form_for(self, model: str) -> RequestForm:
        with self._lock:
            return self._forms.get(model) or guess_form(model)

    def learn(self, model: str, form: RequestForm, because: str) -> None:
        with self._lock:
            self._forms[model] = form
        log.warning("model %s needs another request form: %s (the provider said: %s); remembered until restart",
                    model, form.describe(), because[:300])

    # --- problems -------------------------------------------------------------------------------
    @property
    def problem(self) -> ModelProblem | None:
        return self._problem

    def blocked(self) -> bool:
        """True while a problem stands and the next trial is not due: answer offline without asking."""
        with self._lock:
            if self._problem is None:
                return False
            if self.clock() - self._tried_at >= self.recheck_seconds:
                self._tried_at = self.clock()  # this caller makes the trial
                return False
            return True

    def record_problem(self, problem: ModelProblem) -> None:
        """Remember the problem; the operator's log line is written once per distinct problem."""
        with self._lock:
            old, self._problem = self._problem, problem
            self._tried_at = self.clock()
        if old is None or (old.kind, old.provider_message) != (problem.kind, problem.provider_message):
            log.error("%s", problem.log_line())

    def record_success(self) -> None:
        with self._lock:
            old, self._problem = self._problem, None
        if old is not None:
            log.warning("model %s answers again; the earlier problem (%s) is cleared", old.model, old.kind)

    # --- the accessor ------------------------------------------------------------------------------
    def report(self, model: str | None = None) -> dict[str, Any]:
        """State for /healthz, the Home tab and `doctor`: ok or the problem, and the forms in use."""
        with self._lock:
            forms = dict(self._forms)
            problem = self._problem
        if model is not None and model not in forms:
            forms[model] = guess_form(model)
        return {"state": "misconfigured" if problem else "ok",
                "problem": problem.as_dict() if problem else None,
                "forms": {name: form.describe() for name, form in sorted(forms.items())}}

    def notice(self) -> str | None:
        """One line for the Home tab while a problem stands."""
        problem = self._problem
        if problem is None:
            return None
        return (f"The model is misconfigured: {problem.summary}. Answers come from the offline helper until "
                f"{problem.setting} is fixed.")


@dataclass
class ProbeResult:
    """One-tool round trip: did the key, the model, the request form and tool calling all work?"""

    ok: bool
    form: str
    tool_called: bool = False
    answered: bool = False
    problem: dict[str, Any] | None = None
    detail: str = ""


PROBE_TOOL = {"type": "function", "function": {
    "name": "report_marker", "description": "Returns the marker word the user asks for.",
    "parameters": {"type": "object", "properties": {}, "additionalProperties": False}}}


async def probe(client: ModelClient, timeout: float = 60.0) -> ProbeResult:
    """Ask the configured model to call one tool, answer the call, and read its final text.

    Used by `doctor`: it reports the request form the model needed and any permanent problem."""
    from bot.agent.model import ModelMisconfigured, ModelUnavailable

    model = client.settings.model
    deadline = time.monotonic() + timeout
    messages: list[dict[str, Any]] = [
        {"role": "system", "content": "You are a connectivity check. Call the tool, then reply with its result."},
        {"role": "user", "content": "Call report_marker and tell me the marker word."}]
    try:
        first = await client.complete(messages, [PROBE_TOOL], deadline)
        message = first.choices[0].message
        calls = list(message.tool_calls or [])
        if not calls:
            return ProbeResult(True, client.health.form_for(model).describe(), answered=bool(message.content),
                               detail="the model answered but did not call the tool (tool calling may be off)")
        messages.append({"role": "assistant", "content": message.content or "", "tool_calls": [
            {"id": c.id or f"call_probe_{i}", "type": "function",
             "function": {"name": c.function.name, "arguments": c.function.arguments or "{}"}}
            for i, c in enumerate(calls)]})
        messages += [{"role": "tool", "tool_call_id": c.id or f"call_probe_{i}", "content": '{"marker": "ok"}'}
                     for i, c in enumerate(calls)]
        second = await client.complete(messages, [PROBE_TOOL], deadline)
        return ProbeResult(True, client.health.form_for(model).describe(), tool_called=True,
                           answered=bool(second.choices[0].message.content), detail="one-tool round trip worked")
    except ModelMisconfigured as exc:
        return ProbeResult(False, client.health.form_for(model).describe(), problem=exc.problem.as_dict(),
                           detail=exc.problem.log_line())
    except ModelUnavailable as exc:
        return ProbeResult(False, client.health.form_for(model).describe(), detail=str(exc))
