"""The watcher inside the bot, built as `serve` builds it, against the real Prefect server and test Slack.

The bot runs through tests/harness.py (Bolt over aiohttp, the fake Slack Web API); its background
tasks (the sweep and the watcher) are started by `Runtime.run`, exactly as `serve` does. Intervals and thresholds
are small so every wait is on a condition, never a fixed sleep. The Prefect server is shared with
other tests, so each test reads only the messages about its own uniquely named objects.
"""

from __future__ import annotations

import json
import uuid
from typing import Any

import pytest
from prefect import get_client
from prefect.client.schemas.actions import WorkPoolCreate, WorkPoolUpdate

from bot.slack import cards, incident_cards
from tests.approvals_support import pool_limit
from tests.harness import BotHarness
from tests.harness import wait_until as _wait_until
from tests.slack_transport import block_action
from tests.test_watch_detectors import _deployment, _paused_pool_with_a_due_run


def wait_until(check, timeout: float = 120.0, what: str = "condition"):
    """The harness's wait with room for a loaded machine (the shared Prefect server is busy)."""
    return _wait_until(check, timeout, what)

APPROVER = "UAPPROVER"
WAIT = 120  # seconds; the shared server carries other tests' trouble, so a read can be slow under load


def uid() -> str:
    return uuid.uuid4().hex[:8]


@pytest.fixture
def db_url(tmp_path) -> str:
    return f"sqlite:///{tmp_path / 'bot.db'}"


def start_bot(slack, db_url: str, channel: str, **overrides: Any) -> BotHarness:
    # the watcher reads every second here (every 30 s in serve), so its call budget is raised alike: at
    # serve's 100 a minute reads wait on the budget, not on the server (a minute a test under load)
    values = dict(bot_watch_channel=channel, bot_watch_interval_seconds=1.0, bot_watch_wait_seconds=1.0,
                  bot_watch_max_posts_per_hour=1000, bot_watch_max_calls_per_minute=1000,
                  bot_approver_ids=[APPROVER])
    values.update(overrides)
    return BotHarness(slack, None, db_url, **values).start()  # Runtime.run starts the watcher, as `serve` does


def stop_bot(bot: BotHarness) -> None:
    bot.stop()


def posts_about(slack, channel: str, needle: str) -> list[dict[str, Any]]:
    return [c.args for c in slack.calls_to("chat.postMessage")
            if c.args.get("channel") == channel and not c.args.get("thread_ts") and needle in str(c.args)]


def updates_of(slack, ts: str) -> list[dict[str, Any]]:
    return [c.args for c in slack.calls_to("chat.update") if c.args.get("ts") == ts]


def click(bot: BotHarness, action_id: str, value: str, user: str, channel: str, ts: str, team: str = "T1"):
    return bot.post_interaction(block_action(action_id, value, user, channel, message_ts=ts, team=team))


def _ts_of(response_calls, slack, channel: str, needle: str) -> str:
    posted = wait_until(lambda: posts_about(slack, channel, needle), timeout=WAIT, what=f"incident about {needle}")
    assert len(posted) == 1
    [message] = [m for (ch, _), msgs in slack.messages.items() if ch == channel for m in msgs
                 if needle in m["text"] and m["thread_ts"] == m["ts"]]
    return message["ts"]


async def test_paused_pool_incident_is_posted_once_snoozed_and_resolved(fresh_slack, prefect_api_url, db_url):
    channel, pool = f"CW{uid()}", f"watch-e2e-paused-{uid()}"
    async with get_client() as client:
        run = await _paused_pool_with_a_due_run(client, pool)
    bot = start_bot(fresh_slack, db_url, channel)
    try:
        ts = _ts_of(None, fresh_slack, channel, pool)
        [post] = posts_about(fresh_slack, channel, pool)
        text = post["blocks"][0]["text"]["text"]
        assert f"`{pool}` is paused with 1 run(s) due" in text and f"`{run.name}`" in text
        assert f"prefect work-pool resume {pool}" in text
        assert len(post["blocks"]) <= 50 and len(text) <= 3000

        stop_bot(bot)
        bot = start_bot(fresh_slack, db_url, channel)  # a restart on the same store: no second post
        wait_until(lambda: bot.runtime.watcher.ticks >= 3, what="three reads after the restart")
        assert len(posts_about(fresh_slack, channel, pool)) == 1

        async with get_client() as client:  # the incident changes: its message is updated, not re-posted
            await client.create_flow_run_from_deployment(run.deployment_id)
        wait_until(lambda: any("is paused with 2 run(s) due" in json.dumps(u) for u in updates_of(fresh_slack, ts)),
                   timeout=WAIT, what="the message updated to 2 runs due")
        assert len(posts_about(fresh_slack, channel, pool)) == 1

        bot.post_event({"type": "app_home_opened", "user": "U1", "tab": "home", "channel": "D1"})
        [home] = fresh_slack.wait_for("views.publish", timeout=WAIT)
        texts = [json.dumps(b) for b in home.args["view"]["blocks"]]
        mine = next(i for i, t in enumerate(texts) if f"`{pool}` is paused" in t)
        headers = [i for i, t in enumerate(texts) if '"type": "header"' in t]
        assert "Open incidents" in texts[headers[1]] and headers[1] < mine < headers[2]  # above the limits

        assert click(bot, incident_cards.SNOOZE, f"paused_backlog:work_pool:{pool}", "UONCALL", channel,
                     ts).status == 200
        wait_until(lambda: any("snoozed by <@UONCALL>" in str(u) for u in updates_of(fresh_slack, ts)),
                   what="the snooze note on the message")
        audit = bot.call(lambda: bot.runtime.approvals.audit_log(action="snoozed"))
        assert [(a.actor, a.detail.split(" until")[0]) for a in audit] == [
            ("UONCALL", f"snoozed watcher incident paused_backlog:work_pool:{pool}")]

        async with get_client() as client:
            await client.update_work_pool(pool, WorkPoolUpdate(is_paused=False))
        resolved = wait_until(lambda: [u for u in updates_of(fresh_slack, ts) if "Resolved" in u["text"]],
                              timeout=WAIT, what="the resolved update")
        assert "cleared after" in resolved[-1]["blocks"][0]["text"]["text"]
        assert not any(b["type"] == "actions" for b in resolved[-1]["blocks"])
    finally:
        stop_bot(bot)
        async with get_client() as client:
            await client.update_work_pool(pool, WorkPoolUpdate(is_paused=False))


async def test_zero_limit_incident_brings_a_proposal_that_an_approver_applies(fresh_slack, prefect_api_url, db_url):
    channel, pool = f"CW{uid()}", f"watch-e2e-zero-{uid()}"
    async with get_client() as client:
        await client.create_work_pool(WorkPoolCreate(name=pool, type="process", concurrency_limit=0))
        dep_id, _ = await _deployment(client, pool)
        await client.create_flow_run_from_deployment(dep_id)
    bot = start_bot(fresh_slack, db_url, channel)

    def zero_limit_posts() -> list[dict[str, Any]]:
        return [p for p in posts_about(fresh_slack, channel, pool) if "Limit of 0" in p["text"]]

    try:
        wait_until(zero_limit_posts, timeout=WAIT, what="the limit-of-0 incident")
        [message] = [m for (ch, _), msgs in fresh_slack.messages.items() if ch == channel for m in msgs
                     if pool in m["text"] and "Limit of 0" in m["text"] and m["thread_ts"] == m["ts"]]
        ts = message["ts"]
        cards_in_thread = wait_until(
            lambda: [c.args for c in fresh_slack.calls_to("chat.postMessage")
                     if c.args.get("thread_ts") == ts and "Proposed limit change" in c.args.get("text", "")],
            what="the proposal card in the incident's thread")
        [card] = cards_in_thread
        assert f"work pool `{pool}`: limit 0 → 1" in card["text"]
        approve_value = next(e["value"] for b in card["blocks"] if b["type"] == "actions" for e in b["elements"]
                             if e["action_id"] == cards.APPROVE)
        proposal_id = cards.parse_approve_value(approve_value)[0]

        stranger = click(bot, cards.APPROVE, approve_value, "USTRANGER", channel, ts)
        assert stranger.status == 200
        wait_until(lambda: bot.call(lambda: bot.runtime.approvals.audit_log(action="refused")),
                   what="the stranger's refusal")
        assert await pool_limit(pool) == 0

        assert click(bot, cards.APPROVE, approve_value, APPROVER, channel, ts).status == 200
        wait_until(lambda: bot.call(lambda: bot.runtime.approvals.get(proposal_id)).status == "applied",
                   what="the proposal applied")
        assert await pool_limit(pool) == 1  # read back from Prefect
        wait_until(lambda: [u for u in updates_of(fresh_slack, ts) if "Resolved" in u["text"]], timeout=WAIT,
                   what="the incident resolved once the limit is 1")
        assert len(zero_limit_posts()) == 1  # one post for the incident, however long it took
        # The run turns Late 15 s after it was created; on a loaded machine the pool (limit 1 now, no
        # worker) is then rightly reported as a second, different incident. Nothing else may be posted.
        others = [p for p in posts_about(fresh_slack, channel, pool) if "Limit of 0" not in p["text"]]
        assert all("no online worker" in p["text"] for p in others), others
    finally:
        stop_bot(bot)


async def test_beyond_the_hourly_limit_one_rollup_and_mute_is_audited(fresh_slack, prefect_api_url, db_url):
    channel = f"CW{uid()}"
    pools = [f"watch-e2e-roll-{uid()}" for _ in range(3)]
    async with get_client() as client:
        for pool in pools:
            await _paused_pool_with_a_due_run(client, pool)
    bot = start_bot(fresh_slack, db_url, channel, bot_watch_max_posts_per_hour=1)
    try:
        def top_level():
            return [c.args for c in fresh_slack.calls_to("chat.postMessage")
                    if c.args.get("channel") == channel and not c.args.get("thread_ts")]

        def listed(pool: str) -> int:
            rollups = [u for u in fresh_slack.calls_to("chat.update") if u.args.get("channel") == channel]
            texts = [json.dumps(p) for p in top_level()] + [json.dumps(u.args) for u in rollups]
            return sum(1 for t in texts if pool in t)

        wait_until(lambda: all(listed(p) for p in pools), timeout=WAIT, what="every pool posted or rolled up")
        posts = top_level()
        incidents = [p for p in posts if "more concurrency incident" not in p["text"]]
        rollups = [p for p in posts if "more concurrency incident" in p["text"]]
        assert len(incidents) == 1 and len(rollups) == 1  # the hour's one post, then one roll-up
        assert all(len(json.dumps(b)) < 3100 for b in rollups[0]["blocks"])

        first = incidents[0]
        key = next(e["value"] for b in first["blocks"] if b["type"] == "actions" for e in b["elements"]
                   if e["action_id"] == incident_cards.MUTE)
        ts = next(m["ts"] for (ch, _), msgs in fresh_slack.messages.items() if ch == channel for m in msgs
                  if m["text"] == first["text"])
        assert click(bot, incident_cards.MUTE, key, "UGUEST", channel, ts, team="TOTHER").status == 200
        wait_until(lambda: bot.call(lambda: bot.runtime.approvals.audit_log(action="refused", actor="UGUEST")),
                   what="the guest's mute refused")
        assert bot.call(lambda: bot.runtime.approvals.audit_log(action="muted")) == []
        assert click(bot, incident_cards.MUTE, key, "UONCALL", channel, ts).status == 200
        wait_until(lambda: bot.call(lambda: bot.runtime.approvals.audit_log(action="muted")), what="the mute")
        [muted] = bot.call(lambda: bot.runtime.approvals.audit_log(action="muted"))
        assert muted.actor == "UONCALL" and key in muted.detail
        wait_until(lambda: any("muted by <@UONCALL>" in json.dumps(u.args) for u in fresh_slack.calls_to("chat.update")
                               if u.args.get("ts") == ts), what="the mute note on the message")
    finally:
        stop_bot(bot)
        async with get_client() as client:
            for pool in pools:
                await client.update_work_pool(pool, WorkPoolUpdate(is_paused=False))
