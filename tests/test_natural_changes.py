"""Change requests in everyday words, with no model (issue 17).

"cap the etl pool at 5", "limit X to one run at a time", "only one run of X at a time, skip
overlaps / queue them", "raise the db tag limit to 10", "pause / resume the Q queue": each ends in
the same proposal the strict grammar makes (applied only after approval, read back from the real
Prefect server) or in a precise answer about the name. Driven through the terminal chat (a
subprocess, as a user runs it) and through Slack (signed events into the running app, no model).
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from prefect import get_client

from bot.offline.intents import classify
from bot.offline.natural import parse_natural_change
from tests.approvals_support import make_deployment, make_pool, make_queue, pool_limit, unique
from tests.harness import BotHarness, mention, wait_until

REPO = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize(("text", "expected"), [
    ("cap the etl pool at 5", {"kind": "work_pool_limit", "name": "etl", "limit": 5}),
    ("limit nightly-etl to one run at a time", {"kind": None, "name": "nightly-etl", "limit": 1}),
    ("only one run of nightly at a time, skip overlaps",
     {"kind": "deployment_limit", "name": "nightly", "limit": 1, "collision_strategy": "CANCEL_NEW"}),
    ("only one run of nightly at a time, queue them",
     {"kind": "deployment_limit", "name": "nightly", "limit": 1, "collision_strategy": "ENQUEUE"}),
    ("raise the db tag limit to 10", {"kind": "tag_limit", "name": "db", "limit": 10}),
    ("pause the default queue", {"kind": "work_queue_pause", "action": "pause", "name": "default"}),
    ("pls resume queue default", {"kind": "work_queue_pause", "action": "resume", "name": "default"}),
    ("bump the critical queue limit to 4 thanks", {"kind": "work_queue_limit", "name": "critical", "limit": 4}),
])
def test_everyday_wording_is_read(text, expected):
    change = parse_natural_change(text)
    assert change is not None
    assert change.model_dump(include=set(expected)) == expected
    assert change.unread == []


def test_a_modifier_it_cannot_read_is_kept_not_dropped():
    change = parse_natural_change("cap the etl pool at 5 starting next tuesday")
    assert change is not None and change.unread == ["starting next tuesday"]


def test_strict_grammar_still_wins_and_questions_stay_questions():
    assert classify("set work pool etl limit to 5").kind == "change"
    assert classify("how do I limit my work pool to 5?").kind == "knowledge"
    assert classify("why is my run stuck").kind != "natural_change"
    assert classify("only one run of nightly at a time").kind == "knowledge"  # a topic until it says skip/queue


def _plain(text: str) -> str:
    return " ".join(text.replace("`", "").split())


def _env(tmp_path: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OPENAI_", "SLACK_"))}
    env.update(BOT_DATA_DIR=str(tmp_path / "data"), PYTHONPATH=str(REPO), COLUMNS="120",
               PREFECT_HOME=str(tmp_path / "client-home"))
    return env


async def _objects() -> dict[str, str]:
    pool = await make_pool(limit=2)
    deployment = await make_deployment(pool)
    queue = await make_queue(pool)
    return {"pool": pool, "deployment": deployment, "dep": deployment.split("/", 1)[1], "queue": queue,
            "tag": unique("tag")}


async def _deployment_limit(name: str) -> tuple[int | None, str | None]:
    async with get_client() as client:
        dep = await client.read_deployment_by_name(name)
    limit = dep.global_concurrency_limit.limit if dep.global_concurrency_limit else None
    strategy = dep.concurrency_options.collision_strategy if dep.concurrency_options else None
    return limit, getattr(strategy, "value", strategy)


async def _queue_paused(pool: str, queue: str) -> bool:
    async with get_client() as client:
        return bool((await client.read_work_queue_by_name(queue, work_pool_name=pool)).is_paused)


async def _tag_limit(tag: str) -> int:
    async with get_client() as client:
        return (await client.read_concurrency_limit_by_tag(tag)).concurrency_limit


@pytest.mark.timeout(300)
async def test_each_request_in_the_terminal_chat(prefect_api_url, tmp_path):
    o = await _objects()
    (tmp_path / "data").mkdir()
    script = "\n".join([
        f"cap the {o['pool']} pool at 5", "a",
        f"only one run of {o['dep']} at a time, skip overlaps", "a",
        f"limit {o['dep']} to 3 runs at a time, queue them", "l",
        f"raise the {o['tag']} tag limit to 10",  # no such tag: "raise" does not create
        f"set the {o['tag']} tag limit to 10", "a",
        f"pause the {o['queue']} queue", "a",
        f"resume the {o['queue']} queue", "l",
        f"cap the {o['pool'][:-2]} pool at 5",  # a near name: say which exist, propose nothing
        f"cap the {o['pool']} pool at 7 starting next tuesday",
        "/quit", "",
    ])
    result = await asyncio.to_thread(
        subprocess.run, [sys.executable, "-m", "bot.cli", "chat"], input=script, env=_env(tmp_path),
        cwd=tmp_path / "data", capture_output=True, text=True, timeout=240)
    out = _plain(result.stdout)  # the terminal renders Markdown: `code` loses its backticks
    assert result.returncode == 0, result.stderr[-2000:]
    assert f"work pool {o['pool']}: limit 2 → 5" in out
    assert f"deployment {o['deployment']}: limit none → 1, collision strategy" in out and "→ CANCEL_NEW" in out
    assert "limit 1 → 3, collision strategy CANCEL_NEW → ENQUEUE" in out
    assert f"There is no tag limit named {o['tag']}" in out
    assert f"tag limit {o['tag']}: limit none → 10" in out
    assert f"work queue {o['queue']} in pool {o['pool']}: running → paused" in out
    assert f"work queue {o['queue']} in pool {o['pool']}: paused → running" in out
    assert f"There is no work pool named {o['pool'][:-2]}" in out and f"did you mean {o['pool']}?" in out
    assert "I don't understand starting next tuesday" in out
    # What was approved landed on the real server; what was left pending did not.
    assert await pool_limit(o["pool"]) == 5
    assert await _deployment_limit(o["deployment"]) == (1, "CANCEL_NEW")
    assert await _tag_limit(o["tag"]) == 10
    assert await _queue_paused(o["pool"], o["queue"]) is True


@pytest.fixture
def slack_bot(fresh_slack, prefect_api_url, tmp_path):
    harness = BotHarness(fresh_slack, None, f"sqlite:///{tmp_path / 'bot.db'}", bot_streaming=False).start()
    yield harness
    harness.stop()


def _thread_text(slack_api, ts: str) -> str:
    posts = [c for c in slack_api.calls_to("chat.postMessage") if c.args.get("thread_ts") == ts]
    return " ".join(str(c.args.get("text", "")) + " " + str(c.args.get("blocks", "")) for c in posts)


async def test_each_request_through_slack_with_no_model(slack_bot, fresh_slack):
    o = await _objects()
    asks = {
        "pool": (f"cap the {o['pool']} pool at 5", f"work pool `{o['pool']}`: limit 2 → 5"),
        "one": (f"limit {o['dep']} to one run at a time", f"deployment `{o['deployment']}`: limit none → 1"),
        "skip": (f"only one run of {o['dep']} at a time, skip overlaps", "CANCEL_NEW"),
        "queue": (f"only one run of {o['dep']} at a time, queue them", "ENQUEUE"),
        "tag": (f"set the {o['tag']} tag limit to 10", f"tag limit `{o['tag']}`: limit none → 10"),
        "pause": (f"pause the {o['queue']} queue", "running → paused"),
        "near": (f"cap the {o['pool'][:-2]} pool at 5", f"did you mean `{o['pool']}`?"),
        "unread": (f"cap the {o['pool']} pool at 5 on weekdays", "I don't understand `on weekdays`"),
        "ping": (f"cap the {o['pool']} pool at 5 <!channel> see <https://evil.example|the docs>",
                 "so I proposed nothing"),
    }
    for i, (key, (text, _)) in enumerate(asks.items()):
        ts = f"{int(time.time())}.{i:06d}"
        asks[key] = (text, asks[key][1], ts)  # type: ignore[assignment]
        assert slack_bot.post_event(mention(text, ts=ts)).status == 200
    for key, (text, expected, ts) in asks.items():  # type: ignore[misc]
        try:
            wait_until(lambda ts=ts, expected=expected: expected in _thread_text(fresh_slack, ts), timeout=90,
                       what=f"{key}: {expected!r} in the thread of {text!r}")
        except AssertionError as exc:  # once in a loaded full run: say what the thread held instead
            raise AssertionError(f"{exc}; the thread held: {_thread_text(fresh_slack, ts)!r}") from None
    pending = slack_bot.call(lambda: slack_bot.runtime.approvals.pending())
    assert len([p for p in pending if o["pool"] in p.diff or o["deployment"] in p.diff or o["tag"] in p.diff
                or o["queue"] in p.diff]) == 6  # six cards; the near name and the unread modifier made none
    everything = " ".join(_thread_text(fresh_slack, ts) for _, _, ts in asks.values())  # type: ignore[misc]
    assert "<!channel>" not in everything and "<https://evil" not in everything  # echoed words never ping or link
    assert await pool_limit(o["pool"]) == 2  # nothing applied without an approver
    assert await _queue_paused(o["pool"], o["queue"]) is False
