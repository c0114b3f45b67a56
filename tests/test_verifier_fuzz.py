"""The verifier never raises: random and garbled Markdown, YAML, Python and commands.

Each checker is fuzzed on its own as well as through verify_markdown, so verify_markdown's last-line
guard cannot hide a checker that crashes.
"""

from __future__ import annotations

import logging

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bot.knowledge.verifier import VerifyReport, verify_markdown
from bot.knowledge.verifier.commands import check_command
from bot.knowledge.verifier.cross_check import Uses, command_uses, python_uses
from bot.knowledge.verifier.python_check import check_python
from bot.knowledge.verifier.settings_check import check_config_command, check_env_names
from bot.knowledge.verifier.yaml_check import check_yaml

FUZZ = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])

# Pieces of real answers, so the fuzzer reaches deep paths instead of failing at the parser.
PY_PIECES = [
    "from prefect import flow, task, concurrency, get_client\n", "from prefect.deployments import Deployment\n",
    "from prefect.agent import PrefectAgent\n", "import prefect.filesystems\n", "prefect.filesystems.GitHub\n",
    "from prefect.concurrency.asyncio import rate_limit, concurrency\n", "from prefect.concurrency.sync import *\n",
    "@flow\n", "@task(tags=['db'])\n", "def f(x):\n", "async def g():\n", "    ", "        ", "await ", "pass\n",
    "concurrency('db')\n", "rate_limit(['a', 'b'], occupy=2)\n", "with concurrency('x', timeout_seconds=0):\n",
    "async with get_client() as c:\n", "c.read_global_concurrency_limits()\n", "x = c.foo(\n", ")\n",
    "f.with_options(tags=[1, None]).submit()\n", "prefect.agent.PrefectAgent()\n", "yield\n", "try:\n",
    "except Exception:\n", "lambda: concurrency\n", "[*c.read_deployments()]\n", "f'{x!r}'\n", "\\\n", "'''\n",
    "concurrency(names=prefect)\n", "from prefect import *\n", "import prefect as p\np.concurrency('x')\n",
]
YAML_PIECES = [
    "deployments:\n", "- name: a\n", "  concurrency_limit: ", "{limit: 1}\n", "1\n", "-3\n", "[1, 2]\n", "true\n",
    "  work_pool: ", "{name: p, work_queue: q, 1: 2}\n", "null\n", "  on: push\n", "  yes: 1\n", "  ? [a, b]\n",
    "  : c\n", "  3: x\n", "  null: y\n", "  collision_strategy: QUEUE\n", "&a {x: *a}\n", "!!python/object:x {}\n",
    "  concurrency_limit: {limit: true, collision_strategy: 7, grace_period_seconds: [1]}\n", "\t", "'\n", "- - -\n",
]
CMD_PIECES = [
    "prefect", "gcl", "create", "[OPTIONS]", "COMMAND", "[ARGS]...", "NAME", "--limit", "-l", "5", "'", '"', "\\",
    "config", "set", "PREFECT_API_URL=x", "PREFECT_X", "=", "work-pool", "set-concurrency-limit", "--", "-o",
    "json", "|", "&&", "$", "{", "}", "<pool>", "...", "--help", "concurrency-limit", "deploy", "--no-prompt",
]


def _join(pieces: list[str]) -> st.SearchStrategy[str]:
    return st.lists(st.one_of(st.sampled_from(pieces), st.text(max_size=6)), max_size=25).map("".join)


def _markdown() -> st.SearchStrategy[str]:
    fence = st.sampled_from(["```", "~~~", "````", "```python", "```yaml", "```bash", "```pycon", "```text", "`"])
    body = st.one_of(_join(PY_PIECES), _join(YAML_PIECES), _join([" ".join(CMD_PIECES[i:i + 4])
                                                                  for i in range(0, len(CMD_PIECES), 2)]))
    chunk = st.one_of(fence.map(lambda f: "\n" + f + "\n"), body, st.just("\n>>> "), st.just("\n... "),
                      st.just("`prefect gcl ls`"), st.text(max_size=20))
    return st.lists(chunk, max_size=12).map("".join)


@FUZZ
@given(_markdown())
def test_verify_markdown_never_raises(markdown: str):
    assert isinstance(verify_markdown(markdown), VerifyReport)


@FUZZ
@given(_join(PY_PIECES))
def test_check_python_never_raises(code: str):
    assert isinstance(check_python(code), list)
    python_uses(code, Uses())


@FUZZ
@given(_join(YAML_PIECES))
def test_check_yaml_never_raises(text: str):
    findings, checked = check_yaml(text)
    assert isinstance(findings, list) and isinstance(checked, bool)


@FUZZ
@given(st.lists(st.one_of(st.sampled_from(CMD_PIECES), st.text(max_size=8)), max_size=12).map(" ".join))
def test_command_checks_never_raise(command: str):
    check_command("prefect " + command)
    check_command("prefect " + command, inline=True)
    check_config_command("prefect config set " + command)
    command_uses("prefect " + command, Uses())
    check_env_names([command])


@pytest.mark.parametrize("text", [
    "\x00", "```python\n\x00\n```", "```python\n" + "(" * 500 + "\n```",
    "```yaml\ndeployments:\n" + "[" * 2000 + "\n```",
    "```python\n" + "x = " + " + ".join(["1"] * 5000) + "\n```", "```\n" + "prefect gcl create 'a\n```",
    "```yaml\ndeployments: &a\n- *a\n```", "```pycon\n>>>\n...\n```", "`" * 1000,
])
def test_pathological_inputs_do_not_raise_or_log_a_crash(text: str, caplog: pytest.LogCaptureFixture):
    with caplog.at_level(logging.ERROR, logger="bot.knowledge.verifier"):
        report = verify_markdown(text)
    assert isinstance(report, VerifyReport)
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR], "a check crashed"
