"""`serve` runs the doctor's checks at start: one log block, a refusal on an unsafe ✗, and the current ✗/⚠
rows on the Home tab (approvers only) and at `/healthz?detail=1` (behind BOT_METRICS_TOKEN)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

from aiohttp.test_utils import TestClient, TestServer

from bot.doctor.report import Report, Row, Status
from bot.doctor.state import DoctorState
from bot.slack.server import web_application
from tests.fakes.prefect_server import free_port
from tests.harness import APP_TOKEN, BOT_TOKEN, SIGNING_SECRET, SlackSender
from tests.waiting import wait_until

BIN = Path(sys.executable).with_name("concurrency-bot")
METRICS_TOKEN = "metrics-token-abcdef"


def serve_env(slack, tmp_path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SLACK_", "OPENAI_", "BOT_"))}
    env.update({"SLACK_BOT_TOKEN": BOT_TOKEN, "SLACK_SIGNING_SECRET": SIGNING_SECRET,
                "SLACK_API_URL": f"{slack.url}/api/", "BOT_DATABASE_URL": f"sqlite:///{tmp_path / 'bot.db'}",
                "BOT_DATA_DIR": str(tmp_path), **extra})
    return env


def test_serve_refuses_to_start_on_an_unsafe_fail(fresh_slack, prefect_api_url, tmp_path):
    env = serve_env(fresh_slack, tmp_path, SLACK_BOT_TOKEN=APP_TOKEN)  # the xapp- token in the bot's place
    done = subprocess.run([str(BIN), "serve", "--host", "127.0.0.1", "--port", str(free_port())], env=env,
                          cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert done.returncode == 2, done.stderr[-2000:]
    assert "not starting, this setup is unsafe" in done.stderr and "SLACK_BOT_TOKEN is an app-level token" \
        in done.stderr and "Traceback" not in done.stderr
    assert APP_TOKEN not in done.stderr


def get(url: str, token: str | None = None) -> tuple[int, bytes]:
    request = urllib.request.Request(url)
    if token:
        request.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()
    except OSError:  # not listening yet
        return 0, b""


def home_text(slack, user: str) -> str:
    return json.dumps(slack.published.get(user, {}).get("blocks", []), ensure_ascii=False)


def test_serve_logs_the_checks_and_shows_problems_to_approvers_and_behind_the_token(fresh_slack, prefect_api_url,
                                                                                   tmp_path):
    fresh_slack.not_in_channels.add("C0OPS")
    port = free_port()
    env = serve_env(fresh_slack, tmp_path, BOT_ALLOWED_CHANNELS="C0OPS", BOT_APPROVER_IDS="UAPPROVER",
                    BOT_METRICS_TOKEN=METRICS_TOKEN)
    process = subprocess.Popen([str(BIN), "serve", "--host", "127.0.0.1", "--port", str(port)], env=env,
                               cwd=tmp_path, stderr=subprocess.PIPE, text=True)
    try:
        wait_until(lambda: process.poll() is not None or get(f"http://127.0.0.1:{port}/healthz")[0] == 200,
                   timeout=90, what="serve to come up")
        assert process.poll() is None, process.stderr.read()
        base = f"http://127.0.0.1:{port}/healthz?detail=1"
        assert get(base)[0] == 401 and get(base, "wrong-token")[0] == 401
        status, body = get(base, METRICS_TOKEN)
        detail = json.loads(body)["doctor"]
        assert status == 200 and detail["checked"] is True
        problems = {(p["group"], p["name"]): p for p in detail["problems"]}
        ops = problems[("Slack", "in C0OPS")]
        assert ops["status"] == "fail" and "/invite" in ops["fix"]
        assert problems[("Model", "model")]["status"] == "warn"  # no key: offline answers only

        sender = SlackSender.at(port)
        for user in ("UAPPROVER", "U0SOMEONE"):
            sender.post_event({"type": "app_home_opened", "user": user, "channel": "D0HOME", "tab": "home",
                               "event_ts": f"{time.time():.6f}"})
        wait_until(lambda: "UAPPROVER" in fresh_slack.published and "U0SOMEONE" in fresh_slack.published,
                   timeout=30, what="both Home tabs")
        assert "Setup problems" in home_text(fresh_slack, "UAPPROVER")
        assert "in C0OPS" in home_text(fresh_slack, "UAPPROVER") and "offline answers only" in home_text(
            fresh_slack, "UAPPROVER")
        assert "Setup problems" not in home_text(fresh_slack, "U0SOMEONE")
    finally:
        process.terminate()
        _, stderr = process.communicate(timeout=30)
    assert "setup checks (concurrency-bot doctor)" in stderr and "✗ in C0OPS" in stderr
    assert stderr.count("setup checks (concurrency-bot doctor)") == 1


async def test_health_detail_is_refused_without_a_configured_token():
    state = DoctorState()
    state.set(Report([Row("Slack", "token", Status.FAIL, "refused", "set it")]))
    from slack_bolt.async_app import AsyncApp

    app = AsyncApp(token=BOT_TOKEN, signing_secret=SIGNING_SECRET)
    async with TestClient(TestServer(web_application(app, health_detail=lambda: {"doctor": state.detail()}))) as client:
        refused = await client.get("/healthz?detail=1")
        plain = await client.get("/healthz")
        assert refused.status == 403 and "BOT_METRICS_TOKEN" in (await refused.json())["error"]
        assert plain.status == 200 and await plain.json() == {"ok": True}


def test_make_run_without_settings_shows_the_table_above_the_chat(prefect_api_url, tmp_path):
    """`make run` is `concurrency-bot start`: with no Slack token it prints the doctor table, then chats."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SLACK_", "OPENAI_", "BOT_"))}
    env.update(HOME=str(tmp_path), BOT_DATA_DIR=str(tmp_path / "data"), COLUMNS="120")
    done = subprocess.run([str(BIN), "start"], input="/quit\n", env=env, cwd=tmp_path, capture_output=True,
                          text=True, timeout=240)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    out = done.stdout
    table, banner = out.find("Settings\n  ✓ settings"), out.find("Prefect concurrency copilot")
    assert 0 <= table < banner, out
    assert "⚠ Slack" in out and "offline answers only" in out and "✓ version" in out and "0 ✗" in out
    assert "Traceback" not in done.stderr
