"""Put the user's real names into a recipe: the deployment, pool, queue or limit their question names.

Two steps, both pure so they are easy to test: `mentioned_objects` finds which existing objects a
question names (whole-word matches against the server's names), and `fill_names` swaps the recipe
book's example names (`my-pool`, `etl/nightly`, `NAME` after `prefect gcl create`, …) for them.
"""

from __future__ import annotations

import re
import shlex
from collections.abc import Callable, Iterable

from bot.prefect_ops.resolve import Named
from bot.safe_text import code_pieces, tick
from bot.shell_text import unshowable_reason

__all__ = ["mentioned_objects", "fill_names"]

_EDGE_L = r"(?<![\w/-])"
_EDGE_R = r"(?![\w/-])"
_QUEUE_WORD = re.compile(r"\bqueues?\b", re.IGNORECASE)
_SHELL_LINE = re.compile(r"^\s*(?:\$\s*)?`?prefect\s")
_TOO_COMMON = {"default", "limit", "limits", "pool", "queue", "run", "runs", "flow", "test", "main", "prod"}


def _contains(text: str, name: str) -> bool:
    return re.search(_EDGE_L + re.escape(name) + _EDGE_R, text, re.IGNORECASE) is not None


def mentioned_objects(question: str, names: Iterable[Named]) -> dict[str, str]:
    """The first existing object of each kind the question names, as {kind: display name}.

    Longer names win, so `etl-nightly` is preferred over `etl`. A work queue's bare name counts
    only when the question says "queue" (every pool has a queue called `default`).
    """
    found: dict[str, str] = {}
    ordered = sorted(names, key=lambda n: -len(n.name))
    for item in ordered:
        if item.kind in found:
            continue
        keys = [item.name]
        if "/" in item.name:
            short = item.name.split("/", 1)[1]
            if item.kind == "deployment" or _QUEUE_WORD.search(question):
                keys.append(short)
        for key in keys:
            allowed = len(key) >= 3 and ("/" in key or key.lower() not in _TOO_COMMON)
            if allowed and _contains(question, key):
                found[item.kind] = item.name
                break
    return found


def _sub(pattern: str, replacement: str | None, text: str) -> str:
    if replacement is None:  # the name cannot be shown here: the recipe keeps its example name
        return text
    return re.sub(pattern, lambda m: (m.group(1) if m.groups() else "") + replacement, text)


def _prose_name(name: str) -> str:
    return tick(name)


def _shell_name(name: str) -> str | None:
    """A name as one shell word, or None when no command line in a message can carry it."""
    return None if unshowable_reason(name) else shlex.quote(name)


def _code_name(name: str) -> str | None:
    """A name in Python or YAML code: only a plain name goes in as is; any other keeps the example."""
    return name if shlex.quote(name) == name else None


def fill_names(body: str, objects: dict[str, str]) -> str:
    """The recipe with its example names replaced by the real ones in `objects`.

    Where the name lands decides how it is written: in a shell command it is `shlex.quote`d (a pool
    named `etl; curl … | sh` stays one argument), in other code only a plain name is put in, and in
    prose it is a code span it cannot leave (bot.safe_text.tick). A name no code span can show (a
    backtick, a line break) leaves the recipe's example name in place.
    """
    out = []
    for piece, is_code in code_pieces(body):
        if not is_code:
            out.append(_fill(piece, objects, _prose_name))
            continue
        lines = piece.split("\n")
        shell = piece.startswith(("```bash", "```sh", "```shell", "```console"))
        out.append("\n".join(
            _fill(line, objects, _shell_name if shell or _SHELL_LINE.match(line) else _code_name) for line in lines))
    return "".join(out)


def _fill(text: str, objects: dict[str, str], shown: Callable[[str], str | None]) -> str:
    pool = objects.get("work_pool")
    queue = objects.get("work_queue")
    if queue and not pool:
        pool = queue.split("/", 1)[0]
    if pool:
        text = _sub(_EDGE_L + r"(?:my-pool|<pool>|POOL)" + _EDGE_R, shown(pool), text)
        text = _sub(r"(prefect work-pool [a-z-]+ )NAME\b", shown(pool), text)
    if queue:
        short = queue.split("/", 1)[1]
        text = _sub(_EDGE_L + r"(?:my-queue|<queue>|QUEUE)" + _EDGE_R, shown(short), text)
        text = _sub(r"(prefect work-queue [a-z-]+ )(?:NAME|critical)\b", shown(short), text)
    deployment = objects.get("deployment")
    if deployment:
        flow, dep = deployment.split("/", 1)
        text = _sub(_EDGE_L + r"(?:etl/nightly|my-flow/my-deployment|FLOW/DEPLOYMENT|<flow>/<deployment>)"
                    + _EDGE_R, shown(deployment), text)
        text = _sub(r"(--name |-n |name: )nightly\b", shown(dep), text)
        text = _sub(r"(name=\")nightly\b", _code_name(dep), text)
    gcl = objects.get("global")
    if gcl:
        text = _sub(r"(prefect (?:gcl|global-concurrency-limit) [a-z-]+ )(?:NAME|db-writes|etl-lock|github-api)\b",
                    shown(gcl), text)
        text = _sub(r"((?:concurrency|rate_limit)\(\s*\")(?:db-writes|etl-lock|github-api)\b", _code_name(gcl), text)
    tag = objects.get("tag")
    if tag:
        text = _sub(r"(prefect concurrency-limits? [a-z-]+ )(?:TAG|db)\b", shown(tag), text)
        text = _sub(r"(tags=\[\s*[\"'])db\b", _code_name(tag), text)
    return text
