"""Generated inputs, checked end to end (issue 23, point 8).

Names come from the real Prefect server: a seeded spread of hostile candidates is created as work
pools, the list is read back, and only the names Prefect took are used (`accepted`). Text comes
from `strategies.hostile_text()`. The properties:

- every payload the bot sends to Slack is inert (no `<!…>`, no `<@…>` it did not write, no link to a
  host that is not allowed, no code span left open, no invisible character, no internal marker);
- every read of an accepted name succeeds or isolates the object;
- every suggested command parses, with `shlex.split`, to its intended argv;
- no secret, in any encoding, survives redaction.

The normal suite runs the small derandomized profile; `make faults` runs the large one.
"""

from __future__ import annotations

import base64
import json
import re
import shlex
import time
import uuid
from datetime import timedelta
from urllib.parse import quote, quote_plus, urlsplit

import httpx
import pytest
from hypothesis import given
from hypothesis import strategies as st
from prefect import get_client

from bot.prefect_ops import by_name, concurrency_map
from bot.prefect_ops.models import LimitStatus, WaitingRun
from bot.prefect_ops.runs import utcnow
from bot.redact import redact
from bot.safe_text import PREFECT_DOCS_HOSTS, code, safe_markdown, tick
from bot.slack.home import limit_line
from bot.slack.mrkdwn import to_mrkdwn
from bot.watch import detect
from bot.watch.reads import WatchSnapshot
from bot.watch.render import incident_lines
from tests.fakes.model_api import text as model_text
from tests.harness import BotHarness, mention
from tests.strategies import PROFILE, SECRETS, candidate_names, few, hostile_text

pytestmark = [pytest.mark.faults, pytest.mark.timeout(900)]

INVISIBLE = re.compile("[\u200b-\u200f\u202a-\u202e\u2060-\u2064\u2066-\u2069\ufeff]")


def inert_url(url: str) -> bool:
    if re.search(r"[<>|\s`\x00-\x1f\x7f]", url):
        return False
    parts = urlsplit(url)
    return parts.scheme in ("http", "https") and parts.hostname in PREFECT_DOCS_HOSTS and "@" not in parts.netloc


def assert_inert(shown: str, where: str, own: tuple[str, ...] = (), spans: bool = True) -> None:
    """What Slack receives acts on nothing the bot did not write itself."""
    for sequence in re.findall(r"<[^<>]*>", shown):
        if sequence in own or re.fullmatch(r"<!date\^\d+\^[^|<>]*\|[^<>]*>", sequence):
            continue
        assert inert_url(sequence[1:-1].split("|", 1)[0]), f"{where}: live {sequence!r} in {shown!r}"
    rest = shown
    for sequence in own:
        rest = rest.replace(sequence, "")
    for marker in ("<!", "<@", "<#", "\x00"):
        assert marker not in re.sub(r"<!date\^\d+\^[^|<>]*\|[^<>]*>", "", rest), f"{where}: {marker!r} in {shown!r}"
    assert not INVISIBLE.search(shown), f"{where}: invisible character in {shown!r}"
    for line in shown.split("\n") if spans else ():
        if "```" not in line:
            assert line.count("`") % 2 == 0, f"{where}: open code span in {line!r}"


@pytest.fixture(scope="module")
async def accepted(prefect_api_url):
    """The candidate names the real server took, as work pools (read back from its list)."""
    async with httpx.AsyncClient(base_url=prefect_api_url, timeout=30) as raw:  # no retries on a refusal
        for name in candidate_names():
            try:
                await raw.post("/work_pools/", json={"name": name, "type": "process", "concurrency_limit": 1})
            except httpx.HTTPError:  # the server dropped the request: the name is not one it takes
                pass
    async with get_client() as client:  # a refused name is simply not in the list read back
        listed = {pool.name for pool in await client.read_work_pools(limit=200)}
    taken = [name for name in candidate_names() if name in listed]
    yield taken
    async with get_client() as client:
        for name in taken:
            try:
                await by_name.delete_work_pool(client, name)
            except Exception:  # cleanup only
                pass


def test_prefect_takes_the_classes_the_issue_names(accepted):
    """Documents what the server accepts: the strategy is grounded in it, not in a guess."""
    joined = "".join(accepted)
    for char in ("?", "#", "..", " ", "\n", "\u200b", "`", ";", "|", "$("):
        assert char in joined, f"Prefect no longer takes {char!r}: {accepted}"
    for banned in ("/", "%", "&", "<", ">"):
        assert banned not in joined
    assert len(accepted) >= 30


async def test_every_accepted_name_is_read_or_isolated(accepted):
    async with get_client() as client:
        cmap = await concurrency_map(client, ["work_pool", "work_queue"])
        rows = {row.name: row for row in cmap.limits}
        for name in accepted:
            assert name in rows, f"{name!r} missing from the map"
            assert (await by_name.read_work_pool(client, name)).name == name
    for name in accepted:
        line = limit_line(rows[name])
        assert_inert(line, f"Home line for {name!r}")


def _late() -> list[WaitingRun]:
    return [WaitingRun(id=uuid.uuid4(), name="r", state="Late", expected_start=utcnow() - timedelta(minutes=9))]


def _commands(text: str) -> list[list[str]]:
    found = [s.replace("&lt;", "<").replace("&gt;", ">").replace("&amp;", "&")
             for s in re.findall(r"`([^`\n]+)`", text)]
    return [shlex.split(s) for s in found if s.startswith("prefect ")]


def test_suggested_commands_parse_to_their_argv(accepted):
    @PROFILE
    @given(pool=st.sampled_from(accepted), queue=st.sampled_from(accepted))
    def check(pool: str, queue: str) -> None:
        rows = [LimitStatus(kind="work_pool", name=pool, paused=True, waiting=1, waiting_runs=_late()),
                LimitStatus(kind="work_queue", name=f"{pool}/{queue}", paused=True, waiting=1, waiting_runs=_late()),
                LimitStatus(kind="work_pool", name=pool + "-zero", limit=0, waiting=1, waiting_runs=_late())]
        snap = WatchSnapshot(read_at=utcnow(), limits=rows)
        intended = {("paused_backlog", "work_pool"): ["prefect", "work-pool", "resume", pool],
                    ("paused_backlog", "work_queue"): ["prefect", "work-queue", "resume", queue, "--pool", pool]}
        for incident in detect(snap, 0.0):
            text = "\n".join(incident_lines(incident, snap.read_at))
            assert_inert(text, f"incident {incident.key!r}")
            commands = _commands(text)
            argv = intended.get((incident.kind, incident.object_kind))
            if argv is not None and "no command shown" not in text:
                assert argv in commands, (argv, text)
            for command in commands:
                assert command[0] == "prefect" and len(command) <= 8, command

    check()


@PROFILE
@given(text=hostile_text())
def test_every_renderer_output_is_inert(text):
    assert_inert(to_mrkdwn(text), "to_mrkdwn", spans=False)
    shown = safe_markdown(text, PREFECT_DOCS_HOSTS)
    assert_inert(shown, "markdown_text", spans=False)
    prose = re.sub(r"```.*?```|`[^`\n]+`", "", shown, flags=re.DOTALL)
    for url in re.findall(r"\]\(([^)\s]*)\)", prose):
        assert inert_url(url), f"markdown link to {url!r}"
    assert_inert(code(text), "code span")
    assert_inert(to_mrkdwn(f"run {tick(text)} waits"), "tick in Markdown")


@PROFILE
@given(secret=SECRETS)
def test_no_secret_survives_in_any_encoding(secret):
    encoded = [secret, quote(secret, safe=""), quote_plus(secret), json.dumps(secret),
               "Basic " + base64.b64encode(secret.encode()).decode(),
               base64.urlsafe_b64encode(secret.encode()).decode()]
    shown = redact(" | ".join(encoded), [secret])
    for form in (secret, quote(secret, safe=""), quote_plus(secret), json.dumps(secret)[1:-1],
                 base64.b64encode(secret.encode()).decode().rstrip("=")):
        assert len(form) < 6 or form not in shown, (form, shown)


@pytest.fixture(scope="module")
def bot(slack_api, model_api, prefect_api_url, tmp_path_factory):
    db = f"sqlite:///{tmp_path_factory.mktemp('props') / 'bot.db'}"
    harness = BotHarness(slack_api, model_api, db, bot_user_rate_limit_per_minute=100_000, bot_streaming=False).start()
    yield harness
    harness.stop()


def test_model_answers_of_hostile_text_reach_slack_inert(bot, slack_api, model_api):
    @few(8)
    @given(answer=hostile_text(8))
    def check(answer: str) -> None:
        model_api.reset()
        model_api.script(model_text(answer))
        ts = f"{time.time():.6f}"
        assert bot.post_event(mention("why is my run stuck?", ts=ts)).status == 200
        bot.wait_idle()
        sent = [c.args for c in slack_api.calls_to("chat.postMessage") if c.args.get("thread_ts") == ts]
        assert sent, "no answer"
        for args in sent:
            assert_inert(str(args.get("text") or ""), "answer text", spans=False)
            assert_inert(json.dumps(args.get("blocks") or []).replace("\\n", "\n"), "answer blocks", spans=False)

    check()
