"""The same migrations build the same schema as the models, on SQLite and on Postgres."""

from __future__ import annotations

import uuid

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import inspect

from bot.store import Store
from bot.store.db import Base, make_engine
from tests.fakes.prefect_server import create_postgres_database, drop_postgres_database, postgres_available
from tests.harness import all_at_once


def assert_schema_matches_models(url: str) -> None:
    store = Store.open(url)
    try:
        with store.engine.connect() as connection:
            diff = compare_metadata(MigrationContext.configure(connection), Base.metadata)
        assert diff == [], f"models and migrations differ: {diff}"
        tables = set(inspect(store.engine).get_table_names())
        assert {"seen_events", "proposals", "audit_entries", "answer_feedback", "bot_threads",
                "answers_in_flight", "alembic_version"} <= tables
        key = f"Ev{uuid.uuid4().hex}"
        assert store.claim_event(key) is True and store.claim_event(key) is False
    finally:
        store.close()


def test_sqlite_migrations_match_models(tmp_path):
    url = f"sqlite:///{tmp_path / 'bot.db'}"
    assert_schema_matches_models(url)
    assert_schema_matches_models(url)  # a second start is a no-op


def test_stores_opened_at_once_in_threads_and_processes_all_work(tmp_path):
    import subprocess
    import sys

    url = f"sqlite:///{tmp_path / 'race.db'}"
    script = f"from bot.store import Store; Store.open({url!r}).close()"
    processes = [subprocess.Popen([sys.executable, "-c", script]) for _ in range(3)]
    assert all_at_once([lambda: Store.open(url).close()] * 4) == []
    assert [p.wait(timeout=60) for p in processes] == [0, 0, 0]
    assert_schema_matches_models(url)


@pytest.mark.skipif(not postgres_available(), reason="PostgreSQL is not answering at 127.0.0.1:5432 (CI has it)")
def test_postgres_migrations_match_models_even_when_replicas_start_together():
    database = create_postgres_database("cbot_migrate")
    url = f"postgresql://postgres@127.0.0.1:5432/{database}"
    try:
        assert all_at_once([lambda: Store.open(url).close()] * 3) == []
        assert_schema_matches_models(url)
        make_engine(url).dispose()
    finally:
        drop_postgres_database(database)
