"""Turn what a user typed ("nightly etl", "etl pool") into the object it names.

Stages, first hit wins: exact, case-insensitive (separators folded), prefix, fuzzy (rapidfuzz).
When a stage finds several equally good objects the caller gets them all, to ask which one.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Literal

from prefect.client.orchestration import PrefectClient
from pydantic import BaseModel, Field
from rapidfuzz import fuzz, process

from bot.prefect_ops.errors import Ambiguous, NotFound, at_boundary
from bot.prefect_ops.limits import kind_of_gcl, read_all_deployments, read_all_gcls
from bot.prefect_ops.models import LIMIT_KINDS, LimitKind
from bot.prefect_ops.runs import paged, read_flows_by_id
from bot.prefect_ops.together import gather_reads

Stage = Literal["exact", "case_insensitive", "prefix", "fuzzy"]
FUZZY_CUTOFF = 70.0
FUZZY_CLEAR_LEAD = 8.0  # a fuzzy winner must beat the runner-up by this much to be taken alone
KIND_WORDS: dict[str, LimitKind] = {
    "pool": "work_pool",
    "work pool": "work_pool",
    "queue": "work_queue",
    "work queue": "work_queue",
    "deployment": "deployment",
    "deploy": "deployment",
    "tag": "tag",
    "gcl": "global",
    "global limit": "global",
    "global concurrency limit": "global",
    "rate limit": "global",
}


class Named(BaseModel):
    kind: LimitKind
    name: str  # the display name limits.py uses


class Candidate(Named):
    stage: Stage
    score: float = 100.0


class Resolution(BaseModel):
    text: str
    kind: LimitKind | None = None
    match: Candidate | None = None
    candidates: list[Candidate] = Field(default_factory=list)

    @property
    def ambiguous(self) -> bool:
        return self.match is None and len(self.candidates) > 1


def fold(text: str) -> str:
    """Case and separators do not matter: 'Nightly_ETL' and 'nightly etl' fold alike."""
    return re.sub(r"[\s_\-.:]+", " ", text.strip().lower()).strip()


def split_kind_hint(text: str) -> tuple[str, LimitKind | None]:
    """'etl pool' -> ('etl', 'work_pool'); text without a kind word comes back unchanged."""
    folded = fold(text)
    for word in sorted(KIND_WORDS, key=len, reverse=True):
        pattern = rf"(^|\s){re.escape(word)}(\s|$)"
        if re.search(pattern, folded):
            rest = re.sub(pattern, " ", folded).strip()
            if rest:
                return rest, KIND_WORDS[word]
    return text.strip(), None


def _keys(item: Named) -> list[str]:
    """Names an object answers to: its display name and, for 'a/b' names, the part after '/'."""
    return [item.name, item.name.split("/", 1)[1]] if "/" in item.name else [item.name]


def _stage(text: str, items: list[Named], stage: Stage) -> list[Candidate]:
    folded = fold(text)
    hits = []
    for item in items:
        keys = _keys(item)
        if stage == "exact":
            ok = text.strip() in keys
        elif stage == "case_insensitive":
            ok = folded in {fold(k) for k in keys}
        else:
            ok = bool(folded) and any(fold(k).startswith(folded) for k in keys)
        if ok:
            hits.append(Candidate(kind=item.kind, name=item.name, stage=stage))
    return hits


def resolve_among(text: str, items: Iterable[Named], kind: LimitKind | None = None) -> Resolution:
    """Pure resolution over known names (no I/O), so it is easy to test and reuse."""
    stripped, hinted = split_kind_hint(text) if kind is None else (text.strip(), kind)
    pool = [i for i in items if hinted is None or i.kind == hinted]
    attempts = (
        [(text.strip(), pool)] if stripped == text.strip() else [(text.strip(), pool), (stripped, pool)]
    )
    for query, scope in attempts:
        for stage in ("exact", "case_insensitive", "prefix"):
            hits = _stage(query, scope, stage)  # type: ignore[arg-type]
            if hits:
                return Resolution(
                    text=text, kind=hinted, match=hits[0] if len(hits) == 1 else None, candidates=hits
                )
    choices = {i: [fold(k) for k in _keys(item)] for i, item in enumerate(pool)}
    flat = [(i, key) for i, keys in choices.items() for key in keys]
    scored: dict[int, float] = {}
    for _key, score, idx in process.extract(
        fold(stripped),
        [k for _, k in flat],
        scorer=fuzz.token_sort_ratio,
        score_cutoff=FUZZY_CUTOFF,
        limit=20,
    ):
        item_index = flat[idx][0]
        scored[item_index] = max(score, scored.get(item_index, 0.0))
    ranked = sorted(scored.items(), key=lambda pair: -pair[1])[:5]
    cands = [
        Candidate(kind=pool[i].kind, name=pool[i].name, stage="fuzzy", score=round(s, 1)) for i, s in ranked
    ]
    clear = len(cands) == 1 or (len(cands) > 1 and cands[0].score - cands[1].score >= FUZZY_CLEAR_LEAD)
    return Resolution(text=text, kind=hinted, match=cands[0] if cands and clear else None, candidates=cands)


@at_boundary
async def known_names(client: PrefectClient, kinds: Iterable[LimitKind] | None = None) -> list[Named]:
    """Names of every deployment, pool, queue, tag limit and GCL (no occupancy: cheap)."""
    wanted = set(kinds or LIMIT_KINDS)
    gcls, deployments, pools, queues = await gather_reads(
        read_all_gcls(client),
        read_all_deployments(client) if "deployment" in wanted else _empty(),
        paged(lambda limit, offset: client.read_work_pools(limit=limit, offset=offset))
        if "work_pool" in wanted or "work_queue" in wanted
        else _empty(),
        paged(lambda limit, offset: client.read_work_queues(limit=limit, offset=offset))
        if "work_queue" in wanted
        else _empty(),
    )
    names: list[Named] = []
    for gcl in gcls:
        kind = kind_of_gcl(gcl.name)
        if kind == "global" and "global" in wanted:
            names.append(Named(kind="global", name=gcl.name))
        elif kind == "tag" and "tag" in wanted:
            names.append(Named(kind="tag", name=gcl.name.removeprefix("tag:")))
    if deployments:
        flows = await read_flows_by_id(client, {d.flow_id for d in deployments})
        names += [
            Named(kind="deployment", name=f"{flows[d.flow_id].name if d.flow_id in flows else '?'}/{d.name}")
            for d in deployments
        ]
    if "work_pool" in wanted:
        names += [Named(kind="work_pool", name=p.name) for p in pools]
    names += [Named(kind="work_queue", name=f"{q.work_pool_name}/{q.name}") for q in queues]
    return names


async def _empty() -> list:
    return []


@at_boundary
async def resolve_name(client: PrefectClient, text: str, kind: LimitKind | None = None) -> Resolution:
    """Resolve typed text to an object; see `Resolution.match` and `.candidates`."""
    return resolve_among(text, await known_names(client, [kind] if kind else None), kind)


def require_match(resolution: Resolution, known: Iterable[Named], what: str = "object") -> Candidate:
    """The single match, or NotFound (listing names) / Ambiguous (listing candidates)."""
    if resolution.match is not None:
        return resolution.match
    if resolution.candidates:
        raise Ambiguous(resolution.text, [f"{c.kind} {c.name}" for c in resolution.candidates])
    scope = [n for n in known if resolution.kind is None or n.kind == resolution.kind]
    raise NotFound(what, resolution.text, sorted(n.name for n in scope))
