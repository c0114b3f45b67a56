"""Change requests in everyday words, read without a model.

The strict grammar (`grammar.py`) wants "set work pool etl limit to 5". People write "cap the etl
pool at 5", "limit nightly-etl to one run at a time", "only one run of nightly at a time, skip
overlaps", "raise the db tag limit to 10", "pause the default queue". This module reads those into
a `NaturalChange`: the same fields as a `ChangeRequest`, except that the kind may be unknown (a bare
name; the server decides) and every part of the sentence it could not read is kept in `unread`, so
the engine can name it back instead of dropping it.
"""

from __future__ import annotations

import re
from typing import Literal

from pydantic import BaseModel

__all__ = ["NaturalChange", "NaturalKind", "parse_natural_change"]

NaturalKind = Literal["work_pool_limit", "work_queue_limit", "deployment_limit", "global_limit", "tag_limit",
                      "work_queue_pause"]

_NUMBERS = {"one": 1, "a single": 1, "single": 1, "two": 2, "three": 3, "four": 4, "five": 5, "six": 6,
            "seven": 7, "eight": 8, "nine": 9, "ten": 10, "twelve": 12, "twenty": 20}
NUM = r"(?P<limit>\d+|" + "|".join(sorted(_NUMBERS, key=len, reverse=True)) + r")"
NAME = r"[`'\"]?(?P<name>[\w][\w./:@+-]*)[`'\"]?"
_KIND_WORD = (r"(?P<kind>work[ _-]?pool|pool|work[ _-]?queue|queue|deployment|deploy|tag|gcl|"
              r"global(?:[ _-]concurrency)?[ _-]limit|rate[ _-]limit)")
_LIMIT_NOUN = r"(?:\s+(?:concurrency\s+)?(?:limit|concurrency|cap|slots?))?"
_SET_VERB = (r"(?P<verb>cap|limit|restrict|throttle|set|change|update|make|raise|lower|increase|decrease|bump|"
             r"reduce|drop|up)")
_UNIT = r"(?:\s+(?:concurrent\s+|parallel\s+|simultaneous\s+)?(?:flow\s+)?(?:runs?|jobs?|tasks?|slots?)" \
        r"(?:\s+(?:at\s+(?:a|one|the\s+same)\s+time|at\s+once|in\s+parallel|concurrently))?)?"
_ONE_AT_A_TIME = r"(?:at\s+(?:a|one|the\s+same)\s+time|at\s+once|in\s+parallel|concurrently|simultaneously)"

# Each pattern must match from the start of the sentence; what follows the match is read as modifiers.
_PATTERNS: list[tuple[str, str]] = [
    # cap the etl pool at 5 / raise the db tag limit to 10 / limit the default queue to 2 runs
    ("kind_after", rf"{_SET_VERB}\s+(?:the\s+)?(?:limit\s+(?:of|on|for)\s+(?:the\s+)?)?{NAME}\s+{_KIND_WORD}"
                   rf"{_LIMIT_NOUN}\s+(?:at|to|=)\s+(?:max(?:imum)?\s+|most\s+)?{NUM}{_UNIT}"),
    # cap pool etl at 5 / limit deployment etl/nightly to one run at a time
    ("kind_before", rf"{_SET_VERB}\s+(?:the\s+)?{_KIND_WORD}\s+{NAME}{_LIMIT_NOUN}\s+(?:at|to|=)\s+"
                    rf"(?:max(?:imum)?\s+|most\s+)?{NUM}{_UNIT}"),
    # limit nightly-etl to one run at a time (no kind word: the server decides)
    ("bare", rf"{_SET_VERB}\s+(?:the\s+)?{NAME}{_LIMIT_NOUN}\s+(?:at|to|=)\s+(?:max(?:imum)?\s+|most\s+)?{NUM}"
             rf"{_UNIT}"),
    # only one run of nightly-etl at a time / at most 2 runs of X at once / one X at a time
    ("only", rf"(?:only|at\s+most|max(?:imum)?|no\s+more\s+than)\s+{NUM}\s+(?:concurrent\s+|parallel\s+)?"
             rf"(?:flow\s+)?runs?\s+(?:of|for)\s+(?:the\s+)?(?:(?:deployment|flow)\s+)?{NAME}"
             rf"(?:\s+(?:deployment|flow))?(?:\s+{_ONE_AT_A_TIME})?"),
    ("only", rf"(?:only\s+)?{NUM}\s+{NAME}\s+(?:run\s+)?{_ONE_AT_A_TIME}"),
    # pause the default queue / resume queue default / unpause the critical work queue
    ("pause", rf"(?P<verb>pause|resume|unpause)\s+(?:the\s+)?{NAME}\s+(?P<kind>work[ _-]?queue|queue)"),
    ("pause", rf"(?P<verb>pause|resume|unpause)\s+(?:the\s+)?(?P<kind>work[ _-]?queue|queue)\s+{NAME}"),
]
_KINDS = [(r"work[ _-]?pool|pool", "work_pool_limit"), (r"work[ _-]?queue|queue", "work_queue_limit"),
          (r"deployment|deploy", "deployment_limit"), (r"tag", "tag_limit"),
          (r"gcl|global(?:[ _-]concurrency)?[ _-]limit|rate[ _-]limit", "global_limit")]

# Modifiers we understand, removed from what follows the core; anything left over is named back.
_CANCEL_NEW = re.compile(r"\b(?:skip(?:ping)?|cancel(?:l?ing)?|drop(?:ping)?|discard(?:ing)?|ignore)\s+"
                         r"(?:the\s+)?(?:overlaps?|overlapping(?:\s+runs?)?|extras?|extra\s+runs?|new(?:\s+ones?|"
                         r"\s+runs?)?|the\s+rest|others?|duplicates?|them)\b|\bcancel[ _-]?new\b", re.I)
_ENQUEUE = re.compile(r"\b(?:queue|enqueue|wait|line)\s*(?:them|(?:the\s+)?(?:others?|extras?|extra\s+runs?|rest|"
                      r"new\s+ones?)|up|in\s+line)?\b|\blet\s+them\s+wait\b|\bmake\s+(?:the\s+)?others?\s+wait\b",
                      re.I)
_GRACE = re.compile(r"\b(?:with\s+)?(?:a\s+)?grace(?:[ _-]period)?(?:\s+of)?\s*(?:=\s*)?(?P<grace>\d+)\s*"
                    r"(?:s|sec|secs|seconds)?\b", re.I)
_FILLER = re.compile(r"\b(?:please|pls|plz|thanks|thank\s+you|thx|ty|and|then|so|with|the|for|me|us|ok|okay|"
                     r"instead|runs?|pool|queue|deployment|limit|concurrency|at\s+(?:a|one)\s+time|at\s+once|"
                     r"in\s+parallel|concurrently)\b|[,;.!?:()\-—–]+", re.I)


class NaturalChange(BaseModel):
    """A change read from everyday words; `kind` None means the name alone must tell (deployment or pool)."""

    kind: NaturalKind | None
    action: Literal["set", "pause", "resume"] = "set"
    name: str
    limit: int | None = None
    collision_strategy: Literal["ENQUEUE", "CANCEL_NEW"] | None = None
    grace_period_seconds: int | None = None
    verb: str = "set"
    unread: list[str] = []  # parts of the sentence not understood; never dropped silently

    def describe(self) -> str:
        what = {None: "", "work_pool_limit": "work pool ", "work_queue_limit": "work queue ",
                "deployment_limit": "deployment ", "tag_limit": "tag limit ", "global_limit": "global limit ",
                "work_queue_pause": "work queue "}[self.kind]
        if self.action in ("pause", "resume"):
            return f"{self.action} {what}`{self.name}`"
        extra = f" ({self.collision_strategy})" if self.collision_strategy else ""
        return f"limit {what}`{self.name}` to {self.limit}{extra}"


def _clean(text: str) -> str:
    text = re.sub(r"<@[A-Z0-9]+>", " ", text)
    text = re.sub(r"\s+", " ", text).strip()
    text = re.sub(r"^(?:(?:hey|hi|ok|okay)\s+)?(?:bot[,:]?\s+)?(?:please\s+|pls\s+|can\s+you\s+|could\s+you\s+|"
                  r"would\s+you\s+|i\s+want\s+to\s+|i'?d\s+like\s+to\s+|let'?s\s+|we\s+need\s+to\s+)*", "", text,
                  flags=re.I)
    return text.strip()


def _number(text: str) -> int:
    return int(text) if text.isdigit() else _NUMBERS[text.lower()]


def _kind(word: str | None) -> NaturalKind | None:
    if not word:
        return None
    for pattern, kind in _KINDS:
        if re.fullmatch(pattern, word, re.I):
            return kind  # type: ignore[return-value]
    return None


def _modifiers(rest: str, change: NaturalChange) -> NaturalChange:
    """Read the words after the core: strategy, grace period; keep what is left as `unread`."""
    updates: dict = {}
    if _CANCEL_NEW.search(rest):
        updates["collision_strategy"] = "CANCEL_NEW"
        rest = _CANCEL_NEW.sub(" ", rest)
    elif _ENQUEUE.search(rest):
        updates["collision_strategy"] = "ENQUEUE"
        rest = _ENQUEUE.sub(" ", rest)
    grace = _GRACE.search(rest)
    if grace:
        updates["grace_period_seconds"] = int(grace.group("grace"))
        rest = _GRACE.sub(" ", rest)
    left = re.sub(r"\s+", " ", _FILLER.sub(" ", rest)).strip()
    if left:
        updates["unread"] = [re.sub(r"\s+", " ", rest.strip(" ,;.!?")).strip()]
    return change.model_copy(update=updates)


def parse_natural_change(text: str) -> NaturalChange | None:
    """The change an everyday sentence asks for, or None when it does not read as one."""
    body = _clean(text)
    for shape, pattern in _PATTERNS:
        match = re.match(pattern, body, re.IGNORECASE)
        if match is None:
            continue
        groups = match.groupdict()
        name = groups["name"].strip()
        if name.lower() in ("it", "this", "that", "them", "my", "our", "limit", "concurrency", "runs", "run"):
            continue
        verb = (groups.get("verb") or "set").lower()
        if shape == "pause":
            action = "resume" if verb in ("resume", "unpause") else "pause"
            change = NaturalChange(kind="work_queue_pause", action=action, name=name, verb=verb)
        else:
            kind = _kind(groups.get("kind"))
            if kind is None and shape == "only":
                kind = "deployment_limit"  # "only one run of X at a time" is about runs of one deployment
            change = NaturalChange(kind=kind, name=name, limit=_number(groups["limit"]), verb=verb)
        change = _modifiers(body[match.end():], change)
        if shape == "only" and change.collision_strategy is None:
            return None  # "only one run of X at a time" alone is a topic; with "skip/queue them" it is a request
        return change
    return None
