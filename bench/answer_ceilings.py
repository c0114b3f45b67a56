"""How far can offline answers go on real questions (issue 24)? Ceilings, per half and batch.

    .venv/bin/python bench/answer_ceilings.py

An offline answer is built around one recipe's short answer, chosen by the BM25 router. This prints,
for the questions of each half (tests/data/real_questions), the share whose essentials a text
carries when that text is:

- `routed`: the short answer of the router's first recipe (about what `ask` shows, before the
  units the composer adds and without live lines);
- `best of top k`: the best short answer among the router's first k recipes, i.e. a perfect
  choice among k candidates;
- `any recipe`: the best short answer in the whole book, i.e. a perfect router;
- `whole book`: every recipe's full text at once, whatever its length.

The gap between `routed` and `any recipe` is what routing could still win; the gap between
`whole book` and 100 % is what no routing or composition can win without new recipe text. Only
aggregates are printed, so the held-out half's misses stay unread. No Prefect server is needed.
"""

from __future__ import annotations

import statistics
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bot.knowledge.recipes import RecipeBook  # noqa: E402
from bot.knowledge.search import RecipeSearch  # noqa: E402
from tests.real_questions import HALVES, RealQuestion, load, missing_essentials  # noqa: E402

TOP_K = (1, 2, 3, 5)


def carries(question: RealQuestion, text: str) -> bool:
    return not missing_essentials(question.essentials, text)


def ceilings(questions: list[RealQuestion], book: RecipeBook, search: RecipeSearch) -> dict[str, float]:
    """The share of `questions` each kind of text answers with every essential (see the module doc)."""
    shorts = [recipe.short_answer for recipe in book]
    whole = "\n".join(f"{recipe.short_answer}\n{recipe.for_people()}" for recipe in book)
    counts = dict.fromkeys(["routed", *(f"best of top {k}" for k in TOP_K[1:]), "any recipe", "whole book"], 0)
    for question in questions:
        ranked = [hit.recipe.short_answer for hit in search.search(question.question, k=max(TOP_K))]
        for k in TOP_K:
            counts["routed" if k == 1 else f"best of top {k}"] += any(carries(question, s) for s in ranked[:k])
        counts["any recipe"] += any(carries(question, s) for s in shorts)
        counts["whole book"] += carries(question, whole)
    return {name: count / len(questions) for name, count in counts.items()} if questions else {}


def main() -> int:
    book = RecipeBook.load()
    search = RecipeSearch(book)
    rows = []
    for half in HALVES:
        questions = load(half)
        groups = [(half, questions)] + [(f"  batch {b}", [q for q in questions if q.batch == b])
                                        for b in sorted({q.batch for q in questions})]
        for name, group in groups:
            rows.append((name, len(group), ceilings(group, book, search)))
    columns = list(rows[0][2])
    print(f"{'questions':<12} {'n':>4}  " + "  ".join(f"{c:>14}" for c in columns))
    for name, n, shares in rows:
        print(f"{name:<12} {n:>4}  " + "  ".join(f"{shares[c]:>14.1%}" for c in columns))
    lengths = [len(recipe.short_answer) for recipe in book]
    print(f"\nshort answers: {len(lengths)} recipes, median {statistics.median(lengths):.0f} characters, "
          f"largest {max(lengths)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
