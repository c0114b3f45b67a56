"""The watcher's settings: exact names, defaults, and an empty value meaning unset."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from bot.settings import Settings


def test_defaults_and_empty_values_mean_unset(monkeypatch):
    for name in ("BOT_WATCH_CHANNEL", "BOT_WATCH_INTERVAL_SECONDS", "BOT_WATCH_WAIT_SECONDS",
                 "BOT_WATCH_MAX_POSTS_PER_HOUR"):
        monkeypatch.setenv(name, "")
    settings = Settings(_env_file=None)
    assert settings.bot_watch_channel is None
    assert (settings.bot_watch_interval_seconds, settings.bot_watch_wait_seconds,
            settings.bot_watch_max_posts_per_hour) == (30.0, 600.0, 10)


def test_values_are_read_and_bad_ones_get_a_clear_error(monkeypatch):
    monkeypatch.setenv("BOT_WATCH_CHANNEL", "C0ONCALL")
    monkeypatch.setenv("BOT_WATCH_INTERVAL_SECONDS", "5")
    assert Settings(_env_file=None).bot_watch_channel == "C0ONCALL"
    assert Settings(_env_file=None).bot_watch_interval_seconds == 5.0
    monkeypatch.setenv("BOT_WATCH_INTERVAL_SECONDS", "0")
    with pytest.raises(ValidationError, match="bot_watch_interval_seconds"):
        Settings(_env_file=None)
