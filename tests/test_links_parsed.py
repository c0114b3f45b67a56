"""Links are parsed, not pattern-matched: the probes of issue 23 through the real renderers and the bot.

`[docs](https://docs.prefect.io/><!channel>)` has an allowed host, so a host check alone kept the
link and put the URL back raw: Slack received `<https://docs.prefect.io/><!channel>|docs>`, a live
`@channel`. The same text as a flow run name went out inside a code span, and a nested angle link
leaked the internal placeholder. Each is checked where Slack receives it (posted text and blocks,
and the streamed `markdown_text`).
"""

from __future__ import annotations

import json
import re
import time
import uuid
from urllib.parse import urlsplit

import pytest
from prefect import get_client
from prefect.client.schemas.actions import WorkPoolCreate

from bot.safe_text import PREFECT_DOCS_HOSTS, safe_markdown
from bot.slack.mrkdwn import to_mrkdwn
from tests.fakes.model_api import text
from tests.harness import BotHarness, mention

pytestmark = pytest.mark.timeout(300)

PROBE = "[docs](https://docs.prefect.io/><!channel>)"
NESTED = "<https://docs.prefect.io|<https://docs.prefect.io/x|<!here>>>"
PROBES = [PROBE, NESTED, "[a](<https://docs.prefect.io|b>)", "[x](https://docs.prefect.io/a|b>c)",
          "<https://docs.prefect.io/a\u0007b|x>", "[x](https://docs.prefect.io/`<!here>`)",
          "[x](https://docs.prefect.io/\u00a0<@U0ADMIN>)", "[x](https://docs.prefect.io/(<!channel>))"]
RUN = uuid.uuid4().hex[:6]


def inert_url(url: str) -> bool:
    """The test's own rule (independent of the code under test): an http(s) URL to a docs host with
    nothing in it that Slack or Markdown would read as the end of the link or a control sequence."""
    if re.search(r"[<>|\s`\x00-\x1f\x7f&]", url):
        return False
    parts = urlsplit(url)
    return parts.scheme in ("http", "https") and parts.hostname in PREFECT_DOCS_HOSTS and "@" not in parts.netloc


def live_sequences(shown: str) -> list[str]:
    """Every `<…>` Slack would act on that is not a link to an allowed host."""
    return [seq for seq in re.findall(r"<[^<>]*>", shown) if not inert_url(seq[1:-1].split("|", 1)[0])]


def assert_inert(shown: str, where: str, markdown: bool = False) -> None:
    assert not live_sequences(shown), f"{where}: {live_sequences(shown)} in {shown!r}"
    prose = re.sub(r"```.*?```|`[^`\n]+`", "", shown, flags=re.DOTALL)
    for url in re.findall(r"\]\(([^)\s]*)\)", prose) if markdown else ():  # as Slack reads markdown_text
        assert inert_url(url), f"{where}: link to {url!r}"
    for marker in ("<!", "<@", "\x00"):
        assert marker not in shown, f"{where}: {marker!r} in {shown!r}"


@pytest.mark.parametrize("probe", PROBES)
def test_renderers_keep_probe_links_inert(probe):
    for where, shown in (("mrkdwn", to_mrkdwn(f"see {probe} now")),
                         ("code span", to_mrkdwn(f"run `{probe}` is late")),
                         ("fence", to_mrkdwn(f"```\n{probe}\n```"))):
        assert_inert(shown, f"{where} of {probe!r}")
    for shown in (safe_markdown(f"see {probe} now", PREFECT_DOCS_HOSTS),
                  safe_markdown(f"run `{probe}` is late", PREFECT_DOCS_HOSTS)):
        assert_inert(shown, f"markdown_text of {probe!r}", markdown=True)


def test_an_allowed_link_survives_percent_encoded():
    shown = to_mrkdwn(PROBE)
    assert shown == "<https://docs.prefect.io/%3E%3C!channel%3E|docs>"
    assert to_mrkdwn("[g](https://docs.prefect.io/v3/a?x=1#y)") == "<https://docs.prefect.io/v3/a?x=1#y|g>"


def test_a_link_inside_a_code_span_is_not_a_link():
    shown = to_mrkdwn("run `[docs](https://docs.prefect.io/x)` waits")
    assert "<https://" not in shown and "`[docs](https://docs.prefect.io/x)`" in shown


@pytest.fixture(scope="module", params=[False, True], ids=["posted", "streamed"])
def bot(request, slack_api, model_api, prefect_api_url, tmp_path_factory):
    db = f"sqlite:///{tmp_path_factory.mktemp('links') / 'bot.db'}"
    harness = BotHarness(slack_api, model_api, db, bot_user_rate_limit_per_minute=1000,
                         bot_streaming=request.param).start()
    yield harness
    harness.stop()


def payloads(fresh_slack) -> list[tuple[str, bool]]:
    """Everything the bot sent that Slack renders: text, blocks, streamed markdown_text."""
    shown = []
    for call in fresh_slack.calls:
        if call.method in ("chat.postMessage", "chat.update", "chat.startStream", "chat.appendStream",
                           "chat.stopStream", "chat.postEphemeral", "response"):
            for key in ("text", "markdown_text", "blocks", "chunks"):
                value = call.args.get(key)
                if value:
                    shown.append((value if isinstance(value, str) else json.dumps(value), key != "text"))
    return shown


def test_model_answer_with_the_probe_reaches_slack_inert(bot, fresh_slack, fresh_model):
    fresh_model.script(text(f"Tag is full. See {PROBE} and {NESTED}. Also `{PROBE}`."))
    ts = f"{time.time():.6f}"
    assert bot.post_event(mention("why is my tag stuck?", ts=ts)).status == 200
    bot.wait_idle()
    assert fresh_slack.bot_texts("C1", ts), "no answer"
    sent = payloads(fresh_slack)
    assert sent
    for piece, markdown in sent:
        assert_inert(piece.replace("\\u0000", "\x00"), "answer payload", markdown=markdown)


async def test_run_named_like_the_probe_in_a_diagnosis(bot, fresh_slack):
    name = f"{PROBE}{RUN}{int(bot.settings().bot_streaming)}"
    async with get_client() as client:
        pool = f"links-pool-{RUN}-{int(bot.settings().bot_streaming)}"
        await client.create_work_pool(WorkPoolCreate(name=pool, type="process", concurrency_limit=1))
        flow_id = await client.create_flow_from_name(f"links-flow-{RUN}")
        dep_id = await client.create_deployment(flow_id, f"links-dep-{pool}", work_pool_name=pool)
        await client.create_flow_run_from_deployment(dep_id, name=name)
    bot.post_command("/concurrency", f"diagnose {name}")
    answer = fresh_slack.wait_for("response", 1, timeout=90)[-1].args["text"]
    assert RUN in answer
    assert_inert(answer, "/concurrency diagnose")
