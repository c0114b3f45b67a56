"""What an offline question asks for: a change, a diagnosis, the list of limits, one limit, or knowledge.

Without a model we route on wording. The patterns are deliberately plain; anything they do not
claim falls through to the recipe book, which is the safe default.
"""

from __future__ import annotations

import re
from typing import Literal

from pydantic import BaseModel

from bot.offline.grammar import ChangeRequest, looks_like_change_request, parse_change_request
from bot.offline.natural import NaturalChange, parse_natural_change

__all__ = ["Intent", "classify"]

IntentKind = Literal["change", "natural_change", "bad_change", "diagnose", "list", "inspect", "knowledge"]

_SUBJECT = r"(?:(?:run|flow run|deployment|flow)\s+)?[`'\"]?(?P<subject>[\w./:@+-]+?)[`'\"]?"
_DIAGNOSE = [
    rf"why\s+(?:is|are|does|do|did|has|hasn't|isn't|won't|doesn't)\s+(?:my\s+|the\s+)?{_SUBJECT}\s+"
    r"(?:still\s+)?(?:stuck|waiting|pending|late|blocked|not\s+(?:running|starting|started|run)|"
    r"queued|scheduled|hanging|held|never|start|run|running)\b",
    rf"what(?:'s|\s+is)\s+(?:blocking|holding(?:\s+up)?)\s+(?:my\s+|the\s+)?{_SUBJECT}(?:\s|$|\?)",
    rf"(?:diagnose|debug|explain)\s+(?:my\s+|the\s+)?{_SUBJECT}(?:\s|$|\?)",
    rf"^{_SUBJECT}\s+(?:is\s+)?(?:stuck|waiting|late)\b",
]
# Live reads answer imperatives ("show limits", "list busy slots") and lookups ("what's full?",
# "which limits are full?"); a how/why question never is one, whatever nouns it uses.
_LIST = [
    r"^(?:please\s+)?(?:show|list|print|display|give\s+me|get)\b(?:\s+(?:me|us|all|the|my|our|every|current|"
    r"of|busy|full))*(?:\s+[\w-]+){0,2}?\s+(?:limits|concurrency(?:\s+(?:map|limits))?|slots|occupancy)\b",
    r"^(?:limits|list|ls|concurrency map|show limits|list limits)$",
    r"^what(?:'s|\s+is|\s+are)\s+(?:full|busy|blocked)\b",
    r"^(?:what|which)\s+limits\s+(?:are\s+there|are\s+(?:set|full|busy)|do\s+(?:i|we|you)\s+(?:have|see)|"
    r"exist|have\s+(?:i|we))\b",
    r"^(?:what|which)\s+(?:pools|queues|deployments|tags)\s+(?:are\s+)?(?:full|busy)\b",
    r"^(?:the\s+)?concurrency\s+map$",
]
# A how/why question (or a wish: "I want…", "is there a way…") is answered from the recipe book.
_HOW_OR_WHY = re.compile(
    r"^(?:how|why|can|could|should|would|will|does|do|did|is|are|was|were|when|where|what\s+(?:is|are|does|do)\s+"
    r"(?:the\s+)?(?:best|difference|default|right|point|meaning)|what\s+does|is\s+there|any\s+way|"
    r"i\s+(?:want|need|would\s+like|wonder|am\s+trying))\b|\b(?:how\s+(?:do|can|should|to|would|does)|why)\b",
    re.IGNORECASE)
_LOOKUP = re.compile(r"^(?:how\s+(?:full|busy)\s+(?:is|are))\b", re.IGNORECASE)
_KIND = (r"(?:work[ _-]?pool|pool|work[ _-]?queue|queue|deployment|gcl|global(?:\s+concurrency)?\s+limit|"
         r"tag(?:\s+limit)?|limit)")
_INSPECT = [
    rf"^(?:inspect|show|describe|status\s+of|how\s+full\s+is)\s+(?:the\s+)?(?P<kind>{_KIND})\s+"
    r"[`'\"]?(?P<subject>[\w./:@+ -]+?)[`'\"]?$",
    r"^(?:inspect|describe)\s+[`'\"]?(?P<subject>[\w./:@+-]+?)[`'\"]?$",
    rf"^(?:how\s+full|how\s+busy)\s+is\s+(?:the\s+)?[`'\"]?(?P<subject>[\w./:@+-]+?)[`'\"]?(?:\s+(?P<kind>{_KIND}))?$",
]
_STOP_SUBJECTS = {"my", "the", "it", "this", "that", "run", "runs", "flow", "flows", "deployment", "everything",
                  "stuff", "things", "work", "job", "jobs"}


class Intent(BaseModel):
    kind: IntentKind
    subject: str | None = None  # run / deployment / limit name as typed
    limit_kind: str | None = None  # "pool", "queue", … as typed, for inspect
    change: ChangeRequest | None = None
    natural: NaturalChange | None = None  # a change in everyday words ("cap the etl pool at 5")


def _tidy(text: str) -> str:
    text = re.sub(r"<@[A-Z0-9]+>", " ", text)
    return re.sub(r"\s+", " ", text).strip().rstrip("?.!").strip()


NEAR_MISS_MAX_WORDS = 12  # a mistyped command is short; a longer sentence is a question or an issue title


def _near_miss(tidy: str) -> bool:
    """A short command verb followed soon by a kind word ("set work pool x limit to lots"): a mistyped change.

    A long sentence that merely starts with a verb ("Update deployment concurrency behavior when lease
    renewal fails: today ...") describes a problem, so it goes to the recipe book instead.
    """
    words = tidy.split()
    head = " ".join(words[:4])
    return (looks_like_change_request(tidy) and not re.search(r"\bhow\b", tidy, re.I)
            and len(words) <= NEAR_MISS_MAX_WORDS and ":" not in tidy
            and re.search(r"\b(gcl|pool|queue|deployment|tag)\b", head, re.I) is not None)


def classify(text: str) -> Intent:
    """Route one question; the first matching family wins (change, diagnose, list, inspect).

    Precedence: a change request, then "why is X stuck" (live diagnosis plus the recipe), then any
    other how/why question (the recipe book, never a live read because it says "limit" or "pool"),
    then imperatives and lookups that read live state ("inspect pool etl", "what's full?").
    """
    change = parse_change_request(text)
    if change is not None:
        return Intent(kind="change", change=change)
    natural = parse_natural_change(text)
    if natural is not None:
        return Intent(kind="natural_change", natural=natural)
    tidy = _tidy(text)
    if _near_miss(tidy):
        return Intent(kind="bad_change")
    for pattern in _DIAGNOSE:
        match = re.search(pattern, tidy, re.IGNORECASE)
        if match and match.group("subject").lower() not in _STOP_SUBJECTS:
            return Intent(kind="diagnose", subject=match.group("subject"))
    if _HOW_OR_WHY.search(tidy) and not _LOOKUP.match(tidy):
        return Intent(kind="knowledge")
    for pattern in _INSPECT:
        match = re.search(pattern, tidy, re.IGNORECASE)
        if match and match.group("subject").strip().lower() not in _STOP_SUBJECTS | {"limits", "all"}:
            return Intent(kind="inspect", subject=match.group("subject").strip(),
                          limit_kind=(match.groupdict().get("kind") or None))
    for pattern in _LIST:
        if re.search(pattern, tidy, re.IGNORECASE):
            return Intent(kind="list")
    return Intent(kind="knowledge")
