"""The offline engine: useful answers with no model, from live Prefect tools, the grammar and the recipe book.

Every front end uses it when the model is off (no key, or the circuit breaker is open), and the
`/concurrency` slash command uses it always. Routing is by wording (see `intents.py`):
change requests become proposals through the approvals service (never applied here), diagnostic
questions run `diagnose_run`, "show limits" reads the concurrency map, "inspect X" reads one
limit, and everything else is answered from the best recipe with the user's real names filled in.
"""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import Callable
from contextlib import AbstractAsyncContextManager
from typing import Any

from bot.offline import render
from bot.offline.fill import fill_names, mentioned_objects
from bot.offline.grammar import ChangeRequest, parse_change_request
from bot.offline.intents import Intent, classify
from bot.safe_text import tick
from bot.turns import Reply, Turn

log = logging.getLogger(__name__)

GUEST_NO_PROPOSALS = ("Only people in this workspace can propose limit changes. Ask a teammate here to "
                      "request it; I can still look things up for you.")

__all__ = ["OfflineEngine", "MODEL_OFF", "GRAMMAR_HELP", "COMMAND_HELP"]

MODEL_OFF = ("_The model is off ({reason}), so this answer comes from live Prefect reads and our verified "
             "recipe book._")
GRAMMAR_HELP = (
    "Changes I can propose without a model (an approver still has to approve them):\n"
    "• `set work pool NAME limit to N` · `clear work pool NAME limit`\n"
    "• `set queue NAME [in pool POOL] limit to N` · `clear queue NAME [in pool POOL] limit`\n"
    "• `limit deployment FLOW/DEPLOYMENT to N [cancel new|enqueue] [grace 120]` · "
    "`clear deployment FLOW/DEPLOYMENT limit`\n"
    "• `set gcl NAME limit to N [decay 0.5]` · `enable|disable|reset|delete gcl NAME`\n"
    "• `set tag limit TAG to N` · `reset tag TAG` · `delete tag limit TAG`"
)
COMMAND_HELP = ("`list` (or `list busy`) · `inspect NAME` (a deployment, pool, queue, tag or global limit) · "
                "`diagnose RUN` (a flow run name or id, or a deployment) · `set …` (a change, see below)")
CHANGE_VERBS = {"set", "clear", "limit", "create", "enable", "disable", "delete", "reset", "remove", "unset",
                "change", "update"}
NO_MATCH = ("I couldn't match that to a recipe. Try *\"one run at a time\"*, *\"rate limit\"*, *\"show limits\"*, "
            "*\"why is run NAME stuck\"* or a change such as *\"set work pool etl limit to 5\"*.")
NAME_LOOKUP_SECONDS = 10.0
KIND_QUERY = {"work_pool": "work pool limit", "work_queue": "work queue limit", "deployment": "deployment",
              "global": "global concurrency limit", "tag": "tag limit"}
LIVE_LINES = 2

ClientFactory = Callable[[], AbstractAsyncContextManager[Any]]


def _default_client_factory() -> AbstractAsyncContextManager[Any]:
    from prefect import get_client

    return get_client()


def _translated(exc: Exception) -> str | None:
    """A user-facing message for the errors an offline answer can meet, else None (a bug: re-raise)."""
    from bot.approvals.service import ProposalRefused
    from bot.prefect_ops.changes import ChangeError
    from bot.prefect_ops.errors import PrefectOpsError

    if isinstance(exc, (PrefectOpsError, ChangeError, ProposalRefused)):
        text = str(exc)
        return text[:1].upper() + text[1:]
    return None


class OfflineEngine:
    """Answers a turn without a model. Collaborators are injected; all have working defaults."""

    def __init__(self, search: Any | None, approvals: Any | None = None,
                 client_factory: ClientFactory = _default_client_factory) -> None:
        self.search = search
        self.approvals = approvals
        self.client_factory = client_factory

    # --- the pipeline's hook ------------------------------------------------------------------
    async def answer(self, turn: Turn, reason: str) -> Reply:
        """The reply the pipeline posts when the model is off; its first line says so."""
        reply = await self.respond(turn)
        reply.text = f"{MODEL_OFF.format(reason=reason)}\n\n{reply.text}"
        reply.offline = True
        return reply

    async def respond(self, turn: Turn) -> Reply:
        """Route by wording and answer; failures the user can act on become short messages."""
        intent = classify(turn.text)
        try:
            return await self._route(intent, turn)
        except Exception as exc:
            message = _translated(exc)
            if message is None:
                raise
            return Reply(text=message, offline=True, tool_calls=[intent.kind])

    async def command(self, text: str, turn: Turn) -> Reply:
        """Explicit commands (`list`, `inspect NAME`, `diagnose RUN`, `set …`), as the slash command sends them.

        The first word picks the tool, so names need no phrasing; anything else is answered as a
        question. Errors the user can act on come back as short messages.
        """
        verb, _, rest = text.strip().partition(" ")
        verb, rest = verb.lower(), rest.strip()
        try:
            if verb in ("", "help"):
                return Reply(text=COMMAND_HELP + "\n\n" + GRAMMAR_HELP, offline=True)
            if verb in ("list", "ls", "limits"):
                return Reply(text=await self.list_limits(busy_only=rest.lower() == "busy"), offline=True,
                             tool_calls=["list_concurrency_limits"])
            if verb == "inspect" and rest:
                return Reply(text=await self.inspect(rest), offline=True, tool_calls=["inspect_limit"])
            if verb == "diagnose" and rest:
                return Reply(text=await self.diagnose(rest), offline=True, tool_calls=["diagnose_run"])
            if verb in CHANGE_VERBS:
                return await self._propose_for(turn, text, text)
        except Exception as exc:
            message = _translated(exc)
            if message is None:
                raise
            return Reply(text=message, offline=True)
        return await self.respond(turn)

    async def _route(self, intent: Intent, turn: Turn) -> Reply:
        if intent.kind == "change" and intent.change is not None:
            return await self._propose_for(turn, intent.change, turn.text)
        if intent.kind == "bad_change":
            return Reply(text="That looks like a change request, but I couldn't read it.\n\n" + GRAMMAR_HELP,
                         offline=True)
        if intent.kind == "diagnose" and intent.subject:
            return await self._diagnose_or_explain(intent.subject, turn.text)
        if intent.kind == "list":
            return Reply(text=await self.list_limits(), offline=True, tool_calls=["list_concurrency_limits"])
        if intent.kind == "inspect" and intent.subject:
            return Reply(text=await self.inspect(intent.subject, intent.limit_kind), offline=True,
                         tool_calls=["inspect_limit"])
        return Reply(text=await self.knowledge(turn.text), offline=True, tool_calls=["search_recipes"])

    # --- live tools -----------------------------------------------------------------------------
    async def list_limits(self, busy_only: bool = False) -> str:
        from bot.prefect_ops.concurrency_map import concurrency_map

        async with self.client_factory() as client:
            cmap = await concurrency_map(client)
        return render.limits_table(cmap, busy_only)

    async def inspect(self, name: str, kind_hint: str | None = None) -> str:
        """One limit by (loosely typed) name; `kind_hint` is a word such as "pool" or "queue"."""
        from bot.prefect_ops.limits import read_limit
        from bot.prefect_ops.resolve import known_names, require_match, resolve_among

        text = f"{name} {kind_hint}" if kind_hint and kind_hint.lower() != "limit" else name
        async with self.client_factory() as client:
            names = await known_names(client)
            match = require_match(resolve_among(text, names), names, "object")
            status = await read_limit(client, match.kind, match.name)
        return render.limit_detail(status)

    async def diagnose(self, subject: str) -> str:
        from bot.prefect_ops.diagnose import diagnose_run

        async with self.client_factory() as client:
            diagnosis = await diagnose_run(client, subject)
        return render.diagnosis_text(diagnosis)

    async def _diagnose_or_explain(self, subject: str, question: str) -> Reply:
        from bot.prefect_ops.errors import NotFound

        try:
            return Reply(text=await self.diagnose(subject), offline=True, tool_calls=["diagnose_run"])
        except NotFound as exc:
            text = (f"I found no flow run or deployment called {tick(subject)} ({exc}).\n\n"
                    + await self.knowledge(question))
            return Reply(text=text, offline=True, tool_calls=["diagnose_run", "search_recipes"])

    # --- proposals ------------------------------------------------------------------------------
    async def _propose_for(self, turn: Turn, request: ChangeRequest | str, reason: str) -> Reply:
        if not turn.may_propose:
            return Reply(text=GUEST_NO_PROPOSALS, offline=True)
        return await self.propose(request, turn.user_id, turn.channel, turn.thread_ts, reason)

    async def propose(self, request: ChangeRequest | str, requester: str, channel: str | None = None,
                      thread_ts: str | None = None, reason: str = "") -> Reply:
        """Turn a change request into a pending proposal; nothing is applied until someone approves."""
        from bot.offline.requests import change_from_request

        parsed = parse_change_request(request) if isinstance(request, str) else request
        if parsed is None:
            return Reply(text="I couldn't read that change.\n\n" + GRAMMAR_HELP, offline=True)
        if self.approvals is None:
            return Reply(text="I can't propose changes here: approvals are not set up in this front end.",
                         offline=True)
        async with self.client_factory() as client:
            change = await change_from_request(client, parsed)
        why = f"Asked for: “{reason.strip()[:300]}”" if reason.strip() else "Asked for in the offline grammar"
        proposal = await self.approvals.create_proposal(change, requester, why, channel, thread_ts)
        text = (f"**Proposed:** {proposal.diff}\n\nNothing has changed yet: an approver must approve it "
                f"(proposal `{proposal.id[:8]}`).")
        return Reply(text=text, proposals=[proposal.id], offline=True, tool_calls=["propose_change"])

    # --- knowledge --------------------------------------------------------------------------------
    async def knowledge(self, question: str) -> str:
        """The best recipe, with the real names of the objects the question mentions."""
        objects, live = await self._mentioned(question)
        # Names mean nothing to the search index, their kinds do: "the etl pool" is about pools.
        query = question
        for kind, name in objects.items():
            for key in dict.fromkeys([name, name.split("/", 1)[-1]]):
                query = re.sub(rf"(?<![\w-]){re.escape(key)}(?![\w-])", KIND_QUERY[kind], query, flags=re.I)
        hits = self.search.search(query, k=2) if self.search is not None else []
        if not hits:
            return NO_MATCH
        body = fill_names(hits[0].recipe.body.strip(), objects)
        parts = [f"**{hits[0].recipe.title}**", body]
        if live:
            parts.append("**On your server now:**\n\n" + "\n".join(f"- {line}" for line in live))
        if len(hits) > 1:
            parts.append(f"_See also: {hits[1].recipe.title}._")
        return "\n\n".join(parts)

    async def _mentioned(self, question: str) -> tuple[dict[str, str], list[str]]:
        """Objects the question names and a live line for each; nothing when Prefect is unreachable."""
        from bot.prefect_ops.limits import read_limit
        from bot.prefect_ops.resolve import known_names

        objects: dict[str, str] = {}
        live: list[str] = []
        try:
            async with asyncio.timeout(NAME_LOOKUP_SECONDS):
                async with self.client_factory() as client:
                    objects = mentioned_objects(question, await known_names(client))
                    for kind, name in list(objects.items())[:LIVE_LINES]:
                        status = await read_limit(client, kind, name)  # type: ignore[arg-type]
                        live.append(f"{render.KIND_NOUN[kind]} {tick(name)}: {render.occupancy(status)}")
        except Exception as exc:  # names are a bonus: the recipe alone is still a good answer
            log.info("could not read names for an offline answer: %s", type(exc).__name__)
        return objects, live
