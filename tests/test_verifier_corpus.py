"""Measured, not hoped: the verifier's detection and false-positive rates on our two corpora.

tests/verifier_corpus/wrong.yaml holds realistic model mistakes, right.yaml correct snippets in the
style of Prefect's docs and good answers. `python -m bench.verifier_rates` prints the same figures.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from bench.verifier_rates import load, measure
from bot.knowledge.verifier import verify_markdown


def test_the_corpora_are_big_enough_and_distinct():
    wrong, right = load("wrong"), load("right")
    assert len(wrong) >= 120 and len(right) >= 120
    assert len({s.markdown for s in wrong}) == len(wrong)
    assert len({s.markdown for s in right}) == len(right)
    assert not {s.markdown for s in wrong} & {s.markdown for s in right}


def test_detection_at_least_95_percent_and_false_positives_at_most_1_percent():
    rates = measure()
    misses = [f"#{s.index} {s.why}" for s in rates.misses]
    flagged = [f"#{s.index} {s.why}: {m}" for s, m in rates.flagged]
    assert rates.detection >= 0.95, misses
    assert rates.false_positive_rate <= 0.01, flagged


def test_the_corpora_include_synopses_and_pycon_sessions():
    right = [s.markdown for s in load("right")]
    assert sum("[OPTIONS]" in m or "COMMAND" in m for m in right) >= 8
    assert sum(">>>" in m for m in right) >= 5


def test_each_wrong_snippet_is_caught_for_its_own_mistake_not_for_a_typo():
    """Every error in the wrong corpus is one of a few kinds, none of them a SyntaxError by accident."""
    for snippet in load("wrong"):
        errors = verify_markdown(snippet.markdown).errors
        syntax = [e for e in errors if e.message.startswith("SyntaxError")]
        assert not syntax or "syntax error" in snippet.why, (snippet.why, syntax)


def test_the_rates_script_prints_both_figures():
    root = Path(__file__).resolve().parent.parent
    result = subprocess.run([sys.executable, "-m", "bench.verifier_rates", "--json"], cwd=root,
                            capture_output=True, text=True, timeout=240)
    assert result.returncode == 0, result.stderr[-2000:]
    figures = json.loads(result.stdout.strip().splitlines()[-1])
    assert figures["wrong"] == len(load("wrong")) and figures["right"] == len(load("right"))
    assert figures["detection"] >= 0.95 and figures["false_positive_rate"] <= 0.01
