"""`concurrency-bot serve` as a real process: clear errors for missing settings, JSON logs, metrics."""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

from bot.logging_setup import configure_logging
from bot.settings import Settings
from tests.fakes.model_api import text
from tests.fakes.prefect_server import free_port
from tests.harness import BOT_TOKEN, MODEL_KEY, SIGNING_SECRET, BotHarness, mention

BIN = Path(sys.executable).with_name("concurrency-bot")


def run_serve(env: dict[str, str]) -> subprocess.CompletedProcess:
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("SLACK_", "OPENAI_", "BOT_"))}
    return subprocess.run([str(BIN), "serve", "--port", str(free_port())], env={**clean, **env},
                          capture_output=True, text=True, timeout=120)


def test_serve_names_the_missing_setting(tmp_path):
    no_token = run_serve({"BOT_DATA_DIR": str(tmp_path)})
    assert no_token.returncode == 2
    assert "SLACK_BOT_TOKEN" in no_token.stderr and "Traceback" not in no_token.stderr

    no_mode = run_serve({"BOT_DATA_DIR": str(tmp_path), "SLACK_BOT_TOKEN": BOT_TOKEN})
    assert no_mode.returncode == 2
    assert "SLACK_SIGNING_SECRET" in no_mode.stderr and "SLACK_APP_TOKEN" in no_mode.stderr


def test_http_mode_process_logs_json_without_secrets_and_serves_metrics(fresh_slack, fresh_model, prefect_api_url,
                                                                       tmp_path):
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SLACK_", "OPENAI_", "BOT_"))}
    env.update(SLACK_BOT_TOKEN=BOT_TOKEN, SLACK_SIGNING_SECRET=SIGNING_SECRET,
               SLACK_API_URL=f"{fresh_slack.url}/api/", OPENAI_API_KEY=MODEL_KEY,
               OPENAI_BASE_URL=fresh_model.base_url, BOT_DATABASE_URL=f"sqlite:///{tmp_path / 'bot.db'}",
               BOT_LOG_JSON="true", BOT_LOG_LEVEL="DEBUG", BOT_STREAMING="false")
    process = subprocess.Popen([str(BIN), "serve", "--host", "127.0.0.1", "--port", str(port)], env=env,
                               stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 90
        while True:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=2):
                    break
            except OSError:
                assert process.poll() is None, process.stderr.read()
                assert time.monotonic() < deadline, "serve did not come up"
                time.sleep(0.3)
        fresh_model.script(text("process answer"))
        client = BotHarness(fresh_slack, fresh_model, "unused")
        client.port = port
        assert client.post_event(mention(f"my token is {BOT_TOKEN}", ts="1730000000.000100")).status == 200
        fresh_slack.wait_for("chat.postMessage")
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as response:
            metrics = response.read().decode()
        assert 'bot_answers_total{mode="model"} 1.0' in metrics
        assert "bot_model_tokens_total" in metrics and "bot_answer_seconds_bucket" in metrics
        assert "# TYPE bot_proposals gauge" in metrics
    finally:
        process.terminate()
        _, stderr = process.communicate(timeout=30)
    lines = [line for line in stderr.splitlines() if line.strip()]
    assert lines, "the bot logged nothing"
    records = [json.loads(line) for line in lines if line.startswith("{")]
    assert records and any("listening" in r.get("message", "") for r in records)
    for secret in (BOT_TOKEN, SIGNING_SECRET, MODEL_KEY):
        assert secret not in stderr
    sent = json.dumps(fresh_model.requests)
    assert BOT_TOKEN not in sent and "[redacted]" in sent


def test_log_lines_are_redacted(capfd):
    settings = Settings(_env_file=None, slack_bot_token=BOT_TOKEN, openai_api_key=MODEL_KEY, bot_log_json=True)
    configure_logging(settings)
    logging.getLogger("bot.test").warning("token %s and key %s and xoxp-123456789-abcdef", BOT_TOKEN, MODEL_KEY)
    err = capfd.readouterr().err
    record = json.loads(err.strip().splitlines()[-1])
    assert record["levelname"] == "WARNING"
    assert BOT_TOKEN not in err and MODEL_KEY not in err and "xoxp-123456789" not in err
    assert record["message"].count("[redacted]") == 3
    logging.getLogger().handlers.clear()
