"""The naive baseline, built by injection: one answer at a time, recipes only through a tool call.

`python -m bench.naive_bot serve --port N` takes the same environment as `concurrency-bot serve`.
It composes the real runtime pieces, swapping in a Responder that handles messages under one
global lock (as a worker that takes one job at a time would) and a Pipeline without
pre-retrieval, so the model must call `search_recipes` to see a recipe.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
from dataclasses import dataclass, field
from typing import Any

from slack_sdk.web.async_client import AsyncWebClient

from bot.settings import Settings
from bot.slack.responder import Responder


@dataclass
class SequentialResponder(Responder):
    """Every message waits for the one before it to be answered (reaction included)."""

    lock: asyncio.Lock = field(default_factory=asyncio.Lock)

    async def handle(self, client: AsyncWebClient, event: dict[str, Any], context: dict[str, Any]) -> None:
        async with self.lock:
            await super().handle(client, event, context)


def build_naive_runtime(settings: Settings) -> Any:
    return build_runtime_variant(settings, SequentialResponder, search=None)


def build_runtime_variant(settings: Settings, responder_type: type[Responder] = Responder,
                          tools_for_turn_factory: Any = None, **pipeline_changes: Any) -> Any:
    """The production composition (bot/runtime.py) with one part swapped: for baselines and what-ifs."""
    from bot.pipeline import build_pipeline
    from bot.runtime import Runtime, build_approvals
    from bot.slack.app import build_app, web_client
    from bot.slack.approval_handlers import post_proposal_cards, register_approval_handlers
    from bot.store import Store

    store = Store.open(settings.database_url)
    client = web_client(settings)
    approvals = build_approvals(settings, store, client)
    if tools_for_turn_factory is not None:
        pipeline_changes["tools_for_turn"] = tools_for_turn_factory(approvals)
    pipeline = dataclasses.replace(build_pipeline(settings, approvals), **pipeline_changes)
    responder = responder_type(settings, store, pipeline, post_cards=lambda c, ch, ts, ids: post_proposal_cards(
        approvals, c, ch, ts, ids))
    app = build_app(settings, responder, client=client)
    register_approval_handlers(app, approvals, settings)
    return Runtime(settings, store, pipeline, responder, app, approvals)


async def serve(host: str, port: int, build: Any = build_naive_runtime) -> None:
    from bot.slack.server import serve_http

    runtime = build(Settings())
    try:
        await serve_http(runtime.app, host, port)
    finally:
        await runtime.close()


def main(build: Any = build_naive_runtime, prog: str = "python -m bench.naive_bot") -> None:
    parser = argparse.ArgumentParser(prog=prog)
    parser.add_argument("command", choices=["serve"])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=3000)
    args = parser.parse_args()
    asyncio.run(serve(args.host, args.port, build))


if __name__ == "__main__":
    main()
