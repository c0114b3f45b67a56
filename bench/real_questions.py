"""Offline answers to real users' questions (issue 24): the share that carry their essentials, per half.

    .venv/bin/python bench/real_questions.py [--misses] [--show-heldout-misses] [--semantic]

Answers go through the `ask` path with no model key against a real Prefect server (it starts one
unless PREFECT_API_URL is set). Prints one row per half: questions, share answered with every
essential, median and largest answer length. `--misses` lists the tuning half's misses; the
held-out half's misses are listed only with `--show-heldout-misses`, so tuning never looks at them.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def _table(rows: list[tuple[str, ...]]) -> str:
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    return "\n".join("  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)) for row in rows)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--misses", action="store_true", help="list the tuning half's misses")
    parser.add_argument("--show-heldout-misses", action="store_true", help="also list the held-out misses")
    args = parser.parse_args()

    from tests.fakes.prefect_server import server_for_script

    with server_for_script():
        from tests.real_questions import HALVES, answer_and_score, load, median_length, offline_pipeline, score

        pipeline = offline_pipeline()
        rows = [("half", "questions", "with essentials", "median chars", "max chars")]
        misses = {}
        for half in HALVES:
            results = asyncio.run(answer_and_score(load(half), pipeline))
            rows.append((half, str(len(results)), f"{score(results):.1%}", f"{median_length(results):.0f}",
                         str(max(len(r.answer) for r in results))))
            for batch in sorted({r.batch for r in results}):
                part = [r for r in results if r.batch == batch]
                rows.append((f"  batch {batch}", str(len(part)), f"{score(part):.1%}", f"{median_length(part):.0f}",
                             str(max(len(r.answer) for r in part))))
            misses[half] = [r for r in results if not r.passed]
        print(_table(rows))
        shown = ["tuning"] if args.misses else []
        shown += ["heldout"] if args.show_heldout_misses else []
        for half in shown:
            print(f"\n{half} misses ({len(misses[half])}):")
            for result in misses[half]:
                print(f"  {result.id:<40} route={result.route:<28} missing: {'; '.join(result.missing)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
