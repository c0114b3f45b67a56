"""BM25 routing over the recipe book: the offline answer and the model's first call both use it.

Two indexes: one document per recipe (title, keywords, body) and one per question a recipe lists
in its front matter (how people actually ask). A recipe's score is its document score plus its
best question score, so a paraphrase of a listed question wins even when the body is long and
about several things. Measured on tests/data/routing_paraphrases.yaml by bench/routing_accuracy.py.
The indexes are built once per `RecipeSearch` (milliseconds); a query costs well under a millisecond.
"""

from __future__ import annotations

import re
import threading
from dataclasses import dataclass

import bm25s
from rapidfuzz import fuzz, process

from bot.knowledge.recipes import Recipe, RecipeBook

__all__ = ["RecipeHit", "RecipeSearch", "tokenize"]

_STOPWORDS = frozenset(
    "a an and are as at be by can do does for from how i if in is it its me my of on or our so that the "
    "their them then there these this to was we what when where which who why will with you your prefect "
    "want need please".split()
    # The tail of a contraction ("didn't" -> "didn", "t") says nothing about the topic.
    + "t s d ll re ve m".split()
)
_TITLE_WEIGHT = 3
_KEYWORD_WEIGHT = 3
QUESTION_WEIGHT = 0.85  # weight of the best matching listed question next to the document score
PHRASE_WEIGHT = 0.5  # per word of a recipe's multi-word keyword found verbatim (in order) in the question
TYPO_MIN_LENGTH = 5  # shorter words are too easily "corrected" into another word
TYPO_CUTOFF = 85.0  # rapidfuzz ratio above which an unknown word is read as a known one ("deploymnet")

# Words people use that the book says differently: a query word also counts as these book words.
SYNONYMS: dict[str, tuple[str, ...]] = {
    "twice": ("overlap",), "simultaneou": ("concurrent",), "simultaneously": ("concurrent",),
    "parallel": ("concurrent",), "instance": ("run",), "overlapp": ("overlap",), "pod": ("replica",),
    "lb": ("replica",), "balancer": ("replica",), "cap": ("limit",), "throttle": ("rate",),
    "dropped": ("cancel",), "drop": ("cancel",), "bail": ("skip",),
    "hang": ("stuck",), "hanging": ("stuck",), "mutex": ("lock",),
}


def _stem(word: str) -> str:
    for suffix in ("ing", "ies", "es", "s", "ed"):
        if len(word) > len(suffix) + 3 and word.endswith(suffix):
            return word[: -len(suffix)] + ("y" if suffix == "ies" else "")
    return word


def tokenize(text: str) -> list[str]:
    """Lowercase words, light suffix stemming; hyphenated terms also kept joined (work-pool)."""
    tokens: list[str] = []
    for raw in re.findall(r"[a-z0-9_]+(?:[-.][a-z0-9_]+)*", text.lower()):
        parts = re.split(r"[-._]", raw)
        if len(parts) > 1:
            tokens.append(raw.replace(".", "-").replace("_", "-"))
        tokens.extend(_stem(p) for p in parts if p and p not in _STOPWORDS)
    return tokens


def _contains_run(tokens: list[str], phrase: list[str]) -> bool:
    """`phrase` appears in `tokens` as consecutive words."""
    n = len(phrase)
    return any(tokens[i:i + n] == phrase for i in range(len(tokens) - n + 1))


@dataclass(frozen=True)
class RecipeHit:
    recipe: Recipe
    score: float


class RecipeSearch:
    """Ranks recipes for a question; thread-safe (the index is read-only after construction)."""

    def __init__(self, book: RecipeBook) -> None:
        self.book = book
        self._recipes = list(book)
        self._lock = threading.Lock()
        self._best: dict[int, float] = {}
        self._index = bm25s.BM25()
        corpus = [self._document(r) for r in self._recipes]
        if corpus:
            self._index.index(corpus, show_progress=False)
        self._vocabulary = sorted({t for doc in corpus for t in doc})
        self._question_owner = [i for i, r in enumerate(self._recipes) for _ in r.questions]
        questions = [tokenize(q) or ["_"] for r in self._recipes for q in r.questions]
        self._vocabulary = sorted(set(self._vocabulary).union(t for q in questions for t in q))
        self._known = frozenset(self._vocabulary)
        # Multi-word keywords ("global concurrency limit", "task server") name a topic more surely than
        # their words do one by one, so a question that says one gets a bonus for that recipe.
        self._phrases = [[tokens for k in r.keywords if len(tokens := tokenize(k)) >= 2] for r in self._recipes]
        self._questions = bm25s.BM25() if questions else None
        if self._questions is not None:
            self._questions.index(questions, show_progress=False)

    @staticmethod
    def _document(recipe: Recipe) -> list[str]:
        keywords = " ".join(recipe.keywords)
        return tokenize(recipe.title) * _TITLE_WEIGHT + tokenize(keywords) * _KEYWORD_WEIGHT + tokenize(recipe.body)

    def _spelled(self, token: str) -> str:
        """A word the book knows for a misspelt one ("deploymnet" -> "deployment"); else unchanged."""
        if token in self._known or len(token) < TYPO_MIN_LENGTH or not self._vocabulary:
            return token
        best = process.extractOne(token, self._vocabulary, scorer=fuzz.ratio, score_cutoff=TYPO_CUTOFF)
        return best[0] if best else token

    def query_tokens(self, query: str) -> list[str]:
        """The words the router scores for `query`: misspellings read as book words, synonyms added."""
        tokens = [self._spelled(t) for t in tokenize(query)]
        return tokens + [extra for t in tokens for extra in SYNONYMS.get(t, ()) if extra != t]

    def search(self, query: str, k: int = 3) -> list[RecipeHit]:
        """The best `k` recipes for `query`, best first; recipes that share no term are left out."""
        tokens = self.query_tokens(query)
        if not tokens or not self._recipes:
            return []
        k = max(1, min(k, len(self._recipes)))
        with self._lock:  # bm25s keeps scratch state while scoring
            scores = list(self._index.get_scores(tokens))  # the whole book at once: ~20x cheaper than retrieve()
            if self._questions is not None:
                for owner, score in zip(self._question_owner, self._questions.get_scores(tokens), strict=True):
                    best = self._best.get(owner, 0.0)
                    self._best[owner] = max(best, float(score))
                for owner, best in self._best.items():
                    scores[owner] += QUESTION_WEIGHT * best
                self._best.clear()
        for i, phrases in enumerate(self._phrases):
            best_phrase = max((len(p) for p in phrases if _contains_run(tokens, p)), default=0)
            scores[i] += PHRASE_WEIGHT * min(best_phrase, 2)
        ranked = sorted(range(len(scores)), key=lambda i: -scores[i])[:k]
        return [RecipeHit(self._recipes[i], float(scores[i])) for i in ranked if scores[i] > 0]
