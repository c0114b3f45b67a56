"""The artifact people install is the artifact we test: build the wheel, install it into a fresh venv,
and run it from a folder outside the checkout as a user who cannot write to the install.

Every other test runs the editable checkout, where prompts/ sits next to the package; only this one
would notice a wheel that forgot them. The phases' times are printed (run with -s to see them).
"""

from __future__ import annotations

import json
import subprocess
import tempfile
import textwrap
import time
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from bot.knowledge.recipes import RecipeBook
from bot.knowledge.search import RecipeSearch
from bot.version import CHECKED_PREFECT
from tests.approvals_support import make_gcl
from tests.artifact_steps import (
    HEALTH_PATH,
    ROOT,
    SERVE,
    VERSION,
    Runner,
    build_wheel,
    fresh_venv,
    install,
    make_read_only,
)
from tests.fakes.model_api import text, tool_calls
from tests.fakes.prefect_server import free_port
from tests.fakes.processes import wait_until_healthy
from tests.harness import BOT_TOKEN, MODEL_KEY, SIGNING_SECRET
from tests.test_verifier import BROKEN_SKIP_IF_BUSY

pytestmark = [pytest.mark.artifact, pytest.mark.timeout(1200)]

QUESTION = "how do I allow only one run of a deployment at a time?"
GOOD_ANSWER = "```bash\nprefect work-pool set-concurrency-limit etl 5\nprefect gcl create nightly --limit 1\n```\n"


@dataclass
class Installed:
    """The installed bot and a folder outside the checkout that the runner owns."""

    wheel: Path
    venv: Path
    work: Path
    runner: Runner
    prefect_api_url: str
    timings: dict[str, float] = field(default_factory=dict)

    @property
    def site_packages(self) -> Path:
        [folder] = self.venv.glob("lib/python3*/site-packages")
        return folder

    def env(self, **extra: str) -> dict[str, str]:
        """Only what a user would set: no PYTHONPATH, no test variables, the checkout nowhere."""
        return {"PATH": f"{self.venv / 'bin'}:/usr/bin:/bin", "HOME": str(self.work), "LANG": "C.UTF-8",
                "PREFECT_API_URL": self.prefect_api_url, "PREFECT_HOME": str(self.work / "prefect-home"),
                "PREFECT_SERVER_ANALYTICS_ENABLED": "false", "PREFECT_LOGGING_LEVEL": "WARNING",
                "BOT_DATA_DIR": str(self.work / "data"), **extra}

    def bot(self, *args: str, stdin: str | None = None, **env: str) -> subprocess.CompletedProcess:
        return self.runner.run([str(self.venv / "bin" / "concurrency-bot"), *args], cwd=self.work,
                               env=self.env(**env), input=stdin, capture_output=True, text=True, timeout=300)


def _public_tempdir(prefix: str) -> Path:
    """mkdtemp is private to us (0700); `nobody` must be able to enter it."""
    path = Path(tempfile.mkdtemp(prefix=prefix))
    path.chmod(0o755)
    return path


@pytest.fixture(scope="module")
def installed(prefect_api_url) -> Iterator[Installed]:
    runner = Runner.unprivileged()
    scratch = _public_tempdir("cbot-artifact-")
    try:
        timings: dict[str, float] = {}
        started = time.perf_counter()
        wheel = build_wheel(scratch / "dist")
        timings["build sdist+wheel"] = time.perf_counter() - started

        started = time.perf_counter()
        python = fresh_venv(scratch / "venv", runner)
        done = install(wheel, python)
        assert done.returncode == 0, done.stderr[-3000:]
        timings["fresh venv + pip install"] = time.perf_counter() - started
        if not runner.drops_to_nobody:
            make_read_only(scratch / "venv")

        work = scratch / "home"
        work.mkdir()
        runner.give(work)
        yield Installed(wheel, scratch / "venv", work, runner, prefect_api_url, timings)
        print("\ninstalled-artifact timings: " + ", ".join(f"{k} {v:.1f}s" for k, v in timings.items())
              + f"; wheel {wheel.stat().st_size / 1024:.0f} KiB")
    finally:
        remove_in_background(scratch)


def remove_in_background(path: Path) -> None:
    """Delete the scratch folder (a 390 MB venv of ~15,000 files: 10-20 s on this machine) in a process of its
    own, so the worker goes on to its next module instead of waiting for the disk."""
    subprocess.Popen(["sh", "-c", 'chmod -R u+w "$1" && rm -rf "$1"', "sh", str(path)],
                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)


def test_the_wheel_carries_the_prompts_and_the_install_is_not_the_checkout(installed):
    names = set(zipfile.ZipFile(installed.wheel).namelist())
    assert "bot/prompts/system.md" in names
    assert {f"bot/prompts/recipes/{r.path.name}" for r in RecipeBook.load()} <= names
    assert not any(n.startswith(("tests/", "prompts/", "bench/")) for n in names)
    assert not list(installed.site_packages.glob("__editable__*")), "an editable install, not the wheel"

    probe = installed.runner.run(
        [str(installed.venv / "bin" / "python"), "-c", textwrap.dedent("""
            import bot, pathlib, sys
            print(bot.__file__)
            target = pathlib.Path(bot.__file__).parent / "written-by-the-runner"
            try:
                target.write_text("x")
            except PermissionError:
                print("read-only")
            """)], cwd=installed.work, env=installed.env(), capture_output=True, text=True, timeout=60)
    assert probe.returncode == 0, probe.stderr
    location, *verdict = probe.stdout.split()
    assert Path(location).is_relative_to(installed.site_packages) and not Path(location).is_relative_to(ROOT)
    assert verdict == ["read-only"], "the runner can write to the install"


def test_version_names_the_bot_and_the_checked_prefect(installed):
    started = time.perf_counter()
    result = installed.bot("--version")
    installed.timings["--version"] = time.perf_counter() - started
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == f"concurrency-bot {VERSION} (checked against Prefect {CHECKED_PREFECT})"


async def test_ask_offline_answers_from_the_packaged_recipes_and_limits_reads_the_server(installed):
    limit = await make_gcl(limit=3)

    started = time.perf_counter()
    asked = installed.bot("ask", "--json", QUESTION)
    installed.timings["ask"] = time.perf_counter() - started
    assert asked.returncode == 0, asked.stderr[-3000:]
    reply = json.loads(asked.stdout)
    assert reply["offline"] is True and reply["failed"] is False
    [best] = RecipeSearch(RecipeBook.load()).search(QUESTION, k=1)  # the checkout's book, same question
    assert f"**{best.recipe.title}**" in reply["answer"], reply["answer"][:500]

    started = time.perf_counter()
    listed = installed.bot("limits", COLUMNS="200")
    installed.timings["limits"] = time.perf_counter() - started
    assert listed.returncode == 0, listed.stderr[-3000:]
    assert limit in listed.stdout


def test_verify_flags_the_broken_snippet_and_passes_a_good_one(installed):
    started = time.perf_counter()
    bad = installed.bot("verify", "-", stdin=f"```python\n{BROKEN_SKIP_IF_BUSY}```\n")
    installed.timings["verify"] = time.perf_counter() - started
    assert bad.returncode == 1, bad.stdout + bad.stderr
    assert "ERROR" in bad.stdout

    good_file = installed.work / "good.md"
    good_file.write_text(GOOD_ANSWER)
    good = installed.bot("verify", str(good_file))
    assert good.returncode == 0, good.stdout + good.stderr


def test_serve_in_http_mode_answers_healthz(installed, fresh_slack):
    port = free_port()
    env = installed.env(SLACK_BOT_TOKEN=BOT_TOKEN, SLACK_SIGNING_SECRET=SIGNING_SECRET,
                        SLACK_API_URL=f"{fresh_slack.url}/api/")
    log = installed.work / "serve.log"
    started = time.perf_counter()
    with log.open("w") as sink:
        process = installed.runner.popen([str(installed.venv / "bin" / SERVE[0]), *SERVE[1:], str(port),
                                          "--host", "127.0.0.1"], cwd=installed.work, env=env,
                                         stdout=sink, stderr=subprocess.STDOUT)
        try:
            wait_until_healthy(f"http://127.0.0.1:{port}{HEALTH_PATH}", process, 180, log.read_text,
                               "the installed bot")
            installed.timings["serve until /healthz"] = time.perf_counter() - started
        finally:
            process.terminate()
            process.wait(timeout=60)
    assert "Traceback" not in log.read_text()


def team_prompts(folder: Path, system: str) -> Path:
    """A team's own BOT_PROMPTS_DIR: its system prompt and one recipe the packaged book lacks."""
    (folder / "recipes").mkdir(parents=True)
    (folder / "system.md").write_text(system + "\n")
    (folder / "recipes" / "zebra-lanes.md").write_text(
        "---\ntitle: Zebra lanes for our team\nkeywords: zebra, lanes\nprefect_version: \"3.9.1\"\n---\n"
        "Use the zebra lane: one run per stripe.\n")
    return folder


def test_bot_prompts_dir_replaces_the_packaged_prompts(installed):
    own = team_prompts(installed.work / "our-prompts", "You are our team's copilot for Prefect {prefect_version}.")
    asked = installed.bot("ask", "--json", "how do zebra lanes work?", BOT_PROMPTS_DIR=str(own))
    assert asked.returncode == 0, asked.stderr[-3000:]
    assert "**Zebra lanes for our team**" in json.loads(asked.stdout)["answer"]

    (own / "system.md").unlink()
    broken = installed.bot("ask", "anything", BOT_PROMPTS_DIR=str(own))
    assert broken.returncode == 2
    assert f"BOT_PROMPTS_DIR={own} has no system.md" in broken.stderr and "Traceback" not in broken.stderr


def test_the_model_gets_the_system_prompt_and_recipes_from_bot_prompts_dir(installed, fresh_model):
    """Through the real openai client: the first message is our system.md, and the model's
    search_recipes tool reads our recipes too, not the packaged ones."""
    own = team_prompts(installed.work / "model-prompts", "You answer for the zebra team on Prefect {prefect_version}.")
    fresh_model.script(tool_calls(("search_recipes", {"query": "zebra lanes"})), text("One run per stripe."))
    asked = installed.bot("ask", "--json", "how do zebra lanes work?", BOT_PROMPTS_DIR=str(own),
                          OPENAI_API_KEY=MODEL_KEY, OPENAI_BASE_URL=fresh_model.base_url)
    assert asked.returncode == 0, asked.stderr[-3000:]
    assert json.loads(asked.stdout)["offline"] is False
    first, second = fresh_model.requests[:2]
    assert first["messages"][0] == {"role": "system",
                                    "content": f"You answer for the zebra team on Prefect {CHECKED_PREFECT}.\n"}
    tool_result = [m for m in second["messages"] if m["role"] == "tool"]
    assert tool_result and "zebra-lanes" in tool_result[0]["content"]


def test_eval_without_the_checkout_asks_for_a_questions_file(installed):
    """The default eval set lives in the repository's tests/, which the wheel does not carry."""
    result = installed.bot("eval", OPENAI_API_KEY="sk-not-used-offline-0000")
    assert result.returncode == 2 and "pass --questions FILE" in result.stderr and "Traceback" not in result.stderr
