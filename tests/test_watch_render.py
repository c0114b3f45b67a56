"""Incident text: untrusted names (runs, pools, limits) can never become a ping, a link or a broken span,
and the blocks stay within Slack's limits however many runs there are."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime, timedelta

from bot.prefect_ops.models import Holder, WaitingRun
from bot.slack.incident_cards import incident_blocks, plain, rollup_blocks
from bot.watch.incidents import Incident
from bot.watch.render import incident_lines

HOSTILE = "<!channel> <https://evil.example|click me> `x <@U123>"


def _incident(name: str = HOSTILE, runs: int = 3) -> Incident:
    now = datetime.now(UTC)
    return Incident(
        kind="waiting_on_limit", object_kind="work_pool", object_name=name, summary=f"pool {name}",
        since=now - timedelta(minutes=12), seen_at=now, limit=1, active_slots=1, waiting=runs,
        holders=[Holder(run_type="flow_run", id=uuid.uuid4(), name=name, state="Running", seconds_in_state=90)],
        waiting_runs=[WaitingRun(id=uuid.uuid4(), name=f"{name}-{i}") for i in range(runs)])


def test_hostile_names_are_shown_as_text():
    from bot.watch.render import holders_text, name, runs_text

    incident = _incident()
    shown = "\n".join([name(incident.object_name), holders_text(incident.holders),
                       runs_text(incident.waiting_runs, incident.waiting)])
    assert "<!channel>" not in shown and "<https://" not in shown and "<@U123>" not in shown
    assert "&lt;!channel&gt;" in shown
    assert shown.count("`") % 2 == 0  # a backtick in a name cannot end its code span early


def test_blocks_stay_within_slack_limits_with_many_runs():
    incident = _incident(name="p" * 300, runs=5000)
    blocks = plain(incident_blocks(incident, datetime.now(UTC)))
    assert len(blocks) <= 50
    for block in blocks:
        if block["type"] == "section":
            assert len(block["text"]["text"]) <= 3000
        for element in block.get("elements", []):
            if element.get("type") == "button":
                assert len(element["text"]["text"]) <= 75 and len(element["value"]) <= 2000
    rollup = plain(rollup_blocks([incident] * 100, "2026-12-01 10:00"))
    assert all(len(json.dumps(b["text"]["text"])) <= 3100 for b in rollup)
    assert "and 4997 more" in "\n".join(incident_lines(incident, datetime.now(UTC)))
