"""A small grammar for explicit change requests, so limits can be changed without a model.

Examples it reads (case does not matter, a trailing "please" or full stop is fine):

    set work pool etl limit to 5            clear pool etl limit
    set queue q in pool etl limit to 2      clear queue q limit          (pool looked up later)
    limit deployment flow/dep to 1 cancel new      set deployment flow/dep limit to 2 grace 120
    clear deployment flow/dep limit         set gcl db-writes limit to 3      create gcl api with limit 5
    enable gcl api | disable gcl api | delete gcl api | reset gcl api
    set tag limit db to 3                   reset tag db     delete tag limit db

The result is a `ChangeRequest`: what was asked, with names exactly as typed. Turning names into
real objects (and a queue into its pool) needs the server, so that happens in `requests.py`.
"""

from __future__ import annotations

import re
from typing import Literal

from pydantic import BaseModel

__all__ = ["ChangeRequest", "RequestKind", "parse_change_request", "looks_like_change_request"]

RequestKind = Literal["work_pool_limit", "work_queue_limit", "deployment_limit", "global_limit", "tag_limit"]

_KIND_WORDS: list[tuple[str, RequestKind]] = [
    (r"work[ _-]?pool", "work_pool_limit"), (r"pool", "work_pool_limit"),
    (r"work[ _-]?queue", "work_queue_limit"), (r"queue", "work_queue_limit"),
    (r"deployment", "deployment_limit"), (r"deploy", "deployment_limit"),
    (r"global[ _-]concurrency[ _-]limit", "global_limit"), (r"global[ _-]limit", "global_limit"),
    (r"gcl", "global_limit"), (r"rate[ _-]limit", "global_limit"),
    (r"tag[ _-]concurrency[ _-]limit", "tag_limit"), (r"tag[ _-]limit", "tag_limit"), (r"tag", "tag_limit"),
]
KIND = "(?P<kind>" + "|".join(word for word, _ in _KIND_WORDS) + ")"
NAME = r"(?:[`'\"](?P<qname>[^`'\"]+)[`'\"]|(?P<name>[\w./:@+-]+))"
NUM = r"(?P<limit>\d+)"
LIMIT_WORD = r"(?:(?:concurrency|the)\s+)*(?:limit|concurrency)"
_THE = r"(?:the\s+)?"

_POOL_CLAUSE = re.compile(
    r"\s+(?:in|of|on|from|for)\s+(?:the\s+)?(?:work[ _-]?)?pool\s+"
    r"(?:[`'\"](?P<qpool>[^`'\"]+)[`'\"]|(?P<pool>[\w./:@+-]+))",
    re.IGNORECASE)
_STRATEGY = re.compile(r"[\s,;]+(?:with\s+|and\s+|strategy\s+|collision[ _-]strategy\s+)*"
                       r"(?P<strategy>cancel[ _-]?new|enqueue)\b", re.IGNORECASE)
_GRACE = re.compile(r"[\s,;]+(?:with\s+|and\s+)*(?:a\s+)?grace(?:[ _-]period)?(?:\s+of)?(?:\s+seconds)?\s*(?:=\s*)?"
                    r"(?P<grace>\d+)\s*(?:s|sec|secs|seconds)?\b", re.IGNORECASE)
_DECAY = re.compile(r"[\s,;]+(?:with\s+|and\s+)*(?:slot[ _-])?decay(?:[ _-]per[ _-]second)?(?:\s+of)?\s*(?:=\s*)?"
                    r"(?P<decay>\d+(?:\.\d+)?)\s*(?:/s|per\s+second)?", re.IGNORECASE)

_SET_PATTERNS = [
    # set the concurrency limit of work pool etl to 5
    rf"(?:set|change|update|make)\s+{_THE}{LIMIT_WORD}\s+(?:of|on|for)\s+{_THE}{KIND}\s+{NAME}\s+(?:to|=|at)\s+{NUM}",
    # set work pool etl limit to 5 / set pool etl to 5 / set gcl x limit 3
    rf"(?:set|change|update|make)\s+{_THE}{KIND}\s+{NAME}(?:'s)?(?:\s+{LIMIT_WORD})?\s+(?:to\s+|=\s*|at\s+)?{NUM}",
    # limit deployment flow/dep to 1
    rf"limit\s+{_THE}{KIND}\s+{NAME}\s+(?:to|at)\s+{NUM}",
    # create gcl api with limit 5 / add tag limit db 3
    rf"(?P<create>create|add|new)\s+(?:a\s+)?{KIND}\s+{NAME}\s+(?:with\s+)?(?:(?:a\s+)?limit\s+)?(?:of\s+|=\s*)?{NUM}",
]
_CLEAR_PATTERNS = [
    rf"(?:clear|remove|unset|drop)\s+{_THE}{LIMIT_WORD}\s+(?:of|on|for|from)\s+{_THE}{KIND}\s+{NAME}",
    rf"(?:clear|remove|unset|drop)\s+{_THE}{KIND}\s+{NAME}(?:'s)?\s+{LIMIT_WORD}",
]
_ACTION_PATTERN = rf"(?P<action>enable|disable|delete|reset)\s+{_THE}{KIND}\s+{NAME}(?:\s+(?:slots|limit))?"


def _kind_of(word: str) -> RequestKind:
    for pattern, kind in _KIND_WORDS:
        if re.fullmatch(pattern, word, re.IGNORECASE):
            return kind
    raise ValueError(word)  # unreachable: KIND only matches listed words


class ChangeRequest(BaseModel):
    """An explicit change request, names as typed; `pool` is None when a queue's pool was not given."""

    kind: RequestKind
    action: Literal["set", "clear", "create", "update", "enable", "disable", "delete", "reset"]
    name: str
    pool: str | None = None
    limit: int | None = None
    collision_strategy: Literal["ENQUEUE", "CANCEL_NEW"] | None = None
    grace_period_seconds: int | None = None
    slot_decay_per_second: float | None = None

    def describe(self) -> str:
        """The request read back in words, for "did you mean" messages and tests."""
        where = f" in pool {self.pool}" if self.pool else ""
        value = f" to {self.limit}" if self.limit is not None else ""
        return f"{self.action} {self.kind.replace('_', ' ')} {self.name}{where}{value}"


def _clean(text: str) -> str:
    text = re.sub(r"<@[A-Z0-9]+>", " ", text)  # a Slack mention in front
    text = re.sub(r"\s+", " ", text).strip()
    text = re.sub(r"^(?:please|pls|can you|could you|would you|bot|hey bot)[,:]?\s+", "", text, flags=re.I)
    text = re.sub(r"[\s,]*(?:please|pls|thanks|thank you)?[.!?\s]*$", "", text, flags=re.I)
    return text.strip()


def _take(pattern: re.Pattern[str], text: str) -> tuple[re.Match[str] | None, str]:
    match = pattern.search(text)
    if match is None:
        return None, text
    return match, (text[: match.start()] + text[match.end():]).strip()


def parse_change_request(text: str) -> ChangeRequest | None:
    """The change `text` asks for in the grammar, or None when it is not a change request."""
    body = _clean(text)
    strategy, body = _take(_STRATEGY, body)
    grace, body = _take(_GRACE, body)
    decay, body = _take(_DECAY, body)
    pool_match = None
    if re.search(r"\bqueue\b", body, re.IGNORECASE):  # "in pool p" belongs to a queue only
        pool_match, body = _take(_POOL_CLAUSE, body)
    body = _clean(body)
    extras = {
        "collision_strategy": (strategy.group("strategy").upper().replace(" ", "_").replace("-", "_")
                               .replace("CANCELNEW", "CANCEL_NEW") if strategy else None),
        "grace_period_seconds": int(grace.group("grace")) if grace else None,
        "slot_decay_per_second": float(decay.group("decay")) if decay else None,
    }
    pool = (pool_match.group("qpool") or pool_match.group("pool")) if pool_match else None
    request = _match_set(body, extras) or _match_clear(body) or _match_action(body)
    if request is None:
        return None
    if request.kind == "work_queue_limit":
        if pool is None and "/" in request.name:  # "pool/queue", the form listings show
            pool, queue = request.name.split("/", 1)
            request = request.model_copy(update={"name": queue})
        request = request.model_copy(update={"pool": pool})
    return request


def _name(match: re.Match[str]) -> str:
    return (match.group("qname") or match.group("name")).strip()


def _match_set(body: str, extras: dict) -> ChangeRequest | None:
    for pattern in _SET_PATTERNS:
        match = re.fullmatch(pattern, body, re.IGNORECASE)
        if match is None:
            continue
        kind = _kind_of(match.group("kind"))
        action = "set"
        if kind == "global_limit":
            action = "create" if match.groupdict().get("create") else "update"
        fields = {k: v for k, v in extras.items() if v is not None}
        if kind != "deployment_limit":
            fields.pop("collision_strategy", None)
            fields.pop("grace_period_seconds", None)
        if kind != "global_limit":
            fields.pop("slot_decay_per_second", None)
        return ChangeRequest(kind=kind, action=action, name=_name(match), limit=int(match.group("limit")), **fields)
    return None


def _match_clear(body: str) -> ChangeRequest | None:
    for pattern in _CLEAR_PATTERNS:
        match = re.fullmatch(pattern, body, re.IGNORECASE)
        if match is None:
            continue
        kind = _kind_of(match.group("kind"))
        action = {"global_limit": "delete", "tag_limit": "delete"}.get(kind, "clear")
        return ChangeRequest(kind=kind, action=action, name=_name(match))
    return None


def _match_action(body: str) -> ChangeRequest | None:
    match = re.fullmatch(_ACTION_PATTERN, body, re.IGNORECASE)
    if match is None:
        return None
    kind = _kind_of(match.group("kind"))
    action = match.group("action").lower()
    if kind == "global_limit" or (kind == "tag_limit" and action in ("delete", "reset")):
        return ChangeRequest(kind=kind, action=action, name=_name(match))
    return None


_HINT = re.compile(r"^(?:please\s+)?(?:set|change|update|make|limit|clear|remove|unset|drop|create|add|enable|"
                   r"disable|delete|reset)\b", re.IGNORECASE)


def looks_like_change_request(text: str) -> bool:
    """Starts like a command ("set …", "clear …") even if the grammar did not parse it."""
    return bool(_HINT.match(_clean(text)))
