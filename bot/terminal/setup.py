"""The terminal's composition root: settings → store → approvals → pipeline, like bot/runtime.py for Slack.

The person at the terminal runs the bot with their own Prefect credentials, so they are an
approver here (unless the bot is read-only): their decisions go through the same service, the
same checks and the same audit log as a Slack click, recorded as `terminal:<login>`.
"""

from __future__ import annotations

import getpass
import logging
import uuid
from dataclasses import dataclass, field
from typing import Any

from bot.settings import Settings

__all__ = ["TerminalRuntime", "build_terminal_runtime", "terminal_user", "quiet_logging"]


def terminal_user() -> str:
    try:
        login = getpass.getuser()
    except Exception:  # no login name in some containers
        login = "local"
    return f"terminal:{login}"


def quiet_logging(settings: Settings) -> None:
    """Warnings and errors to stderr only, so they never mix with the answers on stdout."""
    from bot.logging_setup import configure_logging

    configure_logging(settings.model_copy(update={"bot_log_level": "WARNING"}))
    for handler in logging.getLogger().handlers:  # libraries (bm25s) set their own loggers to DEBUG
        handler.setLevel(logging.WARNING)
    logging.getLogger("prefect").setLevel(logging.ERROR)


@dataclass
class TerminalRuntime:
    settings: Settings
    user_id: str
    store: Any
    approvals: Any
    pipeline: Any
    session_id: str = field(default_factory=lambda: uuid.uuid4().hex[:12])

    def close(self) -> None:
        self.store.close()


def build_terminal_runtime(settings: Settings, user_id: str | None = None) -> TerminalRuntime:
    from bot.approvals.policy import ApprovalPolicy
    from bot.approvals.service import ApprovalService
    from bot.pipeline import build_pipeline
    from bot.store import Store

    user = user_id or terminal_user()
    approvers = list(dict.fromkeys([*settings.bot_approver_ids, user]))
    local = settings.model_copy(update={"bot_approver_ids": approvers})
    store = Store.open(settings.database_url)
    approvals = ApprovalService(store, ApprovalPolicy(local), ttl_seconds=settings.bot_proposal_ttl_seconds)
    return TerminalRuntime(settings, user, store, approvals, build_pipeline(settings, approvals))
