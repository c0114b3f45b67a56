"""Settings checks: they parse, no unknown BOT_* names (likely typos), and no combination that cannot work.

A value that does not parse is reported and replaced by its default, so the other groups still run
and the operator sees every problem in one go instead of one per attempt.
"""

from __future__ import annotations

import difflib
import os
import re
from collections.abc import Mapping
from pathlib import Path

from pydantic import SecretStr, ValidationError

from bot.doctor.report import Row, fail, ok, warn
from bot.settings import Settings

__all__ = ["CHANNEL_ID", "USER_ID", "check_settings", "combination_rows", "known_names"]

GROUP = "Settings"
CHANNEL_ID = re.compile(r"^[CGD][A-Z0-9]{2,}$")
USER_ID = re.compile(r"^[UW][A-Z0-9]{2,}$")
PREFIXES = ("BOT_", "SLACK_", "OPENAI_")
# Names with a prefix of ours that belong to someone else (the openai package reads these itself).
FOREIGN = {"OPENAI_ORG_ID", "OPENAI_PROJECT_ID", "OPENAI_ORGANIZATION", "OPENAI_LOG", "OPENAI_API_VERSION",
           "OPENAI_WEBHOOK_SECRET", "SLACK_CLIENT_ID", "SLACK_CLIENT_SECRET"}


def known_names() -> list[str]:
    return sorted(name.upper() for name in Settings.model_fields)


def _environment(env: Mapping[str, str] | None, env_file: Path | None) -> dict[str, str]:
    """What Settings reads: the .env file, overridden by the process environment."""
    values: dict[str, str] = {}
    if env_file is not None and env_file.is_file():
        from dotenv import dotenv_values

        values.update({k: v for k, v in dotenv_values(env_file).items() if v is not None})
    values.update(os.environ if env is None else env)
    return values


def _parse(env: Mapping[str, str] | None, env_file: Path | None) -> tuple[Settings, list[Row]]:
    """Settings as `serve` would build them; each bad value becomes a ✗ row and falls back to its default."""
    def build(**overrides: object) -> Settings:
        if env is None:
            return Settings(_env_file=env_file, **overrides)  # type: ignore[call-arg]
        given = {k.lower(): v for k, v in env.items() if k.lower() in Settings.model_fields}
        return Settings(_env_file=None, **{**given, **overrides})  # type: ignore[call-arg]

    rows: list[Row] = []
    overrides: dict[str, object] = {}
    for _ in range(len(Settings.model_fields)):
        try:
            return build(**overrides), rows
        except ValidationError as exc:
            for error in exc.errors():
                name = str(error["loc"][0]) if error["loc"] else ""
                if name not in Settings.model_fields or name in overrides:
                    rows.append(fail(GROUP, "parse", f"the settings do not parse: {error['msg']}",
                                     "fix the value named above in the environment or .env", unsafe=True))
                    return build(), rows
                field = Settings.model_fields[name]
                secret = field.annotation is not None and SecretStr in getattr(field.annotation, "__args__", ())
                shown = "" if secret else f"={str(error.get('input'))[:60]!r}"
                rows.append(fail(GROUP, name.upper(), f"{name.upper()}{shown} does not parse: {error['msg']}",
                                 f"set {name.upper()} to a valid value or unset it (default: {field.default!r})",
                                 unsafe=True))
                overrides[name] = field.get_default(call_default_factory=True)
    return build(**overrides), rows


def _unknown_names(values: Mapping[str, str]) -> list[Row]:
    known = known_names()
    rows = []
    for name in sorted(values):
        upper = name.upper()
        if not upper.startswith(PREFIXES) or upper in known or upper in FOREIGN:
            continue
        if not upper.startswith("BOT_") and not difflib.get_close_matches(upper, known, n=1, cutoff=0.85):
            continue  # SLACK_/OPENAI_ names that look like nothing of ours are someone else's
        close = difflib.get_close_matches(upper, known, n=1, cutoff=0.6)
        hint = f"did you mean {close[0]}?" if close else "no setting has this name (README, Settings)"
        rows.append(warn(GROUP, upper, f"{upper} is set but the bot reads no such setting",
                         f"{hint} Rename or remove it."))
    return rows


def combination_rows(settings: Settings) -> list[Row]:
    rows: list[Row] = []
    allowed = settings.bot_allowed_channels
    bad_channels = [c for c in allowed if not CHANNEL_ID.match(c)]
    if bad_channels:
        rows.append(fail(GROUP, "BOT_ALLOWED_CHANNELS", f"not channel IDs: {', '.join(bad_channels)}",
                         "use channel IDs (C…/G…; channel details → About → Channel ID), not names"))
    watch = settings.bot_watch_channel
    if watch and not CHANNEL_ID.match(watch):
        rows.append(fail(GROUP, "BOT_WATCH_CHANNEL", f"{watch!r} is not a channel ID",
                         "use the channel's ID (C…/G…; channel details → About → Channel ID), not its name"))
    elif watch and allowed and watch not in allowed:
        rows.append(fail(GROUP, "BOT_WATCH_CHANNEL",
                         f"the watch channel {watch} is outside BOT_ALLOWED_CHANNELS: questions in its "
                         "incident threads would be refused", f"add {watch} to BOT_ALLOWED_CHANNELS"))
    bad_users = [u for u in settings.bot_approver_ids if not USER_ID.match(u)]
    if bad_users:
        rows.append(fail(GROUP, "BOT_APPROVER_IDS", f"not Slack member IDs: {', '.join(bad_users)}",
                         "use member IDs (U…; profile → ⋮ → Copy member ID), not names or @handles"))
    if settings.bot_interrupted_after_seconds <= settings.bot_answer_timeout_seconds:
        rows.append(fail(GROUP, "BOT_INTERRUPTED_AFTER_SECONDS",
                         f"{settings.bot_interrupted_after_seconds:g} s is not above BOT_ANSWER_TIMEOUT_SECONDS "
                         f"({settings.bot_answer_timeout_seconds:g} s): answers still running would be "
                         "treated as cut off by a crash",
                         "raise BOT_INTERRUPTED_AFTER_SECONDS above BOT_ANSWER_TIMEOUT_SECONDS"))
    if settings.bot_model_timeout_seconds > settings.bot_answer_timeout_seconds:
        rows.append(warn(GROUP, "BOT_MODEL_TIMEOUT_SECONDS",
                         f"one model request may take {settings.bot_model_timeout_seconds:g} s, longer than "
                         f"a whole answer ({settings.bot_answer_timeout_seconds:g} s)",
                         "lower BOT_MODEL_TIMEOUT_SECONDS below BOT_ANSWER_TIMEOUT_SECONDS"))
    second = settings.bot_approval_require_second_person or settings.bot_destructive_require_second_person
    if second and len(settings.bot_approver_ids) == 1 and not settings.bot_approver_group:
        rows.append(warn(GROUP, "second person",
                         "a second-person rule is on with one approver: their own proposals can never be applied",
                         "add a second approver (BOT_APPROVER_IDS or BOT_APPROVER_GROUP) or turn the rule off"))
    return rows


def check_settings(env: Mapping[str, str] | None = None,
                   env_file: Path | None = Path(".env")) -> tuple[Settings, list[Row]]:
    """The settings to check the services with, and the Settings rows. `env=None` reads the process."""
    settings, rows = _parse(env, env_file)
    rows += _unknown_names(_environment(env, env_file))
    rows += combination_rows(settings)
    if not rows:
        source = f" (with {env_file})" if env_file is not None and env_file.is_file() else ""
        rows.append(ok(GROUP, "settings", f"parse, no unknown names, no conflicts{source}"))
    return settings, rows
