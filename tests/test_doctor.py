"""`concurrency-bot doctor`: Settings, Slack and Store checks against the strict test Slack and real databases.

Each failure mode produces its ✗ (or ⚠) row and a fix line; a healthy setup is all ✓.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import create_engine, text

from bot.doctor.report import Report, Row, Status
from bot.doctor.settings_checks import check_settings
from bot.doctor.slack_checks import check_slack
from bot.doctor.store_checks import check_store
from bot.settings import Settings, load_settings
from bot.slack.scopes import BOT_SCOPES
from bot.store import Store
from bot.store.migrate import head_revision, upgrade
from tests.fakes.slack_api import APP_TOKENS, USER_TOKENS
from tests.harness import BOT_TOKEN, SIGNING_SECRET

ROOT = Path(__file__).resolve().parent.parent
APP_TOKEN = next(iter(APP_TOKENS))
BIN = Path(sys.executable).with_name("concurrency-bot")


def row(rows: list[Row], group: str, name: str) -> Row:
    found = [r for r in rows if r.group == group and r.name == name]
    assert found, f"no {group}/{name} row in {[(r.group, r.name) for r in rows]}"
    return found[0]


def slack_settings(slack, **overrides):
    values = {"slack_bot_token": BOT_TOKEN, "slack_signing_secret": SIGNING_SECRET,
              "slack_api_url": f"{slack.url}/api/", **overrides}
    return load_settings(**values)


# --- Report ------------------------------------------------------------------------------------

def test_a_row_that_is_not_ok_must_carry_a_fix():
    with pytest.raises(ValueError):
        Row("Slack", "token", Status.FAIL, "bad", "")
    report = Report([Row("Slack", "token", Status.FAIL, "bad", "do this"), Row("Store", "db", Status.OK, "fine")])
    assert report.exit_code() == 1 and "→ do this" in report.table() and report.as_dict()["ok"] is False


# --- Settings ----------------------------------------------------------------------------------

def test_clean_settings_are_one_ok_row():
    _settings, rows = check_settings({"BOT_ALLOWED_CHANNELS": "C111,C222", "BOT_WATCH_CHANNEL": "C111"}, None)
    assert [r.status for r in rows] == [Status.OK]


def test_unknown_bot_name_is_flagged_with_did_you_mean():
    _settings, rows = check_settings({"BOT_APROVER_IDS": "U123", "BOT_WHATEVER_THING": "1",
                                      "OPENAI_ORG_ID": "org-1", "SLACK_SIGNING_SECRT": "x"}, None)
    typo = row(rows, "Settings", "BOT_APROVER_IDS")
    assert typo.status is Status.WARN and "did you mean BOT_APPROVER_IDS?" in typo.fix
    assert "no setting has this name" in row(rows, "Settings", "BOT_WHATEVER_THING").fix
    assert "did you mean SLACK_SIGNING_SECRET?" in row(rows, "Settings", "SLACK_SIGNING_SECRT").fix
    assert not [r for r in rows if r.name == "OPENAI_ORG_ID"]  # the openai package's own setting


def test_unknown_names_in_the_env_file_count_too(tmp_path):
    env_file = tmp_path / ".env"
    env_file.write_text("BOT_READONLY=true\n")
    _settings, rows = check_settings({}, env_file)
    assert "did you mean BOT_READ_ONLY?" in row(rows, "Settings", "BOT_READONLY").fix


def test_a_value_that_does_not_parse_is_a_fail_and_the_rest_still_runs():
    settings, rows = check_settings({"BOT_WATCH_INTERVAL_SECONDS": "soon", "BOT_MAX_TOOL_ROUNDS": "7"}, None)
    bad = row(rows, "Settings", "BOT_WATCH_INTERVAL_SECONDS")
    assert bad.status is Status.FAIL and bad.unsafe and "'soon'" in bad.detail
    assert settings.bot_watch_interval_seconds == 30.0 and settings.bot_max_tool_rounds == 7


def test_a_secret_that_does_not_parse_is_not_echoed():
    _settings, rows = check_settings({"BOT_METRICS_TOKEN": "s3cr3t-value", "BOT_PROPOSAL_TTL_SECONDS": "x"}, None)
    assert not any("s3cr3t-value" in r.detail + r.fix for r in rows)


def test_a_watch_channel_outside_the_allowed_channels_cannot_work():
    _settings, rows = check_settings({"BOT_ALLOWED_CHANNELS": "C111", "BOT_WATCH_CHANNEL": "C999"}, None)
    bad = row(rows, "Settings", "BOT_WATCH_CHANNEL")
    assert bad.status is Status.FAIL and bad.fix == "add C999 to BOT_ALLOWED_CHANNELS"


def test_names_where_ids_belong_and_an_interrupt_window_below_the_answer_timeout():
    _settings, rows = check_settings({"BOT_ALLOWED_CHANNELS": "#ops", "BOT_APPROVER_IDS": "@alice",
                                      "BOT_INTERRUPTED_AFTER_SECONDS": "60"}, None)
    assert "#ops" in row(rows, "Settings", "BOT_ALLOWED_CHANNELS").detail
    assert "@alice" in row(rows, "Settings", "BOT_APPROVER_IDS").detail
    assert row(rows, "Settings", "BOT_INTERRUPTED_AFTER_SECONDS").status is Status.FAIL


# --- Slack -------------------------------------------------------------------------------------

def test_scopes_in_code_match_the_manifest():
    manifest = yaml.safe_load((ROOT / "manifest.yaml").read_text())
    assert set(manifest["oauth_config"]["scopes"]["bot"]) == BOT_SCOPES


async def test_healthy_slack_is_all_ok(fresh_slack):
    fresh_slack.usergroup_handles["oncall"] = "S0ONCALL"
    fresh_slack.usergroup_members["S0ONCALL"] = ["UAPPROVER2", "UAPPROVER3"]
    settings = slack_settings(fresh_slack, bot_allowed_channels="C0OPS,G0PRIVATE", bot_watch_channel="C0OPS",
                              bot_approver_ids="UAPPROVER1", bot_approver_group="oncall")
    rows = await check_slack(settings)
    assert [(r.name, r.status) for r in rows if r.status is not Status.OK] == []
    assert {r.name for r in rows} >= {"token", "scopes", "HTTP mode", "in C0OPS", "in G0PRIVATE", "approver ids",
                                      "approver group"}
    assert "no Enterprise Grid" in row(rows, "Slack", "token").detail
    assert "BOT_WATCH_CHANNEL" in row(rows, "Slack", "in C0OPS").detail


async def test_grid_install_is_named(fresh_slack):
    fresh_slack.enterprise_id = "E0ORG"
    rows = await check_slack(slack_settings(fresh_slack, bot_approver_ids="UAPPROVER1"))
    assert "Enterprise Grid org E0ORG" in row(rows, "Slack", "token").detail


async def test_no_bot_token_is_a_warning_with_a_next_step():
    rows = await check_slack(load_settings())
    assert [r.status for r in rows] == [Status.WARN] and "SLACK_BOT_TOKEN" in rows[0].fix


@pytest.mark.parametrize("token,said", [(APP_TOKEN, "app-level token"), (next(iter(USER_TOKENS)), "user token")])
async def test_wrong_token_type_is_an_unsafe_fail(fresh_slack, token, said):
    rows = await check_slack(slack_settings(fresh_slack, slack_bot_token=token))
    bad = row(rows, "Slack", "token")
    assert bad.status is Status.FAIL and bad.unsafe and said in bad.detail and "xoxb-" in bad.fix


async def test_a_revoked_token_is_named(fresh_slack):
    rows = await check_slack(slack_settings(fresh_slack, slack_bot_token="xoxb-revoked-000000"))
    assert "invalid_auth" in row(rows, "Slack", "token").detail


async def test_missing_scope_is_read_from_slacks_header(fresh_slack):
    fresh_slack.granted_scopes -= {"usergroups:read", "channels:read"}
    fresh_slack.usergroup_handles["oncall"] = "S0ONCALL"
    rows = await check_slack(slack_settings(fresh_slack, bot_allowed_channels="C0OPS", bot_approver_group="oncall"))
    scopes = row(rows, "Slack", "scopes")
    assert scopes.status is Status.FAIL and scopes.detail == "missing channels:read, usergroups:read"
    assert "reinstall" in scopes.fix
    # membership cannot be read without channels:read: one row says so instead of one per channel
    assert "channels:read" in row(rows, "Slack", "channels").detail and not [r for r in rows if r.name == "in C0OPS"]
    assert "usergroups:read" in row(rows, "Slack", "approver group").fix


async def test_socket_mode_app_token_opens_a_connection(fresh_slack):
    fresh_slack.socket_url = "wss://fake.invalid/link/?ticket=doctor"
    try:
        rows = await check_slack(slack_settings(fresh_slack, slack_app_token=APP_TOKEN, slack_signing_secret=None))
    finally:
        fresh_slack.socket_url = None
    assert row(rows, "Slack", "Socket Mode").status is Status.OK
    assert fresh_slack.calls_to("apps.connections.open")


async def test_a_bot_token_in_the_app_token_setting_is_an_unsafe_fail(fresh_slack):
    rows = await check_slack(slack_settings(fresh_slack, slack_app_token=BOT_TOKEN))
    bad = row(rows, "Slack", "Socket Mode")
    assert bad.status is Status.FAIL and bad.unsafe and "xapp-" in bad.fix


async def test_http_mode_without_signing_secret_is_unsafe(fresh_slack):
    rows = await check_slack(slack_settings(fresh_slack, slack_signing_secret=None))
    bad = row(rows, "Slack", "HTTP mode")
    assert bad.status is Status.FAIL and bad.unsafe and "SLACK_SIGNING_SECRET" in bad.fix


async def test_bot_not_in_the_channel(fresh_slack):
    fresh_slack.not_in_channels |= {"C0OPS", "G0SECRET"}
    fresh_slack.archived_channels.add("C0OLD")
    rows = await check_slack(slack_settings(fresh_slack, bot_allowed_channels="C0OPS,C0OLD",
                                            bot_watch_channel="G0SECRET"))
    ops = row(rows, "Slack", "in C0OPS")
    assert ops.status is Status.FAIL and "not a member" in ops.detail and "/invite" in ops.fix
    secret = row(rows, "Slack", "in G0SECRET")  # a private channel the bot is not in is invisible to it
    assert secret.status is Status.FAIL and "BOT_WATCH_CHANNEL" in secret.detail and "/invite" in secret.fix
    assert "archived" in row(rows, "Slack", "in C0OLD").detail


async def test_unknown_deleted_and_bot_approvers(fresh_slack):
    fresh_slack.absent_users.add("U0GONE")
    fresh_slack.deleted_users.add("U0LEFT")
    fresh_slack.bot_users.add("U0ROBOT")
    rows = await check_slack(slack_settings(fresh_slack, bot_approver_ids="UAPPROVER1,U0GONE,U0LEFT,U0ROBOT"))
    bad = row(rows, "Slack", "approver ids")
    assert bad.status is Status.FAIL
    assert "U0GONE (Slack: user_not_found)" in bad.detail and "U0LEFT (deactivated)" in bad.detail
    assert "U0ROBOT (a bot, not a person)" in bad.detail and "UAPPROVER1" not in bad.detail
    assert "BOT_APPROVER_IDS" in bad.fix


async def test_unknown_or_empty_approver_group(fresh_slack):
    rows = await check_slack(slack_settings(fresh_slack, bot_approver_group="nosuchgroup"))
    assert "no user group with this handle" in row(rows, "Slack", "approver group").detail
    fresh_slack.usergroup_members["S0EMPTY"] = []
    rows = await check_slack(slack_settings(fresh_slack, bot_approver_group="S0EMPTY"))
    assert "has no members" in row(rows, "Slack", "approver group").detail
    rows = await check_slack(slack_settings(fresh_slack, bot_approver_group="S0MISSING"))
    assert "no_such_subteam" in row(rows, "Slack", "approver group").detail


async def test_no_approvers_is_a_warning(fresh_slack):
    rows = await check_slack(slack_settings(fresh_slack))
    assert row(rows, "Slack", "approvers").status is Status.WARN


# --- Store -------------------------------------------------------------------------------------

async def test_store_at_head_and_writable(tmp_path):
    Store.open(f"sqlite:///{tmp_path / 'bot.db'}").close()
    rows = await check_store(load_settings(bot_database_url=f"sqlite:///{tmp_path / 'bot.db'}"))
    assert [(r.name, r.status) for r in rows] == [("database", Status.OK), ("migrations", Status.OK),
                                                  ("writable", Status.OK)]
    assert head_revision() in row(rows, "Store", "migrations").detail


async def test_a_fresh_data_dir_is_fine_and_not_created(tmp_path):
    rows = await check_store(load_settings(bot_data_dir=tmp_path / "new" / "dir"))
    assert [r.status for r in rows] == [Status.OK] and not (tmp_path / "new").exists()


async def test_a_database_at_an_old_migration(tmp_path):
    url = f"sqlite:///{tmp_path / 'old.db'}"
    engine = create_engine(url)
    upgrade(engine, "0003")
    engine.dispose()
    rows = await check_store(load_settings(bot_database_url=url))
    old = row(rows, "Store", "migrations")
    assert old.status is Status.FAIL and old.detail.startswith("at 0003, this bot needs") and "migrates" in old.fix


async def test_a_database_from_a_newer_bot(tmp_path):
    url = f"sqlite:///{tmp_path / 'new.db'}"
    Store.open(url).close()
    engine = create_engine(url)
    with engine.begin() as connection:
        connection.execute(text("UPDATE alembic_version SET version_num = '9999'"))
    engine.dispose()
    rows = await check_store(load_settings(bot_database_url=url))
    assert row(rows, "Store", "migrations").unsafe


async def test_a_read_only_database_and_one_that_does_not_answer(tmp_path):
    path = tmp_path / "ro.db"
    Store.open(f"sqlite:///{path}").close()
    rows = await check_store(load_settings(bot_database_url=f"sqlite:///file:{path}?mode=ro&uri=true"))
    writable = row(rows, "Store", "writable")
    assert writable.status is Status.FAIL and writable.unsafe
    rows = await check_store(load_settings(bot_database_url="postgresql://bot:pw-secret-1@127.0.0.1:9/bot"))
    down = row(rows, "Store", "database")
    assert down.status is Status.FAIL and "pw-secret-1" not in down.detail and "BOT_DATABASE_URL" in down.fix


# --- the command -------------------------------------------------------------------------------

def test_doctor_on_a_fresh_machine_prints_only_ok_and_warnings(tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SLACK_", "OPENAI_", "BOT_", "PREFECT_"))}
    env.update(HOME=str(tmp_path), PREFECT_HOME=str(tmp_path / "prefect"))
    done = subprocess.run([str(BIN), "doctor"], env=env, cwd=tmp_path, capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "  ✗ " not in done.stdout and done.stdout.rstrip().endswith("0 ✗") and "Traceback" not in done.stderr
    for needed in ("SLACK_BOT_TOKEN", "PREFECT_API_URL", "offline answers only", "OPENAI_API_KEY"):
        assert needed in done.stdout
    as_json = subprocess.run([str(BIN), "doctor", "--json"], env=env, cwd=tmp_path, capture_output=True,
                             text=True, timeout=120)
    payload = json.loads(as_json.stdout)
    assert payload["ok"] is True and all(c["fix"] for c in payload["checks"] if c["status"] != "ok")


# --- generated inputs --------------------------------------------------------------------------

_names = st.one_of(st.sampled_from(sorted(n.upper() for n in Settings.model_fields)),
                   st.from_regex(r"BOT_[A-Z_]{1,30}", fullmatch=True))
_values = st.text(st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00"), max_size=40)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.dictionaries(_names, _values, max_size=6))
def test_any_environment_gives_rows_never_a_traceback(env):
    """Whatever is in the environment: settings come back, every ⚠/✗ has a fix, no secret is echoed."""
    built, rows = check_settings(env, None)
    assert isinstance(built, Settings) and rows
    assert all(r.fix for r in rows if r.status is not Status.OK)
    secrets = {v for k, v in env.items() if k.endswith(("TOKEN", "SECRET", "KEY")) and len(v) >= 6}
    assert not any(s in r.detail or s in r.fix for r in rows for s in secrets)


def test_home_tab_setup_lines_cannot_ping_or_link():
    from bot.slack.home import setup_blocks

    text_ = str([b.to_dict() for b in setup_blocks(["✗ Model · model: provider said <!channel> <https://evil.example|x>"])])
    assert "<!channel>" not in text_ and "<https://evil.example" not in text_ and "&lt;!channel&gt;" in text_


def test_doctor_exits_non_zero_on_a_fail(tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SLACK_", "OPENAI_", "BOT_", "PREFECT_"))}
    env.update(HOME=str(tmp_path), PREFECT_HOME=str(tmp_path / "prefect"), BOT_ALLOWED_CHANNELS="C0OPS",
               BOT_WATCH_CHANNEL="C0ALERTS")
    done = subprocess.run([str(BIN), "doctor", "--json"], env=env, cwd=tmp_path, capture_output=True, text=True,
                          timeout=120)
    payload = json.loads(done.stdout)
    assert done.returncode == 1 and payload["ok"] is False and payload["summary"]["fail"] == 1
    [bad] = [c for c in payload["checks"] if c["status"] == "fail"]
    assert bad["name"] == "BOT_WATCH_CHANNEL" and bad["fix"] == "add C0ALERTS to BOT_ALLOWED_CHANNELS"


def test_a_malformed_prefect_url_is_a_row_not_a_validation_dump(tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SLACK_", "OPENAI_", "BOT_", "PREFECT_"))}
    env.update(HOME=str(tmp_path), PREFECT_HOME=str(tmp_path / "prefect"), PREFECT_API_URL="http://[bad")
    done = subprocess.run([str(BIN), "doctor"], env=env, cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert done.returncode == 1
    assert "✗ server    PREFECT_API_URL is not a valid URL" in done.stdout and "set PREFECT_API_URL" in done.stdout
    assert "validation error" not in (done.stdout + done.stderr).lower() and "Traceback" not in done.stderr
    assert "✓ database" in done.stdout  # the other groups still ran
