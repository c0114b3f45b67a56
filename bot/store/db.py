"""The SQLAlchemy engine and schema: SQLite by default, Postgres by URL, same tables on both."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Engine, Table, create_engine, event, func, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import DeclarativeBase, sessionmaker


class Base(DeclarativeBase):
    """Every table of the bot's store derives from this."""


def normalise_url(url: str) -> str:
    """Accept plain `postgresql://` URLs and use the psycopg 3 driver we install."""
    if url.startswith("postgres://"):
        url = "postgresql://" + url[len("postgres://"):]
    if url.startswith("postgresql://"):
        url = "postgresql+psycopg://" + url[len("postgresql://"):]
    return url


def make_engine(url: str) -> Engine:
    url = normalise_url(url)
    if url.startswith("sqlite"):
        engine = create_engine(url, connect_args={"check_same_thread": False, "timeout": 30})

        @event.listens_for(engine, "connect")
        def _sqlite_pragmas(dbapi_conn, _record) -> None:  # pragma: no cover - trivial
            cursor = dbapi_conn.cursor()
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute("PRAGMA synchronous=NORMAL")  # WAL stays consistent; no fsync per commit
            cursor.execute("PRAGMA busy_timeout=30000")
            cursor.close()

        return engine
    return create_engine(url, pool_pre_ping=True, pool_size=10, max_overflow=20)


def create_schema(engine: Engine) -> None:
    """Bring the schema to the newest migration (the same revisions on SQLite and Postgres)."""
    from bot.store.migrate import upgrade

    upgrade(engine)


def session_factory(engine: Engine) -> sessionmaker:
    return sessionmaker(engine, expire_on_commit=False)


def count_by(sessions: sessionmaker, column: Any) -> dict[Any, int]:
    """Row counts grouped by one column's values (proposals by status, votes by direction)."""
    with sessions() as session:
        rows = session.execute(select(column, func.count()).group_by(column)).all()
    return {value: count for value, count in rows}


def insert_ignore(engine: Engine, table: Table, values: dict[str, Any]) -> bool:
    """INSERT … ON CONFLICT DO NOTHING in one statement; True when this call inserted the row.

    This is the hot path (every Slack event claims a key), so it skips the ORM session.
    """
    dialect_insert = postgresql.insert if engine.dialect.name == "postgresql" else sqlite.insert
    key = list(table.primary_key.columns)[0]
    statement = dialect_insert(table).values(**values).on_conflict_do_nothing().returning(key)
    with engine.begin() as connection:
        return connection.execute(statement).first() is not None
