"""`concurrency-bot eval`: run the eval questions through the configured model and score them."""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from pathlib import Path

HELP = "Run the eval questions through the configured model and print a score table."


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--questions", type=Path, help="questions YAML (default tests/eval/questions.yaml)")
    parser.add_argument("--only", action="append", metavar="ID", help="run only this question id (repeatable)")
    parser.add_argument("--limit", type=int, help="run only the first N questions")
    parser.add_argument("--concurrency", type=int, default=2, help="questions in flight at once (default 2)")
    parser.add_argument("--json", action="store_true", help="print results and summary as JSON")
    parser.add_argument(
        "--min-essentials", type=float, default=0.0, help="exit 1 when the essentials ratio is below this (0..1)"
    )


def run(args: argparse.Namespace) -> int:
    from bot.knowledge.evaluation import DEFAULT_QUESTIONS, load_questions, render_table, run_eval, summarize
    from bot.pipeline import build_pipeline
    from bot.settings import Settings

    settings = Settings()
    if not settings.model_configured:
        print("eval: no model configured; set OPENAI_API_KEY (and OPENAI_BASE_URL, OPENAI_MODEL).", file=sys.stderr)
        return 2
    source = args.questions or DEFAULT_QUESTIONS
    if not source.is_file():  # the default set lives in the repository's tests/, not in the wheel
        print(f"eval: no questions file at {source}; pass --questions FILE.", file=sys.stderr)
        return 2
    questions = load_questions(source)
    if args.only:
        questions = [q for q in questions if q.id in set(args.only)]
    if args.limit:
        questions = questions[: args.limit]
    pipeline = build_pipeline(settings)
    results = asyncio.run(run_eval(pipeline, questions, args.concurrency))
    summary = summarize(results)
    if args.json:
        print(
            json.dumps(
                {"summary": summary.model_dump(), "results": [r.model_dump() for r in results]},
                indent=2,
                ensure_ascii=False,
            )
        )
    else:
        from rich.console import Console

        Console().print(render_table(results, summary))
    failed = summary.failed > 0 or summary.essentials_ratio < args.min_essentials
    return 1 if failed else 0
