"""One typed settings object: every knob is an environment variable with a default.

Prefect's own settings (`PREFECT_API_URL`, `PREFECT_API_KEY`) stay Prefect's: the Prefect client
reads them itself, we only look at them to decide whether to start an embedded server.
"""

from __future__ import annotations

import os
from functools import cached_property
from pathlib import Path
from typing import Annotated, Literal
from urllib.parse import unquote, urlsplit

from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from bot.safe_text import PREFECT_DOCS_HOSTS

CommaList = Annotated[list[str], NoDecode]


class Settings(BaseSettings):
    """Settings read from the environment (and an optional `.env` file)."""

    # An empty value (`SLACK_APP_TOKEN=` copied from .env.example) means unset, not "set to nothing".
    model_config = SettingsConfigDict(env_file=".env", extra="ignore", case_sensitive=False,
                                      env_ignore_empty=True)

    # Slack
    slack_bot_token: SecretStr | None = None
    slack_app_token: SecretStr | None = None
    slack_signing_secret: SecretStr | None = None
    slack_api_url: str = "https://slack.com/api/"

    # Model
    openai_api_key: SecretStr | None = None
    openai_base_url: str | None = None
    # Works with OpenAI's current models; the bot adapts the request form to whatever model is named.
    openai_model: str = "gpt-5-mini"

    # Store and data
    bot_data_dir: Path = Field(default_factory=lambda: Path.home() / ".concurrency-bot")
    bot_database_url: str | None = None
    # A folder with system.md and recipes/*.md that replaces the prompts packaged with the bot.
    bot_prompts_dir: Path | None = None

    # Approvals
    bot_approver_ids: CommaList = Field(default_factory=list)
    bot_approver_group: str | None = None
    bot_approval_require_second_person: bool = False
    bot_destructive_require_second_person: bool = False
    bot_proposal_ttl_seconds: int = 24 * 3600
    bot_max_proposals_per_answer: int = Field(default=3, ge=0)
    bot_read_only: bool = False

    # Where and how the bot answers
    bot_allowed_channels: CommaList = Field(default_factory=list)
    bot_streaming: bool = True
    bot_max_tool_rounds: int = 6
    bot_answer_timeout_seconds: float = 120.0
    bot_model_timeout_seconds: float = 60.0
    bot_model_max_attempts: int = 4
    bot_model_retry_max_wait_seconds: float = 20.0
    bot_history_max_messages: int = 20
    bot_history_max_chars: int = 12_000
    bot_message_max_chars: int = 8_000
    bot_tool_result_max_chars: int = 12_000
    bot_user_rate_limit_per_minute: int = 20
    bot_circuit_failure_threshold: int = 3
    bot_circuit_reset_seconds: float = 60.0
    # An apply still `approved`, or an answer still in flight, after this long was cut off by a
    # crash or restart; the maintenance sweep reconciles it. Keep it above the answer timeout.
    bot_interrupted_after_seconds: float = 300.0
    bot_log_json: bool = False
    # Security and fair use (README "Security")
    bot_allowed_link_hosts: CommaList = Field(default_factory=list)
    bot_metrics_token: SecretStr | None = None
    bot_model_max_tokens: int = 1500
    # Sent only to models that reason and take it (gpt-5, o-series); "default" sends none.
    bot_model_reasoning_effort: Literal["default", "none", "minimal", "low", "medium", "high", "xhigh"] = "low"
    bot_max_tool_calls_per_round: int = 8
    bot_log_level: str = "INFO"
    # How often the maintenance sweep (expiry, crash recovery) runs.
    bot_sweep_interval_seconds: float = 60.0

    # The on-call watcher (bot/watch): off unless a channel is set
    bot_watch_channel: str | None = None
    bot_watch_interval_seconds: float = Field(default=30.0, gt=0)
    bot_watch_wait_seconds: float = Field(default=600.0, ge=0)
    bot_watch_max_posts_per_hour: int = Field(default=10, ge=1)
    # the watcher's share of the Prefect API budget (Prefect Cloud: one bucket per account, Team 1,000/min)
    bot_watch_max_calls_per_minute: int = Field(default=100, ge=10)

    @model_validator(mode="before")
    @classmethod
    def _empty_is_unset(cls, values: object) -> object:
        """Blank values passed in directly count as unset too, like blank environment variables."""
        if isinstance(values, dict):
            return {k: v for k, v in values.items() if not (isinstance(v, str) and not v.strip())}
        return values

    @field_validator("bot_approver_ids", "bot_allowed_channels", "bot_allowed_link_hosts", mode="before")
    @classmethod
    def _split_commas(cls, value: object) -> object:
        if isinstance(value, str):
            return [part.strip() for part in value.split(",") if part.strip()]
        return value

    @cached_property
    def database_url(self) -> str:
        """The store's URL: `BOT_DATABASE_URL`, else a SQLite file in the data folder."""
        if self.bot_database_url:
            return self.bot_database_url
        self.bot_data_dir.mkdir(parents=True, exist_ok=True)
        return f"sqlite:///{self.bot_data_dir / 'bot.db'}"

    @property
    def model_configured(self) -> bool:
        return self.openai_api_key is not None and bool(self.openai_api_key.get_secret_value())

    @property
    def prefect_api_url(self) -> str | None:
        return os.environ.get("PREFECT_API_URL") or None

    def secret_values(self) -> list[str]:
        """Every secret we hold, so logs, Slack messages and model context can be scrubbed of them:
        Slack and OpenAI secrets, the metrics token, the store's database password, and Prefect's key
        and auth string from the environment or the active Prefect profile."""
        secrets = [self.slack_bot_token, self.slack_app_token, self.slack_signing_secret, self.openai_api_key,
                   self.bot_metrics_token]
        values = [s.get_secret_value() for s in secrets if s is not None]
        values += [os.environ.get(name) or "" for name in PREFECT_SECRET_ENV]
        values += prefect_profile_secrets()
        values.append(url_password(self.bot_database_url or ""))
        return sorted({v for v in values if len(v) >= 6}, key=len, reverse=True)

    @property
    def link_hosts(self) -> frozenset[str]:
        """Hosts whose links survive in model answers: Prefect's docs, the configured Prefect UI/API,
        and BOT_ALLOWED_LINK_HOSTS."""
        hosts = set(PREFECT_DOCS_HOSTS) | {h.lower() for h in self.bot_allowed_link_hosts}
        for url in (os.environ.get("PREFECT_UI_URL"), self.prefect_api_url):
            host = urlsplit(url or "").hostname
            if host:
                hosts.add(host.lower())
        return frozenset(hosts)


PREFECT_SECRET_ENV = ("PREFECT_API_KEY", "PREFECT_API_AUTH_STRING", "PREFECT_SERVER_API_AUTH_STRING")


def url_password(url: str) -> str:
    """The password inside a database URL (`postgresql://user:PASSWORD@host/db`), or ''."""
    try:
        return unquote(urlsplit(url).password or "")
    except ValueError:
        return ""


def prefect_profile_secrets() -> list[str]:
    """Prefect's API key and auth strings as Prefect itself resolves them (env, .env, active profile)."""
    try:
        from prefect.settings import get_current_settings

        current = get_current_settings()
        found = [current.api.key, current.api.auth_string, current.server.api.auth_string,
                 current.server.database.password, current.server.database.connection_url]
        values = [s.get_secret_value() if hasattr(s, "get_secret_value") else s for s in found]
        values.append(url_password(values.pop() or ""))
        return [v for v in values if isinstance(v, str) and v]
    except Exception:  # an unreadable profile must not stop the bot; env values are still covered
        return []


def load_settings(**overrides: object) -> Settings:
    """Build settings from the environment; tests pass overrides instead of patching."""
    return Settings(**overrides)  # type: ignore[arg-type]
