"""A local server speaking the OpenAI chat-completions protocol, as strict as the real providers.

Written from OpenAI's API reference and the `openai` package's types (`CompletionCreateParams`,
`ChatCompletion`, `CompletionUsage`, the error bodies in `openai._exceptions`), and from the
provider facts in /work/shared/model-facts.md. It refuses what the providers refuse, with their
status, `error.code`, `error.param` and message:

- model families: classic chat models take `max_tokens` and sampling parameters; reasoning models
  (gpt-5, o-series) refuse `max_tokens` (400 `unsupported_parameter`), non-default `temperature` and
  `top_p` (400 `unsupported_value`) and the penalties, take `reasoning_effort`, and spend hidden
  reasoning tokens out of `max_completion_tokens` (so a small budget ends empty with `length`);
- the tool protocol: every `tool_call_id` answered by a `tool` message right after its assistant
  message, names `^[a-zA-Z0-9_-]{1,64}$`, at most 128 tools, `parameters` a JSON-schema object;
- a context window per model (400 `context_length_exceeded`), 401 `invalid_api_key`, 404
  `model_not_found`, 429 `insufficient_quota` versus 429 `rate_limit_exceeded`, `content_filter`;
- `usage.prompt_tokens_details.cached_tokens` for a repeated prefix of 1,024 tokens or more.

A profile picks the provider's shape: OpenAI (`/v1`), Azure OpenAI's v1 endpoint (`/openai/v1`,
the deployment name is the model, Azure's error bodies) or a local OpenAI-compatible server (no
`usage`, tool-call ids missing or reused, `content: null`).

A script is a list of steps. Each step is a reply (`text(...)`, `tool_calls(...)`), an error
(`error(status, ...)`, `quota_exhausted()`, `rate_limited(...)`), an ending (`filtered()`), a stall
(`hang(seconds)`), a dropped connection (`disconnect()`), or a callable that receives the request
JSON and returns one of those. A step is spent only by a request the provider would accept.
Every request is recorded (`requests`) so tests can read what the model was shown.
"""

from __future__ import annotations

import itertools
import json
import os
import re
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any

from tests.fakes.http_fake import Disconnect, FakeServer

Step = dict[str, Any] | Callable[[dict[str, Any]], dict[str, Any]]
_ids = itertools.count(1)

CHARS_PER_TOKEN = 4
CACHE_MIN_TOKENS = 1024  # prompt caching starts at 1,024 tokens and grows in steps of 128
CACHE_STEP = 128
MAX_TOOLS = 128
TOOL_NAME = re.compile(r"[a-zA-Z0-9_-]{1,64}")  # matched whole (fullmatch): `$` lets a trailing newline through
ROLES = {"system", "developer", "user", "assistant", "tool", "function"}
# Every top-level field of `CompletionCreateParams` in the openai package.
KNOWN_PARAMS = {
    "messages", "model", "audio", "frequency_penalty", "function_call", "functions", "logit_bias",
    "logprobs", "max_completion_tokens", "max_tokens", "metadata", "modalities", "moderation", "n",
    "parallel_tool_calls", "prediction", "presence_penalty", "prompt_cache_key", "prompt_cache_options",
    "prompt_cache_retention", "reasoning_effort", "response_format", "safety_identifier", "seed",
    "service_tier", "stop", "store", "stream", "stream_options", "temperature", "tool_choice", "tools",
    "top_logprobs", "top_p", "user", "verbosity", "web_search_options",
}
# Hidden reasoning tokens a reasoning model spends per answer, by effort (small: tests stay cheap).
REASONING_SPEND = {"none": 0, "minimal": 16, "low": 64, "medium": 192, "high": 512, "xhigh": 1024}


@dataclass(frozen=True)
class ModelSpec:
    """What a model is: its family, context window and largest completion."""

    family: str  # "classic" | "reasoning"
    context_window: int = 128_000
    max_output: int = 16_384
    efforts: tuple[str, ...] = ("minimal", "low", "medium", "high")


CLASSIC = ModelSpec("classic")
GPT5 = ModelSpec("reasoning", 400_000, 128_000, ("minimal", "low", "medium", "high"))
O_SERIES = ModelSpec("reasoning", 200_000, 100_000, ("low", "medium", "high"))

OPENAI_MODELS: dict[str, ModelSpec] = {
    "gpt-4o-mini": CLASSIC, "gpt-4o": CLASSIC,
    "gpt-4.1-mini": replace(CLASSIC, context_window=1_047_576, max_output=32_768),
    "gpt-4.1": replace(CLASSIC, context_window=1_047_576, max_output=32_768),
    "gpt-5": GPT5, "gpt-5-mini": GPT5, "gpt-5-nano": GPT5,
    "o3": O_SERIES, "o3-mini": O_SERIES, "o4-mini": O_SERIES,
}
CLASSIC_MODEL = "gpt-4o-mini"
REASONING_MODEL = "gpt-5-mini"
# The model the suite's bots are configured with: the bot's default, a reasoning model. Run the suite
# with TEST_MODEL=gpt-4o-mini for the classic family.
SUITE_MODEL = os.environ.get("TEST_MODEL", REASONING_MODEL)


@dataclass
class Profile:
    """One provider's shape. `models` maps what requests name (a model, or an Azure deployment)."""

    name: str
    path_prefix: str = "/v1"
    models: dict[str, ModelSpec] = field(default_factory=lambda: dict(OPENAI_MODELS))
    any_model: ModelSpec | None = None  # local servers answer whatever model is named
    auth: bool = True
    usage: bool = True
    tool_call_ids: str = "unique"  # "unique" | "missing" | "reused"
    error_style: str = "openai"  # "openai" | "azure"


def openai_profile() -> Profile:
    return Profile("openai")


def azure_profile(deployments: dict[str, str] | None = None) -> Profile:
    """Azure OpenAI's v1 endpoint: `{resource}/openai/v1/`, the `model` is the deployment's name."""
    chosen = deployments or {"prod-chat": REASONING_MODEL, "legacy-chat": CLASSIC_MODEL}
    return Profile("azure", path_prefix="/openai/v1",
                   models={name: OPENAI_MODELS[model] for name, model in chosen.items()}, error_style="azure")


def local_profile(context_window: int = 8192, tool_call_ids: str = "reused") -> Profile:
    """llama.cpp's server, Ollama, vLLM: no key, any model name, no `usage`, loose tool-call ids."""
    return Profile("local", models={}, any_model=ModelSpec("classic", context_window, 2048), auth=False,
                   usage=False, tool_call_ids=tool_call_ids)


# --- steps --------------------------------------------------------------------------------------
def text(content: str, prompt_tokens: int | None = None, completion_tokens: int | None = None,
         reasoning_tokens: int | None = None) -> dict[str, Any]:
    """A plain answer. Token counts left out are estimated from the request and the content."""
    return {"kind": "reply", "message": {"role": "assistant", "content": content},
            "usage": (prompt_tokens, completion_tokens), "reasoning_tokens": reasoning_tokens}


def tool_calls(*calls: tuple[str, dict[str, Any] | str]) -> dict[str, Any]:
    built = []
    for name, arguments in calls:
        args = arguments if isinstance(arguments, str) else json.dumps(arguments)
        built.append({"id": f"call_{next(_ids)}", "type": "function",
                      "function": {"name": name, "arguments": args}})
    return {"kind": "reply", "message": {"role": "assistant", "content": None, "tool_calls": built},
            "usage": (None, None), "reasoning_tokens": None}


def filtered(partial: str = "") -> dict[str, Any]:
    """The provider's content filter stopped the answer: `finish_reason: "content_filter"`."""
    return {"kind": "reply", "message": {"role": "assistant", "content": partial or None},
            "usage": (None, None), "reasoning_tokens": None, "finish_reason": "content_filter"}


def error(status: int, retry_after: float | None = None, message: str | None = None,
          code: str | None = None, type_: str | None = None, param: str | None = None) -> dict[str, Any]:
    """An error answer; without a code, the one the provider uses for that status."""
    default = DEFAULT_ERRORS.get(status, (None, "server_error", "The server had an error while processing your "
                                          "request. Sorry about that!"))
    return {"kind": "error", "status": status, "retry_after": retry_after,
            "code": code if code is not None else default[0], "type": type_ or default[1],
            "param": param, "message": message or default[2]}


def rate_limited(retry_after: float | None = 0.1) -> dict[str, Any]:
    """429 `rate_limit_exceeded`: transient, with `retry-after`."""
    return error(429, retry_after=retry_after)


def quota_exhausted() -> dict[str, Any]:
    """429 `insufficient_quota`: permanent until someone changes the plan or billing."""
    return error(429, code="insufficient_quota", type_="insufficient_quota", message=QUOTA_MESSAGE)


def hang(seconds: float) -> dict[str, Any]:
    return {"kind": "hang", "seconds": seconds}


def disconnect() -> dict[str, Any]:
    """Drop the connection with a TCP reset, as a crashing proxy or provider would."""
    return {"kind": "disconnect"}


QUOTA_MESSAGE = ("You exceeded your current quota, please check your plan and billing details. For more "
                 "information on this error, read the docs: https://platform.openai.com/docs/guides/error-codes/api-errors.")
DEFAULT_ERRORS: dict[int, tuple[str | None, str, str]] = {
    429: ("rate_limit_exceeded", "requests", "Rate limit reached for requests per min (RPM): Limit 3, Used 3, "
          "Requested 1. Please try again in 20s."),
    500: (None, "server_error", "The server had an error while processing your request. Sorry about that!"),
    503: (None, "server_error", "The engine is currently overloaded, please try again later."),
}


class ProviderRefusal(Exception):  # noqa: N818 - an answer, not a fault of the fake
    """A request the provider refuses: becomes the provider's error body."""

    def __init__(self, status: int, message: str, code: str | None = None, param: str | None = None,
                 type_: str = "invalid_request_error") -> None:
        super().__init__(message)
        self.status, self.message, self.code, self.param, self.type = status, message, code, param, type_


def estimate_tokens(chars: int) -> int:
    return max(1, chars // CHARS_PER_TOKEN)


def prompt_text(request: dict[str, Any]) -> str:
    """The prompt as the provider sees it, static part first: the leading system message, then the
    tool schemas, then the rest of the conversation. Prompt caching matches a prefix of this."""
    messages = request.get("messages") or []
    head, rest = (messages[:1], messages[1:]) if messages and messages[0].get("role") == "system" else ([], messages)
    return "".join(json.dumps(part, sort_keys=False, ensure_ascii=False)
                   for part in (head, request.get("tools") or [], rest))


def common_prefix(a: str, b: str) -> int:
    limit = min(len(a), len(b))
    lo, hi = 0, limit
    while lo < hi:  # binary search on prefix equality: C-speed slice compares
        mid = (lo + hi + 1) // 2
        if a[:mid] == b[:mid]:
            lo = mid
        else:
            hi = mid - 1
    return lo


class FakeModelAPI(FakeServer):
    """`script(...)` queues steps; when the queue is empty, `default` answers (a plain text).

    `use(profile)` switches the provider; `reset()` goes back to OpenAI and forgets keys revoked with
    `revoke(key)` and the prompt cache."""

    def __init__(self, latency: float = 0.0, profile: Profile | None = None) -> None:
        super().__init__()
        self.latency = latency
        self.requests: list[dict[str, Any]] = []
        self.refused: list[dict[str, Any]] = []  # the error bodies of refused requests, newest last
        self._steps: list[Step] = []
        self.default: Step = text("Default scripted answer.")
        self.cond = threading.Condition()
        self.profile = profile or openai_profile()
        self.revoked: set[str] = set()
        self._prefixes: dict[str, list[str]] = {}

    @property
    def base_url(self) -> str:
        return f"{self.url}{self.profile.path_prefix}"

    def use(self, profile: Profile) -> FakeModelAPI:
        with self.lock:
            self.profile = profile
            self._prefixes.clear()
        return self

    def revoke(self, key: str) -> None:
        """From now on `key` is refused with 401, as a deleted or mistyped key is."""
        with self.lock:
            self.revoked.add(key)

    def script(self, *steps: Step) -> None:
        with self.lock:
            self._steps.extend(steps)

    def restore_provider(self) -> None:
        """Back to OpenAI with every key accepted; scripts and recorded requests stay."""
        with self.lock:
            self.profile = openai_profile()
            self.revoked.clear()

    def reset(self) -> None:
        with self.lock:
            self._steps.clear()
            self.requests.clear()
            self.refused.clear()
            self.revoked.clear()
            self._prefixes.clear()
            self.profile = openai_profile()
        self.default = text("Default scripted answer.")

    # --- the provider -----------------------------------------------------------------------
    def handle(self, method: str, path: str, headers: dict[str, str], raw: bytes) -> tuple[int, dict, Any]:
        profile = self.profile
        route = path.split("?", 1)[0].rstrip("/")
        if method != "POST" or route != f"{profile.path_prefix}/chat/completions":
            return self._refuse(profile, ProviderRefusal(404, f"Invalid URL ({method} {route})"))
        try:
            request = json.loads(raw or b"")
        except ValueError:
            request = None
        if isinstance(request, dict):
            with self.lock:
                self.requests.append(request)
            with self.cond:
                self.cond.notify_all()
        try:
            self._check_key(profile, headers)
            if not isinstance(request, dict):
                raise ProviderRefusal(400, "We could not parse the JSON body of your request. (HINT: This likely "
                                      "means you aren't using your HTTP library correctly.)")
            spec = self._check_model(profile, request)
            check_request(request, spec, strict_params=profile.name != "local")
            prompt = prompt_text(request)
            prompt_tokens = estimate_tokens(len(prompt))
            if prompt_tokens > spec.context_window:
                raise ProviderRefusal(
                    400, f"This model's maximum context length is {spec.context_window} tokens. However, your "
                    f"messages resulted in {prompt_tokens} tokens. Please reduce the length of the messages.",
                    "context_length_exceeded", "messages")
        except ProviderRefusal as refusal:
            return self._refuse(profile, refusal)
        with self.lock:
            step = self._steps.pop(0) if self._steps else self.default
        if callable(step):
            step = step(request)
        if self.latency:
            time.sleep(self.latency)
        if step["kind"] == "hang":
            time.sleep(step["seconds"])
            step = text("late answer")
        if step["kind"] == "disconnect":
            raise Disconnect()
        if step["kind"] == "error":
            return self._error(profile, step)
        return 200, {"x-request-id": f"req_{next(_ids)}"}, self._reply(profile, spec, request, step, prompt)

    def _check_key(self, profile: Profile, headers: dict[str, str]) -> None:
        if not profile.auth:
            return
        lowered = {k.lower(): v for k, v in headers.items()}
        scheme, _, key = lowered.get("authorization", "").partition(" ")
        key = key.strip() if scheme.lower() == "bearer" else ""
        if profile.error_style == "azure":
            key = lowered.get("api-key", "") or key
        if not key:
            raise ProviderRefusal(401, "You didn't provide an API key. You need to provide your API key in an "
                                  "Authorization header using Bearer auth (i.e. Authorization: Bearer YOUR_KEY).")
        if key in self.revoked:
            shown = f"{key[:3]}{'*' * 8}{key[-4:]}"
            raise ProviderRefusal(401, f"Incorrect API key provided: {shown}. You can find your API key at "
                                  "https://platform.openai.com/account/api-keys.", "invalid_api_key")

    @staticmethod
    def _check_model(profile: Profile, request: dict[str, Any]) -> ModelSpec:
        model = request.get("model")
        if not isinstance(model, str) or not model:
            raise ProviderRefusal(400, "you must provide a model parameter")
        spec = profile.models.get(model) or profile.any_model
        if spec is None:
            if profile.error_style == "azure":
                raise ProviderRefusal(404, "The API deployment for this resource does not exist. If you created "
                                      "the deployment within the last 5 minutes, please wait a moment and try "
                                      "again.", "DeploymentNotFound")
            raise ProviderRefusal(404, f"The model `{model}` does not exist or you do not have access to it.",
                                  "model_not_found")
        return spec

    def _refuse(self, profile: Profile, refusal: ProviderRefusal) -> tuple[int, dict, Any]:
        if profile.error_style == "azure" and refusal.status in (401, 404) and refusal.code != "unsupported_parameter":
            body: dict[str, Any] = {"error": {"code": refusal.code or str(refusal.status),
                                              "message": refusal.message}}
            if refusal.status == 401:
                body["error"]["code"] = "401"
                body["error"]["message"] = ("Access denied due to invalid subscription key or wrong API endpoint. "
                                            "Make sure to provide a valid key for an active subscription and use "
                                            "a correct regional API endpoint for your resource.")
        else:
            body = {"error": {"message": refusal.message, "type": refusal.type, "param": refusal.param,
                              "code": refusal.code}}
        with self.lock:
            self.refused.append(body)
        return refusal.status, {}, body

    def _error(self, profile: Profile, step: dict[str, Any]) -> tuple[int, dict, Any]:
        headers: dict[str, str] = {}
        if step.get("retry_after") is not None:
            headers["retry-after"] = str(step["retry_after"])
            headers["retry-after-ms"] = str(int(float(step["retry_after"]) * 1000))
        body = {"error": {"message": step["message"], "type": step["type"], "param": step.get("param"),
                          "code": step["code"]}}
        with self.lock:
            self.refused.append(body)
        return step["status"], headers, body

    def _reply(self, profile: Profile, spec: ModelSpec, request: dict[str, Any], step: dict[str, Any],
               prompt: str) -> dict[str, Any]:
        message = json.loads(json.dumps(step["message"]))
        scripted_prompt, scripted_completion = step.get("usage") or (None, None)
        prompt_tokens = scripted_prompt if scripted_prompt is not None else estimate_tokens(len(prompt))
        visible = scripted_completion if scripted_completion is not None else estimate_tokens(
            len(message.get("content") or "") + len(json.dumps(message.get("tool_calls") or [])))
        finish = step.get("finish_reason") or ("tool_calls" if message.get("tool_calls") else "stop")
        reasoning = 0
        if spec.family == "reasoning":
            effort = request.get("reasoning_effort") or "medium"
            scripted = step.get("reasoning_tokens")
            reasoning = scripted if scripted is not None else REASONING_SPEND[effort]
            budget = request.get("max_completion_tokens") or spec.max_output
            if reasoning + visible > budget:  # the hidden reasoning ate the budget: nothing visible is left
                reasoning, visible, finish = min(reasoning, budget), max(0, budget - reasoning), "length"
                message = {"role": "assistant", "content": ""}
        else:
            budget = request.get("max_tokens") or request.get("max_completion_tokens") or spec.max_output
            if visible > budget and not message.get("tool_calls"):
                message["content"] = (message.get("content") or "")[:budget * CHARS_PER_TOKEN]
                visible, finish = budget, "length"
        if profile.name == "local":
            for index, call in enumerate(message.get("tool_calls") or []):
                if profile.tool_call_ids == "missing":
                    call.pop("id", None)
                else:
                    call["id"] = f"call_{index}"  # the same ids every round, as some servers do
        body: dict[str, Any] = {
            "id": f"chatcmpl-{next(_ids)}", "object": "chat.completion", "created": int(time.time()),
            "model": request["model"],
            "choices": [{"index": 0, "message": message, "finish_reason": finish, "logprobs": None}],
        }
        if profile.usage:
            body["usage"] = {
                "prompt_tokens": prompt_tokens, "completion_tokens": visible + reasoning,
                "total_tokens": prompt_tokens + visible + reasoning,
                "prompt_tokens_details": {"cached_tokens": min(prompt_tokens, self._cached(request["model"], prompt)),
                                          "audio_tokens": 0},
                "completion_tokens_details": {"reasoning_tokens": reasoning, "audio_tokens": 0,
                                              "accepted_prediction_tokens": 0, "rejected_prediction_tokens": 0},
            }
            body["system_fingerprint"] = "fp_fake"
        if profile.error_style == "azure":
            body["prompt_filter_results"] = [{"prompt_index": 0, "content_filter_results": {}}]
        return body

    def _cached(self, model: str, prompt: str) -> int:
        """Tokens of the longest prefix already seen for this model, in steps of 128 from 1,024."""
        with self.lock:
            seen = self._prefixes.setdefault(model, [])
            best = max((common_prefix(prompt, old) for old in seen), default=0)
            seen.append(prompt)
            del seen[:-32]
        tokens = best // CHARS_PER_TOKEN
        return 0 if tokens < CACHE_MIN_TOKENS else tokens - tokens % CACHE_STEP


# --- request rules ------------------------------------------------------------------------------
def check_request(request: dict[str, Any], spec: ModelSpec, strict_params: bool = True) -> None:
    """Raise ProviderRefusal for anything the provider refuses; order follows what it checks first."""
    if strict_params:
        for name in request:
            if name not in KNOWN_PARAMS:
                raise ProviderRefusal(400, f"Unrecognized request argument supplied: {name}")
    if request.get("stream"):
        raise ProviderRefusal(400, "This fake does not stream; the bot asks for whole completions.", param="stream")
    check_family(request, spec, strict_params)
    check_tools(request.get("tools"), request.get("tool_choice"), "tool_choice" in request)
    check_messages(request.get("messages"))


def _unsupported_parameter(name: str, instead: str | None = None) -> ProviderRefusal:
    tail = f" Use '{instead}' instead." if instead else ""
    return ProviderRefusal(400, f"Unsupported parameter: '{name}' is not supported with this model.{tail}",
                           "unsupported_parameter", name)


def check_family(request: dict[str, Any], spec: ModelSpec, strict_params: bool) -> None:
    for name in ("max_tokens", "max_completion_tokens"):
        value = request.get(name)
        if value is None:
            continue
        if not isinstance(value, int) or isinstance(value, bool) or value < 1:
            raise ProviderRefusal(400, f"Invalid '{name}': integer below minimum value. Expected a value >= 1, "
                                  f"but got {value} instead.", "integer_below_min_value", name)
        if value > spec.max_output:
            raise ProviderRefusal(400, f"max_tokens is too large: {value}. This model supports at most "
                                  f"{spec.max_output} completion tokens, whereas you provided {value}.",
                                  "invalid_value", name)
    if spec.family == "reasoning":
        if request.get("max_tokens") is not None:
            raise _unsupported_parameter("max_tokens", "max_completion_tokens")
        for name, default in (("temperature", 1), ("top_p", 1)):
            value = request.get(name)
            if value is not None and value != default:
                raise ProviderRefusal(400, f"Unsupported value: '{name}' does not support {value} with this model. "
                                      f"Only the default ({default}) value is supported.", "unsupported_value", name)
        for name in ("presence_penalty", "frequency_penalty", "logprobs", "top_logprobs", "logit_bias"):
            if request.get(name) not in (None, 0, False, {}):
                raise _unsupported_parameter(name)
        effort = request.get("reasoning_effort")
        if effort is not None and effort not in spec.efforts:
            allowed = ", ".join(f"'{e}'" for e in spec.efforts)
            raise ProviderRefusal(400, f"Unsupported value: 'reasoning_effort' does not support '{effort}' with "
                                  f"this model. Supported values are: {allowed}.", "unsupported_value",
                                  "reasoning_effort")
    elif strict_params and request.get("reasoning_effort") is not None:
        raise _unsupported_parameter("reasoning_effort")
    temperature = request.get("temperature")
    if temperature is not None and not (isinstance(temperature, int | float) and 0 <= temperature <= 2):
        raise ProviderRefusal(400, f"Invalid 'temperature': decimal above maximum value. Expected a value <= 2, "
                              f"but got {temperature} instead.", "decimal_above_max_value", "temperature")


def check_tools(tools: Any, tool_choice: Any, has_choice: bool) -> None:
    if tools is None:
        if has_choice and tool_choice is not None:
            raise ProviderRefusal(400, "Invalid value for 'tool_choice': 'tool_choice' is only allowed when "
                                  "'tools' are specified.", param="tool_choice")
        return
    if not isinstance(tools, list):
        raise ProviderRefusal(400, "Invalid type for 'tools': expected an array.", "invalid_type", "tools")
    if not tools:
        raise ProviderRefusal(400, "Invalid 'tools': empty array. Expected an array with minimum length 1, but got "
                              "an empty array instead.", "empty_array", "tools")
    if len(tools) > MAX_TOOLS:
        raise ProviderRefusal(400, f"Invalid 'tools': array too long. Expected an array with maximum length "
                              f"{MAX_TOOLS}, but got an array with length {len(tools)} instead.",
                              "array_above_max_length", "tools")
    names = set()
    for i, tool in enumerate(tools):
        where = f"tools[{i}]"
        if not isinstance(tool, dict) or tool.get("type") != "function" or not isinstance(tool.get("function"), dict):
            raise ProviderRefusal(400, f"Invalid value for '{where}.type': expected 'function'.", "invalid_value",
                                  f"{where}.type")
        function = tool["function"]
        name = function.get("name")
        if not isinstance(name, str) or len(name) > 64:
            raise ProviderRefusal(400, f"Invalid '{where}.function.name': string too long. Expected a string with "
                                  f"maximum length 64, but got a string with length {len(str(name))} instead.",
                                  "string_above_max_length", f"{where}.function.name")
        if not TOOL_NAME.fullmatch(name):
            raise ProviderRefusal(400, f"Invalid '{where}.function.name': string does not match pattern. Expected a "
                                  "string that matches the pattern '^[a-zA-Z0-9_-]+$'.", "invalid_value",
                                  f"{where}.function.name")
        if name in names:
            raise ProviderRefusal(400, f"Invalid 'tools': duplicate function name '{name}'.", "invalid_value", "tools")
        names.add(name)
        parameters = function.get("parameters", {"type": "object", "properties": {}})
        if not isinstance(parameters, dict) or parameters.get("type") != "object":
            raise ProviderRefusal(400, f"Invalid schema for function '{name}': schema must be a JSON Schema of "
                                  "'type: \"object\"', got 'type: \"" + str(
                                      parameters.get("type") if isinstance(parameters, dict) else parameters) + "\"'.",
                                  "invalid_function_parameters", f"{where}.function.parameters")
    if isinstance(tool_choice, dict):
        wanted = (tool_choice.get("function") or {}).get("name")
        if wanted not in names:
            raise ProviderRefusal(400, f"Invalid value for 'tool_choice': function '{wanted}' is not among the "
                                  "tools.", "invalid_value", "tool_choice")
    elif tool_choice is not None and tool_choice not in ("none", "auto", "required"):
        raise ProviderRefusal(400, f"Invalid value: '{tool_choice}'. Supported values are: 'none', 'auto', and "
                              "'required'.", "invalid_value", "tool_choice")


def check_messages(messages: Any) -> None:
    """Roles and contents, and the tool protocol: an assistant message with `tool_calls` is followed by
    one `tool` message for each id, before anything else; a `tool` message answers such a call."""
    if not isinstance(messages, list) or not messages:
        raise ProviderRefusal(400, "Invalid 'messages': empty array. Expected an array with minimum length 1, but "
                              "got an empty array instead.", "empty_array", "messages")
    pending: list[str] = []  # ids of the latest assistant tool calls not answered yet
    open_calls = False
    for i, message in enumerate(messages):
        where = f"messages.[{i}]"
        role = message.get("role") if isinstance(message, dict) else None
        if role not in ROLES:
            raise ProviderRefusal(400, f"Invalid value: '{role}'. Supported values are: 'system', 'assistant', "
                                  "'user', 'function', 'tool', and 'developer'.", "invalid_value", f"{where}.role")
        content = message.get("content")
        if role == "tool":
            call_id = message.get("tool_call_id")
            if not open_calls:
                raise ProviderRefusal(400, "Invalid parameter: messages with role 'tool' must be a response to a "
                                      "preceeding message with 'tool_calls'.", None, f"{where}.role")
            if not isinstance(call_id, str) or call_id not in pending:
                raise ProviderRefusal(400, f"Invalid parameter: 'tool_call_id' of '{call_id}' not found in "
                                      "'tool_calls' of previous message.", None, f"{where}.tool_call_id")
            pending.remove(call_id)
            if not isinstance(content, str | list):
                raise ProviderRefusal(400, f"Invalid type for '{where}.content': expected one of a string or array "
                                      "of objects.", "invalid_type", f"{where}.content")
            continue
        if pending:
            raise ProviderRefusal(400, "An assistant message with 'tool_calls' must be followed by tool messages "
                                  "responding to each 'tool_call_id'. The following tool_call_ids did not have "
                                  f"response messages: {', '.join(pending)}", None, f"messages.[{i}].role")
        open_calls = False
        calls = message.get("tool_calls") if role == "assistant" else None
        if calls:
            ids = [c.get("id") for c in calls if isinstance(c, dict)]
            if len(ids) != len(calls) or not all(isinstance(x, str) and x for x in ids):
                raise ProviderRefusal(400, f"Missing required parameter: '{where}.tool_calls[0].id'.",
                                      "missing_required_parameter", f"{where}.tool_calls[0].id")
            if len(set(ids)) != len(ids):
                raise ProviderRefusal(400, f"Invalid '{where}.tool_calls': duplicate tool call id.",
                                      "invalid_value", f"{where}.tool_calls")
            for j, call in enumerate(calls):
                function = call.get("function") or {}
                if call.get("type") != "function" or not isinstance(function.get("name"), str):
                    raise ProviderRefusal(400, f"Missing required parameter: '{where}.tool_calls[{j}].function'.",
                                          "missing_required_parameter", f"{where}.tool_calls[{j}].function")
                if not isinstance(function.get("arguments"), str):
                    raise ProviderRefusal(400, f"Invalid type for '{where}.tool_calls[{j}].function.arguments': "
                                          "expected a string.", "invalid_type",
                                          f"{where}.tool_calls[{j}].function.arguments")
            pending, open_calls = list(ids), True
            continue
        if content is None and role != "assistant":
            raise ProviderRefusal(400, f"Invalid value for '{where}.content': expected a string, got null.",
                                  "invalid_type", f"{where}.content")
        if content is not None and not isinstance(content, str | list):
            raise ProviderRefusal(400, f"Invalid type for '{where}.content': expected one of a string or array of "
                                  "objects.", "invalid_type", f"{where}.content")
    if pending:
        raise ProviderRefusal(400, "An assistant message with 'tool_calls' must be followed by tool messages "
                              "responding to each 'tool_call_id'. The following tool_call_ids did not have response "
                              f"messages: {', '.join(pending)}", None, "messages")
