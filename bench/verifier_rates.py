"""Measure the verifier: detection on realistic wrong snippets, false positives on right ones.

    python -m bench.verifier_rates          # prints both rates and every miss
    python -m bench.verifier_rates --json   # one JSON object, for scripts

The corpora live in tests/verifier_corpus/ (wrong.yaml, right.yaml); tests/test_verifier_corpus.py
holds the rates to detection >= 95 % and false positives <= 1 %.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from bot.knowledge.verifier import verify_markdown

CORPUS = Path(__file__).resolve().parent.parent / "tests" / "verifier_corpus"
_LANGS = ("bash", "python", "yaml", "pycon")


@dataclass(frozen=True)
class Snippet:
    """One corpus entry as the Markdown the verifier sees."""

    index: int
    why: str
    markdown: str


@dataclass
class Rates:
    wrong: int = 0
    detected: int = 0
    right: int = 0
    false_positives: int = 0
    misses: list[Snippet] = field(default_factory=list)
    flagged: list[tuple[Snippet, list[str]]] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def detection(self) -> float:
        return self.detected / self.wrong if self.wrong else 0.0

    @property
    def false_positive_rate(self) -> float:
        return self.false_positives / self.right if self.right else 0.0


def load(name: str) -> list[Snippet]:
    """The entries of tests/verifier_corpus/<name>.yaml as Markdown answers."""
    entries = yaml.safe_load((CORPUS / f"{name}.yaml").read_text())
    snippets = []
    for index, entry in enumerate(entries):
        if "md" in entry:
            markdown = entry["md"]
        else:
            [lang] = [k for k in _LANGS if k in entry]
            markdown = f"```{lang}\n{entry[lang].rstrip()}\n```\n"
        snippets.append(Snippet(index=index, why=entry.get("why", ""), markdown=markdown))
    return snippets


def measure() -> Rates:
    rates = Rates()
    start = time.perf_counter()
    for snippet in load("wrong"):
        rates.wrong += 1
        if verify_markdown(snippet.markdown).errors:
            rates.detected += 1
        else:
            rates.misses.append(snippet)
    for snippet in load("right"):
        rates.right += 1
        errors = verify_markdown(snippet.markdown).errors
        if errors:
            rates.false_positives += 1
            rates.flagged.append((snippet, [e.message for e in errors]))
    rates.seconds = time.perf_counter() - start
    return rates


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    args = parser.parse_args(argv)
    rates = measure()
    if args.json:
        print(json.dumps({
            "wrong": rates.wrong, "detected": rates.detected, "detection": round(rates.detection, 4),
            "right": rates.right, "false_positives": rates.false_positives,
            "false_positive_rate": round(rates.false_positive_rate, 4), "seconds": round(rates.seconds, 2),
        }))
        return 0
    print(f"detection:       {rates.detected}/{rates.wrong} wrong snippets flagged = {rates.detection:.1%}")
    print(f"false positives: {rates.false_positives}/{rates.right} right snippets flagged = "
          f"{rates.false_positive_rate:.1%}")
    print(f"({rates.seconds:.1f} s, including the first CLI tree and import warm-up)")
    for snippet in rates.misses:
        print(f"MISSED wrong #{snippet.index}: {snippet.why}")
    for snippet, messages in rates.flagged:
        print(f"FLAGGED right #{snippet.index}: {snippet.why}: {'; '.join(messages)[:300]}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
