"""Every click passes the same gate as a message: allowed channels, guests, the shared rate limit.

The issue-23 probes, through the bot built like `serve` and the real Prefect server:
- Approve clicked on a card in a channel outside BOT_ALLOWED_CHANNELS was applied (2 → 7);
- a non-approver clicking Revert 12 times with the limit at 5 a minute made 12 proposals and cards,
  because only refused clicks were throttled.
Each effect is read back (Prefect's value, the store's proposals, what Slack received).
"""

from __future__ import annotations

import time

import pytest

from bot.prefect_ops.changes import WorkPoolLimitChange
from bot.slack import cards
from bot.slack.gate import NOT_HERE_CLICK
from tests.approvals_support import make_pool, pool_limit
from tests.harness import BotHarness
from tests.slack_transport import block_action
from tests.waiting import wait_until

pytestmark = pytest.mark.timeout(300)

ALLOWED, OTHER = "CALLOWED", "COTHER"


@pytest.fixture(scope="module")
def bot(slack_api, model_api, prefect_api_url, tmp_path_factory):
    db = f"sqlite:///{tmp_path_factory.mktemp('gate') / 'bot.db'}"
    harness = BotHarness(slack_api, None, db, bot_allowed_channels=[ALLOWED],
                         bot_user_rate_limit_per_minute=5, bot_streaming=False).start()
    yield harness
    harness.stop()


def card_for(bot, fresh_slack, change, channel: str):
    from bot.slack.approval_handlers import post_proposal_cards

    service = bot.runtime.approvals
    thread = f"{time.time():.6f}"
    proposal = bot.call(lambda: service.create_proposal(change, "UASKER", "because", channel, thread))
    bot.call(lambda: post_proposal_cards(service, bot.runtime.app.client, channel, thread, [proposal.id]))
    return bot.call(lambda: service.get(proposal.id))


def ephemerals(fresh_slack, user: str) -> list[str]:
    return [c.args.get("text", "") for c in fresh_slack.calls_to("chat.postEphemeral") if c.args.get("user") == user]


async def test_clicks_on_a_card_outside_the_allowed_channels_change_nothing(bot, fresh_slack):
    pool = await make_pool(limit=2)
    proposal = card_for(bot, fresh_slack, WorkPoolLimitChange(action="set", pool=pool, limit=7), OTHER)
    value = cards.approve_value(proposal)
    for action, user, clicked in ((cards.APPROVE, "UAPPROVER", value), (cards.EDIT, "UAPPROVER", proposal.id),
                                  (cards.REJECT, "UAPPROVER", proposal.id)):
        assert bot.post_interaction(block_action(action, clicked, user, channel=OTHER,
                                                 message_ts=proposal.message_ts)).status == 200
    wait_until(lambda: len(ephemerals(fresh_slack, "UAPPROVER")) >= 3, what="three refusals")
    shown = NOT_HERE_CLICK.replace("'", "&#x27;")
    assert all(text in (NOT_HERE_CLICK, shown) or "not enabled in this channel" in text
               for text in ephemerals(fresh_slack, "UAPPROVER"))
    assert fresh_slack.calls_to("views.open") == []
    assert bot.call(lambda: bot.runtime.approvals.get(proposal.id)).status == "pending"
    assert await pool_limit(pool) == 2  # read back from Prefect: not applied

    # The same card in an allowed channel: the approver's click goes through (the gate is not a wall).
    allowed = card_for(bot, fresh_slack, WorkPoolLimitChange(action="set", pool=pool, limit=3), ALLOWED)
    assert bot.post_interaction(block_action(cards.APPROVE, f"{allowed.id}:{allowed.version}", "UAPPROVER",
                                             channel=ALLOWED, message_ts=allowed.message_ts)).status == 200
    wait_until(lambda: bot.call(lambda: bot.runtime.approvals.get(allowed.id)).status == "applied",
               what="the approve in an allowed channel")
    assert await pool_limit(pool) == 3


async def test_successful_clicks_count_in_the_shared_rate_limit(bot, fresh_slack):
    pool = await make_pool(limit=2)
    applied = card_for(bot, fresh_slack, WorkPoolLimitChange(action="set", pool=pool, limit=4), ALLOWED)
    assert bot.post_interaction(block_action(cards.APPROVE, f"{applied.id}:{applied.version}", "UAPPROVER",
                                             channel=ALLOWED, message_ts=applied.message_ts)).status == 200
    wait_until(lambda: bot.call(lambda: bot.runtime.approvals.get(applied.id)).status == "applied", what="applied")
    applied = bot.call(lambda: bot.runtime.approvals.get(applied.id))

    def reverts() -> int:
        pending = bot.call(lambda: bot.runtime.approvals.pending(limit=100))
        return sum(1 for p in pending if pool in p.change.target())

    for _ in range(12):
        assert bot.post_interaction(block_action(cards.REVERT, applied.id, "UNOBODY", channel=ALLOWED,
                                                 message_ts=applied.message_ts)).status == 200
    wait_until(lambda: any("faster than I can answer" in t for t in ephemerals(fresh_slack, "UNOBODY")),
               what="the rate-limit reply")
    # A refused click is answered at once, an allowed one only after its revert is read from Prefect and
    # stored, and click handlers are not among the answers `wait_idle` waits for: wait for the revert.
    wait_until(lambda: reverts() >= 1, what="a revert proposed by one of the allowed clicks")
    bot.wait_idle()
    assert reverts() <= 5, reverts()
    cards_posted = [c for c in fresh_slack.calls_to("chat.postMessage") if pool in str(c.args.get("blocks"))]
    assert len(cards_posted) <= 1 + 5


async def test_mute_expires_can_be_undone_and_is_audited_with_its_reason(slack_api, prefect_api_url, tmp_path):
    """Mute on a real watcher incident (a paused pool with a run due): a silence that ends by itself,
    an Unmute button that ends it now, and audit rows that say why."""
    from datetime import UTC, datetime, timedelta

    from prefect import get_client
    from prefect.client.schemas.actions import WorkPoolUpdate

    from bot.slack import incident_cards
    from bot.store import watch as watch_db
    from tests.test_watch_detectors import _deployment

    slack_api.reset()
    pool = await make_pool()
    async with get_client() as client:
        await client.update_work_pool(pool, WorkPoolUpdate(is_paused=True))
        dep_id, _ = await _deployment(client, pool)
        await client.create_flow_run_from_deployment(dep_id)
    watch = "CWATCH"
    bot = BotHarness(slack_api, None, f"sqlite:///{tmp_path / 'bot.db'}", bot_watch_channel=watch,
                     bot_allowed_channels=[ALLOWED], bot_watch_interval_seconds=1.0, bot_watch_wait_seconds=1.0,
                     bot_watch_max_posts_per_hour=1000).start()
    try:
        post = wait_until(lambda: next((c.args for c in slack_api.calls_to("chat.postMessage")
                                        if c.args.get("channel") == watch and pool in str(c.args)), None),
                          timeout=120, what="the incident post")
        ts = next(m["ts"] for (ch, _), msgs in slack_api.messages.items() if ch == watch for m in msgs
                  if m["text"] == post["text"])
        key = f"paused_backlog:work_pool:{pool}"
        assert bot.post_interaction(block_action(incident_cards.MUTE, key, "UONCALL", channel=watch,
                                                 message_ts=ts)).status == 200
        [muted] = wait_until(lambda: bot.call(lambda: bot.runtime.approvals.audit_log(action="muted")), what="mute")
        assert "until" in muted.detail and "reason: mute button" in muted.detail
        silences = bot.runtime.store.sessions
        with silences() as session:
            row = session.get(watch_db.WatchSilence, f"work_pool:{pool}")
        assert row is not None and row.until is not None
        assert row.until.replace(tzinfo=UTC) <= datetime.now(UTC) + timedelta(days=7, minutes=1)
        wait_until(lambda: any(e.get("action_id") == incident_cards.UNMUTE
                               for u in slack_api.calls_to("chat.update") if u.args.get("ts") == ts
                               for b in u.args.get("blocks") or [] if isinstance(b, dict)
                               for e in b.get("elements") or []), what="the Unmute button")

        assert bot.post_interaction(block_action(incident_cards.UNMUTE, key, "UONCALL", channel=watch,
                                                 message_ts=ts)).status == 200
        wait_until(lambda: bot.call(lambda: bot.runtime.approvals.audit_log(action="unmuted")), what="unmute")
        targets = watch_db.silenced_targets(silences, datetime.now(UTC))
        assert f"work_pool:{pool}" not in targets
    finally:
        bot.stop()
        async with get_client() as client:
            await client.update_work_pool(pool, WorkPoolUpdate(is_paused=False))
