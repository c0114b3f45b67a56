"""First contact with a Slack as strict as Slack: the bot built and run as `serve` runs it, in HTTP
mode and in Socket Mode, answering what people do the way Slack delivers it.

Each test here guards one of the breaks a new workspace admin found (issue 14); the closing
note of the issue maps each break to its test.
"""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
import urllib.error
import urllib.request
import uuid
from datetime import UTC, datetime
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from slack_sdk.models.blocks import SectionBlock
from slack_sdk.models.views import View

from bot.approvals.policy import NOBODY, ApproverGroupError
from bot.prefect_ops.changes import WorkPoolLimitChange
from bot.slack import cards
from bot.slack.approval_handlers import post_proposal_cards
from bot.slack.home import home_view
from bot.slack.limits import fit_view
from tests.approvals_support import make_pool, pool_limit
from tests.fakes.model_api import text
from tests.fakes.prefect_server import free_port
from tests.fakes.slack_api import BOT_ID
from tests.fakes.socket_mode import FakeSocketMode
from tests.harness import BOT_TOKEN, BotHarness, wait_until
from tests.slack_transport import Transport, block_action, say, view_submission

pytestmark = pytest.mark.timeout(240)

APPROVER, STRANGER = "UAPPROVER", "USTRANGER"


@pytest.fixture
def start(fresh_slack, fresh_model, prefect_api_url, tmp_path):
    """Start the bot in a mode with settings overrides; everything started is stopped afterwards."""
    started: list[tuple[BotHarness, FakeSocketMode | None]] = []

    def _start(mode: str = "http", **overrides: Any) -> Transport:
        socket = None
        if mode == "socket":
            socket = FakeSocketMode().start()
            fresh_slack.socket_url = socket.url
        overrides.setdefault("bot_streaming", False)
        bot = BotHarness(fresh_slack, fresh_model, f"sqlite:///{tmp_path / f'bot{len(started)}.db'}",
                         socket_mode=socket is not None, **overrides)
        started.append((bot, socket))
        bot.start()
        if socket is not None:
            socket.wait_connected()
        return Transport(bot, socket)

    yield _start
    for bot, socket in reversed(started):
        bot.stop()
        if socket is not None:
            socket.stop()
    fresh_slack.socket_url = None


def answers(slack, thread_ts: str, channel: str = "C1") -> list[str]:
    return slack.bot_texts(channel, thread_ts)


def propose(transport: Transport, change, thread_ts: str, requester: str = "UASKER") -> str:
    bot = transport.bot
    service = bot.runtime.approvals
    proposal = bot.call(lambda: service.create_proposal(change, requester, "nightly runs queue", "C1", thread_ts))
    bot.call(lambda: post_proposal_cards(service, bot.runtime.app.client, "C1", thread_ts, [proposal.id]))
    return proposal.id


def proposal(transport: Transport, proposal_id: str):
    return transport.bot.call(lambda: transport.bot.runtime.approvals.get(proposal_id))


def approve_value_shown(slack, card_ts: str, channel: str = "C1") -> str:
    """The Approve button's value on the card as Slack shows it now, which is what a click sends."""
    message = slack.message(channel, card_ts) or {}
    for block in message.get("blocks") or []:
        for element in block.get("elements") or []:
            if element.get("action_id") == cards.APPROVE:
                return element["value"]
    raise AssertionError(f"no Approve button on card {card_ts}")


def card_updates(slack, proposal_ts: str) -> list[str]:
    return [json.dumps(c.args.get("blocks")) for c in slack.calls_to("chat.update") if c.args.get("ts") == proposal_ts]


def model_saw(model, needle: str) -> bool:
    return any(needle in json.dumps(request) for request in model.requests)


# --- end to end, both modes ------------------------------------------------------------------------

@pytest.mark.parametrize("mode", ["http", "socket"])
def test_conversation_end_to_end(start, mode, fresh_slack, fresh_model):
    """Channel mention (delivered twice), DM mention, thread follow-up, slash command: each answered once."""
    live = start(mode)
    fresh_model.script(text("channel answer"))
    root = say(live, "why is my run stuck?", mention_bot=True)
    wait_until(lambda: answers(fresh_slack, root), what="channel answer")
    live.bot.wait_idle()
    assert answers(fresh_slack, root) == ["channel answer"] and len(fresh_model.requests) == 1

    fresh_model.script(text("follow-up answer"))
    say(live, "and what about the pool?", thread_ts=root)
    wait_until(lambda: len(answers(fresh_slack, root)) == 2, what="follow-up answer")
    assert model_saw(fresh_model, "why is my run stuck?"), "the follow-up carries the thread's history"

    fresh_model.script(text("dm answer"))
    dm = say(live, "hello there", channel="D1", dm=True, mention_bot=True)
    wait_until(lambda: answers(fresh_slack, dm, "D1"), what="DM mention answer")

    live.command("/concurrency", "help")
    wait_until(lambda: fresh_slack.calls_to("response"), what="slash command answer")
    live.bot.wait_idle()
    assert answers(fresh_slack, dm, "D1") == ["dm answer"]
    assert answers(fresh_slack, root) == ["channel answer", "follow-up answer"]
    assert len(fresh_model.requests) == 3
    assert fresh_slack.refused == [], "Slack refused nothing the bot sent"


@pytest.mark.parametrize("mode", ["http", "socket"])
async def test_approval_click_and_edit_modal_end_to_end(start, mode, fresh_slack):
    live = start(mode)
    pool = await make_pool(limit=1)
    thread = say(live, "please raise it", user="UASKER")
    pid = propose(live, WorkPoolLimitChange(action="set", pool=pool, limit=2), thread)
    card_ts = proposal(live, pid).message_ts

    live.interaction(block_action(cards.EDIT, pid, APPROVER, message_ts=card_ts, thread_ts=thread))
    view = fresh_slack.wait_for("views.open")[-1].args["view"]
    values = {cards.VALUE_BLOCK: {cards.VALUE_ACTION: {"type": "number_input", "value": "lots"}}}
    refused = live.interaction(view_submission(cards.EDIT_VIEW, view["private_metadata"], values, APPROVER))
    assert refused and refused["response_action"] == "errors" and cards.VALUE_BLOCK in refused["errors"]
    values = {cards.VALUE_BLOCK: {cards.VALUE_ACTION: {"type": "number_input", "value": "6"}}}
    live.interaction(view_submission(cards.EDIT_VIEW, view["private_metadata"], values, APPROVER))
    wait_until(lambda: proposal(live, pid).version == 2, what="edit stored")

    shown = wait_until(lambda: (v := approve_value_shown(fresh_slack, card_ts)).endswith(":2") and v,
                       what="card redrawn with the edited version")
    live.interaction(block_action(cards.APPROVE, shown, APPROVER, message_ts=card_ts, thread_ts=thread))
    wait_until(lambda: proposal(live, pid).status == "applied", what="applied")
    assert await pool_limit(pool) == 6
    assert "Applied" in wait_until(lambda: card_updates(fresh_slack, card_ts), what="card redrawn")[-1]
    assert fresh_slack.refused == []


# --- the nine breaks ---------------------------------------------------------------------------------

BIN = Path(sys.executable).with_name("concurrency-bot")


def test_break1_empty_settings_are_unset_and_named(tmp_path):
    """`.env.example` copied as is: blank tokens mean unset; serve names the missing setting, no crash."""
    (tmp_path / ".env").write_text(f"SLACK_BOT_TOKEN={BOT_TOKEN}\nSLACK_APP_TOKEN=\nSLACK_SIGNING_SECRET=\n"
                                   f"BOT_DATA_DIR={tmp_path}\n")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SLACK_", "OPENAI_", "BOT_"))}
    done = subprocess.run([str(BIN), "serve", "--port", str(free_port())], env=env, cwd=tmp_path,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 2, done.stderr
    assert "SLACK_SIGNING_SECRET is not set" in done.stderr
    assert "Traceback" not in done.stderr and "KeyError" not in done.stderr


def test_break2_socket_mode_serves_health_and_metrics(start):
    live = start("socket")
    for path, expected in (("/healthz", b'"ok"'), ("/metrics", b"bot_")):
        with urllib.request.urlopen(f"{live.bot.url}{path}", timeout=10) as response:
            assert response.status == 200 and expected in response.read()
    not_there = urllib.request.Request(f"{live.bot.url}/slack/events", data=b"{}", method="POST")
    with pytest.raises(urllib.error.HTTPError):  # events come over the socket only
        urllib.request.urlopen(not_there, timeout=10)


def test_break3_dm_mention_is_answered_once(start, fresh_slack, fresh_model):
    live = start("http")
    fresh_model.script(text("dm answer"))
    ts = say(live, "are any limits full?", channel="D7", dm=True, mention_bot=True)
    wait_until(lambda: answers(fresh_slack, ts, "D7"), what="answer")
    live.bot.wait_idle()
    assert answers(fresh_slack, ts, "D7") == ["dm answer"] and len(fresh_model.requests) == 1


async def test_break4_group_handle_is_resolved_and_a_member_click_applies(start, fresh_slack):
    fresh_slack.usergroup_handles["ops-approvers"] = "S0OPSAPPR"
    fresh_slack.usergroup_members["S0OPSAPPR"] = ["UGROUPIE"]
    live = start("http", bot_approver_ids=[], bot_approver_group="@ops-approvers")
    pool = await make_pool(limit=1)
    thread = say(live, "raise it please", user="UASKER")
    pid = propose(live, WorkPoolLimitChange(action="set", pool=pool, limit=3), thread)
    card_ts = proposal(live, pid).message_ts
    live.interaction(block_action(cards.APPROVE, pid, STRANGER, message_ts=card_ts, thread_ts=thread))
    note = fresh_slack.wait_for("chat.postEphemeral")[-1].args
    assert note["user"] == STRANGER and "not an approver" in note["text"]
    live.interaction(block_action(cards.APPROVE, pid, "UGROUPIE", message_ts=card_ts, thread_ts=thread))
    wait_until(lambda: proposal(live, pid).status == "applied", what="group member's approval applied")
    assert await pool_limit(pool) == 3
    assert [c.args["usergroup"] for c in fresh_slack.calls_to("usergroups.users.list")] == ["S0OPSAPPR"]


def test_break4_unknown_group_handle_stops_startup(start, fresh_slack):
    with pytest.raises(ApproverGroupError, match="BOT_APPROVER_GROUP @no-such-group"):
        start("http", bot_approver_group="no-such-group")


def test_break5_sixty_message_thread_newest_fact_reaches_the_model(start, fresh_slack, fresh_model):
    live = start("http")
    root = "1700000000.000000"
    fresh_slack.seed_thread("C1", root, [{"ts": root, "user": "U1", "text": "our nightly runs are slow"}])
    fresh_slack.seed_thread("C1", root, [{"ts": f"17000000{i:02d}.000000", "user": "U1", "text": f"noise {i}",
                                          "thread_ts": root} for i in range(1, 59)])
    fresh_slack.seed_thread("C1", root, [{"ts": "1700000059.000000", "user": "U2", "thread_ts": root,
                                          "text": "FACT: the pool that matters is called tangerine-7"}])
    fresh_slack.seed_thread("C1", root, [{"ts": "1700000001.500000", "user": "UBOT", "bot_id": BOT_ID,
                                          "text": "an early answer", "thread_ts": root}])
    fresh_model.script(text("tangerine-7 is the one"))
    say(live, "which pool was it again?", ts="1700000060.000000", thread_ts=root, mention_bot=True)
    wait_until(lambda: "tangerine-7 is the one" in answers(fresh_slack, root), what="answer")
    assert model_saw(fresh_model, "tangerine-7"), "the newest message of a long thread reaches the model"
    assert model_saw(fresh_model, "our nightly runs are slow"), "and so does the question that opened it"
    assert not model_saw(fresh_model, "noise 1\""), "old middle messages fall outside the bound"
    assert len(fresh_slack.calls_to("conversations.replies")) >= 1


def test_break6_long_texts_are_trimmed_and_the_home_tab_survives(start, fresh_slack):
    live = start("http", bot_approver_ids=[])
    live.event({"type": "app_home_opened", "user": "U1", "channel": "D1", "tab": "home",
                "event_ts": "1700000000.000100"})
    home = wait_until(lambda: fresh_slack.published.get("U1"), what="home published")
    assert NOBODY in json.dumps(home)
    limits = [SimpleNamespace(name="x" * 400, limit=2, active_slots=1, waiting=0, full=False, kind="tag",
                              flags=lambda: []) for _ in range(10)]  # ten long names: one 4,000-char section
    limits_map = SimpleNamespace(limits=limits, api_url="http://prefect", read_at=datetime.now(UTC))
    view = home_view(limits_map, [], None, "x" * 5000)
    long_modal = fit_view(View(type="modal", title="A very long modal title indeed",
                               blocks=[SectionBlock(text="y" * 3500)]))
    client = live.bot.runtime.app.client
    live.bot.call(lambda: client.views_publish(user_id="U2", view=view))
    live.bot.call(lambda: client.views_open(trigger_id="t", view=long_modal))
    shown = json.dumps(fresh_slack.published["U2"], ensure_ascii=False)
    assert "…" in shown and fresh_slack.refused == []


async def test_break6_a_huge_name_leaves_card_and_home_tab_whole(start, fresh_slack):
    """A 3,100-character work pool name: the card and the Home tab are posted, its text clipped with "…"."""
    from prefect import get_client
    from prefect.client.schemas.actions import WorkPoolCreate

    name = "p" * 3100 + uuid.uuid4().hex[:6]
    async with get_client() as client:
        await client.create_work_pool(WorkPoolCreate(name=name, type="process", concurrency_limit=1))
    try:
        live = start("http")
        thread = say(live, "raise it", user="UASKER")
        pid = propose(live, WorkPoolLimitChange(action="set", pool=name, limit=2), thread)
        assert proposal(live, pid).message_ts, "the card was posted"
        live.event({"type": "app_home_opened", "user": "U1", "channel": "D1", "tab": "home",
                    "event_ts": "1700000000.000100"})
        home = json.dumps(wait_until(lambda: fresh_slack.published.get("U1"), what="home"), ensure_ascii=False)
        assert "Pending proposals" in home and "…" in home and "ppppp" in home
        card = json.dumps(fresh_slack.calls_to("chat.postMessage")[-1].args["blocks"], ensure_ascii=False)
        assert "…" in card and cards.APPROVE in card
        assert fresh_slack.refused == []
    finally:
        async with get_client() as client:
            await client.delete_work_pool(name)


def test_break7_thread_broadcast_in_a_bot_thread_is_answered_once(start, fresh_slack, fresh_model):
    live = start("http")
    fresh_model.script(text("first"), text("broadcast answer"))
    root = say(live, "hi", mention_bot=True)
    wait_until(lambda: answers(fresh_slack, root), what="first answer")
    live.bot.wait_idle()  # the thread is the bot's once the answer is stored
    say(live, "also for everyone: what about tags?", thread_ts=root, subtype="thread_broadcast")
    wait_until(lambda: len(answers(fresh_slack, root)) == 2, what="broadcast answered")
    live.bot.wait_idle()
    assert answers(fresh_slack, root) == ["first", "broadcast answer"]


async def test_break8_grid_colleague_may_approve_other_org_may_not(start, fresh_slack, fresh_model):
    fresh_slack.enterprise_id = "E1"
    fresh_slack.user_enterprises.update({"UOTHERORG": "E2", "UGRIDMATE": "E1"})
    live = start("http", bot_approver_ids=["UGRIDMATE", "UOTHERORG"])
    pool = await make_pool(limit=1)
    thread = say(live, "raise it", user="UASKER")
    pid = propose(live, WorkPoolLimitChange(action="set", pool=pool, limit=4), thread)
    card_ts = proposal(live, pid).message_ts
    live.interaction(block_action(cards.APPROVE, pid, "UOTHERORG", message_ts=card_ts, thread_ts=thread,
                                  team="T3", enterprise="E2"))
    note = fresh_slack.wait_for("chat.postEphemeral")[-1].args
    assert note["user"] == "UOTHERORG" and "Only people in this workspace" in note["text"]
    assert proposal(live, pid).status == "pending"
    live.interaction(block_action(cards.APPROVE, pid, "UGRIDMATE", message_ts=card_ts, thread_ts=thread,
                                  team="T2", enterprise="E1"))
    wait_until(lambda: proposal(live, pid).status == "applied", what="same-org approval applied")
    assert await pool_limit(pool) == 4

    fresh_model.script(text("grid answer"), text("guest answer"))
    say(live, "set the pool limit to 5", user="UGRIDMATE", team="T2", mention_bot=True, enterprise_id="E1")
    wait_until(lambda: len(fresh_model.requests) == 1, what="grid mention")
    say(live, "set the pool limit to 5", user="UOTHERORG", team="T3", mention_bot=True, enterprise_id="E1")
    wait_until(lambda: len(fresh_model.requests) == 2, what="guest mention")
    tools = [{t["function"]["name"] for t in r.get("tools", [])} for r in fresh_model.requests]
    assert "propose_change" in tools[0], "a colleague from a sister workspace may propose"
    assert "propose_change" not in tools[1], "someone from another org is answered read-only"


def test_break9_streaming_refused_is_remembered(start, fresh_slack, fresh_model):
    live = start("http", bot_streaming=True)
    fresh_slack.fail_next("chat.startStream", status=200, body={"ok": False, "error": "missing_scope"})
    fresh_model.script(text("one"), text("two"))
    first = say(live, "first?", mention_bot=True)
    wait_until(lambda: answers(fresh_slack, first), what="first answer")
    second = say(live, "second?", mention_bot=True)
    wait_until(lambda: answers(fresh_slack, second), what="second answer")
    live.bot.wait_idle()
    assert len(fresh_slack.calls_to("chat.startStream")) == 1, "no second attempt while refused"
    assert answers(fresh_slack, first) == ["one"] and answers(fresh_slack, second) == ["two"]


def test_break9_no_duplicate_post_after_a_5xx(start, fresh_slack, fresh_model):
    live = start("http")
    fresh_slack.fail_next("chat.postMessage", status=500, retry_after=None, after_effect=True)
    fresh_model.script(text("posted exactly once"))
    ts = say(live, "anything?", mention_bot=True)
    wait_until(lambda: answers(fresh_slack, ts), what="answer")
    live.bot.wait_idle()
    assert answers(fresh_slack, ts) == ["posted exactly once"]


# --- the runtime as serve runs it --------------------------------------------------------------------

async def test_untouched_expired_card_turns_expired_by_itself(start, fresh_slack):
    live = start("http", bot_proposal_ttl_seconds=1, bot_sweep_interval_seconds=0.3)
    pool = await make_pool(limit=1)
    thread = say(live, "raise it", user="UASKER")
    pid = propose(live, WorkPoolLimitChange(action="set", pool=pool, limit=9), thread)
    card_ts = proposal(live, pid).message_ts
    redrawn = wait_until(lambda: card_updates(fresh_slack, card_ts), what="card expired by the sweep")[-1]
    assert "Expired" in redrawn and cards.APPROVE not in redrawn
    assert proposal(live, pid).status == "expired" and await pool_limit(pool) == 1


def test_startup_says_nobody_can_approve(start, caplog):
    with caplog.at_level(logging.WARNING, logger="bot.runtime"):
        start("http", bot_approver_ids=[])
    assert any(NOBODY in r.getMessage() for r in caplog.records)


async def test_break5_history_pages_to_the_newest_of_a_very_long_thread(fresh_slack):
    """450 replies are three pages: the bot keeps the opening question and the newest ones."""
    from slack_sdk.web.async_client import AsyncWebClient

    from bot.slack.history import thread_history

    root = "1700000000.000000"
    fresh_slack.seed_thread("C1", root, [{"ts": root, "user": "U1", "text": "the question"}])
    fresh_slack.seed_thread("C1", root, [{"ts": f"{1700000001 + i}.000000", "user": "U2", "text": f"reply {i}",
                                          "thread_ts": root} for i in range(450)])
    client = AsyncWebClient(token=BOT_TOKEN, base_url=f"{fresh_slack.url}/api/")
    history = await thread_history(client, "C1", root, "1800000000.000000", "UBOT", BOT_ID, 20)
    assert [h.text for h in history][:2] == ["the question", "reply 431"]
    assert history[-1].text == "reply 449" and len(history) == 20
    assert len(fresh_slack.calls_to("conversations.replies")) == 3
