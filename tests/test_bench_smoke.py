"""`python -m bench.run --smoke` runs end to end: both bots answer, the table prints, JSON is written.

No timing is asserted here (CI machines are noisy); the figures belong to `make bench`.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent

pytestmark = pytest.mark.bench


def test_smoke_run_prints_the_targets_table_and_writes_json(prefect_api_url, tmp_path):
    done = subprocess.run(
        [sys.executable, "-m", "bench.run", "--smoke", "--prefect-api-url", prefect_api_url,
         "--results-dir", str(tmp_path), "--no-map"],
        cwd=REPO, capture_output=True, text=True, timeout=240, check=False,
    )
    assert done.returncode == 0, done.stderr[-4000:]
    for heading in ("Targets (issue 8)", "Ack latency p99", "Bot overhead p50", "Per answer",
                    "Against the naive baseline"):
        assert heading in done.stdout, done.stdout[-4000:]
    [result] = list(tmp_path.glob("*.json"))
    report = json.loads(result.read_text())
    ours, naive = report["ours"], report["naive"]
    assert ours["load"]["answered"] == ours["load"]["sent"] > 0
    assert ours["burst"]["answered"] == ours["burst"]["questions"]
    rounds = {a["kind"]: a["model_rounds"] for a in ours["answers"]}
    assert rounds == {"knowledge": 1, "lookup": 2, "diagnosis": 2}
    assert {a["kind"]: a["bot_counted_rounds"] for a in ours["answers"]} == rounds  # the bot's own metric agrees
    assert {a["kind"]: a["model_rounds"] for a in naive["answers"]}["knowledge"] == 2  # recipes by tool call
    assert "search_recipes" in next(a["tools"] for a in naive["answers"] if a["kind"] == "knowledge")
    assert {t["name"] for t in report["targets"]} >= {"Ack latency p99", "Bot overhead p50"}
