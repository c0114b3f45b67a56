"""cli_help reads the installed Prefect CLI in-process: exact usage, aliases, nearest commands."""

from __future__ import annotations

import subprocess
import sys

from bot.prefect_ops.cli_help import cli_help, command_tree


def test_usage_of_work_pool_set_concurrency_limit_is_positional():
    text = cli_help("work-pool set-concurrency-limit")
    assert text.splitlines()[0] == "Usage: prefect work-pool set-concurrency-limit NAME CONCURRENCY-LIMIT"
    assert "CONCURRENCY-LIMIT (--concurrency-limit)" in text


def test_aliases_resolve_and_required_options_are_shown():
    text = cli_help("prefect gcl create")
    assert text.startswith("Usage: prefect global-concurrency-limit create NAME --limit INT [OPTIONS]")
    assert "--limit, -l INT" in text and "[required]" in text
    assert "--slot-decay-per-second FLOAT" in text
    assert cli_help("work-pools slots").startswith("Usage: prefect work-pool slots NAME")


def test_a_group_lists_its_commands_and_aliases():
    text = cli_help("gcl")
    assert "Aliases: prefect gcl" in text
    for sub in ("create", "update", "enable", "disable", "inspect", "ls", "delete"):
        assert f"\n  {sub}" in text


def test_enum_choices_and_flags_are_listed():
    text = cli_help("worker start")
    assert "--install-policy always|if-not-present|never|prompt" in text
    assert "--limit, -l INT  Maximum concurrent flow runs." in text
    assert "--run-once, --no-run-once  " in text  # a flag takes no value


def test_unknown_command_lists_the_nearest():
    text = cli_help("work-pool set-limit")
    assert text.startswith("Unknown command: prefect work-pool set-limit. Nearest commands: "
                           "prefect work-pool set-concurrency-limit")
    assert "Unknown command: prefect deployment set-concurrency-limit" in cli_help(
        "deployment set-concurrency-limit")


def test_tree_has_the_concurrency_commands_and_is_cached():
    tree = command_tree()
    assert tree is command_tree()
    for path in [("global-concurrency-limit", "create"), ("concurrency-limit", "reset"),
                 ("work-queue", "set-concurrency-limit"), ("deploy",), ("flow", "serve")]:
        assert tree.commands[path].runnable
    assert tree.commands[("deployment",)].subcommands.keys() >= {"ls", "inspect", "run", "delete", "schedule"}
    assert cli_help("gcl update") == cli_help("gcl update")  # its cost is the bench's to measure, not a test's


def test_it_imports_nothing_from_slack_or_openai_and_never_runs_prefect():
    code = ("import sys; from bot.prefect_ops.cli_help import cli_help; cli_help('gcl create'); "
            "bad = [m for m in sys.modules if m.split('.')[0] in ('slack_sdk', 'slack_bolt', 'openai', 'bot.slack')]; "
            "import subprocess; print(bad)")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"
