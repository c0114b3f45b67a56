"""The compose stack is closed by default: parsed from docker-compose.yml (no Docker engine here)."""

from __future__ import annotations

import re
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent
REQUIRED = re.compile(r"^\$\{(?P<name>[A-Z_]+):\?[^}]+\}$")  # ${NAME:?message}: compose refuses to start without it


def services() -> dict:
    return yaml.safe_load((ROOT / "docker-compose.yml").read_text())["services"]


def required_var(value: str) -> str | None:
    match = REQUIRED.match(value or "")
    return match.group("name") if match else None


def test_prefect_server_requires_the_auth_string_from_env():
    server = services()["prefect-server"]["environment"]
    assert required_var(server["PREFECT_SERVER_API_AUTH_STRING"]) == "PREFECT_API_AUTH_STRING"


def test_bot_and_worker_send_the_same_auth_string():
    for name in ("bot", "worker"):
        env = services()[name]["environment"]
        assert required_var(env["PREFECT_API_AUTH_STRING"]) == "PREFECT_API_AUTH_STRING", name


def test_every_published_port_is_bound_to_localhost():
    published = [(name, port) for name, svc in services().items() for port in svc.get("ports", [])]
    assert published, "the stack publishes the Prefect API and the bot's HTTP port"
    for name, port in published:
        spec = port if isinstance(port, str) else f"{port.get('host_ip', '')}:{port.get('published')}"
        assert spec.startswith("127.0.0.1:"), f"{name} publishes {spec} on every interface"


def test_no_password_is_written_into_the_file():
    text = (ROOT / "docker-compose.yml").read_text()
    assert not re.search(r"://[^:/@\s]+:(?!\$\{)[^@\s]+@", text), "a database URL carries a literal password"
    postgres = services()["postgres"]["environment"]
    assert required_var(postgres["POSTGRES_PASSWORD"]) == "POSTGRES_PASSWORD"


def test_the_bot_has_its_own_postgres_role_and_database():
    url = services()["bot"]["environment"]["BOT_DATABASE_URL"]
    role, database = re.match(r"postgresql://([^:]+):.+@postgres:5432/(\w+)$", url).groups()
    prefect_url = services()["prefect-server"]["environment"]["PREFECT_SERVER_DATABASE_CONNECTION_URL"]
    prefect_role = re.match(r"postgresql\+asyncpg://([^:]+):", prefect_url).group(1)
    assert role != prefect_role and database != "prefect"
    mounts = services()["postgres"]["volumes"]
    script = next(m.split(":")[0] for m in mounts if "docker-entrypoint-initdb.d" in m)
    init = (ROOT / script).read_text()
    assert f"CREATE ROLE {role} LOGIN" in init and f"CREATE DATABASE {database} OWNER {role}" in init
