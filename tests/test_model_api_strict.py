"""The test model server refuses what the real providers refuse, with their status, code and body.

Each test drives the fake through the real `openai` client, as the bot does, and reads the error the
client raises (its `.code`, `.param`, status class). These pin the provider rules the rest of the
suite relies on: without them a bot that sends `max_tokens` to a gpt-5 model would pass.
"""

from __future__ import annotations

import json
import re

import openai
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from tests.fakes.model_api import (
    CLASSIC_MODEL,
    REASONING_MODEL,
    azure_profile,
    filtered,
    local_profile,
    quota_exhausted,
    rate_limited,
    text,
    tool_calls,
)

KEY = "sk-test-strict-key-0123456789"
USER = [{"role": "user", "content": "hi"}]
TOOL = {"type": "function", "function": {"name": "list_limits", "description": "d",
                                         "parameters": {"type": "object", "properties": {}}}}


def client(api) -> openai.OpenAI:
    return openai.OpenAI(api_key=KEY, base_url=api.base_url, max_retries=0, timeout=10)


def refused(api, **body) -> openai.APIStatusError:
    with pytest.raises(openai.APIStatusError) as caught:
        client(api).chat.completions.create(**body)
    return caught.value


# --- model families ------------------------------------------------------------------------------
def test_reasoning_models_refuse_max_tokens_with_the_providers_body(fresh_model):
    exc = refused(fresh_model, model=REASONING_MODEL, messages=USER, max_tokens=100)
    assert isinstance(exc, openai.BadRequestError)
    assert exc.body == {"message": "Unsupported parameter: 'max_tokens' is not supported with this model. Use "
                                   "'max_completion_tokens' instead.", "type": "invalid_request_error",
                        "param": "max_tokens", "code": "unsupported_parameter"}
    ok = client(fresh_model).chat.completions.create(model=REASONING_MODEL, messages=USER, max_completion_tokens=900)
    assert ok.choices[0].message.content


@pytest.mark.parametrize("param, value, code", [("temperature", 0.2, "unsupported_value"),
                                                ("top_p", 0.5, "unsupported_value"),
                                                ("presence_penalty", 0.5, "unsupported_parameter"),
                                                ("frequency_penalty", 0.3, "unsupported_parameter")])
def test_reasoning_models_refuse_sampling_parameters(fresh_model, param, value, code):
    exc = refused(fresh_model, model="o4-mini", messages=USER, **{param: value})
    assert (exc.status_code, exc.code, exc.param) == (400, code, param)
    client(fresh_model).chat.completions.create(model=CLASSIC_MODEL, messages=USER, max_tokens=50, **{param: value})


def test_classic_models_refuse_reasoning_effort_and_o_series_refuse_minimal(fresh_model):
    exc = refused(fresh_model, model=CLASSIC_MODEL, messages=USER, reasoning_effort="low")
    assert (exc.code, exc.param) == ("unsupported_parameter", "reasoning_effort")
    exc = refused(fresh_model, model="o3", messages=USER, reasoning_effort="minimal")
    assert (exc.code, exc.param) == ("unsupported_value", "reasoning_effort")
    client(fresh_model).chat.completions.create(model="gpt-5", messages=USER, reasoning_effort="minimal")


def test_hidden_reasoning_spends_the_budget_and_can_leave_nothing(fresh_model):
    fresh_model.script(text("A long visible answer " * 20, reasoning_tokens=500), text("short", reasoning_tokens=64))
    starved = client(fresh_model).chat.completions.create(model=REASONING_MODEL, messages=USER,
                                                          max_completion_tokens=400)
    assert starved.choices[0].finish_reason == "length" and starved.choices[0].message.content == ""
    assert starved.usage.completion_tokens_details.reasoning_tokens == 400
    assert starved.usage.completion_tokens == 400
    fine = client(fresh_model).chat.completions.create(model=REASONING_MODEL, messages=USER,
                                                       max_completion_tokens=400)
    assert fine.choices[0].finish_reason == "stop"
    assert fine.usage.completion_tokens_details.reasoning_tokens == 64
    assert fine.usage.completion_tokens > 64


def test_a_budget_over_the_models_output_limit_is_refused(fresh_model):
    exc = refused(fresh_model, model=CLASSIC_MODEL, messages=USER, max_tokens=50_000)
    assert (exc.code, exc.param) == ("invalid_value", "max_tokens")


def test_unknown_request_arguments_are_refused(fresh_model):
    with pytest.raises(openai.BadRequestError, match="Unrecognized request argument supplied: max_output"):
        client(fresh_model).chat.completions.create(model=CLASSIC_MODEL, messages=USER,
                                                    extra_body={"max_output": 5})


# --- the tool protocol -------------------------------------------------------------------------------
def _call(call_id: str) -> dict:
    return {"id": call_id, "type": "function", "function": {"name": "list_limits", "arguments": "{}"}}


def test_every_tool_call_id_is_answered_right_after_its_assistant_message(fresh_model):
    asked = {"role": "assistant", "content": None, "tool_calls": [_call("call_a"), _call("call_b")]}
    answer_a = {"role": "tool", "tool_call_id": "call_a", "content": "{}"}
    exc = refused(fresh_model, model=CLASSIC_MODEL, tools=[TOOL], messages=[*USER, asked, answer_a, *USER])
    assert exc.status_code == 400 and "did not have response messages: call_b" in exc.message
    # a later round does not excuse an earlier unanswered call
    later = {"role": "assistant", "content": None, "tool_calls": [_call("call_c")]}
    exc = refused(fresh_model, model=CLASSIC_MODEL, tools=[TOOL], messages=[
        *USER, asked, answer_a, *USER, later, {"role": "tool", "tool_call_id": "call_c", "content": "{}"}])
    assert "did not have response messages: call_b" in exc.message and exc.param == "messages.[3].role"
    exc = refused(fresh_model, model=CLASSIC_MODEL, tools=[TOOL],
                  messages=[*USER, {"role": "tool", "tool_call_id": "call_x", "content": "{}"}])
    assert "must be a response to a preceeding message with 'tool_calls'" in exc.message
    exc = refused(fresh_model, model=CLASSIC_MODEL, tools=[TOOL], messages=[*USER, {**asked, "tool_calls": [
        _call("call_a"), _call("call_a")]}, answer_a, answer_a])
    assert exc.param.endswith("tool_calls")
    answered = [*USER, asked, answer_a, {"role": "tool", "tool_call_id": "call_b", "content": "{}"}]
    client(fresh_model).chat.completions.create(model=CLASSIC_MODEL, tools=[TOOL], messages=answered)


def test_tool_lists_follow_the_limits(fresh_model):
    many = [{"type": "function", "function": {"name": f"t{i}", "parameters": {"type": "object"}}} for i in range(129)]
    exc = refused(fresh_model, model=CLASSIC_MODEL, messages=USER, tools=many)
    assert (exc.code, exc.param) == ("array_above_max_length", "tools")
    client(fresh_model).chat.completions.create(model=CLASSIC_MODEL, messages=USER, tools=many[:128])
    loose = {"type": "function", "function": {"name": "x", "parameters": {"type": "array"}}}
    exc = refused(fresh_model, model=CLASSIC_MODEL, messages=USER, tools=[loose])
    assert exc.code == "invalid_function_parameters"


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(name=st.text(min_size=0, max_size=70))
@example(name="list_limits\n")  # a regex `$` accepts a trailing newline; OpenAI does not
def test_tool_names_are_accepted_exactly_when_they_match_the_pattern(model_api, name):
    model_api.reset()
    tool = {"type": "function", "function": {"name": name, "parameters": {"type": "object", "properties": {}}}}
    valid = re.fullmatch(r"[a-zA-Z0-9_-]{1,64}", name) is not None
    try:
        client(model_api).chat.completions.create(model=CLASSIC_MODEL, messages=USER, tools=[tool])
        accepted = True
    except openai.BadRequestError as exc:
        accepted = False
        assert exc.param == "tools[0].function.name"
    assert accepted == valid, name


# --- windows, keys, models, quota ---------------------------------------------------------------------
def test_a_prompt_over_the_context_window_is_refused(fresh_model):
    fresh_model.use(local_profile(context_window=1000))
    big = [{"role": "user", "content": "x" * 6000}]
    exc = refused(fresh_model, model="anything", messages=big)
    assert (exc.status_code, exc.code, exc.param) == (400, "context_length_exceeded", "messages")
    assert re.search(r"maximum context length is 1000 tokens\. However, your messages resulted in \d+ tokens",
                     exc.message)


def test_keys_models_and_quota_fail_with_the_real_codes(fresh_model):
    fresh_model.revoke(KEY)
    exc = refused(fresh_model, model=CLASSIC_MODEL, messages=USER)
    assert isinstance(exc, openai.AuthenticationError) and exc.code == "invalid_api_key"
    assert KEY not in exc.message  # the provider masks the key it quotes
    fresh_model.reset()
    exc = refused(fresh_model, model="gpt-4o-mini-typo", messages=USER)
    assert isinstance(exc, openai.NotFoundError) and exc.code == "model_not_found"
    fresh_model.script(quota_exhausted(), rate_limited(retry_after=2))
    quota = refused(fresh_model, model=CLASSIC_MODEL, messages=USER)
    assert isinstance(quota, openai.RateLimitError) and quota.code == "insufficient_quota"
    assert "retry-after" not in quota.response.headers
    limited = refused(fresh_model, model=CLASSIC_MODEL, messages=USER)
    assert isinstance(limited, openai.RateLimitError) and limited.code == "rate_limit_exceeded"
    assert limited.response.headers["retry-after"] == "2"


def test_content_filter_endings(fresh_model):
    fresh_model.script(filtered())
    done = client(fresh_model).chat.completions.create(model=CLASSIC_MODEL, messages=USER)
    assert done.choices[0].finish_reason == "content_filter" and not done.choices[0].message.content


# --- other providers ------------------------------------------------------------------------------
def test_azure_v1_takes_the_deployment_name_and_answers_in_azures_shape(fresh_model):
    fresh_model.use(azure_profile({"prod-chat": REASONING_MODEL}))
    assert fresh_model.base_url.endswith("/openai/v1")
    exc = refused(fresh_model, model=REASONING_MODEL, messages=USER)  # the model's name is not a deployment
    assert isinstance(exc, openai.NotFoundError) and exc.code == "DeploymentNotFound"
    exc = refused(fresh_model, model="prod-chat", messages=USER, max_tokens=10)  # the family rules still hold
    assert exc.code == "unsupported_parameter"
    ok = client(fresh_model).chat.completions.create(model="prod-chat", messages=USER, max_completion_tokens=900)
    assert ok.model == "prod-chat" and ok.usage.prompt_tokens_details is not None
    fresh_model.revoke(KEY)
    assert refused(fresh_model, model="prod-chat", messages=USER).code == "401"


@pytest.mark.parametrize("ids", ["reused", "missing"])
def test_a_local_server_sends_no_usage_and_loose_tool_call_ids(fresh_model, ids):
    fresh_model.use(local_profile(tool_call_ids=ids))
    fresh_model.script(tool_calls(("list_limits", {}), ("list_limits", {"x": 1})))
    out = openai.OpenAI(api_key="unused", base_url=fresh_model.base_url, max_retries=0).chat.completions.create(
        model="whatever-is-loaded", messages=USER, tools=[TOOL])
    message = out.choices[0].message
    assert out.usage is None and message.content is None
    assert [c.id for c in message.tool_calls] == (["call_0", "call_1"] if ids == "reused" else [None, None])


def test_a_repeated_static_prefix_is_reported_as_cached(fresh_model):
    system = {"role": "system", "content": "Static instructions. " * 400}  # ~2,000 tokens
    first = client(fresh_model).chat.completions.create(model=CLASSIC_MODEL, messages=[system, *USER])
    again = client(fresh_model).chat.completions.create(
        model=CLASSIC_MODEL, messages=[system, {"role": "user", "content": "another question"}])
    assert first.usage.prompt_tokens_details.cached_tokens == 0
    cached = again.usage.prompt_tokens_details.cached_tokens
    assert cached >= 1024 and cached % 128 == 0 and cached <= again.usage.prompt_tokens
    changed = {"role": "system", "content": "Changed first. " + system["content"]}
    moved = client(fresh_model).chat.completions.create(model=CLASSIC_MODEL, messages=[changed, *USER])
    assert moved.usage.prompt_tokens_details.cached_tokens == 0  # a prefix, not a substring


def test_refused_requests_spend_no_scripted_step(fresh_model):
    fresh_model.script(text("the scripted answer"))
    refused(fresh_model, model=REASONING_MODEL, messages=USER, max_tokens=5)
    ok = client(fresh_model).chat.completions.create(model=REASONING_MODEL, messages=USER)
    assert ok.choices[0].message.content == "the scripted answer"
    assert json.loads(json.dumps(fresh_model.refused[-1]))["error"]["code"] == "unsupported_parameter"
