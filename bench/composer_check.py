"""Does the answer composer generalise? Measured on the tuning half alone, with books that never saw it.

    .venv/bin/python bench/composer_check.py [--views NAME,...] [--set NAME=VALUE ...] [--misses]

The tuning half is saturated on the current book (its recipes were written question by question),
so a gain there says little. Each view pairs tuning questions with a recipe book as it was *before*
anyone tuned on them (read from git), and answers them twice through the offline `ask` path against
a real Prefect server: with the composer's extras off (the routed recipe's short answer, as before
issue 24 round 3) and on. The held-out half is never loaded here.

Views:
  current      the current book, every tuning batch (saturated: shows what the extras cost in length)
  pre-tuning   the book at 5cde666 (11 recipes, before any real-question tuning), batches 1-3
  pre-batch-4  the book at e65c839 (before batch 4's tuning), batch 4
  batch-5      the current book, batch 5 (before anyone tunes on it)
"""

from __future__ import annotations

import argparse
import asyncio
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

VIEWS = {
    "current": (None, None),
    "pre-tuning": ("5cde666", {1, 2, 3}),
    "pre-batch-4": ("e65c839", {4}),
    "batch-5": (None, {5}),
}


def _book_at(revision: str, into: Path) -> Path:
    """The prompts folder (system.md and recipes/) as it was at `revision`."""
    into.mkdir(parents=True)
    archive = subprocess.run(["git", "archive", revision, "prompts"], cwd=ROOT, check=True, capture_output=True)
    subprocess.run(["tar", "-x", "-C", str(into)], input=archive.stdout, check=True)
    return into / "prompts"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--views", default="current,pre-tuning,pre-batch-4")
    parser.add_argument("--set", action="append", default=[], metavar="NAME=VALUE",
                        help="override a bot.offline.compose constant (tuning runs only)")
    parser.add_argument("--misses", action="store_true", help="list each view's misses with the composer on")
    args = parser.parse_args()

    from bot.offline import compose

    for item in args.set:
        name, _, value = item.partition("=")
        setattr(compose, name, type(getattr(compose, name))(value))

    from tests.fakes.prefect_server import server_for_script

    with server_for_script(), tempfile.TemporaryDirectory() as scratch:
        from bot.pipeline import build_pipeline
        from bot.settings import Settings
        from tests.real_questions import answer_and_score, load, median_length, score

        tuning = load("tuning")
        header = ("view", "questions", "off", "on", "gained", "lost", "median off", "median on", "max on")
        rows = [header]
        misses = {}
        for view in args.views.split(","):
            revision, batches = VIEWS[view]
            prompts = _book_at(revision, Path(scratch) / view) if revision else None
            questions = [q for q in tuning if batches is None or q.batch in batches]
            if not questions:
                rows.append((view, "0", "-", "-", "-", "-", "-", "-", "-"))
                continue
            pipeline = build_pipeline(Settings(openai_api_key=None, bot_prompts_dir=prompts))
            pipeline.offline.extras = False
            off = asyncio.run(answer_and_score(questions, pipeline))
            pipeline.offline.extras = True
            on = asyncio.run(answer_and_score(questions, pipeline))
            gained = sum(b.passed and not a.passed for a, b in zip(off, on, strict=True))
            lost = sum(a.passed and not b.passed for a, b in zip(off, on, strict=True))
            rows.append((view, str(len(questions)), f"{score(off):.1%}", f"{score(on):.1%}", str(gained), str(lost),
                         f"{median_length(off):.0f}", f"{median_length(on):.0f}",
                         str(max(len(r.answer) for r in on))))
            misses[view] = [r for r in on if not r.passed]
        widths = [max(len(row[i]) for row in rows) for i in range(len(header))]
        print("\n".join("  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)) for row in rows))
        if args.misses:
            for view, missed in misses.items():
                print(f"\n{view} misses with the composer on ({len(missed)}):")
                for result in missed:
                    print(f"  {result.id:<40} route={result.route:<28} missing: {'; '.join(result.missing)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
