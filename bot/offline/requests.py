"""From a parsed change request to a typed change, with names matched to real objects on the server.

Names may be typed loosely ("etl" for pool `ETL`, `prod` for `nightly/prod`): they go through the
same resolver the model's tools use. A queue typed without its pool is looked up across pools; a
`set gcl` on a limit that does not exist yet becomes a create.
"""

from __future__ import annotations

from typing import Any

from bot.offline.grammar import ChangeRequest
from bot.prefect_ops.changes import Change, ChangeError, parse_change
from bot.prefect_ops.resolve import Named, known_names, require_match, resolve_among
from bot.safe_text import tick

__all__ = ["change_from_request"]

_LIMIT_KIND = {"work_pool_limit": "work_pool", "work_queue_limit": "work_queue", "deployment_limit": "deployment",
               "global_limit": "global", "tag_limit": "tag"}
_NOUN = {"work_pool": "work pool", "work_queue": "work queue", "deployment": "deployment", "global": "global limit",
         "tag": "tag limit"}
_NAME_FIELD = {"work_pool_limit": "pool", "work_queue_limit": "queue", "deployment_limit": "deployment",
               "global_limit": "name", "tag_limit": "tag"}


def _resolve(text: str, names: list[Named], kind: str) -> str:
    """The real display name `text` stands for; NotFound / Ambiguous say what exists."""
    scope = [n for n in names if n.kind == kind]
    return require_match(resolve_among(text, scope, kind), scope, _NOUN[kind]).name  # type: ignore[arg-type]


def _queue_target(request: ChangeRequest, names: list[Named]) -> tuple[str, str]:
    queues = [n for n in names if n.kind == "work_queue"]
    if request.pool:
        pool = _resolve(request.pool, names, "work_pool")
        in_pool = [Named(kind="work_queue", name=n.name) for n in queues if n.name.split("/", 1)[0] == pool]
        full = _resolve(f"{pool}/{request.name}", in_pool, "work_queue") if in_pool else f"{pool}/{request.name}"
    else:
        full = _resolve(request.name, queues, "work_queue")
    pool_name, queue_name = full.split("/", 1)
    return pool_name, queue_name


def _data(request: ChangeRequest, names: list[Named]) -> dict[str, Any]:
    kind = _LIMIT_KIND[request.kind]
    data: dict[str, Any] = {"kind": request.kind, "action": request.action}
    if request.kind == "work_queue_limit":
        data["pool"], data["queue"] = _queue_target(request, names)
    elif request.kind == "global_limit" and request.action in ("create", "update"):
        exists = any(n.kind == "global" and n.name == request.name for n in names)
        if not exists:
            match = resolve_among(request.name, [n for n in names if n.kind == "global"], "global").match
            exists = match is not None and match.stage != "fuzzy"
            name = match.name if exists and match is not None else request.name
        else:
            name = request.name
        data["name"] = name
        data["action"] = "update" if exists else "create"
    elif request.kind == "tag_limit" and request.action == "set":
        data["tag"] = request.name  # set creates or updates: the tag need not exist yet
    else:
        data[_NAME_FIELD[request.kind]] = _resolve(request.name, names, kind)
    for field in ("limit", "collision_strategy", "grace_period_seconds", "slot_decay_per_second"):
        value = getattr(request, field)
        if value is not None:
            data[field] = value
    return data


async def change_from_request(client: Any, request: ChangeRequest) -> Change:
    """Resolve names against the server and build the typed change; raises ChangeError or PrefectOpsError."""
    names = await known_names(client)
    data = _data(request, names)
    if data.get("kind") == "global_limit" and data["action"] == "create" and data.get("limit") is None:
        raise ChangeError(f"there is no global limit named {tick(request.name)} to {request.action}")
    return parse_change(data)
