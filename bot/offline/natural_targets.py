"""Which real object an everyday change request means, or a precise answer about the name.

A write must name its object exactly: "etl" for the pool `etl-prod` is a guess, so instead of
proposing on a guess we answer "no work pool named `etl`; pools are: `etl-prod`, `default` — did
you mean `etl-prod`?". Two exact matches (a pool and a deployment both called `etl`) get "which
one?". Only an exact (or case/separator-insensitive) match becomes a change request.
"""

from __future__ import annotations

import re
from typing import Any

from bot.offline.grammar import ChangeRequest
from bot.offline.natural import NaturalChange
from bot.prefect_ops.changes import Change, WorkQueuePauseChange
from bot.prefect_ops.resolve import Named, known_names, resolve_among

__all__ = ["Target", "resolve_natural"]

_LIMIT_KIND = {"work_pool_limit": "work_pool", "work_queue_limit": "work_queue", "deployment_limit": "deployment",
               "global_limit": "global", "tag_limit": "tag", "work_queue_pause": "work_queue"}
_NOUN = {"work_pool": ("work pool", "pools"), "work_queue": ("work queue", "queues"),
         "deployment": ("deployment", "deployments"), "global": ("global limit", "global limits"),
         "tag": ("tag limit", "tag limits")}
_CREATES = {"cap", "limit", "restrict", "throttle", "set", "make"}  # verbs that may create a tag limit
SHOWN = 10
UNREAD_SHOWN = 80

Target = ChangeRequest | Change | str  # a request for the strict path, a ready change, or an answer


def _listing(kind: str, names: list[Named]) -> str:
    scope = sorted(n.name for n in names if n.kind == kind)
    noun, plural = _NOUN[kind]
    if not scope:
        return f"there are no {plural} on this server"
    shown = ", ".join(f"`{n}`" for n in scope[:SHOWN]) + (", …" if len(scope) > SHOWN else "")
    return f"{plural} are: {shown}"


def _not_found(typed: str, kinds: list[str], names: list[Named], guesses: list[Named]) -> str:
    noun = " or ".join(_NOUN[k][0] for k in kinds)
    text = f"There is no {noun} named `{typed}`; " + "; ".join(_listing(k, names) for k in kinds)
    if guesses:
        text += " — did you mean " + " or ".join(f"`{g.name}`" for g in guesses[:3]) + "?"
    return text + ". Nothing was proposed."


def _which(typed: str, matches: list[Named]) -> str:
    options = "\n".join(f"• {_NOUN[m.kind][0]} `{m.name}`" for m in matches)
    return (f"`{typed}` matches more than one object. Which one did you mean?\n{options}\n"
            "Say it again with the full name.")


def _quoted(text: str) -> str:
    """The user's own words, echoed safely: no Slack ping, link markup or formatting survives (and the
    caller shows them as code, which Slack never turns into a link)."""
    text = re.sub(r"[<>&`*_~|\[\]()]", " ", text)
    text = re.sub(r"\s+", " ", text).strip()
    return text[:UNREAD_SHOWN] + ("…" if len(text) > UNREAD_SHOWN else "")


def _unread(change: NaturalChange) -> str | None:
    if change.unread:
        parts = ", ".join(f"`{_quoted(u)}`" for u in change.unread)  # code: Slack links nothing inside it
        return (f"I read this as: {change.describe()}, but I don't understand {parts}, so I proposed nothing. "
                "Say it again without that part, or put it in other words.")
    if (change.collision_strategy or change.grace_period_seconds) and change.kind not in (None, "deployment_limit"):
        return (f"I read this as: {change.describe()}, but skipping or queueing extra runs and grace periods "
                "are deployment settings, not ones of a work pool, queue or tag, so I proposed nothing.")
    return None


def _matches(typed: str, kinds: list[str], names: list[Named]) -> tuple[list[Named], list[Named]]:
    """Exact (case/separator-insensitive) matches, and near guesses when there are none."""
    exact: list[Named] = []
    guesses: list[Named] = []
    for kind in kinds:
        resolution = resolve_among(typed, [n for n in names if n.kind == kind], kind)  # type: ignore[arg-type]
        found = [c for c in resolution.candidates if c.stage in ("exact", "case_insensitive")]
        exact += [Named(kind=c.kind, name=c.name) for c in found]
        if not found:
            guesses += [Named(kind=c.kind, name=c.name) for c in resolution.candidates]
    return exact, guesses


async def resolve_natural(client: Any, change: NaturalChange) -> Target:
    """A change request on the exact object the person named, or the answer to give instead."""
    problem = _unread(change)
    if problem:
        return problem
    names = await known_names(client)
    if change.kind is None:
        kinds = ["deployment"] if change.collision_strategy or change.grace_period_seconds else [
            "deployment", "work_pool", "work_queue"]
    else:
        kinds = [_LIMIT_KIND[change.kind]]
    exact, guesses = _matches(change.name, kinds, names)
    if change.kind == "tag_limit" and not exact and not guesses and change.verb in _CREATES:
        exact = [Named(kind="tag", name=change.name)]  # setting a tag limit creates it
    if not exact:
        return _not_found(change.name, kinds, names, guesses)
    if len(exact) > 1:
        return _which(change.name, exact)
    target = exact[0]
    if change.kind == "work_queue_pause":
        pool, queue = target.name.split("/", 1)
        return WorkQueuePauseChange(action=change.action, pool=pool, queue=queue)  # type: ignore[arg-type]
    if target.kind == "deployment" and change.limit == 0:
        return ("A deployment limit of 0 would block every run of it; to stop its runs, pause its schedule "
                "instead. Nothing was proposed.")
    kind = {v: k for k, v in _LIMIT_KIND.items() if k != "work_queue_pause"}[target.kind]
    fields: dict[str, Any] = {"kind": kind, "action": "update" if kind == "global_limit" else "set",
                              "name": target.name, "limit": change.limit}
    if kind == "work_queue_limit":
        fields["pool"], fields["name"] = target.name.split("/", 1)
    if kind == "deployment_limit":
        fields["collision_strategy"] = change.collision_strategy
        fields["grace_period_seconds"] = change.grace_period_seconds
    return ChangeRequest(**fields)
