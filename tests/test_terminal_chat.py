"""`concurrency-bot chat` and `ask` as a user runs them: subprocesses fed through stdin.

With no OPENAI_API_KEY the answers are offline; proposals made in the chat are approved, edited
or rejected at the prompt through the same approvals service, and the change lands on the real
Prefect server. The last test runs the chat with no PREFECT_API_URL at all, so it starts (and
then stops) its own embedded Prefect server, as `make run` does on a fresh laptop.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from bot.embedded_prefect import healthy
from bot.store import Store
from bot.store import proposals as db
from tests.approvals_support import make_pool, pool_limit

REPO = Path(__file__).resolve().parents[1]


def _env(tmp_path: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OPENAI_", "SLACK_"))}
    env.update(BOT_DATA_DIR=str(tmp_path / "data"), PYTHONPATH=str(REPO), COLUMNS="120",
               PREFECT_HOME=str(tmp_path / "client-home"), **extra)
    return env


def _run(args: list[str], env: dict[str, str], stdin: str = "", timeout: float = 180) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "bot.cli", *args], input=stdin, env=env, cwd=env["BOT_DATA_DIR"],
                          capture_output=True, text=True, timeout=timeout)


def _audit(tmp_path: Path) -> list[db.AuditEntry]:
    store = Store.open(f"sqlite:///{tmp_path / 'data' / 'bot.db'}")
    try:
        return db.list_audit(store.sessions)
    finally:
        store.close()


@pytest.mark.timeout(240)
async def test_chat_answers_offline_and_approves_in_the_terminal(prefect_api_url, tmp_path):
    pool = await make_pool(limit=1)
    (tmp_path / "data").mkdir()
    script = "\n".join([
        "show limits",
        f"set work pool {pool} limit to 3",
        "e", "4",           # edit the proposal to 4 …
        "a",                # … then approve it
        f"clear work pool {pool} limit",
        "r", "not today",   # reject this one
        "/quit", "",
    ])
    started = time.perf_counter()
    result = await asyncio.to_thread(_run, ["chat"], _env(tmp_path), script)
    elapsed = time.perf_counter() - started
    out = result.stdout
    assert result.returncode == 0, result.stderr[-2000:]
    assert "offline: no OPENAI_API_KEY" in out
    assert "The model is off (no model is configured)" in out
    assert f"`{pool}`" in out or pool in out
    assert f"work pool `{pool}`: limit 1 → 3" in out or f"work pool {pool}: limit 1 → 3" in out
    assert "Edited" in out and "Applied" in out and "Rejected; nothing changed." in out
    assert "Bye." in out
    assert await pool_limit(pool) == 4
    actions = [(row.action, row.actor) for row in reversed(_audit(tmp_path))]  # oldest first
    assert [a for a, _ in actions] == ["proposed", "edited", "applied", "proposed", "rejected"]
    assert all(actor.startswith("terminal:") for _, actor in actions)
    print(f"chat session with 2 proposals: {elapsed:.1f} s (including Prefect import)")


@pytest.mark.timeout(240)
async def test_ask_prints_markdown_or_json(prefect_api_url, tmp_path):
    pool = await make_pool(limit=2)
    (tmp_path / "data").mkdir()
    env = _env(tmp_path)
    plain = await asyncio.to_thread(_run, ["ask", f"inspect pool {pool}"], env)
    as_json = await asyncio.to_thread(_run, ["ask", "--json", f"set work pool {pool} limit to 7"], env)
    assert plain.returncode == 0, plain.stderr[-2000:]
    assert pool in plain.stdout and "0/2" in plain.stdout
    assert as_json.returncode == 0, as_json.stderr[-2000:]
    data = json.loads(as_json.stdout)
    assert data["offline"] is True and not data["failed"]
    assert len(data["proposals"]) == 1 and data["proposals"][0]["status"] == "pending"
    assert "limit 2 → 7" in data["proposals"][0]["diff"]
    assert await pool_limit(pool) == 2  # ask only proposes


@pytest.mark.timeout(240)
async def test_a_proposal_from_ask_is_decided_later_in_the_chat(prefect_api_url, tmp_path):
    pool = await make_pool(limit=2)
    (tmp_path / "data").mkdir()
    env = _env(tmp_path)
    asked = await asyncio.to_thread(_run, ["ask", f"set work pool {pool} limit to 6"], env)
    assert asked.returncode == 0, asked.stderr[-2000:]
    assert "What if:" in asked.stdout  # the live effect line Slack cards show (issue 24)
    assert await pool_limit(pool) == 2
    chat = await asyncio.to_thread(_run, ["chat"], env, "/pending\na\n/pending\n/quit\n")
    assert chat.returncode == 0, chat.stderr[-2000:]
    assert "limit 2 → 6" in chat.stdout and "Applied" in chat.stdout and "What if:" in chat.stdout
    assert "Nothing is waiting for a decision." in chat.stdout
    assert await pool_limit(pool) == 6


def test_ask_without_a_question_is_a_usage_error(tmp_path):
    (tmp_path / "data").mkdir()
    result = _run(["ask"], _env(tmp_path))
    assert result.returncode == 2 and "question" in result.stderr


@pytest.mark.timeout(420)
def test_chat_starts_an_embedded_prefect_when_none_is_configured(tmp_path):
    (tmp_path / "data").mkdir()
    env = _env(tmp_path)
    env.pop("PREFECT_API_URL", None)
    started = time.perf_counter()
    result = _run(["chat"], env, "show limits\n/quit\n", timeout=400)
    elapsed = time.perf_counter() - started
    assert result.returncode == 0, (result.stdout[-2000:], result.stderr[-2000:])
    assert "Started a local Prefect server at http://127.0.0.1:" in result.stdout
    url = result.stdout.split("Started a local Prefect server at ", 1)[1].split(" ", 1)[0]
    assert url in result.stdout and "The model is off" in result.stdout
    assert "No concurrency limits are set" in result.stdout  # a fresh server, answered live
    flat = " ".join(result.stdout.split())
    assert "… Starting a local Prefect server" in flat  # progress while it starts, even when piped
    assert "run `concurrency-bot demo` in another terminal" in flat  # nothing on the server: the demo is offered
    assert (tmp_path / "data" / "prefect" / "prefect.db").exists()  # its data lives in the bot's folder
    assert not healthy(url) and not (tmp_path / "data" / "prefect" / "server.json").exists()  # stopped on exit
    print(f"chat with a cold embedded Prefect: {elapsed:.1f} s")
