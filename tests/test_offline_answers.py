"""Answers, not files (issue 17): an offline answer is the recipe's short answer with real names,
one line offering the full recipe, and never a self-test snippet. "more" shows the full recipe in
the terminal chat, a Slack thread and `/concurrency`.
"""

from __future__ import annotations

import asyncio
import os
import statistics
import subprocess
import sys
import time
from contextlib import asynccontextmanager
from pathlib import Path

import pytest
import yaml

from bot.knowledge.recipes import RecipeBook
from bot.knowledge.search import RecipeSearch
from bot.offline import OfflineEngine
from bot.turns import HistoryMessage, Turn
from tests.harness import BotHarness, mention, message, wait_until

REPO = Path(__file__).resolve().parents[1]
BOOK = RecipeBook.load()
SEARCH = RecipeSearch(BOOK)
SHORT_MAX = 1200
SELF_TEST_MARKS = ("```python runnable", "asyncio.run(main())", "uuid.uuid4().hex[:8]")


@asynccontextmanager
async def _no_server():
    raise ConnectionError("no Prefect server in this test")
    yield  # pragma: no cover


def _engine() -> OfflineEngine:
    return OfflineEngine(SEARCH, client_factory=_no_server)


def test_every_recipe_has_a_short_answer_and_people_never_see_self_tests():
    for recipe in BOOK:
        assert "## Short answer" in recipe.body, recipe.slug
        assert 200 <= len(recipe.short_answer) <= SHORT_MAX, (recipe.slug, len(recipe.short_answer))
        for text in (recipe.short_answer, recipe.for_people(), recipe.as_context()):
            assert not any(mark in text for mark in SELF_TEST_MARKS), recipe.slug
    assert any(recipe.runnable_snippets() for recipe in BOOK)  # the self-tests still exist for the tests


def test_every_recipe_slug_survives_redaction_in_the_offer_line():
    # "task-runner-and-fanout" contains "sk-runner-and-fanout", which an unanchored OpenAI-key pattern
    # took for a key: the offer became "`more ta[redacted]`" and `more` could not find the recipe.
    from bot.redact import redact

    for recipe in BOOK:
        line = f"_Say “more” for the full recipe (`more {recipe.slug}`)._"
        assert redact(line) == line, recipe.slug


async def test_offline_answers_are_short_answers_with_one_offer_line():
    data = yaml.safe_load((REPO / "tests" / "data" / "routing_paraphrases.yaml").read_text(encoding="utf-8"))
    lengths = []
    engine = _engine()
    for questions in data.values():
        for question in questions:
            text = await engine.knowledge(question)
            assert not any(mark in text for mark in SELF_TEST_MARKS), question
            assert text.count("Say “more” for the full recipe") == 1, question
            lengths.append(len(text))
    assert max(lengths) <= SHORT_MAX + 400  # short answer + title + the offer line
    print(f"offline answers: median {statistics.median(lengths):.0f} chars, max {max(lengths)}")


async def test_more_shows_the_recipe_the_last_answer_offered():
    engine = _engine()
    first = await engine.respond(Turn("how do I keep nightly from overlapping with itself?", "U1"))
    assert "`more deployment-concurrency`" in first.text
    history = [HistoryMessage("user", "how do I keep nightly from overlapping with itself?"),
               HistoryMessage("assistant", first.text)]
    more = await engine.respond(Turn("more", "U1", history=history))
    assert more.text.startswith("**One run at a time per deployment")
    assert "Grace period." in more.text and "## Short answer" not in more.text
    assert not any(mark in more.text for mark in SELF_TEST_MARKS)
    named = await engine.respond(Turn("<@UBOT> more rate-limiting please", "U1"))
    assert "slot decay" in named.text and "Proof on your server" not in named.text
    lost = await engine.respond(Turn("more", "U1"))
    assert "More of which recipe?" in lost.text and "`rate-limiting`" in lost.text


def _env(tmp_path: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OPENAI_", "SLACK_"))}
    env.update(BOT_DATA_DIR=str(tmp_path / "data"), PYTHONPATH=str(REPO), COLUMNS="120",
               PREFECT_HOME=str(tmp_path / "client-home"))
    return env


@pytest.mark.timeout(240)
async def test_more_in_the_terminal_chat(prefect_api_url, tmp_path):
    (tmp_path / "data").mkdir()
    script = "how do I rate limit calls to the github api?\nmore\n/quit\n"
    result = await asyncio.to_thread(
        subprocess.run, [sys.executable, "-m", "bot.cli", "chat"], input=script, env=_env(tmp_path),
        cwd=tmp_path / "data", capture_output=True, text=True, timeout=200)
    assert result.returncode == 0, result.stderr[-2000:]
    out = result.stdout
    first, _, second = out.partition("you› more")
    assert "Rate limiting with slot decay" in first and "Say “more” for the full recipe" in first
    assert "Do not use concurrency() on a decaying limit" not in first  # only in the full recipe
    assert "Do not use concurrency() on a decaying limit" in second
    assert "Proof on your server" not in out and "runnable" not in out


@pytest.mark.timeout(240)
def test_more_in_a_slack_thread_and_in_the_slash_command(fresh_slack, prefect_api_url, tmp_path):
    bot = BotHarness(fresh_slack, None, f"sqlite:///{tmp_path / 'bot.db'}", bot_streaming=False).start()
    try:
        ts = f"{int(time.time())}.000100"
        assert bot.post_event(mention("how do i cap a work pool at 5 runs?", ts=ts)).status == 200

        def thread() -> str:
            return " ".join(str(c.args.get("text", "")) for c in fresh_slack.calls_to("chat.postMessage")
                            if c.args.get("thread_ts") == ts)

        wait_until(lambda: "more work-pools-and-queues" in thread(), timeout=90, what="the short answer")
        assert "keeps its slot until cancelled" in thread()
        assert "read_work_pool_concurrency_status" not in thread()  # only in the full recipe
        reply = message("more", ts=f"{int(time.time())}.000200", thread_ts=ts)
        assert bot.post_event(reply).status == 200
        wait_until(lambda: "read_work_pool_concurrency_status" in thread(), timeout=90, what="the full recipe")

        posted = bot.post_command("/concurrency", "more tag-limits")
        assert posted.status == 200
        response = fresh_slack.wait_for("response", count=1, timeout=60)[0].args
        assert "replaces the tags" in response["text"] and "Proof" not in response["text"]
    finally:
        bot.stop()
