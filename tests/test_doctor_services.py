"""`concurrency-bot doctor`: Prefect checks against a real Prefect server, Model checks through the real
`openai` client against the test model server. Each failure mode gives its ✗ row and fix line."""

from __future__ import annotations

import pytest

from bot.doctor.model_checks import check_model
from bot.doctor.prefect_checks import PrefectTarget, check_prefect
from bot.doctor.report import Row, Status
from bot.prefect_ops.capabilities import FEATURES
from bot.settings import load_settings
from tests.fakes.model_api import CLASSIC_MODEL, REASONING_MODEL, SUITE_MODEL, hang, text, tool_calls
from tests.fakes.prefect_server import free_port
from tests.fakes.prefect_standins import BearerProxy, Prefect2Server
from tests.harness import MODEL_KEY


def row(rows: list[Row], group: str, name: str) -> Row:
    found = [r for r in rows if r.group == group and r.name == name]
    assert found, f"no {group}/{name} row in {[(r.group, r.name, r.detail) for r in rows]}"
    return found[0]


# --- Prefect -----------------------------------------------------------------------------------

async def test_healthy_prefect_is_all_ok(prefect_api_url):
    rows = await check_prefect(load_settings(), PrefectTarget(prefect_api_url))
    assert [(r.name, r.status) for r in rows if r.status is not Status.OK] == []
    assert row(rows, "Prefect", "version").detail.startswith("Prefect 3.")
    assert row(rows, "Prefect", "events").status is Status.OK
    assert row(rows, "Prefect", "features").detail.startswith(f"all {len(FEATURES)} the bot uses")


async def test_prefect_unreachable():
    rows = await check_prefect(load_settings(), PrefectTarget(f"http://127.0.0.1:{free_port()}/api"))
    down = row(rows, "Prefect", "server")
    assert down.status is Status.FAIL and "does not answer" in down.detail and "PREFECT_API_URL" in down.fix


async def test_prefect_url_without_api_suffix(prefect_api_url):
    rows = await check_prefect(load_settings(), PrefectTarget(prefect_api_url.removesuffix("/api")))
    bad = row(rows, "Prefect", "server")
    assert bad.status is Status.FAIL and "/api" in bad.fix


async def test_prefect_wrong_auth(prefect_api_url):
    proxy = BearerProxy(prefect_api_url, "pnu_right_key_123").start()
    try:
        wrong = await check_prefect(load_settings(), PrefectTarget(proxy.api_url, api_key="pnu_wrong_key_456"))
        right = await check_prefect(load_settings(), PrefectTarget(proxy.api_url, api_key="pnu_right_key_123"))
        none = await check_prefect(load_settings(), PrefectTarget(proxy.api_url))
    finally:
        proxy.stop()
    bad = row(wrong, "Prefect", "auth")
    assert bad.status is Status.FAIL and "HTTP 401" in bad.detail and bad.fix.startswith("set PREFECT_API_KEY")
    assert row(right, "Prefect", "auth").status is Status.OK
    assert row(right, "Prefect", "version").detail.startswith("Prefect 3.")
    assert "PREFECT_API_AUTH_STRING" in row(none, "Prefect", "auth").fix


async def test_prefect_2_is_named_as_such():
    server = Prefect2Server().start()
    try:
        rows = await check_prefect(load_settings(), PrefectTarget(server.api_url))
    finally:
        server.stop()
    old = row(rows, "Prefect", "version")
    assert old.status is Status.FAIL
    assert old.detail == "this is Prefect 2.20.16; the bot needs a Prefect 3 server" and "upgrade" in old.fix


async def test_no_prefect_url_is_a_warning_with_a_next_step():
    rows = await check_prefect(load_settings(), PrefectTarget(None))
    assert [r.status for r in rows] == [Status.WARN] and "PREFECT_API_URL" in rows[0].fix


# --- Model -------------------------------------------------------------------------------------

def model_settings(model_api, **overrides):
    values = {"openai_api_key": MODEL_KEY, "openai_base_url": model_api.base_url, "openai_model": SUITE_MODEL,
              **overrides}
    return load_settings(**values)


@pytest.mark.parametrize("model", [CLASSIC_MODEL, REASONING_MODEL])
async def test_healthy_model_round_trip_and_its_request_form(fresh_model, model):
    fresh_model.script(tool_calls(("report_marker", {})), text("ok"))
    rows = await check_model(model_settings(fresh_model, openai_model=model))
    assert [(r.name, r.status) for r in rows] == [("key", Status.OK), ("model", Status.OK), ("tools", Status.OK),
                                                  ("request form", Status.OK)]
    form = row(rows, "Model", "request form").detail
    assert form.startswith("max_tokens, classic" if model == CLASSIC_MODEL else "max_completion_tokens, reasoning")
    second = fresh_model.requests[1]["messages"]
    assert second[-1]["role"] == "tool" and second[-2]["tool_calls"][0]["id"] == second[-1]["tool_call_id"]


async def test_no_model_key_is_offline_only_warning():
    rows = await check_model(load_settings())
    assert [r.status for r in rows] == [Status.WARN] and "offline answers only" in rows[0].detail


async def test_bad_model_key(fresh_model):
    fresh_model.revoke(MODEL_KEY)
    rows = await check_model(model_settings(fresh_model))
    bad = row(rows, "Model", "key")
    assert bad.status is Status.FAIL and "HTTP 401" in bad.detail and bad.fix.startswith("change OPENAI_API_KEY")
    assert MODEL_KEY not in bad.detail
    assert len(fresh_model.requests) == 1  # a permanent error is not retried


async def test_unknown_model(fresh_model):
    rows = await check_model(model_settings(fresh_model, openai_model="gpt-9-nano"))
    bad = row(rows, "Model", "model")
    assert bad.status is Status.FAIL and "model_not_found" in bad.detail and bad.fix.startswith("change OPENAI_MODEL")


async def test_model_that_does_not_call_tools(fresh_model):
    fresh_model.script(text("I cannot use tools."))
    rows = await check_model(model_settings(fresh_model))
    assert row(rows, "Model", "tools").status is Status.WARN


async def test_model_provider_unreachable():
    rows = await check_model(load_settings(openai_api_key=MODEL_KEY,
                                           openai_base_url=f"http://127.0.0.1:{free_port()}/v1"))
    bad = row(rows, "Model", "key")
    assert bad.status is Status.FAIL and "OPENAI_BASE_URL" in bad.fix


async def test_a_hanging_provider_becomes_a_row_after_the_group_time_limit(fresh_model):
    from bot.doctor import diagnose

    fresh_model.script(hang(3))
    report = await diagnose(model_settings(fresh_model), skip=("Slack", "Prefect", "Store"), timeout=1)
    stuck = row(report.rows, "Model", "checks")
    assert stuck.status is Status.FAIL and stuck.detail == "no answer within 1 s" and not stuck.unsafe
