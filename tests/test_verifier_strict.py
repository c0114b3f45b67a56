"""The stricter verifier (issue 16): catches more without flagging what is right, never raises."""

from __future__ import annotations

import textwrap

import pytest
import yaml
from prefect._internal.compatibility.migration import REMOVED_IN_V3
from prefect.cli.deploy._models import DeploymentConfig, WorkPoolConfig
from prefect.settings import Settings
from prefect.settings.legacy import _get_valid_setting_names

from bench.verifier_rates import load
from bot.knowledge.verifier import verify_markdown
from bot.knowledge.verifier.commands import check_command
from bot.knowledge.verifier.python_check import check_python
from bot.knowledge.verifier.yaml_check import check_yaml
from bot.prefect_ops.cli_help import command_tree


def fenced(lang: str, body: str) -> str:
    return f"```{lang}\n{textwrap.dedent(body).strip()}\n```\n"


def errors(markdown: str) -> list[str]:
    return [f.message for f in verify_markdown(markdown).errors]


# --- removed 2.x names: an error carrying Prefect's own migration hint ----------------------------

@pytest.mark.parametrize("path", sorted(REMOVED_IN_V3))
def test_every_name_prefect_removed_in_3_is_an_error_with_prefects_hint(path: str):
    module, name = path.split(":")
    [finding] = check_python(f"from {module} import {name}")
    assert finding.severity == "error"
    assert finding.message.startswith(f"`{path}` has been removed.")
    assert REMOVED_IN_V3[path] in finding.message
    assert finding.fix == REMOVED_IN_V3[path]


def test_a_removed_name_reached_through_a_module_import_is_an_error_too():
    code = "import prefect.filesystems\nblock = prefect.filesystems.GitHub(repository='acme/flows')\n"
    [finding] = check_python(code)
    assert "prefect_github.GitHubRepository" in finding.message


def test_a_migration_answer_with_the_removed_name_is_flagged_not_an_internal_error():
    answer = "Before:\n" + fenced("python", """
        from prefect.deployments import Deployment
        Deployment.build_from_flow(flow=etl, name="nightly")
    """) + "After: `prefect deploy flows.py:etl -n nightly -p pool`\n"
    report = verify_markdown(answer)
    assert [f.fix for f in report.errors] == ["Use `flow.serve()`, `flow.deploy()`, or `prefect deploy` instead."]
    assert report.checked == 2


# --- YAML ---------------------------------------------------------------------------------------------

def test_mixed_type_yaml_keys_do_not_crash_and_are_named():
    text = "deployments:\n- name: a\n  on: push\n  3: x\n  null: y\n  concurrency: 2\n"
    findings, checked = check_yaml(text)
    assert checked
    messages = " ".join(f.message for f in findings)
    for key in ("'True'", "'3'", "'None'", "'concurrency'"):
        assert key in messages


def test_every_deployment_key_prefect_knows_is_accepted():
    keys = {k: None for k in DeploymentConfig.model_fields}
    text = yaml.safe_dump({"deployments": [{**keys, "name": "a"}]})
    findings, checked = check_yaml(text)
    assert checked and not [f for f in findings if "not a deployment key" in f.message]
    pool = yaml.safe_dump({"deployments": [{"name": "a", "work_pool": dict.fromkeys(WorkPoolConfig.model_fields)}]})
    findings, checked = check_yaml(pool)
    assert checked and not [f for f in findings if "not a work_pool key" in f.message]


@pytest.mark.parametrize(("body", "message"), [
    ("  concurrency: 3\n", "'concurrency' is not a deployment key"),
    ("  job_variables: {image: x}\n", "put it under work_pool"),
    ("  cron: '0 2 * * *'\n", "put it under schedules"),
    ("  work_pool: {name: p, work_queue: q}\n", "work_pool.work_queue is not a work_pool key"),
    ("  work_pool: {name: p, cron: '0 2 * * *'}\n", "work_pool.cron is not a work_pool key"),
    ("  work_pool: {name: p, concurrency_limit: 2}\n", "work_pool.concurrency_limit"),
    ("  concurrency_limit: {limit: 1}\n", "needs collision_strategy"),
])
def test_unknown_and_misplaced_keys_are_errors(body: str, message: str):
    findings, _ = check_yaml("deployments:\n- name: a\n  entrypoint: f.py:f\n" + body)
    assert any(message in f.message and f.severity == "error" for f in findings), findings


# --- pycon ------------------------------------------------------------------------------------------

def test_pycon_prompts_and_output_are_stripped_before_checking():
    session = """
        >>> from prefect.concurrency.sync import concurrency
        >>> with concurrency("db", timeout_seconds=5):
        ...     print("inside")
        ...
        inside
        >>> 1 + 1
        2
    """
    assert verify_markdown(fenced("pycon", session)).findings == []
    assert verify_markdown(fenced("python", session)).findings == []
    wrong = session.replace("timeout_seconds=5", "timeout=5")
    assert errors(fenced("pycon", wrong)) == [
        "concurrency() got an unexpected keyword argument 'timeout'. Did you mean timeout_seconds?"
    ]


# --- CLI synopses and fix texts ---------------------------------------------------------------------

@pytest.mark.parametrize("synopsis", [
    "prefect work-pool [OPTIONS] COMMAND [ARGS]...",
    "prefect [OPTIONS] COMMAND [ARGS]...",
    "prefect gcl create [OPTIONS] NAME",
    "prefect global-concurrency-limit create --limit INT [OPTIONS] NAME",
    "prefect concurrency-limit create TAG CONCURRENCY-LIMIT",
    "prefect config set SETTINGS...",
    "prefect gcl update NAME [--enable|--disable] [--limit INT]",
    "prefect deploy --collision-strategy TEXT",
])
def test_usage_synopses_are_not_commands_with_missing_parts(synopsis: str):
    assert check_command(synopsis) is None
    assert verify_markdown(fenced("bash", synopsis)).findings == []


def test_a_synopsis_with_an_invented_option_is_still_an_error():
    finding = check_command("prefect work-pool create [OPTIONS] NAME [--concurrency-limit INT]")
    assert finding is not None and "Unknown option: --concurrency-limit." in finding.message


def test_the_usage_line_of_every_prefect_command_passes_the_verifier():
    tree = command_tree()
    failing = [c.usage() for c in tree.commands.values() if check_command(c.usage(), tree=tree) is not None]
    assert failing == []


def _fix_as_markdown(kind: str, fix: str) -> str:
    if kind == "command":
        return fenced("bash", fix)
    if kind == "yaml":
        return fenced("yaml", "deployments:\n- name: a\n" + textwrap.indent(fix, "  "))
    try:
        compile(fix, "<fix>", "exec")
    except SyntaxError:
        return fix  # a hint in prose ("Did you mean: ...") or a signature, checked as Markdown
    return fenced("python", fix)


def test_fix_texts_never_fail_the_verifier_themselves():
    fixes = set()
    for snippet in load("wrong"):
        fixes.update((f.kind, f.fix) for f in verify_markdown(snippet.markdown).findings if f.fix)
    fixes.update(("command", f"{c.display} COMMAND [ARGS]...") for c in command_tree().commands.values())
    assert len(fixes) > 60
    failing = [(kind, fix, errors(_fix_as_markdown(kind, fix))) for kind, fix in sorted(fixes)]
    assert [f for f in failing if f[2]] == []


# --- modules and coroutines -------------------------------------------------------------------------

def test_calling_a_module_is_an_error_with_the_right_import():
    [finding] = check_python('from prefect import concurrency\n\nwith concurrency("db"):\n    pass\n')
    assert "module prefect.concurrency, which is not callable" in finding.message
    assert finding.fix == "from prefect.concurrency.sync import concurrency"
    assert check_python('import prefect.concurrency.sync as c\nwith c.concurrency("db"):\n    pass\n') == []


def test_an_async_only_callable_without_await_is_an_error():
    code = """
        from prefect.concurrency.asyncio import rate_limit

        def call_api():
            rate_limit("github-api")
    """
    [finding] = check_python(textwrap.dedent(code))
    assert "coroutine function and is called without await" in finding.message
    assert finding.fix == "from prefect.concurrency.sync import rate_limit"


@pytest.mark.parametrize("body", [
    "await client.read_global_concurrency_limit_by_name('a')",
    "x = await client.read_global_concurrency_limit_by_name('a')",
    "await asyncio.gather(client.read_global_concurrency_limit_by_name('a'))",
    "coros = [client.read_global_concurrency_limit_by_name(n) for n in 'ab']\n        await asyncio.gather(*coros)",
    "task = client.read_global_concurrency_limit_by_name('a')\n        await task",
])
def test_awaited_or_handed_off_coroutines_pass(body: str):
    code = f"""
import asyncio
from prefect import get_client

async def main():
    async with get_client() as client:
        {body}
"""
    assert check_python(code) == []


@pytest.mark.parametrize(("body", "misuse"), [
    ("client.read_global_concurrency_limit_by_name('a')", "called without await"),
    ("print(client.read_global_concurrency_limit_by_name('a').limit)", "used without await"),
    ("x = client.read_global_concurrency_limit_by_name('a')\n        print(x.limit)", "assigned without await"),
    ("for l in client.read_global_concurrency_limits(limit=10, offset=0): pass", "iterated without await"),
])
def test_unawaited_client_calls_are_errors(body: str, misuse: str):
    code = f"""
from prefect import get_client

async def main():
    async with get_client() as client:
        {body}
"""
    assert any(misuse in f.message for f in check_python(code)), check_python(code)


# --- settings ---------------------------------------------------------------------------------------

def test_config_set_names_are_checked_against_prefects_settings_model():
    assert errors(fenced("bash", "prefect config set PREFECT_WORKER_CONCURRENCY_LIMIT=4")) == [
        "Unknown setting name 'PREFECT_WORKER_CONCURRENCY_LIMIT'.",
        "PREFECT_WORKER_CONCURRENCY_LIMIT is not a Prefect setting in the installed Prefect; Prefect ignores it.",
    ]
    assert errors(fenced("bash", "prefect config set PREFECT_HOME=/x")) == [
        "PREFECT_HOME cannot be changed with `prefect config set`; use an environment variable."
    ]
    assert errors(fenced("bash", "prefect config set PREFECT_API_URL=http://127.0.0.1:4200/api")) == []


def test_every_name_prefect_config_set_accepts_passes_as_an_environment_variable():
    names = sorted(_get_valid_setting_names(Settings))
    assert len(names) > 200
    script = "\n".join(f"export {name}=1" for name in names)
    assert errors(fenced("bash", script)) == []


def test_unknown_environment_names_are_errors_with_the_nearest_real_one():
    [finding] = verify_markdown(fenced("bash", "export PREFECT_TASKS_RUNNER_THREADPOOL_MAX_WORKERS=8")).errors
    assert finding.fix and "PREFECT_TASKS_RUNNER_THREAD_POOL_MAX_WORKERS" in finding.fix


# --- the right limiter across blocks ----------------------------------------------------------------

TAG_THEN_GCL_CODE = fenced("bash", "prefect concurrency-limit create db 2") + fenced("python", """
    from prefect.concurrency.sync import concurrency
    with concurrency("db"):
        pass
""")


def test_a_tag_limit_for_a_name_passed_to_concurrency_is_an_error_naming_the_gcl():
    [finding] = verify_markdown(TAG_THEN_GCL_CODE).errors
    assert "global concurrency limit (GCL) named 'db'" in finding.message
    assert finding.snippet == "prefect concurrency-limit create db 2"
    assert finding.fix == "prefect gcl create db --limit 2"
    assert errors(TAG_THEN_GCL_CODE.replace("prefect concurrency-limit create db 2", finding.fix)) == []


def test_a_tag_limit_for_tagged_tasks_passes():
    answer = fenced("bash", "prefect concurrency-limit create db 2") + fenced("python", """
        from prefect import task
        @task(tags=["db"])
        def write(): ...
    """)
    assert errors(answer) == []


def test_a_gcl_for_tagged_tasks_is_an_error_naming_the_tag_limit():
    answer = fenced("bash", "prefect gcl create db --limit 2") + fenced("python", """
        from prefect import task
        @task(tags=["db"])
        def write(): ...
    """)
    [finding] = verify_markdown(answer).errors
    assert finding.fix == "prefect concurrency-limit create db 2"


def test_await_inside_a_plain_def_is_an_error_but_top_level_and_nested_async_pass():
    sync = "from prefect.concurrency.asyncio import rate_limit\ndef f():\n    await rate_limit('x')\n"
    [finding] = check_python(sync)
    assert "`await` inside the plain function f() is a SyntaxError" in finding.message
    assert check_python("from prefect.concurrency.asyncio import rate_limit\nawait rate_limit('x')\n") == []
    nested = "import asyncio\ndef f():\n    async def g():\n        await asyncio.sleep(1)\n    asyncio.run(g())\n"
    assert check_python(nested) == []


@pytest.mark.parametrize("markdown", [
    fenced("bash", "prefect --version"),
    fenced("bash", "prefect gcl ls -o json > limits.json\nprefect deploy f.py:f -n x -p p >> deploy.log 2>&1"),
    fenced("bash", "prefect worker start --pool <work pool name> --limit 2"),
    fenced("bash", "prefect work-pool set-concurrency-limit [work pool name] 3"),
    fenced("bash", 'prefect automation inspect "nightly-alert" --output yaml'),
    fenced("bash", "prefect config set PREFECT_RESULTS_PERSIST_BY_DEFAULT=true PREFECT_LOGGING_LEVEL=ERROR"),
    fenced("python", "from prefect import task\n@task\ndef add(a, b): ...\nassert add.fn(1, 2) == 3"),
    fenced("python", 'from prefect.blocks.system import Secret\nSecret.load("token", _sync=True)'),
    fenced("python", "from prefect.assets import materialize\n@materialize('s3://a/b.csv')\ndef report(): ..."),
    fenced("bash", "export PREFECT_IMAGE_NAME=acme/etl") + fenced("yaml", 'image_name: "{{ $PREFECT_IMAGE_NAME }}"'),
])
def test_shapes_from_real_documentation_pass(markdown: str):
    """Each of these was flagged while measuring on Prefect's documentation; each is right."""
    assert errors(markdown) == []


def test_a_tag_limit_and_a_gcl_of_the_same_name_together_are_deliberate():
    answer = fenced("bash", "prefect concurrency-limit create db 2\nprefect gcl create db --limit 2") + fenced(
        "python", """
        from prefect import task
        from prefect.concurrency.sync import concurrency

        @task(tags=["db"])
        def write():
            with concurrency("db"):
                ...
    """)
    assert errors(answer) == []


def test_what_prefects_own_prefect_yaml_model_rejects_is_an_error():
    findings, _ = check_yaml("deployments:\n- name: a\n  entrypoint: f.py:f\n  schedule: '@daily'\n")
    [finding] = findings
    assert finding.message.startswith("prefect deploy rejects this prefect.yaml and skips all of its deployments: "
                                      "deployments.0.schedule: ")
    assert check_yaml("build: ...\npull: ...\ndeployments:\n- name: a\n  entrypoint: f.py:f\n") == ([], True)
