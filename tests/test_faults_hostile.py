"""Fault-table rows for hostile input and private data (issue 13): redaction, metrics, Home tab
visibility, the slash command's rules, fair use. Each row drives the bot built the way `serve`
builds it and reads the effect back (what the fake Slack or the fake model received, the store,
the log stream, the /metrics text)."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import textwrap
import time
import urllib.error
import urllib.request
import uuid
from typing import Any
from urllib.parse import urlencode

import pytest

from bot.agent.loop import UNKNOWN_TOOL
from bot.agent.model_health import REASONING_ROOM
from bot.offline.engine import GUEST_NO_PROPOSALS
from bot.prefect_ops.changes import WorkPoolLimitChange
from bot.slack.gate import NOT_HERE, RATE_LIMITED
from bot.slack.home import CachedMap, publish_home
from tests.approvals_support import make_pool
from tests.fakes.model_api import text, tool_calls
from tests.faults_support import ROOT, check
from tests.harness import BotHarness, mention, sign
from tests.waiting import poll

pytestmark = pytest.mark.faults

PNB_KEY = "pnb_" + "Zq9x8w7v6u5t4s3r2q1p0o9n"
PROFILE_KEY = "profile-held-key-7f3a9c"  # no recognisable shape: only the profile lookup can catch it
PROFILE_AUTH = "admin:profile-auth-5b2e1d"
DB_PASSWORD = "db-pw-Vq81xk"


def _harness(slack_api, model_api, tmp_path_factory, name: str, **overrides: Any) -> BotHarness:
    db = overrides.pop("database_url", None) or f"sqlite:///{tmp_path_factory.mktemp(name) / 'bot.db'}"
    values: dict[str, Any] = dict(bot_model_max_attempts=1, bot_answer_timeout_seconds=30,
                                  bot_user_rate_limit_per_minute=1000, bot_streaming=False,
                                  bot_approver_ids=["UAPPROVER"])
    values.update(overrides)
    return BotHarness(slack_api, model_api, db, **values).start()


@pytest.fixture(scope="module")
def hostile_bot(slack_api, model_api, prefect_api_url, tmp_path_factory):
    harness = _harness(slack_api, model_api, tmp_path_factory, "hostile", bot_model_max_tokens=321,
                       bot_max_tool_calls_per_round=3, bot_metrics_token="metrics-token-xyz123")
    yield harness
    harness.stop()


@pytest.fixture(scope="module")
def gated_bot(slack_api, model_api, prefect_api_url, tmp_path_factory):
    harness = _harness(slack_api, None, tmp_path_factory, "gated", bot_allowed_channels=["C1"],
                       bot_user_rate_limit_per_minute=2)
    yield harness
    harness.stop()


def short(value: str, n: int = 70) -> str:
    value = " ".join(str(value).split())
    return value if len(value) <= n else value[:n - 1] + "…"


# --- redaction in logs ------------------------------------------------------------------------
LOGGING_SCRIPT = textwrap.dedent("""
    import logging, sys
    from bot.logging_setup import configure_logging
    from bot.settings import Settings

    configure_logging(Settings(_env_file=None, bot_log_json=sys.argv[1] == "json",
                               bot_database_url="postgresql://bot:{db}@db.internal:5432/bot"))
    try:
        raise RuntimeError("Prefect said 401 for key {pnb} / {key} / {auth}; "
                           "db postgresql://prefect:other-pw-Zk4@pg:5432/prefect")
    except RuntimeError:
        logging.getLogger("bot.test").exception("applying failed with %s", "{key}")
    logging.getLogger("bot.test").warning("stack", stack_info=True, extra={{"k": "{db}"}})
""").format(pnb=PNB_KEY, key=PROFILE_KEY, auth=PROFILE_AUTH, db=DB_PASSWORD)


@pytest.mark.parametrize("fmt", ["plain", "json"])
def test_tracebacks_pnb_and_profile_keys_are_redacted_in_logs(tmp_path, fmt):
    """A real process with an active Prefect profile holding the key and auth string."""
    profiles = tmp_path / "profiles.toml"
    profiles.write_text(f'active = "prod"\n\n[profiles.prod]\nPREFECT_API_KEY = "{PROFILE_KEY}"\n'
                        f'PREFECT_API_AUTH_STRING = "{PROFILE_AUTH}"\n')
    env = {k: v for k, v in os.environ.items() if not k.startswith("PREFECT_")}
    env.update(PREFECT_PROFILES_PATH=str(profiles), PREFECT_HOME=str(tmp_path))
    done = subprocess.run([sys.executable, "-c", LOGGING_SCRIPT, fmt], cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=120)
    err = done.stderr
    leaked = [s for s in (PNB_KEY, PROFILE_KEY, PROFILE_AUTH, DB_PASSWORD, "other-pw-Zk4") if s in err]
    has_traceback = "Traceback (most recent call last)" in err or '"exc_info"' in err
    check("redaction", f"traceback, pnb_ key, profile key and auth string, DB passwords ({fmt} logs)",
          "traceback logged, every secret [redacted]",
          f"traceback: {has_traceback}; leaked: {leaked}; redactions: {err.count('[redacted]')}",
          done.returncode == 0 and has_traceback and not leaked and err.count("[redacted]") >= 5)


# --- fair use -----------------------------------------------------------------------------------
def _ask(bot: BotHarness, question: str, **event: Any) -> list[str]:
    ts = f"{time.time():.6f}"
    assert bot.post_event(mention(question, ts=ts, **event)).status == 200
    bot.wait_idle()
    return bot.slack_api.bot_texts(event.get("channel", "C1"), ts)


def test_max_tokens_on_every_model_request(hostile_bot, fresh_slack, fresh_model):
    fresh_model.script(tool_calls(("list_work_pools", {})), text("done"))
    _ask(hostile_bot, "list my pools")
    # classic models take the answer's budget as max_tokens; reasoning models as max_completion_tokens,
    # with room for their hidden reasoning on top (BOT_MODEL_REASONING_EFFORT=low by default)
    sent = [r.get("max_tokens") or r.get("max_completion_tokens") - REASONING_ROOM["low"] for r in fresh_model.requests]
    check("fair use", "BOT_MODEL_MAX_TOKENS=321", "an answer budget of 321 on every model request", f"{sent}",
          len(sent) == 2 and all(v == 321 for v in sent))


def _is_cap_refusal(content: str) -> bool:
    """A tool answer that is the cap's error. A real result may be cut at BOT_TOOL_RESULT_MAX_CHARS (the
    worker's shared server can hold many pools), which leaves it no longer JSON: that is not a refusal."""
    try:
        answer = json.loads(content)
    except ValueError:
        return False
    return isinstance(answer, dict) and "too many tool calls" in str(answer.get("error", ""))


def test_tool_calls_per_round_are_capped(hostile_bot, fresh_slack, fresh_model):
    fresh_model.script(tool_calls(*[("list_work_pools", {})] * 7), text("done"))
    _ask(hostile_bot, "pools, seven times")
    results = [m["content"] for m in fresh_model.requests[-1]["messages"] if m["role"] == "tool"]
    refused = [r for r in results if _is_cap_refusal(r)]
    check("fair use", "7 tool calls in one round, cap 3", "3 run, 4 answered with a tool error",
          f"{len(results)} tool answers, {len(refused)} refused", len(results) == 7 and len(refused) == 4)


def test_metrics_labels_are_bounded_and_need_the_token(hostile_bot, fresh_slack, fresh_model):
    invented = [f"steal_{uuid.uuid4().hex[:8]}" for _ in range(25)] + ["rm -rf /", "x" * 300]
    fresh_model.script(tool_calls(*[(name, {}) for name in invented]), text("done"))
    _ask(hostile_bot, "call tools that do not exist")

    def scrape(token: str | None) -> tuple[int, str]:
        request = urllib.request.Request(f"{hostile_bot.url}/metrics")
        if token:
            request.add_header("Authorization", f"Bearer {token}")
        try:
            with urllib.request.urlopen(request, timeout=10) as response:
                return response.status, response.read().decode()
        except urllib.error.HTTPError as exc:
            return exc.code, ""

    anonymous, _ = scrape(None)
    wrong, _ = scrape("not-the-token")
    status, body = scrape("metrics-token-xyz123")
    labels = {line.split('tool="')[1].split('"')[0] for line in body.splitlines()
              if line.startswith("bot_tool_calls_total{")}
    check("metrics", "model invents 27 tool names; /metrics scraped without, with a wrong and the right token",
          "401, 401, 200; invented names counted as 'unknown'",
          f"{anonymous}, {wrong}, {status}; labels {sorted(labels)[:4]}…",
          anonymous == 401 and wrong == 401 and status == 200 and UNKNOWN_TOOL in labels
          and not any(name in body for name in invented[:25]) and "rm -rf" not in body)


# --- the slash command obeys the same rules as a mention -------------------------------------------
def _command(bot: BotHarness, text_: str, user: str, channel: str = "C1", team: str = "T1") -> str:
    body = urlencode({"command": "/concurrency", "text": text_, "user_id": user, "channel_id": channel,
                      "team_id": team, "response_url": f"{bot.slack_api.url}/response", "trigger_id": "t"})
    before = len(bot.slack_api.calls_to("response"))
    assert bot.post(body, "application/x-www-form-urlencoded", sign(body)).status == 200
    return bot.slack_api.wait_for("response", before + 1, timeout=60)[-1].args["text"]


async def test_slash_command_guest_channel_and_rate_limit(gated_bot, fresh_slack):
    pool = await make_pool(limit=2)
    answer = await asyncio.to_thread(_command, gated_bot, f"set work pool {pool} limit to 5", "UGUEST", "C1", "T2")
    pending = await asyncio.to_thread(gated_bot.call, lambda: gated_bot.runtime.approvals.pending())
    mine = [p for p in pending if p.requester == "UGUEST"]
    check("slash", "Slack Connect guest (team T2) runs `/concurrency set …`", "read-only: no proposal, no card",
          f"{short(answer, 50)!r}; proposals {len(mine)}; cards {len(fresh_slack.calls_to('chat.postMessage'))}",
          answer.startswith(GUEST_NO_PROPOSALS[:40]) and not mine and not fresh_slack.calls_to("chat.postMessage"))

    answer = await asyncio.to_thread(_command, gated_bot, "list", "UOTHERCH", "C2")
    check("slash", "`/concurrency list` from a channel outside BOT_ALLOWED_CHANNELS", "refused, nothing read",
          short(answer, 60), answer == NOT_HERE)

    answer = await asyncio.to_thread(_command, gated_bot, f"inspect {PNB_KEY}", "UPASTE")
    check("redaction", "`/concurrency inspect <a pnb_ key>`: the offline answer quotes it back",
          "the key is [redacted] in the Slack answer", short(answer, 60),
          PNB_KEY not in answer and "[redacted]" in answer)

    user = f"URATE{uuid.uuid4().hex[:4]}"
    answers = [await asyncio.to_thread(_command, gated_bot, "help", user) for _ in range(3)]
    check("slash", "`/concurrency` 3 times at 2/min", "3rd refused: 'asking faster'", short(answers[2], 50),
          answers[2] == RATE_LIMITED and answers[0] != RATE_LIMITED)


def test_rate_limit_window_is_shared_by_replicas(slack_api, model_api, prefect_api_url, tmp_path_factory,
                                                 fresh_slack, fresh_model):
    database = f"sqlite:///{tmp_path_factory.mktemp('replicas') / 'bot.db'}"
    first = _harness(slack_api, model_api, tmp_path_factory, "r1", database_url=database,
                     bot_user_rate_limit_per_minute=2)
    second = _harness(slack_api, model_api, tmp_path_factory, "r2", database_url=database,
                      bot_user_rate_limit_per_minute=2)
    try:
        fresh_model.default = text("ok")
        user = f"UREP{uuid.uuid4().hex[:4]}"
        answers = [_ask(first, "q1", user=user), _ask(second, "q2", user=user), _ask(first, "q3", user=user)]
    finally:
        first.stop()
        second.stop()
    check("fair use", "per-user limit 2/min, questions to replica 1, 2, 1", "3rd refused (one shared window)",
          f"model calls {len(fresh_model.requests)}; 3rd: {short(answers[2][0] if answers[2] else '-', 40)!r}",
          answers[2] == [RATE_LIMITED] and len(fresh_model.requests) == 2)


# --- Home tab ---------------------------------------------------------------------------------------
async def test_home_tab_shows_public_and_own_proposals_only(hostile_bot, fresh_slack):
    service = hostile_bot.runtime.approvals
    fresh_slack.private_channels.add("CSECRET")
    pool = await make_pool(limit=1)

    async def propose(limit: int, requester: str, channel: str) -> int:
        change = WorkPoolLimitChange(action="set", pool=pool, limit=limit)
        await asyncio.to_thread(hostile_bot.call, lambda: service.create_proposal(change, requester, "r", channel,
                                                                                  "1.0"))
        return limit

    public = await propose(3, "UOTHER", "C1")
    private = await propose(4, "UOTHER", "CSECRET")
    dm = await propose(5, "UOTHER", "D0OTHER")
    own_private = await propose(6, "UVIEWER", "CSECRET")
    before = len(fresh_slack.calls_to("views.publish"))
    event = {"type": "app_home_opened", "user": "UVIEWER", "channel": "D1", "tab": "home",
             "event_ts": f"{time.time():.6f}"}
    assert (await asyncio.to_thread(hostile_bot.post_event, event)).status == 200
    calls = await asyncio.to_thread(fresh_slack.wait_for, "views.publish", before + 1, 60)
    shown = json.dumps(calls[-1].args["view"], ensure_ascii=False)

    def seen(limit: int) -> bool:
        return f"{pool}" in shown and f"limit 1 → {limit}" in shown

    observed = {"public": seen(public), "private channel": seen(private), "DM": seen(dm), "own": seen(own_private)}
    check("home", "Home tab opened by another member", "public + own shown; private channel and DM hidden",
          f"{observed}", observed == {"public": True, "private channel": False, "DM": False, "own": True})


async def test_home_tab_hides_exception_text_and_caches_prefect_reads(fresh_slack):
    from slack_sdk.web.async_client import AsyncWebClient

    reads = 0

    async def prefect_down() -> Any:
        nonlocal reads
        reads += 1
        raise ConnectionError(f"connect to http://admin:{PROFILE_AUTH}@prefect.internal:4200 refused")

    async def no_pending() -> list:
        return []

    client = AsyncWebClient(token="xoxb-test-token-123456", base_url=f"{fresh_slack.url}/api/")
    cached = CachedMap(prefect_down, seconds=60)
    for _ in range(3):
        await publish_home(client, "UVIEWER", cached, no_pending)
    views = [json.dumps(c.args["view"]) for c in fresh_slack.calls_to("views.publish")]
    leaked = [v for v in views if "prefect.internal" in v or PROFILE_AUTH in v or "refused" in v]
    check("home", "Prefect down while the Home tab is opened 3 times", "a plain note, no exception text; "
          "the failed read is remembered briefly (1 read)", f"{len(views)} views, leaked {len(leaked)}, reads {reads}",
          len(views) == 3 and not leaked and "Could not read Prefect" in views[-1] and reads == 1)

    ok_reads = 0

    async def prefect_up() -> Any:
        nonlocal ok_reads
        ok_reads += 1
        return None

    cached = CachedMap(prefect_up, seconds=60)
    for _ in range(5):
        await publish_home(client, "UVIEWER", cached, no_pending)
    check("home", "Home tab opened 5 times within the cache window", "Prefect read once", f"{ok_reads} read(s)",
          ok_reads == 1)


# --- refused clicks are throttled ---------------------------------------------------------------
async def test_refused_clicks_are_rate_limited(gated_bot, fresh_slack):
    from bot.slack import cards
    from bot.slack.approval_handlers import post_proposal_cards

    service = gated_bot.runtime.approvals
    pool = await make_pool(limit=2)
    change = WorkPoolLimitChange(action="set", pool=pool, limit=9)
    proposal = await asyncio.to_thread(gated_bot.call, lambda: service.create_proposal(change, "UASKER", "r",
                                                                                       "C1", "1.0"))
    await asyncio.to_thread(gated_bot.call, lambda: post_proposal_cards(service, gated_bot.runtime.app.client, "C1",
                                                                        "1.0", [proposal.id]))
    card = await asyncio.to_thread(gated_bot.call, lambda: service.get(proposal.id))
    stranger = f"USTR{uuid.uuid4().hex[:4]}"

    def click(user: str) -> None:
        payload = {
            "type": "block_actions", "token": "legacy", "api_app_id": "A1", "trigger_id": f"t{time.time_ns()}",
            "user": {"id": user, "username": "s", "team_id": "T1"}, "team": {"id": "T1", "domain": "t"},
            "container": {"type": "message", "message_ts": card.message_ts, "channel_id": "C1"},
            "channel": {"id": "C1", "name": "ops"},
            "message": {"type": "message", "ts": card.message_ts, "text": "Proposed limit change"},
            "response_url": "https://hooks.invalid/response",
            "actions": [{"type": "button", "action_id": cards.APPROVE, "block_id": "proposal:x",
                         "value": proposal.id, "action_ts": f"{time.time():.6f}"}],
        }
        assert gated_bot.post_interaction(payload).status == 200

    def notes(user: str) -> list:
        return [c for c in fresh_slack.calls_to("chat.postEphemeral") if c.args.get("user") == user]

    for count in (1, 2):  # the first two refusals are told, one after the other
        await asyncio.to_thread(click, stranger)
        await asyncio.to_thread(_wait_for, lambda c=count: len(notes(stranger)) >= c)
    for _ in range(3):
        await asyncio.to_thread(click, stranger)
    # A probe from another person takes the longer path (check, decide, tell) and starts later: once its
    # note is in, the three throttled clicks (one store read each) have been handled.
    probe = f"UPRB{uuid.uuid4().hex[:4]}"
    await asyncio.to_thread(click, probe)
    probed = await asyncio.to_thread(_wait_for, lambda: len(notes(probe)) >= 1)
    status = (await asyncio.to_thread(gated_bot.call, lambda: service.get(proposal.id))).status
    check("security", "a non-approver clicks Approve 5 times (limit 2/min)",
          "2 refusals told, then clicks dropped unanswered; still pending",
          f"notes {len(notes(stranger))}, probe answered {probed}, {status}",
          probed and len(notes(stranger)) == 2 and status == "pending")


def _wait_for(condition, timeout: float = 20.0) -> bool:
    return bool(poll(condition, timeout))
