"""docker-compose.yml and manifest.yaml cannot be run here (no Docker engine, no Slack): parse them."""

from __future__ import annotations

from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent


def load(name: str) -> dict:
    return yaml.safe_load((ROOT / name).read_text())


def test_compose_wires_postgres_prefect_and_the_bot():
    services = load("docker-compose.yml")["services"]
    assert {"postgres", "prefect-server", "bot"} <= set(services)
    prefect = services["prefect-server"]
    assert "postgres" in prefect["environment"]["PREFECT_SERVER_DATABASE_CONNECTION_URL"]
    assert prefect["depends_on"]["postgres"]["condition"] == "service_healthy"
    bot = services["bot"]
    assert bot["build"] == "."
    assert bot["environment"]["PREFECT_API_URL"] == "http://prefect-server:4200/api"
    assert bot["environment"]["BOT_DATABASE_URL"].startswith("postgresql://")
    assert bot["depends_on"]["prefect-server"]["condition"] == "service_healthy"
    for name in ("postgres", "prefect-server", "bot"):
        assert "healthcheck" in services[name], name
    assert services["worker"]["profiles"] == ["worker"]
    assert (ROOT / "Dockerfile").exists() and (ROOT / ".env.example").exists()


COMPOSE_ONLY = {"PREFECT_API_AUTH_STRING", "POSTGRES_PASSWORD", "BOT_DB_PASSWORD"}  # read by docker-compose.yml


def test_env_example_names_only_settings_the_bot_knows():
    from bot.settings import Settings

    known = {name.upper() for name in Settings.model_fields} | COMPOSE_ONLY
    names = [line.split("=", 1)[0] for line in (ROOT / ".env.example").read_text().splitlines()
             if line and not line.startswith("#")]
    assert names and set(names) <= known


def test_manifest_declares_what_the_bot_handles():
    manifest = load("manifest.yaml")
    scopes = set(manifest["oauth_config"]["scopes"]["bot"])
    assert {"app_mentions:read", "chat:write", "im:history", "reactions:write", "commands"} <= scopes
    events = set(manifest["settings"]["event_subscriptions"]["bot_events"])
    assert {"app_mention", "message.im", "message.channels"} <= events
    assert manifest["settings"]["interactivity"]["is_enabled"] is True
    assert manifest["settings"]["socket_mode_enabled"] is True
    assert manifest["features"]["slash_commands"][0]["command"] == "/concurrency"


def test_readme_documents_every_setting():
    from bot.settings import Settings

    readme = (ROOT / "README.md").read_text()
    assert [name.upper() for name in Settings.model_fields if name.upper() not in readme] == []
