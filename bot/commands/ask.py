"""`concurrency-bot ask "…"`: one question, the answer printed (rich Markdown, or JSON with --json)."""

from __future__ import annotations

import argparse
import asyncio
import json
import sys

HELP = "Ask one question and print the answer."


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("question", nargs="+", help="the question (quote it, or pass several words)")
    parser.add_argument("--json", action="store_true", help="print the answer as one JSON object")
    parser.add_argument("--user", help="who you are in proposals and the audit log (default terminal:<login>)")


async def _answer(runtime, text: str, user: str):
    from bot.turns import Turn

    reply = await runtime.pipeline.answer(Turn(text=text, user_id=user, channel="terminal",
                                               thread_ts=runtime.session_id, source="cli"))
    from bot.terminal.proposals import live_what_if

    proposals = [p for p in [await runtime.approvals.get(pid) for pid in reply.proposals] if p is not None]
    return reply, [(p, await live_what_if(runtime.approvals, p)) for p in proposals]


def as_json(reply, proposals) -> str:
    return json.dumps({
        "answer": reply.text,
        "offline": reply.offline,
        "failed": reply.failed,
        "proposals": [{"id": p.id, "status": p.status, "diff": p.diff, "what_if": what_if,
                       "expires_at": p.expires_at.isoformat()} for p, what_if in proposals],
        "tool_calls": reply.tool_calls,
        "model_rounds": reply.model_rounds,
        "timings": {k: round(v, 3) for k, v in reply.timings.items()},
    }, ensure_ascii=False)


def run(args: argparse.Namespace) -> int:
    from rich.console import Console

    from bot.embedded_prefect import PrefectStartError
    from bot.settings import Settings
    from bot.terminal import TerminalRenderer
    from bot.terminal.setup import quiet_logging
    from bot.terminal.startup import terminal_runtime

    settings = Settings()
    quiet_logging(settings)
    # With --json, stdout carries only the JSON: progress goes to stderr.
    renderer = TerminalRenderer(Console(stderr=True) if args.json else None)
    text = " ".join(args.question).strip()
    try:
        with terminal_runtime(settings, renderer, announce=not args.json) as runtime:
            with renderer.working():
                reply, proposals = asyncio.run(_answer(runtime, text, args.user or runtime.user_id))
    except PrefectStartError as exc:
        print(f"concurrency-bot ask: {exc}", file=sys.stderr)
        return 1
    if args.json:
        print(as_json(reply, proposals))
    else:
        renderer.reply(reply)
        for proposal, what_if in proposals:
            renderer.proposal(proposal.diff, proposal.id, proposal.reason, proposal.destructive, what_if)
            renderer.notice("Pending: an approver can approve it in Slack, or you can ask again in "
                            "`concurrency-bot chat` and approve it there.")
    return 1 if reply.failed else 0
