"""Turn the collected questions into two JSONL files: a tuning half and a held-out half.

Why a script: the split must be reproducible and must happen before anyone writes essentials or
tunes the router, so the held-out score means something. The order is fixed by sorting on the
question id, then shuffled with a fixed seed; the first half is the tuning half.

Run from the repository root:  python tests/data/real_questions/make_split.py
It rewrites tuning.jsonl and heldout.jsonl only when they do not exist yet (pass --force to
redo it). Re-running never changes which half a question is in, because the seed and the input
are fixed.

Later batches (raw_collected_2.txt to raw_collected_7.txt) were collected afterwards.
`--add-batch N` splits batch N on its own, with its own seed, after dropping ids already in an
earlier batch, and appends its rows (marked "batch": N) to the same two files without touching
any earlier row, so earlier splits stay exactly as they were. `--check` recomputes every split
and fails if a file disagrees.
"""

from __future__ import annotations

import json
import random
import re
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
RAW = HERE / "raw_collected.txt"
SEED = 20261205  # the day the split was made; never change it
RAW_2 = HERE / "raw_collected_2.txt"
SEED_2 = 2026120502  # batch 2's own seed; never change it
RAW_3 = HERE / "raw_collected_3.txt"
SEED_3 = 2026120503  # batch 3's own seed; never change it
RAW_4 = HERE / "raw_collected_4.txt"
SEED_4 = 2026120504  # batch 4's own seed; never change it
RAW_5 = HERE / "raw_collected_5.txt"
SEED_5 = 2026120505  # batch 5's own seed; never change it
RAW_6 = HERE / "raw_collected_6.txt"
SEED_6 = 2026120506  # batch 6's own seed; never change it
RAW_7 = HERE / "raw_collected_7.txt"
SEED_7 = 2026120507  # batch 7's own seed; never change it
LATER_BATCHES = {2: (RAW_2, SEED_2), 3: (RAW_3, SEED_3), 4: (RAW_4, SEED_4), 5: (RAW_5, SEED_5),
                 6: (RAW_6, SEED_6), 7: (RAW_7, SEED_7)}
TUNING = HERE / "tuning.jsonl"
HELDOUT = HERE / "heldout.jsonl"


def question_id(url: str) -> str:
    """A short stable id from the source link."""
    slack = re.search(r"linen\.prefect\.io/t/(\d+)/", url)
    if slack:
        return f"slack-{slack.group(1)}"
    gh = re.search(r"github\.com/([^/]+)/([^/]+)/issues/(\d+)", url)
    if gh:
        owner, repo, number = gh.groups()
        prefix = "prefect" if (owner, repo) == ("PrefectHQ", "prefect") else f"{owner}-{repo}".lower()
        return f"gh-{prefix}-{number}"
    disc = re.search(r"discourse\.prefect\.io/t/[^/]+/(\d+)", url)
    if disc:
        return f"discourse-{disc.group(1)}"
    raise ValueError(f"unknown source: {url}")


def source_of(url: str) -> str:
    if "linen.prefect.io" in url:
        return "prefect-community-slack"
    if "discourse.prefect.io" in url:
        return "prefect-discourse"
    return "github-issue"


def read_raw(path: Path = RAW) -> list[dict]:
    records: dict[str, dict] = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        if not line.strip() or line.startswith("#"):
            continue
        url, question, answer = (part.strip() for part in line.split(" | ", 2))
        qid = question_id(url)
        if qid in records:  # dedupe: the first sighting wins
            continue
        records[qid] = {
            "id": qid,
            "source": source_of(url),
            "url": url,
            "question": question,
            "answer": None if answer == "-" else answer,
        }
    return [records[key] for key in sorted(records)]


def split(records: list[dict], seed: int = SEED) -> tuple[list[dict], list[dict]]:
    shuffled = list(records)
    random.Random(seed).shuffle(shuffled)
    half = (len(shuffled) + 1) // 2
    return shuffled[:half], shuffled[half:]


def write(path: Path, rows: list[dict]) -> None:
    with path.open("w", encoding="utf-8") as out:
        for row in sorted(rows, key=lambda r: r["id"]):
            out.write(json.dumps(row, ensure_ascii=False) + "\n")


def later_batch(number: int) -> tuple[list[dict], list[dict]]:
    """A later batch split on its own: ids already in an earlier batch are dropped first."""
    seen = {r["id"] for r in read_raw(RAW)}
    for earlier in range(2, number):
        seen |= {r["id"] for r in read_raw(LATER_BATCHES[earlier][0])}
    raw, seed = LATER_BATCHES[number]
    records = [dict(r, batch=number) for r in read_raw(raw) if r["id"] not in seen]
    return split(records, seed)


def _rows(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line]


def add_batch(number: int) -> int:
    tuning, heldout = later_batch(number)
    for path, new in ((TUNING, tuning), (HELDOUT, heldout)):
        rows = _rows(path)
        have = {r["id"] for r in rows}
        write(path, rows + [r for r in new if r["id"] not in have])
    print(f"batch {number}: {len(tuning) + len(heldout)} new questions -> tuning {len(tuning)}, "
          f"held-out {len(heldout)} (seed {LATER_BATCHES[number][1]})")
    return 0


def check() -> int:
    """Both files hold exactly the halves the two seeded splits give."""
    tuning, heldout = split(read_raw(RAW))
    for number in LATER_BATCHES:
        t, h = later_batch(number)
        tuning, heldout = tuning + t, heldout + h
    for path, expected in ((TUNING, tuning), (HELDOUT, heldout)):
        if {r["id"] for r in _rows(path)} != {r["id"] for r in expected}:
            print(f"{path.name} does not match the seeded split", file=sys.stderr)
            return 1
    print("both files match the seeded splits")
    return 0


def main(argv: list[str]) -> int:
    if "--check" in argv:
        return check()
    if "--add-batch" in argv:
        return add_batch(int(argv[argv.index("--add-batch") + 1]))
    if (TUNING.exists() or HELDOUT.exists()) and "--force" not in argv:
        print("split already made; pass --force to rewrite it", file=sys.stderr)
        return 1
    records = read_raw()
    tuning, heldout = split(records)
    write(TUNING, tuning)
    write(HELDOUT, heldout)
    print(f"{len(records)} questions -> tuning {len(tuning)}, held-out {len(heldout)} (seed {SEED})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
