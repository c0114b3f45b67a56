"""Commands, flags and APIs newer than some Prefect 3 servers, and what works there instead.

The verifier checks an answer against the installed client; this adds the other half: a feature
the user's *server* is too old for. Each entry was checked against real servers of every 3.x minor
(the routes and request schemas each one serves; `make compat`) or the release notes the facts
file cites. Recipes list the entries they rely on in their front matter (`requires:`), and a test
keeps the two in step.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from packaging.version import InvalidVersion, Version

__all__ = ["VERSIONED", "Versioned", "older_server_notes", "requirement_for"]


@dataclass(frozen=True)
class Versioned:
    key: str  # the name recipes use in `requires:`
    what: str  # how an answer names it
    since: str  # the first Prefect release that has it
    instead: str  # the form that works on an older server
    pattern: re.Pattern[str]


def _v(key: str, what: str, since: str, instead: str, pattern: str) -> Versioned:
    return Versioned(key, what, since, instead, re.compile(pattern))


VERSIONED: tuple[Versioned, ...] = (
    _v("work-pool-slots", "`prefect work-pool slots`", "3.6.23",
       "count the pool's runs with `prefect flow-run ls --state Pending --state Running` "
       "(or `concurrency-bot limits --kind work_pool`)", r"\bwork-pool\s+slots\b"),
    _v("work-queue-slots", "`prefect work-queue slots`", "3.6.23",
       "count the queue's runs with `prefect flow-run ls --state Pending --state Running` "
       "(or `concurrency-bot limits --kind work_queue`)", r"\bwork-queue\s+slots\b"),
    _v("concurrency-status-api", "the pool/queue concurrency-status API", "3.6.23",
       "count PENDING and RUNNING flow runs with `client.read_flow_runs(...)` filtered on the pool",
       r"\bread_work_(?:pool|queue)_concurrency_status\b|/concurrency_status\b"),
    _v("tag-limit-as-gcl", "tag limits as `tag:<tag>` global limits", "3.4.19",
       "use `prefect concurrency-limit inspect|reset|delete TAG` (the tag limit is a v1 concurrency limit there)",
       r"\bgcl\s+\w+\s+['\"]?tag:|by_name\(\s*['\"]tag:|['\"]tag:[^'\"]+['\"]"),
    _v("slot-leases", "concurrency slot leases (`lease_duration`, `…-with-lease`)", "3.4.0",
       "leave `lease_duration` out; free stuck slots with `prefect gcl update NAME --active-slots 0`",
       r"\blease_duration\b|-with-lease\b|\brenew_concurrency_lease\b"),
    _v("deployment-grace-period", "`grace_period_seconds` on a deployment limit", "3.6.6",
       "set the deployment limit without a grace period (`concurrency_limit: {limit: N, collision_strategy: …}`)",
       r"\bgrace_period_seconds\b"),
)


def requirement_for(key: str) -> Versioned:
    for entry in VERSIONED:
        if entry.key == key:
            return entry
    raise KeyError(key)


def _parse(version: str | None) -> Version | None:
    try:
        return Version(version) if version else None
    except InvalidVersion:
        return None


def older_server_notes(text: str, server_version: str | None) -> list[tuple[Versioned, str]]:
    """Each versioned feature `text` uses that `server_version` is too old for, with the sentence to show."""
    server = _parse(server_version)
    if server is None:
        return []
    found = []
    for entry in VERSIONED:
        if server < Version(entry.since) and entry.pattern.search(text):
            found.append((entry, f"{entry.what} needs Prefect {entry.since} and your server is "
                                 f"{server_version}: there, {entry.instead}"))
    return found
