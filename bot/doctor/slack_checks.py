"""Slack checks: the token (type, team, Grid), granted scopes, the connection mode, channel membership,
and that approvers are people.

Everything here is a read: `auth.test`, `apps.connections.open` (hands out a WebSocket URL nobody
uses), `conversations.info`, `users.info`, `usergroups.list` / `usergroups.users.list`.
"""

from __future__ import annotations

import asyncio
from typing import Any

from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient

from bot.doctor.report import Row, fail, ok, warn
from bot.settings import Settings
from bot.slack.scopes import BOT_SCOPES

__all__ = ["check_slack"]

GROUP = "Slack"
REINSTALL = "then reinstall the app to the workspace (Install App → Reinstall)"
TOKEN_HELP = "use the Bot User OAuth Token (xoxb-…) from OAuth & Permissions"


def _error(exc: BaseException) -> str:
    if isinstance(exc, SlackApiError):
        return str(exc.response.get("error") or "error")
    return type(exc).__name__


def _secret(value: Any) -> str | None:
    return value.get_secret_value() if value is not None and value.get_secret_value() else None


async def _auth(client: AsyncWebClient, token: str) -> tuple[list[Row], dict[str, Any] | None, set[str] | None]:
    """auth.test: who the token is, and (from the x-oauth-scopes header) what it may do."""
    try:
        response = await client.auth_test()
    except SlackApiError as exc:
        error = _error(exc)
        if error == "not_allowed_token_type" or token.startswith(("xapp-", "xoxp-")):
            kind = "an app-level token (xapp-)" if token.startswith("xapp-") else "not a bot token"
            return [fail(GROUP, "token", f"SLACK_BOT_TOKEN is {kind} (Slack: {error})",
                         f"{TOKEN_HELP}; the xapp- token goes in SLACK_APP_TOKEN", unsafe=True)], None, None
        if error in ("invalid_auth", "not_authed", "account_inactive", "token_revoked", "token_expired"):
            return [fail(GROUP, "token", f"Slack refused SLACK_BOT_TOKEN ({error})",
                         f"{TOKEN_HELP}; a reinstalled or rotated app has a new token", unsafe=True)], None, None
        return [fail(GROUP, "token", f"auth.test failed ({error})", "check SLACK_API_URL and Slack's status")], \
            None, None
    except Exception as exc:  # network: wrong SLACK_API_URL, proxy, DNS
        return [fail(GROUP, "token", f"could not reach Slack at the API URL ({_error(exc)})",
                     "check network access to Slack, or SLACK_API_URL")], None, None
    info = dict(response.data) if isinstance(response.data, dict) else {}
    if not info.get("bot_id"):
        return [fail(GROUP, "token", f"SLACK_BOT_TOKEN is a user token (user {info.get('user_id')}), not a bot token",
                     TOKEN_HELP, unsafe=True)], info, None
    grid = (f"Enterprise Grid org {info['enterprise_id']}" if info.get("enterprise_id") else "no Enterprise Grid")
    install = ", org-wide install" if info.get("is_enterprise_install") else ""
    team = info.get("team") or info.get("team_id")
    rows = [ok(GROUP, "token", f"bot token for team {team} ({info.get('team_id')}), {grid}{install}")]
    headers = {k.lower(): v for k, v in (response.headers or {}).items()}
    raw = headers.get("x-oauth-scopes")
    scopes = {s.strip() for s in raw.split(",") if s.strip()} if raw is not None else None
    return rows, info, scopes


def _scope_row(granted: set[str] | None) -> Row:
    if granted is None:
        return warn(GROUP, "scopes", "Slack did not say which scopes the token has (no x-oauth-scopes header)",
                    "compare OAuth & Permissions → Bot Token Scopes with manifest.yaml by hand")
    missing = sorted(BOT_SCOPES - granted)
    if missing:
        return fail(GROUP, "scopes", f"missing {', '.join(missing)}",
                    f"add {', '.join(missing)} under OAuth & Permissions → Bot Token Scopes (or paste manifest.yaml), "
                    f"{REINSTALL}")
    extra = sorted(granted - BOT_SCOPES)
    more = f" (plus {', '.join(extra)}, which the bot does not use)" if extra else ""
    return ok(GROUP, "scopes", f"all {len(BOT_SCOPES)} scopes of manifest.yaml granted{more}")


async def _mode(settings: Settings) -> Row:
    app_token = _secret(settings.slack_app_token)
    if app_token is None:
        if _secret(settings.slack_signing_secret) is None:
            return fail(GROUP, "HTTP mode",
                        "SLACK_SIGNING_SECRET is not set: HTTP mode needs it to verify requests to /slack/events",
                        "set SLACK_SIGNING_SECRET (Basic Information → App Credentials), or SLACK_APP_TOKEN for "
                        "Socket Mode", unsafe=True)
        return ok(GROUP, "HTTP mode", "signing secret set; Slack must reach https://YOUR-HOST/slack/events")
    client = AsyncWebClient(token=app_token, base_url=settings.slack_api_url.rstrip("/") + "/")
    try:
        await client.apps_connections_open(app_token=app_token)
    except SlackApiError as exc:
        error = _error(exc)
        if error == "not_allowed_token_type":
            return fail(GROUP, "Socket Mode", f"SLACK_APP_TOKEN is not an app-level token (Slack: {error})",
                        "create an app-level token (xapp-…) with connections:write under Basic Information → "
                        "App-Level Tokens", unsafe=True)
        return fail(GROUP, "Socket Mode", f"the app token cannot open a connection (Slack: {error})",
                    "turn Socket Mode on (Settings → Socket Mode) and use a current xapp- token with "
                    "connections:write", unsafe=True)
    except Exception as exc:
        return fail(GROUP, "Socket Mode", f"could not reach Slack ({_error(exc)})",
                    "check network access to Slack, or SLACK_API_URL")
    return ok(GROUP, "Socket Mode", "the app token opens a connection (apps.connections.open)")


async def _channel(client: AsyncWebClient, channel: str, setting: str, bot: str) -> Row:
    name = f"in {channel}"
    try:
        info = (await client.conversations_info(channel=channel)).get("channel") or {}
    except SlackApiError as exc:
        error = _error(exc)
        if error == "missing_scope":
            return fail(GROUP, name, f"cannot check {setting} {channel}: the token lacks channels:read/groups:read",
                        f"add channels:read and groups:read to the app, {REINSTALL}")
        if error == "channel_not_found":
            return fail(GROUP, name, f"{setting} {channel}: no such channel, or a private one the bot is not in",
                        f"check the ID; for a private channel, invite the bot there: /invite @{bot} in {channel}")
        return fail(GROUP, name, f"could not read {setting} {channel} ({error})", "check the channel ID")
    except Exception as exc:
        return fail(GROUP, name, f"could not read {setting} {channel} ({_error(exc)})", "check network access")
    if info.get("is_archived"):
        return fail(GROUP, name, f"{setting} {channel} is archived", f"unarchive it or remove it from {setting}")
    if not info.get("is_member"):
        return fail(GROUP, name, f"the bot is not a member of {channel} ({setting})",
                    f"invite it: /invite @{bot} in {channel}")
    return ok(GROUP, name, f"the bot is a member ({setting})")


async def _person(client: AsyncWebClient, user: str) -> str | None:
    """None when `user` is an active human; else why not."""
    try:
        person = (await client.users_info(user=user)).get("user") or {}
    except SlackApiError as exc:
        return f"Slack: {_error(exc)}"
    if person.get("deleted"):
        return "deactivated"
    if person.get("is_bot") or person.get("is_app_user"):
        return "a bot, not a person"
    return None


async def _approvers(client: AsyncWebClient, settings: Settings) -> list[Row]:
    rows: list[Row] = []
    ids = settings.bot_approver_ids
    if ids:
        problems = await asyncio.gather(*(_person(client, u) for u in ids))
        bad = [f"{u} ({why})" for u, why in zip(ids, problems, strict=True) if why]
        if bad:
            rows.append(fail(GROUP, "approver ids", f"not people in this workspace: {', '.join(bad)}",
                             "fix BOT_APPROVER_IDS: member IDs (U…) from profile → ⋮ → Copy member ID"))
        else:
            rows.append(ok(GROUP, "approver ids", f"{len(ids)} approver(s), all people"))
    if settings.bot_approver_group:
        rows.append(await _group(client, settings))
    if not rows:
        rows.append(warn(GROUP, "approvers", "nobody can approve changes",
                         "set BOT_APPROVER_IDS (member IDs) or BOT_APPROVER_GROUP (a user group handle)"))
    return rows


async def _group(client: AsyncWebClient, settings: Settings) -> Row:
    from bot.approvals.policy import ApprovalPolicy, ApproverGroupError

    name = "approver group"
    try:
        group = await ApprovalPolicy(settings, client).resolve_group()
        members = list((await client.usergroups_users_list(usergroup=group)).get("users") or [])
    except ApproverGroupError as exc:
        scope = isinstance(exc.__cause__, SlackApiError) and _error(exc.__cause__) == "missing_scope"
        return fail(GROUP, name, str(exc), f"add usergroups:read to the app, {REINSTALL}" if scope
                    else "set BOT_APPROVER_GROUP to the group's handle (without @) or ID (S…)")
    except SlackApiError as exc:
        error = _error(exc)
        fix = (f"add usergroups:read to the app, {REINSTALL}" if error == "missing_scope"
               else "set BOT_APPROVER_GROUP to the group's handle (without @) or ID (S…)")
        return fail(GROUP, name, f"{settings.bot_approver_group}: Slack answered {error}", fix)
    if not members:
        return fail(GROUP, name, f"{settings.bot_approver_group} has no members: nobody in it can approve",
                    "add people to the user group, or set BOT_APPROVER_IDS")
    problems = await asyncio.gather(*(_person(client, u) for u in members[:50]))
    people = sum(p is None for p in problems)
    if not people:
        return fail(GROUP, name, f"{settings.bot_approver_group}: none of its members is an active person",
                    "add people to the user group, or set BOT_APPROVER_IDS")
    return ok(GROUP, name, f"{settings.bot_approver_group} ({group}): {people} active member(s)")


async def check_slack(settings: Settings) -> list[Row]:
    from bot.slack.app import web_client

    token = _secret(settings.slack_bot_token)
    if token is None:
        return [warn(GROUP, "Slack", "off: no SLACK_BOT_TOKEN, so only the terminal front ends run",
                     "to run in Slack: create the app from manifest.yaml and set SLACK_BOT_TOKEN (README "
                     "\"Create the Slack app\")")]
    client = web_client(settings)
    rows, info, granted = await _auth(client, token)
    mode = await _mode(settings)
    if info is None or not info.get("bot_id"):
        return [*rows, mode]
    rows.append(_scope_row(granted))
    rows.append(mode)
    channels = [(c, "BOT_ALLOWED_CHANNELS") for c in settings.bot_allowed_channels]
    watch = settings.bot_watch_channel
    if watch and watch not in settings.bot_allowed_channels:
        channels.append((watch, "BOT_WATCH_CHANNEL"))
    elif watch:
        channels = [(c, "BOT_WATCH_CHANNEL" if c == watch else s) for c, s in channels]
    channels = [(c, s) for c, s in channels if not c.startswith("D")]
    unreadable = granted is not None and not {"channels:read", "groups:read"} <= granted
    if channels and unreadable:  # every conversations.info would answer missing_scope: say it once
        rows.append(warn(GROUP, "channels", f"cannot check that the bot is in {', '.join(c for c, _ in channels)} "
                         "without channels:read and groups:read", "grant them (see the scopes row), then run "
                         "`concurrency-bot doctor` again"))
    elif channels:
        bot = str(info.get("user") or "the-bot")
        rows += await asyncio.gather(*(_channel(client, c, s, bot) for c, s in channels))
    rows += await _approvers(client, settings)
    return rows
