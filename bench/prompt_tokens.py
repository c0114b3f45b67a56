"""Prompt cost per question class, ours beside the naive bot, with the cached share and where the tokens go.

    python -m bench.prompt_tokens [--prefect-api-url URL] [--model gpt-5-mini]

Both pipelines are built as `serve` builds them (the naive one without pre-retrieval, as
bench/naive_bot.py does) and answer one question of each class against the bench's planned model
(bench/fakes.py, on the strict test model server), which reports prompt tokens and
`prompt_tokens_details.cached_tokens` the way OpenAI does. Each class is asked twice: the second
time shows what the provider's prompt cache serves. No load, no timing: tokens only.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import json
import tempfile
from typing import Any

from rich.console import Console
from rich.table import Table

from bench.fakes import BenchModelAPI, estimate_tokens
from bench.scenarios import plans, questions
from bench.seed import seed_lookup_targets

KINDS = ("knowledge", "lookup", "diagnosis")


def parts_of(request: dict[str, Any]) -> dict[str, int]:
    """Estimated tokens of each part of one request: system prompt, other system text, tools, the rest."""
    messages = request.get("messages") or []
    system = messages[0] if messages and messages[0].get("role") == "system" else None
    other_system = [m for m in messages[1:] if m.get("role") == "system"]
    rest = [m for m in messages if m is not system and m not in other_system]
    return {"system prompt": estimate_tokens(len(json.dumps(system))) if system else 0,
            "tool schemas": estimate_tokens(len(json.dumps(request.get("tools") or []))),
            "recipes and notes": estimate_tokens(len(json.dumps(other_system))) if other_system else 0,
            "conversation": estimate_tokens(len(json.dumps(rest)))}


async def measure(api_url: str, model: str) -> dict[str, Any]:
    import os

    os.environ["PREFECT_API_URL"] = api_url
    from bot.pipeline import build_pipeline
    from bot.settings import Settings
    from bot.turns import Turn

    seeded = await seed_lookup_targets(api_url)
    api = BenchModelAPI(plans(seeded), latency=0.0).start()
    data = tempfile.mkdtemp(prefix="bench-prompt-")
    settings = Settings(_env_file=None, openai_api_key="sk-bench-prompt-tokens-0123", openai_base_url=api.base_url,
                        openai_model=model, bot_data_dir=data, bot_model_max_attempts=1)
    ours = build_pipeline(settings)
    naive = dataclasses.replace(build_pipeline(settings), search=None)
    out: dict[str, Any] = {"model": model, "bots": {}}
    try:
        for base, (name, pipeline) in enumerate((("ours", ours), ("naive", naive))):
            rows = {}
            for n, kind in enumerate(KINDS * 2):  # each class twice: the second meets a warm prompt cache
                ref = f"{kind}-{100 * (base + 1) + n}"
                question = questions(seeded)[kind] + f" (ref {ref})"
                start = len(api.requests)
                await pipeline.answer(Turn(question, "UBENCH", channel="CBENCH"))
                requests = api.requests[start:]
                rounds = api.rounds_for(ref)
                figures = {"rounds": len(rounds), "prompt_tokens": sum(r.prompt_tokens for r in rounds),
                           "cached_tokens": sum(r.cached_tokens for r in rounds),
                           "completion_tokens": sum(r.completion_tokens for r in rounds),
                           "first_request": parts_of(requests[0]) if requests else {}}
                if n < len(KINDS):
                    rows[kind] = figures
                else:
                    rows[kind]["warm_cached_tokens"] = figures["cached_tokens"]
                    rows[kind]["warm_prompt_tokens"] = figures["prompt_tokens"]
            out["bots"][name] = rows
    finally:
        api.stop()
    return out


def show(result: dict[str, Any], console: Console) -> None:
    table = Table(title=f"Prompt cost per question class ({result['model']}; each class asked once in turn, "
                        "then again)")
    for column in ("Class", "Bot", "Rounds", "Prompt tokens", "Cached", "Cached share", "Cached share, again",
                   "Completion", "1st request: system / tools / recipes / conversation"):
        table.add_column(column, justify="right" if column not in ("Class", "Bot") else "left")
    for kind in KINDS:
        for bot in ("ours", "naive"):
            row = result["bots"][bot][kind]
            parts = row["first_request"]
            share = row["cached_tokens"] / row["prompt_tokens"] if row["prompt_tokens"] else 0.0
            again = row["warm_cached_tokens"] / row["warm_prompt_tokens"] if row["warm_prompt_tokens"] else 0.0
            table.add_row(kind, bot, str(row["rounds"]), f"{row['prompt_tokens']:,}", f"{row['cached_tokens']:,}",
                          f"{share:.0%}", f"{again:.0%}", f"{row['completion_tokens']:,}",
                          " / ".join(f"{parts.get(k, 0):,}" for k in ("system prompt", "tool schemas",
                                                                      "recipes and notes", "conversation")))
    console.print(table)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.prompt_tokens", description=__doc__.splitlines()[0])
    parser.add_argument("--prefect-api-url", help="use this Prefect server instead of starting one")
    parser.add_argument("--model", default="gpt-5-mini")
    parser.add_argument("--json", action="store_true", help="print the figures as JSON too")
    args = parser.parse_args(argv)
    server = None
    url = args.prefect_api_url
    if url is None:
        from tests.fakes.prefect_server import PrefectServer

        server = PrefectServer().start()
        url = server.url
    try:
        result = asyncio.run(measure(url, args.model))
    finally:
        if server is not None:
            server.stop()
    show(result, Console(width=160))
    if args.json:
        print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
