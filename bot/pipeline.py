"""Turn in → Reply out: history, retrieval, the model loop, verification. No formatting here.

Front ends (Slack, terminal, `ask`, eval) call `Pipeline.answer`. When no model is configured,
or the circuit breaker is open after repeated failures, the offline answerer replies instead.
"""

from __future__ import annotations

import asyncio
import logging
import re
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from bot import metrics
from bot.agent.circuit import CircuitBreaker
from bot.agent.loop import run_agent
from bot.agent.model import (
    ContextTooLong,
    ModelClient,
    ModelMisconfigured,
    ModelNoAnswer,
    ModelSettings,
    ModelUnavailable,
)
from bot.agent.registry import ToolRegistry
from bot.knowledge.prompt_files import recipes_dir, system_prompt_path
from bot.redact import redact
from bot.settings import Settings
from bot.turns import HistoryMessage, Reply, Turn

log = logging.getLogger(__name__)

APOLOGY = ("Sorry, I couldn't finish an answer just now ({reason}). Nothing was changed. "
           "Please try again in a minute.")
MIN_RECIPE_SCORE = 1.0  # BM25; below this the match is a word or two in common, not the topic
RUNNER_UP_SHARE = 0.75
MISCONFIGURED = "the model is misconfigured; the operator has been told which setting to fix"
LEFT_OUT_NOTE = "\n\n_To fit the model's context window I left out {what}._"
TOO_LONG_NOTE = ("This conversation is too long for the model's context window even after trimming, so this "
                 "answer comes from the offline helper. A new thread starts fresh.")
CAVEAT = "\n\n_⚠️ I could not verify everything above against Prefect {version}: {problems}_"
OLDER_SERVER = "\n\n_Your Prefect server is older than some of this: {notes}._"


class Verifier(Protocol):
    def __call__(self, markdown: str) -> Any: ...


def verify_for_live_server(settings: Settings) -> Verifier:
    """The verifier, also flagging what the live Prefect server (as last read) is too old for."""
    from bot.knowledge.verifier import verify_markdown
    from bot.prefect_ops.capabilities import known_state

    def verify(markdown: str) -> Any:
        state = known_state(settings.prefect_api_url) or {}
        return verify_markdown(markdown, server_version=state.get("version"))

    return verify


class Searcher(Protocol):
    def search(self, query: str, k: int = 3) -> list[Any]: ...


class OfflineAnswerer(Protocol):
    """Answers without the model (bot.offline.OfflineEngine); the slash command uses the same one."""

    async def answer(self, turn: Turn, reason: str) -> Reply: ...
ToolsForTurn = Callable[[Turn, list[str]], ToolRegistry]
LiveFactsReader = Callable[[str], Awaitable[Any]]  # question -> bot.offline.live_facts.LiveFacts | None


def prefect_version() -> str:
    from importlib.metadata import version

    return version("prefect")


def load_system_prompt(prompts_dir: Path | None = None) -> str:
    """system.md from BOT_PROMPTS_DIR when given, else the copy packaged with the bot."""
    return system_prompt_path(prompts_dir).read_text(encoding="utf-8").replace("{prefect_version}", prefect_version())


def trim_message(text: str, limit: int) -> str:
    """Keep the head and the tail of a very long message (tracebacks end with the useful line)."""
    if len(text) <= limit:
        return text
    head = int(limit * 0.7)
    tail = limit - head
    return f"{text[:head]}\n…[{len(text) - limit} characters trimmed]…\n{text[-tail:]}"


@dataclass
class Pipeline:
    settings: Settings
    tools_for_turn: ToolsForTurn
    model: ModelClient | None = None
    search: Searcher | None = None
    verify: Verifier | None = None
    offline: OfflineAnswerer | None = None
    system_prompt: str = field(default_factory=load_system_prompt)
    breaker: CircuitBreaker = field(default_factory=CircuitBreaker)
    live_facts: LiveFactsReader | None = None  # deterministic reads for live-state questions

    # --- messages ------------------------------------------------------------------------
    def _secrets(self) -> list[str]:
        return self.settings.secret_values()

    def _clean(self, text: str) -> str:
        return redact(text, self._secrets())

    def retrieved_context(self, question: str) -> str:
        """The recipes worth sending with the first call: the best match when it is a real match,
        and the runner-up only when it scores close to it. Lookups ("show all limits") get none,
        which keeps their prompts (re-sent every round) small."""
        if self.search is None or asks_about_live_state(question):
            return ""  # the model looks live state up; it can still call search_recipes
        hits = [h for h in self.search.search(question, k=2) if h.score >= MIN_RECIPE_SCORE]
        hits = [h for h in hits if h.score >= RUNNER_UP_SHARE * hits[0].score] if hits else []
        if not hits:
            return ""
        parts = [f"### Recipe: {h.recipe.title}\n{h.recipe.for_people()}" for h in hits]  # no self-tests
        return ("Verified recipes from our book that may answer this (prefer them; adapt names to "
                "the user's server):\n\n" + "\n\n".join(parts))

    def build_messages(self, turn: Turn) -> list[dict[str, Any]]:
        limit = self.settings.bot_message_max_chars
        messages: list[dict[str, Any]] = [{"role": "system", "content": self.system_prompt}]
        context = self.retrieved_context(turn.text)
        if context:
            messages.append({"role": "system", "content": context})
        for item in bounded_history(turn.history, self.settings.bot_history_max_messages,
                                    self.settings.bot_history_max_chars):
            content = self._clean(trim_message(item.text, limit))
            if item.role == "user" and item.user_id:
                content = f"<@{item.user_id}>: {content}"
            messages.append({"role": item.role, "content": content})
        messages.append({"role": "user", "content": self._clean(trim_message(turn.text, limit))})
        return messages

    # --- answering -------------------------------------------------------------------------
    async def answer(self, turn: Turn) -> Reply:
        """A turn with `may_propose=False` (Slack Connect guests) is answered read-only: no proposal tool."""
        started = time.perf_counter()
        if not turn.text.strip():
            return Reply(text=EMPTY_QUESTION)
        if self.model is None or not self.breaker.allow():
            reason = "no model is configured" if self.model is None else "the model is unreachable"
            return await self._offline(turn, reason)
        if self.model.health.blocked():  # a permanent problem stands: no request until the next trial
            return await self._offline(turn, MISCONFIGURED)
        deadline = time.monotonic() + self.settings.bot_answer_timeout_seconds
        proposals: list[str] = []
        try:
            reply = await self._answer_with_model(turn, deadline, proposals)
        except ModelMisconfigured:  # permanent: no retry, no breaker; logged once by ModelHealth
            return await self._offline(turn, MISCONFIGURED)
        except ModelNoAnswer as exc:  # the model answered, with nothing usable: not an outage
            log.warning("model gave no usable answer: %s", exc)
            return await self._offline(turn, str(exc), note=exc.note)
        except ContextTooLong:
            log.warning("conversation too long for the model even after trimming")
            return await self._offline(turn, "the conversation is too long for the model", note=TOO_LONG_NOTE)
        except ModelUnavailable as exc:
            self.breaker.record_failure()
            log.warning("model unavailable: %s", exc)
            if self.offline is not None and self.breaker.is_open:
                return await self._offline(turn, "the model is unreachable")
            return Reply(text=APOLOGY.format(reason=exc), proposals=proposals, failed=True)
        except Exception:
            log.exception("answer failed")
            return Reply(text=APOLOGY.format(reason="an internal error"), proposals=proposals, failed=True)
        self.breaker.record_success()
        reply.timings["total"] = time.perf_counter() - started
        return reply

    async def _offline(self, turn: Turn, reason: str, note: str | None = None) -> Reply:
        if self.offline is None:
            text = f"The model is off ({reason}). Nothing was changed." if reason == MISCONFIGURED else \
                APOLOGY.format(reason=reason)
            return Reply(text=f"{text}\n\n{note}" if note else text, offline=True, failed=True)
        reply = await self.offline.answer(turn, reason)
        reply.offline = True
        if note:
            reply.text += f"\n\n_{note}_"
        if self.verify is not None:  # recipes are verified, but names filled in from the server are not
            report = await asyncio.to_thread(self.verify, reply.text)
            self._settle(reply, report, corrected=False)
        return reply

    async def _answer_with_model(self, turn: Turn, deadline: float, proposals: list[str]) -> Reply:
        """The model's answer; for a live-state question, the live facts read beside it (concurrently)."""
        facts = asyncio.ensure_future(self.live_facts(turn.text)) if self.live_facts is not None else None
        try:
            reply = await self._model_reply(turn, deadline, proposals)
        except BaseException:
            if facts is not None:
                facts.cancel()
            raise
        if facts is not None:
            with_facts(reply, await facts)
        return reply

    async def _model_reply(self, turn: Turn, deadline: float, proposals: list[str]) -> Reply:
        assert self.model is not None
        messages = self.build_messages(turn)
        registry = self.tools_for_turn(turn, proposals)
        if not turn.may_propose:
            registry = ToolRegistry({n: t for n, t in registry.tools.items() if not t.changes_prefect})
            messages.insert(1, {"role": "system", "content": READ_ONLY_NOTE})
        result = await run_agent(self.model, messages, registry, self.settings.bot_max_tool_rounds,
                                 deadline, self.settings.bot_tool_result_max_chars,
                                 self.settings.bot_max_tool_calls_per_round, self._clean)
        reply = Reply(text=result.text, proposals=proposals, model_rounds=result.rounds,
                      prompt_tokens=result.prompt_tokens, completion_tokens=result.completion_tokens,
                      tool_calls=list(result.tool_calls), cached_tokens=result.cached_tokens,
                      reasoning_tokens=result.reasoning_tokens,
                      timings={"model": result.model_seconds, "tools": result.tool_seconds})
        if not reply.text:
            reply.text = ROUND_CAP_ANSWER.format(rounds=result.rounds - 1) if result.hit_round_cap else EMPTY_ANSWER
            return reply
        if self.verify is not None:
            await self._verify_and_correct(reply, messages, registry, deadline)
        reply.text = self._clean(reply.text)
        if result.left_out:
            reply.text += LEFT_OUT_NOTE.format(what=" and ".join(result.left_out))
        return reply

    async def _verify_and_correct(self, reply: Reply, messages: list[dict[str, Any]],
                                  registry: ToolRegistry, deadline: float) -> None:
        """One correction round when the verifier finds problems; then a caveat if still wrong."""
        assert self.verify is not None and self.model is not None
        report = await asyncio.to_thread(self.verify, reply.text)
        corrected = False
        if not report.ok and time.monotonic() < deadline - 5:
            messages.append({"role": "assistant", "content": reply.text})
            messages.append({"role": "user", "content": (
                "Our verifier checked your answer against the installed Prefect and found problems:\n"
                f"{report.feedback_for_model()}\n\nReply with the full corrected answer only.")})
            start = time.perf_counter()
            try:
                fixed = await run_agent(self.model, messages, registry, 1, deadline,
                                        self.settings.bot_tool_result_max_chars,
                                        self.settings.bot_max_tool_calls_per_round, self._clean)
            except ModelMisconfigured:
                raise  # the problem is recorded; the answer goes offline
            except ModelUnavailable:
                fixed = None
            reply.timings["model"] = reply.timings.get("model", 0) + time.perf_counter() - start
            if fixed is not None and fixed.text:
                reply.model_rounds += fixed.rounds
                reply.prompt_tokens += fixed.prompt_tokens
                reply.completion_tokens += fixed.completion_tokens
                reply.cached_tokens += fixed.cached_tokens
                reply.reasoning_tokens += fixed.reasoning_tokens
                reply.text = fixed.text
                report = await asyncio.to_thread(self.verify, reply.text)
                corrected = True
        self._settle(reply, report, corrected)

    @staticmethod
    def _settle(reply: Reply, report: Any, corrected: bool) -> None:
        """Record, count and log the verifier's outcome; a failed answer carries a visible caveat."""
        reply.verifier = report
        outcome = ("corrected" if corrected else "passed") if report.ok else "caveat"
        metrics.VERIFIER.labels(outcome).inc()
        log.info("verifier outcome=%s checked=%s errors=%s offline=%s", outcome, report.checked,
                 sum(f.severity == "error" for f in report.findings), reply.offline)
        if not report.ok:
            problems = "; ".join(f.message for f in report.findings if f.severity == "error")[:400]
            reply.text += CAVEAT.format(version=prefect_version(), problems=problems)
        older = [f.message for f in report.findings if f.kind == "version"]
        if older:
            reply.text += OLDER_SERVER.format(notes="; ".join(older))


EMPTY_QUESTION = ("Hi! Ask me about Prefect concurrency: for example *\"only one run of my-flow/prod at "
                  "a time\"*, *\"why is run brave-otter stuck?\"* or *\"show all limits\"*.")
ROUND_CAP_ANSWER = ("I looked things up {rounds} times without reaching an answer, so I stopped there. "
                    "Nothing was changed. Could you narrow the question (name the deployment, pool or run)?")
READ_ONLY_NOTE = ("This person is a guest from another Slack workspace: answer their question, but do not "
                  "propose limit changes (you have no tool for it in this conversation).")
EMPTY_ANSWER = "I came up empty on that one. Could you rephrase it, or name the deployment, pool or run?"


NOW = re.compile(r"\b(?:right\s+now|currently|at\s+the\s+moment|at\s+present|just\s+now)\b", re.IGNORECASE)


def asks_about_live_state(question: str) -> bool:
    """A question about what is happening now (a lookup, a diagnosis, what is full): recipes would ride
    along in every round's prompt for nothing, so none are pre-retrieved."""
    from bot.offline.intents import classify
    from bot.offline.live_facts import FULL, LEAK

    if NOW.search(question) or LEAK.search(question) or FULL.search(question):
        return True
    return classify(question).kind in ("diagnose", "list", "inspect")


def with_facts(reply: Reply, facts: Any | None) -> None:
    """Add the live facts as their own block: first when the model's text does not name the blocker."""
    if facts is None:
        return
    if facts.named_by(reply.text):
        reply.text = f"{reply.text}\n\n{facts.block()}"
    else:
        reply.text = f"{facts.block()}\n\n**The model's answer:**\n{reply.text}"
    reply.live_facts = facts.kind


def bounded_history(history: Sequence[HistoryMessage], max_messages: int,
                    max_chars: int) -> list[HistoryMessage]:
    """Newest messages first until either bound is hit; returned oldest first."""
    kept: list[HistoryMessage] = []
    total = 0
    for item in reversed(history[-max_messages:] if max_messages else []):
        total += len(item.text)
        if total > max_chars and kept:
            break
        kept.append(item)
    return list(reversed(kept))


def model_from_settings(settings: Settings) -> ModelClient | None:
    if not settings.model_configured:
        return None
    assert settings.openai_api_key is not None
    return ModelClient.create(
        settings.openai_api_key.get_secret_value(), settings.openai_base_url,
        ModelSettings(model=settings.openai_model, max_attempts=settings.bot_model_max_attempts,
                      request_timeout=settings.bot_model_timeout_seconds,
                      max_wait=settings.bot_model_retry_max_wait_seconds,
                      max_tokens=settings.bot_model_max_tokens or None,
                      reasoning_effort=None if settings.bot_model_reasoning_effort == "default"
                      else settings.bot_model_reasoning_effort),
    )


def build_pipeline(settings: Settings | None = None, approvals: Any | None = None) -> Pipeline:
    """Wire the real collaborators: model, recipe search, verifier, tools, offline answers."""
    from bot.agent.toolsets import tools_for_turn_factory
    from bot.knowledge.recipes import RecipeBook
    from bot.knowledge.search import RecipeSearch
    from bot.offline import OfflineEngine
    from bot.offline.live_facts import live_facts

    settings = settings or Settings()
    search = RecipeSearch(RecipeBook.load(recipes_dir(settings.bot_prompts_dir)))
    return Pipeline(
        settings=settings,
        tools_for_turn=tools_for_turn_factory(approvals),
        model=model_from_settings(settings),
        search=search,
        verify=verify_for_live_server(settings),
        offline=OfflineEngine(search, approvals),
        live_facts=live_facts,
        system_prompt=load_system_prompt(settings.bot_prompts_dir),
        breaker=CircuitBreaker(settings.bot_circuit_failure_threshold, settings.bot_circuit_reset_seconds),
    )
