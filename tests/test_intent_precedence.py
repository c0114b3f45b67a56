"""Intent precedence (issue 24): how/why questions get the recipe book, imperatives and lookups read live
state, and "why is X stuck" gets both. A question is never taken for "show me the limits" just because
it says "limit", "pool" or "queue".
"""

from __future__ import annotations

from contextlib import asynccontextmanager

from hypothesis import given
from hypothesis import strategies as st

from bot.knowledge.recipes import RecipeBook
from bot.knowledge.search import RecipeSearch
from bot.offline import OfflineEngine, classify
from bot.turns import Turn

SEARCH = RecipeSearch(RecipeBook.load())


@asynccontextmanager
async def _no_server():
    raise ConnectionError("no Prefect server in this test")
    yield  # pragma: no cover


LIVE = [
    ("show limits", "list"), ("what's full?", "list"), ("list all concurrency limits", "list"),
    ("which limits are full", "list"), ("what limits do we have?", "list"), ("give me the concurrency map", "list"),
    ("limits", "list"), ("inspect pool etl", "inspect"), ("how full is the etl pool", "inspect"),
    ("describe queue critical", "inspect"),
]
QUESTIONS = [
    "Instead of blocking, I want a flow to give up right away if another run of it already holds the lock. "
    "Can a concurrency limit fail fast?",
    "How do I let flow runs run simultaneously on my worker, and how do I cap how many run at once?",
    "show me how to limit concurrency on a pool",
    "why does the pool limit not work?",
    "what limits should I use?",
    "can I list the runs holding a work queue's slots?",
    "is there a way to give every deployment its own limit?",
]


def test_imperatives_and_lookups_read_live_state():
    for text, kind in LIVE:
        assert classify(text).kind == kind, text


def test_how_and_why_questions_go_to_the_recipe_book():
    for text in QUESTIONS:
        assert classify(text).kind == "knowledge", text


def test_a_long_sentence_that_starts_with_a_verb_is_not_a_mistyped_change():
    # An issue title, not a command: it must reach the recipe book, not the change grammar's help.
    title = ("Update deployment concurrency behavior when lease renewal fails: today execution continues "
             "when the lease for a deployment concurrency slot cannot be renewed")
    assert classify(title).kind == "knowledge"
    assert classify("set work pool x limit to lots").kind == "bad_change"
    assert classify("update deployment etl/nightly limit to lots please").kind == "bad_change"


_OPENERS = st.sampled_from(["how do I", "how can we", "why does", "why is", "why are", "How should I", "can I",
                            "does", "is there a way to", "I want to", "what is the best way to"])
_NOUNS = st.sampled_from(["limit", "limits", "pool", "work pool", "queue", "work queue", "concurrency", "slots",
                          "concurrency limit", "tag limit", "gcl"])
_WORDS = st.lists(st.sampled_from(["show", "list", "the", "my", "all", "inspect", "full", "etl", "nightly", "set",
                                   "runs", "at", "once", "busy", "what's", "give", "me"]), max_size=5)


@given(opener=_OPENERS, noun=_NOUNS, before=_WORDS, after=_WORDS)
def test_no_how_or_why_question_is_a_live_read(opener, noun, before, after):
    text = " ".join([opener, *before, noun, *after]) + "?"
    assert classify(text).kind not in ("list", "inspect"), text


async def test_the_issue_examples_get_the_right_recipe():
    engine = OfflineEngine(SEARCH, client_factory=_no_server)
    fail_fast = await engine.respond(Turn(QUESTIONS[0], "U1"))
    assert "timeout_seconds" in fail_fast.text and "TimeoutError" in fail_fast.text
    worker = await engine.respond(Turn(QUESTIONS[1], "U1"))
    assert "prefect worker start --pool" in worker.text and "--limit" in worker.text
    assert "set-concurrency-limit" in worker.text
