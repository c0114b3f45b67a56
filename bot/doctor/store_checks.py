"""Store checks: the database answers, its migrations are at this code's head, and it takes writes.

Nothing is changed: a SQLite file that does not exist yet is not created (the bot creates it at its
first start), and the write probe is rolled back.
"""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

from sqlalchemy import text
from sqlalchemy.engine import make_url

from bot.doctor.report import Row, fail, ok, warn
from bot.redact import redact
from bot.settings import Settings

__all__ = ["check_store"]

GROUP = "Store"
START = "start the bot once (`concurrency-bot serve` or `chat`): it migrates the database at start"


def _where(url: str) -> str:
    try:
        return make_url(url).render_as_string(hide_password=True)
    except Exception:
        return "the database URL"


def _sqlite_path(url: str) -> Path | None:
    parsed = make_url(url)
    if parsed.get_backend_name() != "sqlite" or not parsed.database or parsed.database == ":memory:":
        return None
    if parsed.database.startswith("file:"):  # a SQLite URI (`?uri=true`): sqlite resolves it itself
        return None
    return Path(parsed.database)


def _check(url: str) -> list[Row]:
    from bot.store.db import make_engine
    from bot.store.migrate import current_revision, head_revision, known_revisions

    where = _where(url)
    path = _sqlite_path(url)
    if path is not None and not path.exists():
        folder = path.parent
        while not folder.exists() and folder != folder.parent:  # the bot creates missing folders too
            folder = folder.parent
        if folder.is_dir() and os.access(folder, os.W_OK):
            return [ok(GROUP, "database", f"{path} does not exist yet; the bot creates it at first start")]
        return [fail(GROUP, "database", f"cannot create {path}: {folder} is missing or not writable",
                     "set BOT_DATA_DIR to a writable folder, or BOT_DATABASE_URL", unsafe=True)]
    engine = make_engine(url)
    try:
        try:
            with engine.connect() as connection:
                connection.execute(text("SELECT 1"))
        except Exception as exc:
            return [fail(GROUP, "database", f"{where} does not answer ({type(exc).__name__}: "
                         f"{redact(str(exc).splitlines()[0])[:160]})",
                         "check BOT_DATABASE_URL (host, port, user, password) and that the database is up",
                         unsafe=True)]
        rows = [ok(GROUP, "database", f"{where} answers")]
        head, current = head_revision(), current_revision(engine)
        known = known_revisions()
        if current == head:
            rows.append(ok(GROUP, "migrations", f"at head ({head})"))
        elif current is None:
            rows.append(warn(GROUP, "migrations", "the database has no tables of the bot yet", START))
        elif current in known:
            rows.append(fail(GROUP, "migrations", f"at {current}, this bot needs {head}: its newer tables and "
                             "columns are missing", f"{START}; stop replicas of an older version first"))
        else:
            rows.append(fail(GROUP, "migrations", f"at {current}, a revision this bot does not know (a newer "
                             "version migrated it)", "run the newer version of the bot, or a fresh database",
                             unsafe=True))
        rows.append(_writable(engine, current))
        return rows
    finally:
        engine.dispose()


def _writable(engine, current: str | None) -> Row:
    """A write that is rolled back: a read-only file, user or replica refuses it."""
    try:
        with engine.connect() as connection:
            transaction = connection.begin()
            try:
                if current is None:
                    connection.execute(text("CREATE TABLE doctor_probe (x INTEGER)"))
                else:
                    connection.execute(text("UPDATE alembic_version SET version_num = version_num"))
            finally:
                transaction.rollback()
    except Exception as exc:
        return fail(GROUP, "writable", f"the database refuses writes ({type(exc).__name__})",
                    "give the bot's user write access (file permissions, or a primary, not a read replica)",
                    unsafe=True)
    return ok(GROUP, "writable", "takes writes")


async def check_store(settings: Settings) -> list[Row]:
    url = settings.bot_database_url or f"sqlite:///{settings.bot_data_dir / 'bot.db'}"
    return await asyncio.to_thread(_check, url)
