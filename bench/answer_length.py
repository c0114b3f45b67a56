"""What a longer offline answer buys on real questions (issue 24): the score at several length caps.

    .venv/bin/python bench/answer_length.py [--caps 1240,1600,2000,2600] [--extras 3,6,6,9]

The offline answer is the routed recipe's short answer plus up to `extras` units of the book that
bring what the question asks (bot.offline.compose), all within a cap (the bot uses 1,240
characters and 3 units). For each cap this answers every real question through the `ask` path
with no model key against a real Prefect server and prints the share that carries its essentials
and the median length, per half and for the newest batches. Only aggregates are printed.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--caps", default="1240,1600,2000,2600", help="answer length caps, characters")
    parser.add_argument("--extras", default="3,6,6,9", help="units added at most, one per cap")
    args = parser.parse_args()
    caps = [int(c) for c in args.caps.split(",")]
    extras = [int(e) for e in args.extras.split(",")]
    if len(extras) != len(caps):
        parser.error("--extras needs one value per cap")

    from tests.fakes.prefect_server import server_for_script

    with server_for_script():
        from bot.offline import OfflineEngine
        from tests.real_questions import HALVES, answer_and_score, load, median_length, offline_pipeline, score

        pipeline = offline_pipeline()
        search = pipeline.offline.search
        questions = {half: load(half) for half in HALVES}
        newest = sorted({q.batch for half in HALVES for q in questions[half]})[-2:]
        groups = [(half, None) for half in HALVES] + [(f"heldout batch {b}", b) for b in newest]
        print(f"{'cap':>5} {'units':>5}  " + "  ".join(f"{name:>22}" for name, _ in groups))
        for cap, most in zip(caps, extras, strict=True):
            pipeline.offline = OfflineEngine(search, answer_max_chars=cap, extras_max=most)
            results = {half: asyncio.run(answer_and_score(questions[half], pipeline)) for half in HALVES}
            cells = []
            for name, batch in groups:
                part = results[name] if batch is None else [r for r in results["heldout"] if r.batch == batch]
                cells.append(f"{score(part):6.1%} median {median_length(part):5.0f}")
            print(f"{cap:>5} {most:>5}  " + "  ".join(f"{cell:>22}" for cell in cells), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
