"""Databases for the tests: scratch PostgreSQL databases and Alembic steps taken one revision at a time."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import contextmanager

import pytest
from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from sqlalchemy import create_engine, text

from aoi.storage.database import MIGRATIONS_DIR, Database, resolve_database_url

PG_ADMIN_URL = "postgresql://postgres@127.0.0.1:5432/test"


@contextmanager
def scratch_postgres(prefix: str) -> Iterator[str]:
    """The URL (`postgresql://...`) of a new, uniquely named database on the local PostgreSQL, dropped
    afterwards; the test is skipped when the server is unreachable."""
    admin = create_engine(resolve_database_url(".", PG_ADMIN_URL), isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            conn.execute(text("SELECT 1"))
    except Exception as exc:
        admin.dispose()
        pytest.skip(f"PostgreSQL at 127.0.0.1:5432 (database 'test') is unreachable: {type(exc).__name__}: {exc}")
    name = f"{prefix}_{uuid.uuid4().hex[:12]}"
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    try:
        yield f"postgresql://postgres@127.0.0.1:5432/{name}"
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


def migrate(db: Database, revision: str, down: bool = False) -> None:
    """Upgrade (or with `down`, downgrade) `db` to `revision`."""
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    with db.engine.begin() as connection:
        config.attributes["connection"] = connection
        (command.downgrade if down else command.upgrade)(config, revision)


def current_revision(db: Database) -> str | None:
    with db.engine.connect() as conn:
        return MigrationContext.configure(conn).get_current_revision()
