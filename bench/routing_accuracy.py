"""Top-1 routing accuracy of the recipe router on the paraphrase set (issue 17), and offline answer length.

    .venv/bin/python bench/routing_accuracy.py [--misses]

Prints the accuracy of the BM25 router the bot uses, and the median and largest length of the
offline answer to each question (no Prefect server: no live lines). If `wordllama` is installed it
also prints the accuracy of a semantic matcher (nearest listed question by embedding), so the
two can be compared on the same set; the bot does not depend on it.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
from contextlib import asynccontextmanager
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bot.knowledge.recipes import RecipeBook  # noqa: E402
from bot.knowledge.search import RecipeSearch  # noqa: E402

PARAPHRASES = ROOT / "tests" / "data" / "routing_paraphrases.yaml"


def load_set() -> list[tuple[str, str]]:
    data = yaml.safe_load(PARAPHRASES.read_text(encoding="utf-8"))
    return [(question, slug) for slug, questions in data.items() for question in questions]


def bm25_route(book: RecipeBook):
    search = RecipeSearch(book)

    def route(question: str) -> str | None:
        hits = search.search(question, k=1)
        return hits[0].recipe.slug if hits else None

    return route


def wordllama_route(book: RecipeBook):
    """Nearest listed question (or title) by WordLlama embedding; weights ship inside the wheel."""
    import numpy as np
    import wordllama
    from wordllama import WordLlama

    # The weights and tokenizer ship inside the wheel; point the loader at them and never download.
    model = WordLlama.load(cache_dir=Path(wordllama.__file__).parent, disable_download=True)
    texts, owners = [], []
    for recipe in book:
        for text in [recipe.title, *recipe.questions]:
            texts.append(text)
            owners.append(recipe.slug)
    matrix = np.asarray(model.embed(texts, norm=True))

    def route(question: str) -> str | None:
        vector = np.asarray(model.embed([question], norm=True))[0]
        return owners[int(np.argmax(matrix @ vector))]

    return route


def accuracy(route, cases: list[tuple[str, str]], show: bool) -> float:
    right = 0
    for question, slug in cases:
        got = route(question)
        right += got == slug
        if got != slug and show:
            print(f"  MISS {slug:<26} got {got}: {question}")
    return right / len(cases)


@asynccontextmanager
async def _no_server():
    raise ConnectionError("no Prefect server: answers without live lines")
    yield  # pragma: no cover


async def answer_lengths(book: RecipeBook, cases: list[tuple[str, str]]) -> list[int]:
    from bot.offline import OfflineEngine

    engine = OfflineEngine(RecipeSearch(book), client_factory=_no_server)
    return [len(await engine.knowledge(question)) for question, _ in cases]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--misses", action="store_true", help="list the questions routed wrong")
    args = parser.parse_args()
    book, cases = RecipeBook.load(), load_set()
    print(f"paraphrase set: {len(cases)} questions, {len(book)} recipes")
    print(f"bm25 (the bot's router): top-1 {accuracy(bm25_route(book), cases, args.misses):.1%}")
    lengths = asyncio.run(answer_lengths(book, cases))
    print(f"offline answers: median {statistics.median(lengths):.0f} chars, max {max(lengths)} "
          f"(full recipes for people: median {statistics.median(len(r.for_people()) for r in book):.0f})")
    try:
        route = wordllama_route(book)
    except ImportError:
        print("wordllama: not installed, skipped")
    else:
        print(f"wordllama (nearest question): top-1 {accuracy(route, cases, args.misses):.1%}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
