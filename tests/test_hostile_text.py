"""Hostile text stays text: a corpus of names and messages through every renderer that reaches Slack.

The bot is built the way `serve` builds it (BotHarness → build_runtime). The hostile names are real
Prefect tags (tag limits on the shared server) and flow run names; the hostile messages come from
the scripted model. Every assertion reads what the fake Slack API received: the Block Kit JSON of
cards, confirm dialogs, modals and the Home tab, and the text of answers.
"""

from __future__ import annotations

import json
import re
import time
import uuid
from typing import Any

import httpx
import pytest
from prefect import get_client
from prefect.settings import PREFECT_CLIENT_MAX_RETRIES, temporary_settings

from bot.prefect_ops.changes import TagLimitChange
from bot.prefect_ops.names import unsafe_name_reason
from bot.safe_text import BLANK_NAME, NAME_SHOWN_CHARS
from bot.slack import cards
from bot.slack.approval_handlers import post_proposal_cards
from tests.fakes.model_api import text
from tests.harness import BotHarness, mention
from tests.slack_transport import block_action

pytestmark = pytest.mark.timeout(600)

RUN = uuid.uuid4().hex[:5]
EVIL = "https://evil.example/approve"
CORPUS: list[str] = [
    f"x` <!channel> <{EVIL}|Open in Prefect UI> `y",
    "<!channel>", "<!here>", "<!everyone>", "<!subteam^S0123ABCD>", "<@U0ADMIN>", "<@W0ADMIN|boss>",
    "<#C0GENERAL>", "<#C0GENERAL|general>", f"<{EVIL}>", f"<{EVIL}|Prefect docs>", "<mailto:a@evil.example|mail>",
    f"[Prefect docs]({EVIL})", "[click](https://docs.prefect.io.evil.example/x)", "```<!channel>```",
    "`", "``", "a`b`c", "tag`*bold*`_it_", "&lt;!channel&gt;", "&amp;lt;!here&amp;gt;", "a & b > c < d",
    "evil\u202egnp.exe", "zero\u200bwidth\u200dname", "\ufeffbom-name", "rtl\u2067isolate\u2069",
    "   ", "\u200b", "x" * 10_000, "<" * 50 + "!channel" + ">" * 50, "line1\n<!channel>\nline3",
    "<https://evil.example/a|<!channel>>", "*<!here>*", "_<@U0ADMIN>_",
]
TAGS = [f"{name}-{RUN}" if name.strip() and len(name) < 5000 else name + RUN * (not name.strip())
        for name in CORPUS]
REFUSED_BY_PREFECT: list[str] = []
MARKERS = ("<!", "<@U0ADMIN", "<@W0ADMIN", "<#C0GENERAL", "<https://evil", "<mailto:", "<http://evil")
INVISIBLE = re.compile("[\u200b-\u200f\u202a-\u202e\u2066-\u2069\ufeff]")


def assert_inert(shown: str, where: str, own_mentions: tuple[str, ...] = (), longest: int = 500,
                 spans: bool = True) -> None:
    """No ping, mention, channel link or link except those the bot wrote itself; no invisible characters;
    no code span left open on any line; no 10,000-character name."""
    for sequence in re.findall(r"<[^<>]*>", shown):
        own = sequence in own_mentions or re.fullmatch(r"<!date\^\d+\^[^|<>]*\|[^<>]*>", sequence) is not None
        assert own or sequence.startswith("<https://docs.prefect.io/"), \
            f"{where}: live control sequence {sequence[:80]!r}"
        shown = shown.replace(sequence, "") if own else shown
    for marker in MARKERS:
        assert marker not in shown, f"{where}: {marker!r} reached Slack raw"
    assert not INVISIBLE.search(shown), f"{where}: invisible characters reached Slack"
    for line in shown.split("\n") if spans else ():  # the model's own Markdown may use backticks freely
        if "```" not in line:
            assert line.count("`") % 2 == 0, f"{where}: a code span is left open: {line[:120]!r}"
    assert "x" * (longest + 1) not in shown, f"{where}: more than {longest} characters of a 10,000-character text"


def texts_of(blocks: Any) -> list[str]:
    """Every `text` string in a Block Kit payload (sections, contexts, confirm dialogs, labels)."""
    found: list[str] = []
    if isinstance(blocks, dict):
        for key, value in blocks.items():
            if key == "text" and isinstance(value, str):
                found.append(value)
            else:
                found += texts_of(value)
    elif isinstance(blocks, list):
        for item in blocks:
            found += texts_of(item)
    return found


@pytest.fixture(scope="module")
def bot(slack_api, model_api, prefect_api_url, tmp_path_factory):
    db = f"sqlite:///{tmp_path_factory.mktemp('hostile') / 'bot.db'}"
    harness = BotHarness(slack_api, model_api, db, bot_user_rate_limit_per_minute=1000,
                         bot_streaming=False).start()
    yield harness
    harness.stop()


@pytest.fixture(scope="module")
async def tag_limits(prefect_api_url):
    """The corpus as real tag limits on the Prefect server (tags are free text in Prefect)."""
    created = []
    # Prefect answers 500 to about half of these names; its client would retry each with backoff (~2 s
    # apiece, half a minute in all). A 500 is the refusal this setup wants to know about, so the client
    # does not retry; only a dropped connection (the server closes it after its 500) is tried again.
    with temporary_settings(updates={PREFECT_CLIENT_MAX_RETRIES: 0}):
        async with get_client() as client:
            for tag in TAGS:
                for _ in range(3):
                    try:
                        await client.create_concurrency_limit(tag=tag, concurrency_limit=1)
                        created.append(tag)
                    except httpx.TransportError:
                        continue
                    except Exception as exc:  # Prefect's own limits: the name stays in the card tests
                        REFUSED_BY_PREFECT.append(f"{tag[:30]!r}: {type(exc).__name__}")
                    break
                else:
                    REFUSED_BY_PREFECT.append(f"{tag[:30]!r}: the connection dropped three times")
    assert len(created) >= 10, REFUSED_BY_PREFECT  # Prefect refuses tags with < > & / %: those stay card-only
    yield created
    async with get_client() as client:
        for tag in created:
            try:
                await client.delete_concurrency_limit_by_tag(tag)
            except Exception:  # cleanup only
                pass


def test_corpus_is_big_and_covers_the_attacks():
    assert len(CORPUS) >= 30
    joined = "".join(CORPUS)
    for needed in ("<!channel>", "`", "|", "\u202e", "\u200b", "x" * 10_000, "](https://evil"):
        assert needed in joined
    assert any(not name.strip() for name in CORPUS)


def proposable(tag: str, index: int) -> str:
    """`tag` when a proposal may name it; else (a name that could cut a URL path: `<`, `&`, `/`, `%`,
    control characters) the refusal is checked and a plain tag stands in, so the hostile text still
    reaches the card through the reason and the reject note."""
    if unsafe_name_reason(tag, "tag") is None:
        return tag
    with pytest.raises(ValueError, match="refused before anything was sent to Prefect"):
        TagLimitChange(action="set", tag=tag, limit=2)
    return f"stand-in-{index}-{RUN}"


def click(bot: BotHarness, action: str, proposal_id: str, card_ts: str, user: str = "UAPPROVER") -> None:
    assert bot.post_interaction(block_action(action, proposal_id, user, message_ts=card_ts)).status == 200


def submit_reject(bot: BotHarness, proposal_id: str, note: str) -> None:
    payload = {
        "type": "view_submission", "token": "legacy", "api_app_id": "A1", "trigger_id": "t",
        "user": {"id": "UAPPROVER", "username": "u", "team_id": "T1"}, "team": {"id": "T1", "domain": "t"},
        "view": {"id": "V1", "type": "modal", "callback_id": cards.REJECT_VIEW, "team_id": "T1",
                 "private_metadata": json.dumps({"id": proposal_id}),
                 "state": {"values": {cards.REASON_BLOCK: {cards.REASON_ACTION: {"type": "plain_text_input",
                                                                                   "value": note}}}}},
    }
    assert bot.post_interaction(payload).status == 200


def test_cards_confirm_dialogs_modals_and_decided_cards(bot, fresh_slack, tag_limits):
    service = bot.runtime.approvals
    rendered, not_proposable = 0, []
    for index, name in enumerate(TAGS):  # every name, including any Prefect refused to store
        thread = f"{time.time():.6f}"
        change = TagLimitChange(action="set", tag=proposable(name, index), limit=2 + index)
        try:
            proposal = bot.call(lambda c=change, r=f"because {CORPUS[index]}", t=thread: service.create_proposal(
                c, "UASKER", r, "C1", t))
        except Exception as exc:  # e.g. a newline in a tag: Prefect's client cannot even build the URL
            not_proposable.append(f"{name[:20]!r}: {type(exc).__name__}")
            continue
        rendered += 1
        bot.call(lambda p=proposal, t=thread: post_proposal_cards(service, bot.runtime.app.client, "C1", t, [p.id]))
        card_ts = bot.call(lambda p=proposal: service.get(p.id)).message_ts
        where = f"corpus[{index}]"
        posted = fresh_slack.calls_to("chat.postMessage")[-1].args
        blocks = json.dumps(posted["blocks"])
        shown = texts_of(posted["blocks"])
        confirm = [b for b in posted["blocks"] if b["type"] == "actions"][0]["elements"][0]["confirm"]
        assert texts_of(confirm), where
        for piece in [*shown, posted["text"]]:
            assert_inert(piece, f"{where} card", ("<@UASKER>",))
        assert "\\u202e" not in blocks.lower()
        head = posted["blocks"][0]["text"]["text"]  # the diff: the name in a code span, shortened
        assert_inert(head, f"{where} card head", longest=NAME_SHOWN_CHARS)

        for action in (cards.EDIT, cards.REJECT):
            before = len(fresh_slack.calls_to("views.open"))
            click(bot, action, proposal.id, card_ts)
            view = fresh_slack.wait_for("views.open", before + 1)[-1].args["view"]
            for piece in texts_of(view):
                assert_inert(piece, f"{where} {action} modal")

        before = len(fresh_slack.calls_to("chat.update"))
        submit_reject(bot, proposal.id, f"no: {CORPUS[index]}")
        updated = fresh_slack.wait_for("chat.update", before + 1)[-1].args
        for piece in [*texts_of(updated["blocks"]), updated["text"]]:
            assert_inert(piece, f"{where} rejected card", ("<@UASKER>", "<@UAPPROVER>"))
    assert rendered >= 30 and len(not_proposable) <= 2, not_proposable


def test_model_answers_escape_control_sequences_and_drop_foreign_links(bot, fresh_slack, fresh_model):
    allowed = "https://docs.prefect.io/v3/concepts/global-concurrency-limits"
    for index, message in enumerate(CORPUS):
        fresh_model.script(text(f"Tag {message} is full. See [Prefect docs]({EVIL}/login) and [the guide]({allowed})."))
        ts = f"{time.time():.6f}"
        assert bot.post_event(mention("why is my tag stuck?", ts=ts)).status == 200
        bot.wait_idle()
        answers = fresh_slack.bot_texts("C1", ts)
        assert answers, f"corpus[{index}]: no answer"
        shown = "\n".join(answers)
        assert_inert(shown.replace(f"<{allowed}|the guide>", ""), f"corpus[{index}] model answer", spans=False,
                     longest=20_000)
        assert f"<{allowed}|the guide>" in shown  # an allowed host stays a link
        assert f"{EVIL}/login" in shown  # a foreign link is shown as its plain URL, not hidden behind a label


def test_home_tab_limits_and_proposals(bot, fresh_slack, tag_limits):
    service = bot.runtime.approvals
    for index, name in enumerate(TAGS[:12]):  # pending proposals with hostile names, in a public channel
        change = TagLimitChange(action="set", tag=proposable(name, 100 + index), limit=50 + index)
        bot.call(lambda c=change: service.create_proposal(c, "UASKER", "r", "C1", "1.0"))
    # Names Prefect takes never hold `<`, `>` or `&`, so they alone cannot show a missing escape. A requester
    # is free text when it comes from the terminal (`ask --user …`), and the Home tab shows it to everyone.
    for index, who in enumerate(CORPUS[:8]):
        change = TagLimitChange(action="set", tag=f"req-{index}-{RUN}", limit=3)
        bot.call(lambda c=change, w=who: service.create_proposal(c, f"terminal:{w}", "r", "C1", "1.0"))
    before = len(fresh_slack.calls_to("views.publish"))
    event = {"type": "app_home_opened", "user": "UASKER", "channel": "D1", "tab": "home",
             "event_ts": f"{time.time():.6f}"}
    assert bot.post_event(event).status == 200
    view = fresh_slack.wait_for("views.publish", before + 1, timeout=60)[-1].args["view"]
    shown = texts_of(view)
    assert len(shown) > 3
    for piece in shown:
        assert_inert(piece, "home tab", ("<@UASKER>", "<#C1>"), longest=NAME_SHOWN_CHARS)
    assert any(f"{RUN}" in piece for piece in shown)  # the hostile tag limits are listed, as text
    assert any(BLANK_NAME in piece for piece in shown) or all(t.strip() for t in tag_limits)


@pytest.fixture(scope="module")
async def hostile_runs_pool(prefect_api_url):
    """A full pool whose holder and waiting runs have hostile names: run names are free text in Prefect
    (unlike limit names, which refuse `<`, `>` and `&`), and the list and inspect answers show them."""
    from datetime import timedelta

    from prefect.client.schemas.actions import WorkPoolCreate
    from prefect.states import Late, Running

    from bot.prefect_ops.runs import utcnow

    pool = f"hostile-runs-{RUN}"
    async with get_client() as client:
        await client.create_work_pool(WorkPoolCreate(name=pool, type="process", concurrency_limit=1))
        flow_id = await client.create_flow_from_name(f"hostile-runs-flow-{RUN}")
        dep_id = await client.create_deployment(flow_id, f"hostile-runs-dep-{RUN}", work_pool_name=pool)
        holder = await client.create_flow_run_from_deployment(dep_id, name=f"<!channel> & <@U0ADMIN> {RUN}")
        await client.set_flow_run_state(holder.id, Running(), force=True)
        waiter = await client.create_flow_run_from_deployment(dep_id, name=f"<{EVIL}|x> &lt;!here&gt; {RUN}")
        await client.set_flow_run_state(waiter.id, Late(scheduled_time=utcnow() - timedelta(minutes=5)), force=True)
    return pool


def test_slash_list_and_inspect_offline_answers(bot, fresh_slack, tag_limits, hostile_runs_pool):
    posted = bot.post_command("/concurrency", "list")
    assert posted.status == 200
    listed = fresh_slack.wait_for("response", 1, timeout=60)[-1].args["text"]
    assert RUN in listed
    assert_inert(listed, "/concurrency list", longest=NAME_SHOWN_CHARS)
    bot.post_command("/concurrency", f"inspect {hostile_runs_pool}")
    inspected = fresh_slack.wait_for("response", 2, timeout=60)[-1].args["text"]
    assert "U0ADMIN" in inspected and "!channel" in inspected, inspected[:1500]  # the hostile run names are shown
    assert_inert(inspected, "/concurrency inspect of a pool with hostile run names")
    for count, tag in enumerate(tag_limits[:6], start=3):
        bot.post_command("/concurrency", f"inspect {tag}")
        answer = fresh_slack.wait_for("response", count, timeout=60)[-1].args["text"]
        assert_inert(answer, f"/concurrency inspect corpus[{count - 3}]")


async def test_diagnose_of_a_hostile_run_name(bot, fresh_slack, prefect_api_url):
    from prefect.client.schemas.actions import WorkPoolCreate

    name = f"r<!channel>`x`<{EVIL}|ui>{RUN}"
    async with get_client() as client:
        pool = f"hostile-pool-{RUN}"
        await client.create_work_pool(WorkPoolCreate(name=pool, type="process", concurrency_limit=1))
        flow_id = await client.create_flow_from_name(f"hostile-flow-{RUN}")
        dep_id = await client.create_deployment(flow_id, f"hostile-dep-{RUN}", work_pool_name=pool)
        await client.create_flow_run_from_deployment(dep_id, name=name, tags=[f"x`<!here>`y-{RUN}"])
    bot.post_command("/concurrency", f"diagnose {name}")
    answer = fresh_slack.wait_for("response", 1, timeout=90)[-1].args["text"]
    assert RUN in answer
    assert_inert(answer, "/concurrency diagnose")
