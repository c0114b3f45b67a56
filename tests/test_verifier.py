"""The verifier flags the wrong claims we have seen (facts §5) with the right fix, and passes right ones."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import pytest

from bot.knowledge.verifier import Finding, VerifyReport, verify_markdown
from bot.knowledge.verifier.commands import check_command
from bot.knowledge.verifier.python_check import check_python
from bot.knowledge.verifier.yaml_check import check_yaml

# The seed thread's skip-if-busy helper (prefect-facts §5f): a yield in both try and except.
BROKEN_SKIP_IF_BUSY = '''
from contextlib import contextmanager
from prefect.concurrency.sync import concurrency

@contextmanager
def try_concurrency(name: str, timeout: float):
    try:
        with concurrency(name, timeout_seconds=timeout):
            yield True
    except Exception as exc:
        yield False
'''


def fenced(lang: str, body: str) -> str:
    return f"```{lang}\n{body}\n```\n"


# --- commands ---------------------------------------------------------------------------------

def test_work_pool_limit_with_limit_flag_is_an_error_with_the_positional_fix():
    report = verify_markdown(fenced("bash", "prefect work-pool set-concurrency-limit etl --limit 5"))
    assert not report.ok
    [finding] = report.findings
    assert finding.kind == "command" and finding.severity == "error"
    assert "Unknown option: --limit" in finding.message
    assert "prefect work-pool set-concurrency-limit NAME CONCURRENCY-LIMIT" in finding.fix


def test_the_seed_threads_inline_command_with_placeholders_is_caught_too():
    report = verify_markdown("Run `prefect work-pool set-concurrency-limit <pool-name> --limit <N>` now.")
    assert [f.message for f in report.errors] == ["Unknown option: --limit."]


@pytest.mark.parametrize("command", [
    "prefect work-pool set-concurrency-limit etl 5",
    "prefect work-pool set-concurrency-limit <pool-name> <N>",
    "prefect work-pool set-concurrency-limit NAME CONCURRENCY-LIMIT",
    "prefect work-pool set-concurrency-limit etl --concurrency-limit 5",  # cyclopts: positional by name
    "prefect work-pools update etl --concurrency-limit 5",
    "prefect gcl create my-deployment-serial --limit 1",
    "prefect gcl update my-deployment-serial --limit 1 --enable",
    "prefect global-concurrency-limit inspect NAME -o json -f out.json",
    "prefect gcl ls",
    "prefect concurrency-limit create db-tag 2",
    "prefect work-queue set-concurrency-limit q 1 --pool p",
    "prefect work-queue set-concurrency-limit q --limit 1 -p p",
    "prefect work_pool ls",
    "prefect --no-prompt deploy --all",
    "prefect deploy flows.py:etl -n nightly -p pool --concurrency-limit 1 --collision-strategy CANCEL_NEW",
    "prefect deploy ./flows.py:etl --name=nightly --pool=pool --concurrency-limit=1",
    "prefect worker start --pool my-pool --limit 3",
    "prefect flow serve flows.py:etl --name etl --limit 2 --global-limit 4",
    "prefect flow-run ls --state AwaitingConcurrencySlot",
    "prefect gcl create --limit INT [OPTIONS] NAME",
    "prefect work-pool set-concurrency-limit --help",
])
def test_correct_commands_pass(command: str):
    assert check_command(command) is None


@pytest.mark.parametrize(("command", "message", "fix"), [
    ("prefect gcl create my-limit", "Missing required option: --limit.",
     "prefect global-concurrency-limit create NAME --limit INT"),
    ("prefect concurrency-limit create db-tag", "Missing required argument: CONCURRENCY-LIMIT.",
     "prefect concurrency-limit create TAG CONCURRENCY-LIMIT"),
    ("prefect work-pool create my-pool --concurrency-limit 3", "Unknown option: --concurrency-limit.",
     "prefect work-pool create NAME"),
    ("prefect deployment set-concurrency-limit etl/nightly 1", "Unknown command: prefect deployment "
     "set-concurrency-limit.", "delete, inspect, ls, run, schedule"),
    ("prefect deploy flows.py:etl -n x --concurrency-limit 1 --collision-strategy QUEUE",
     "--collision-strategy must be one of ENQUEUE, CANCEL_NEW, got 'QUEUE'.", "--collision-strategy TEXT"),
    ("prefect work-pool set-concurrency-limit etl five", "CONCURRENCY-LIMIT expects an integer, got 'five'.",
     "NAME CONCURRENCY-LIMIT"),
    ("prefect worker start --pool p --install-policy sometimes", "--install-policy must be one of", None),
    ("prefect gcl inspect x -o yaml", "--output must be one of json", None),
    ("prefect gcl crate x --limit 1", "Unknown command: prefect global-concurrency-limit crate.",
     "prefect global-concurrency-limit create NAME --limit INT"),
    ("prefect work-pool set-concurrency-limit a 1 2", "Unexpected argument: '2'.", None),
])
def test_wrong_commands_are_errors_with_the_right_syntax(command: str, message: str, fix: str | None):
    finding = check_command(command)
    assert finding is not None and finding.severity == "error"
    assert message in finding.message
    if fix:
        assert fix in finding.fix


def test_commands_are_found_in_chains_continuations_and_prompts():
    markdown = fenced("bash", "$ export PREFECT_API_URL=http://x/api && prefect gcl create a --limit 1\n"
                              "prefect deploy flows.py:etl \\\n  --name x --collision-strategy queue  # wrong")
    report = verify_markdown(markdown)
    assert report.checked == 2
    assert [f.snippet for f in report.errors] == ["prefect deploy flows.py:etl --name x --collision-strategy queue"]


def test_an_inline_mention_of_a_flag_is_not_an_incomplete_command():
    assert verify_markdown("Use `prefect worker start --limit` or `prefect gcl create`.").ok
    assert not verify_markdown("Use `prefect worker start --max-runs 3`.").ok


# --- python -----------------------------------------------------------------------------------

def test_unknown_keyword_names_the_real_parameter():
    [finding] = check_python('from prefect.concurrency.sync import concurrency\n'
                             'with concurrency("x", timeout=5):\n    pass\n')
    assert "unexpected keyword argument 'timeout'" in finding.message
    assert "timeout_seconds" in finding.message and "timeout_seconds=None" in finding.fix


def test_the_broken_skip_if_busy_helper_is_flagged_with_the_fixed_one():
    code = BROKEN_SKIP_IF_BUSY
    [finding] = check_python(code)
    assert finding.severity == "error" and "generator didn't stop after throw()" in finding.message
    assert "ExitStack" in finding.fix and "except TimeoutError" in finding.fix and "strict=True" in finding.fix


@pytest.mark.parametrize(("code", "message", "fix"), [
    ("from prefect.concurrency import concurrency", "cannot import name 'concurrency' from 'prefect.concurrency'",
     "from prefect.concurrency.sync import concurrency"),
    ("from prefect.concurrency.sync import AcquireConcurrencySlotTimeoutError", "cannot import name",
     "from prefect.concurrency.asyncio import AcquireConcurrencySlotTimeoutError"),
    ("import prefect.no_such_module", "No module named 'prefect.no_such_module'", None),
    ("from prefect import task\n@task(tags=['db'])\ndef t(): ...\nt.with_options(concurrency=2)",
     "Task.with_options() got an unexpected keyword argument 'concurrency'", None),
    ("from prefect.client.schemas.objects import ConcurrencyLimitConfig\n"
     "ConcurrencyLimitConfig(limit=1, collision_strategy='QUEUE')", "Input should be 'ENQUEUE' or 'CANCEL_NEW'", None),
    ("from prefect.concurrency.sync import concurrency\nasync def f():\n    async with concurrency('x'):\n"
     "        pass", "`async with` needs the asyncio variant", "from prefect.concurrency.asyncio import concurrency"),
    ("from prefect import flow\n@flow\ndef f(): ...\nf.deploy(name='x', work_pool_name='p', concurency_limit=1)",
     "Did you mean concurrency_limit?", "Flow.deploy(name, work_pool_name=None"),
    ("from prefect import get_client\nasync def f():\n    async with get_client() as client:\n"
     "        await client.read_global_concurrency_limit('x')", "PrefectClient has no method",
     "read_global_concurrency_limit_by_name"),
    ("from prefect.task_runners import ThreadPoolTaskRunner\nThreadPoolTaskRunner(workers=8)",
     "unexpected keyword argument 'workers'", "max_workers"),
    ("def broken(:\n    pass", "SyntaxError", None),
])
def test_wrong_python_is_flagged(code: str, message: str, fix: str | None):
    findings = check_python(code)
    assert any(message in f.message for f in findings), findings
    if fix:
        assert any(f.fix and fix in f.fix for f in findings), findings


def test_timeout_zero_is_a_warning_not_an_error():
    [finding] = check_python('from prefect.concurrency.sync import concurrency\n'
                             'with concurrency("x", timeout_seconds=0):\n    pass\n')
    assert finding.severity == "warning"


def test_correct_python_passes():
    code = '''
import asyncio
from prefect import flow, task, get_client
from prefect.concurrency.asyncio import concurrency, rate_limit
from prefect.task_runners import ThreadPoolTaskRunner
from prefect.client.schemas.objects import ConcurrencyLimitConfig

@task(tags=["db"])
def write(x): ...

@flow(task_runner=ThreadPoolTaskRunner(max_workers=8))
async def etl():
    async with concurrency("db", occupy=1, timeout_seconds=10, strict=True):
        await rate_limit("api", strict=True)
    write.with_options(tags=["db", "other"]).map([1, 2]).wait()
    async with get_client() as client:
        await client.read_global_concurrency_limits(limit=200, offset=0)

etl.from_source(".", "flows.py:etl").deploy(
    name="n", work_pool_name="p",
    concurrency_limit=ConcurrencyLimitConfig(limit=1, collision_strategy="CANCEL_NEW"))
'''
    assert check_python(code) == []


# --- yaml -------------------------------------------------------------------------------------

PREFECT_YAML = """deployments:
- name: serial
  entrypoint: flows.py:etl
  work_pool: {name: pool}
  concurrency_limit:
    limit: 1
    collision_strategy: %s
    grace_period_seconds: %s
"""


def test_valid_prefect_yaml_passes():
    findings, checked = check_yaml(PREFECT_YAML % ("CANCEL_NEW", "120"))
    assert checked and findings == []
    assert check_yaml("deployments:\n- name: a\n  concurrency_limit: 3\n") == ([], True)


@pytest.mark.parametrize(("text", "message"), [
    (PREFECT_YAML % ("QUEUE", "120"), "collision_strategy must be ENQUEUE or CANCEL_NEW, got 'QUEUE'"),
    (PREFECT_YAML % ("ENQUEUE", "10"), "grace_period_seconds must be an int from 60 to 86400"),
    ("deployments:\n- name: a\n  concurrency_limit: 1\n  collision_strategy: CANCEL_NEW\n",
     "collision_strategy is not a deployment key"),
    ("deployments:\n- name: a\n  concurrency_limit: {max: 1}\n", "unknown key(s) ['max']"),
    ("deployments:\n- name: a\n  work_pool: {name: p, concurrency_limit: 2}\n", "work_pool.concurrency_limit"),
])
def test_wrong_prefect_yaml_is_flagged(text: str, message: str):
    findings, checked = check_yaml(text)
    assert checked
    assert any(message in f.message and f.severity == "error" for f in findings), findings


def test_yaml_that_is_not_prefect_yaml_is_left_alone():
    assert check_yaml("services:\n  web: {image: x}\n") == ([], False)


# --- the report -------------------------------------------------------------------------------

SEED_ANSWER = """Limit the pool:
```
prefect work-pool set-concurrency-limit <pool-name> --limit 1
```
Skip helper:
```python
""" + BROKEN_SKIP_IF_BUSY + """```
Tooling: `prefect gcl ls`, `prefect gcl inspect my-deployment-serial`.
"""


def test_feedback_for_model_lists_each_problem_with_the_correct_syntax():
    report = verify_markdown(SEED_ANSWER)
    assert isinstance(report, VerifyReport) and not report.ok
    assert report.checked == 4 and len(report.errors) == 2
    feedback = report.feedback_for_model()
    assert "Unknown option: --limit." in feedback
    assert "Correct: prefect work-pool set-concurrency-limit NAME CONCURRENCY-LIMIT" in feedback
    assert "except TimeoutError" in feedback
    assert all(isinstance(f, Finding) for f in report.findings)


def test_verification_is_stable_once_warm_and_thread_safe():
    verify_markdown(SEED_ANSWER)  # warm the CLI tree and import caches
    expected = verify_markdown(SEED_ANSWER).model_dump()  # its cost is the bench's to measure
    with ThreadPoolExecutor(max_workers=8) as pool:
        results = list(pool.map(lambda _: verify_markdown(SEED_ANSWER).model_dump(), range(32)))
    assert all(result == expected for result in results)
