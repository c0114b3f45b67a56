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
import threading
from collections.abc import Callable
from contextlib import AbstractAsyncContextManager
from typing import Any

from bot.knowledge.passages import PassageIndex
from bot.offline import render
from bot.offline.compose import EXTRAS_MAX, compose, render_extras
from bot.offline.fill import fill_names, mentioned_objects
from bot.offline.grammar import ChangeRequest, parse_change_request
from bot.offline.intents import Intent, classify
from bot.safe_text import tick
from bot.turns import Reply, Turn

log = logging.getLogger(__name__)

GUEST_NO_PROPOSALS = ("Only people in this workspace can propose limit changes. Ask a teammate here to "
                      "request it; I can still look things up for you.")

__all__ = ["OfflineEngine", "MODEL_OFF", "GRAMMAR_HELP", "COMMAND_HELP"]

MODEL_OFF = "_The model is off ({reason}): offline answer._"
MODEL_OFF_LINE = MODEL_OFF.format(reason="no model is configured") + "\n\n"  # the usual first line of an answer
GRAMMAR_HELP = (
    "Changes I can propose without a model (an approver still has to approve them):\n"
    "• `set work pool NAME limit to N` · `clear work pool NAME limit`\n"
    "• `set queue NAME [in pool POOL] limit to N` · `clear queue NAME [in pool POOL] limit`\n"
    "• `limit deployment FLOW/DEPLOYMENT to N [cancel new|enqueue] [grace 120]` · "
    "`clear deployment FLOW/DEPLOYMENT limit`\n"
    "• `set gcl NAME limit to N [decay 0.5]` · `enable|disable|reset|delete gcl NAME`\n"
    "• `set tag limit TAG to N` · `reset tag TAG` · `delete tag limit TAG`\n"
    "• or in everyday words: `cap the etl pool at 5` · `limit nightly to one run at a time` · "
    "`only one run of nightly at a time, skip overlaps` · `raise the db tag limit to 10` · `pause the Q queue`"
)
COMMAND_HELP = ("`list` (or `list busy`) · `inspect NAME` (a deployment, pool, queue, tag or global limit) · "
                "`diagnose RUN` (a flow run name or id, or a deployment) · `more RECIPE` (a full recipe) · "
                "`set …` (a change, see below)")
CHANGE_VERBS = {"set", "clear", "limit", "create", "enable", "disable", "delete", "reset", "remove", "unset",
                "change", "update"}
NO_MATCH = ("I couldn't match that to a recipe. Try *\"one run at a time\"*, *\"rate limit\"*, *\"show limits\"*, "
            "*\"why is run NAME stuck\"* or a change such as *\"set work pool etl limit to 5\"*.")
MORE = re.compile(r"^(?:(?:show|tell|give)\s+(?:me\s+)?)?(?:more|the\s+full\s+recipe|full\s+recipe)"
                  r"(?:\s+(?:please|pls))?(?:\s+(?P<slug>[a-z][a-z0-9-]+))?(?:\s+(?:please|pls))?$", re.IGNORECASE)
OFFERED = re.compile(r"`more (?P<slug>[a-z][a-z0-9-]+)`")
# The offer line names the routed recipe; other `more SLUG`s in the answer (related, extras) come second.
OFFER = re.compile(r"for the full recipe \(`more (?P<slug>[a-z][a-z0-9-]+)`\)")
NAME_LOOKUP_SECONDS = 10.0
KIND_QUERY = {"work_pool": "work pool limit", "work_queue": "work queue limit", "deployment": "deployment",
              "global": "global concurrency limit", "tag": "tag limit"}
LIVE_LINES = 2
NEIGHBOURS = 2  # recipes ranked after the routed one whose units may be added to its answer
ANSWER_MAX_CHARS = 1240  # an answer with units added stays this short, the model-off line included

ClientFactory = Callable[[], AbstractAsyncContextManager[Any]]


def _default_client_factory() -> AbstractAsyncContextManager[Any]:
    from prefect import get_client

    return get_client()


def _plain(text: str) -> str:
    """The words of a message without a leading Slack mention or closing punctuation."""
    text = re.sub(r"<@[A-Z0-9]+>", " ", text)
    return re.sub(r"\s+", " ", text).strip().rstrip("?.!").strip()


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
                 client_factory: ClientFactory = _default_client_factory, extras: bool = True,
                 answer_max_chars: int = ANSWER_MAX_CHARS, extras_max: int = EXTRAS_MAX) -> None:
        self.search = search
        self.approvals = approvals
        self.client_factory = client_factory
        self.extras = extras  # add the question's best other units of the book (bot.offline.compose)
        # The bot keeps the defaults; bench/answer_length.py varies them to price a longer answer.
        self.answer_max_chars = answer_max_chars
        self.extras_max = extras_max
        self._passage_index: PassageIndex | None = None
        self._passages_lock = threading.Lock()

    # --- the pipeline's hook ------------------------------------------------------------------
    async def answer(self, turn: Turn, reason: str) -> Reply:
        """The reply the pipeline posts when the model is off; its first line says so."""
        reply = await self.respond(turn)
        reply.text = f"{MODEL_OFF.format(reason=reason)}\n\n{reply.text}"
        reply.offline = True
        return reply

    async def respond(self, turn: Turn) -> Reply:
        """Route by wording and answer; failures the user can act on become short messages."""
        more = MORE.match(_plain(turn.text))
        if more:
            return Reply(text=self.full_recipe(more.group("slug"), turn), offline=True, tool_calls=["search_recipes"])
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
            if verb == "more":
                return Reply(text=self.full_recipe(rest or None, turn), offline=True, tool_calls=["search_recipes"])
        except Exception as exc:
            message = _translated(exc)
            if message is None:
                raise
            return Reply(text=message, offline=True)
        return await self.respond(turn)

    async def _route(self, intent: Intent, turn: Turn) -> Reply:
        if intent.kind == "change" and intent.change is not None:
            return await self._propose_for(turn, intent.change, turn.text)
        if intent.kind == "natural_change" and intent.natural is not None:
            return await self._propose_natural(turn, intent.natural)
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
            diagnosis = await self.diagnose(subject)
        except NotFound as exc:
            text = (f"I found no flow run or deployment called {tick(subject)} ({exc}).\n\n"
                    + await self.knowledge(question))
            return Reply(text=text, offline=True, tool_calls=["diagnose_run", "search_recipes"])
        # "Why is X stuck" wants both: what holds X right now, and what to do about that kind of hold.
        return Reply(text=f"{diagnosis}\n\n{await self.knowledge(question, live_lines=False)}", offline=True,
                     tool_calls=["diagnose_run", "search_recipes"])

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
        return await self._create(change, requester, channel, thread_ts, reason)

    async def _create(self, change: Any, requester: str, channel: str | None, thread_ts: str | None,
                      reason: str) -> Reply:
        why = f"Asked for: “{reason.strip()[:300]}”" if reason.strip() else "Asked for in the offline grammar"
        proposal = await self.approvals.create_proposal(change, requester, why, channel, thread_ts)
        notes = "".join(f"\n\n{note}" for note in (proposal.change.effect(), proposal.change.follow_up()) if note)
        text = (f"**Proposed:** {proposal.diff}{notes}\n\nNothing has changed yet: an approver must approve it "
                f"(proposal `{proposal.id[:8]}`).")
        return Reply(text=text, proposals=[proposal.id], offline=True, tool_calls=["propose_change"])

    async def _propose_natural(self, turn: Turn, natural: Any) -> Reply:
        """A change in everyday words: on the exact object named, else a precise answer about the name."""
        from bot.offline.grammar import ChangeRequest
        from bot.offline.natural_targets import resolve_natural

        if not turn.may_propose:
            return Reply(text=GUEST_NO_PROPOSALS, offline=True)
        if self.approvals is None:
            return Reply(text="I can't propose changes here: approvals are not set up in this front end.",
                         offline=True)
        async with self.client_factory() as client:
            target = await resolve_natural(client, natural)
        if isinstance(target, str):
            return Reply(text=target, offline=True, tool_calls=["resolve_name"])
        if isinstance(target, ChangeRequest):
            return await self.propose(target, turn.user_id, turn.channel, turn.thread_ts, turn.text)
        return await self._create(target, turn.user_id, turn.channel, turn.thread_ts, turn.text)

    # --- knowledge --------------------------------------------------------------------------------
    async def knowledge(self, question: str, live_lines: bool = True) -> str:
        """The best recipe, with the real names of the objects the question mentions."""
        objects, live = await self._mentioned(question)
        if not live_lines:  # the caller already shows live state
            live = []
        # Names mean nothing to the search index, their kinds do: "the etl pool" is about pools.
        query = question
        for kind, name in objects.items():
            for key in dict.fromkeys([name, name.split("/", 1)[-1]]):
                query = re.sub(rf"(?<![\w-]){re.escape(key)}(?![\w-])", KIND_QUERY[kind], query, flags=re.I)
        hits = self.search.search(query, k=NEIGHBOURS + 1) if self.search is not None else []
        if not hits:
            return NO_MATCH
        recipe = hits[0].recipe
        title, short = f"**{recipe.title}**", fill_names(recipe.short_answer, objects)
        on_server = ["**On your server now:**\n\n" + "\n".join(f"- {line}" for line in live)] if live else []
        offer = f"_Say “more” for the full recipe (`more {recipe.slug}`)"
        related = f"; related: `more {hits[1].recipe.slug}`" if len(hits) > 1 else ""
        plain = "\n\n".join([title, short, *on_server, offer + related + "._"])
        passages = self._passages()
        if passages is None:
            return plain
        # What the question asks beyond the short answer, in the room left under the length cap (the
        # related offer gives way to it: the added units name their recipes).
        room = self.answer_max_chars - len(MODEL_OFF_LINE) - len(plain) + len(related) - 2
        ranked = [(hit.recipe.slug, hit.score) for hit in hits]
        extras = compose(passages, self.search.query_tokens(query), ranked, f"{title}\n{short}", objects, room,
                         self.extras_max)
        if not extras:
            return plain
        listing = render_extras(extras, recipe.slug)
        answer = "\n\n".join([title, short, listing, *on_server, offer + "._"])
        if related and related.split(": ", 1)[1] not in listing and \
                len(MODEL_OFF_LINE) + len(answer) + len(related) <= self.answer_max_chars:
            answer = answer[:-2] + related + "._"
        return answer

    def _passages(self) -> PassageIndex | None:
        """The book cut into units (built on first use, once); None when extras are off or there is no book."""
        book = getattr(self.search, "book", None)
        if not self.extras or book is None or not hasattr(self.search, "query_tokens"):
            return None
        with self._passages_lock:
            if self._passage_index is None:
                self._passage_index = PassageIndex(book)
        return self._passage_index

    def full_recipe(self, slug: str | None, turn: Turn) -> str:
        """The whole recipe asked for by "more": named, or the one the last offline answer offered."""
        book = getattr(self.search, "book", None)
        if book is None:
            return NO_MATCH
        if not slug:
            for item in reversed(turn.history):
                offered = (OFFER.search(item.text) or OFFERED.search(item.text)) if item.role == "assistant" else None
                if offered:
                    slug = offered.group("slug")
                    break
        recipe = book.get(slug.strip().strip("`").lower()) if slug else None
        if recipe is None:
            known = ", ".join(f"`{r.slug}`" for r in book)
            return f"More of which recipe? Ask your question again, or say `more NAME` with one of: {known}."
        return f"**{recipe.title}**\n\n{recipe.for_people()}"

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
