"""Alembic environment that takes its connection or URL programmatically (no alembic.ini needed).

`aoi.storage.database.Database.migrate()` passes an open connection in `config.attributes["connection"]`;
`alembic -x url=...` style use is supported through `config.attributes["url"]`.
"""

from __future__ import annotations

from alembic import context
from sqlalchemy import create_engine

from aoi.storage.models import Base

config = context.config
target_metadata = Base.metadata


def run_migrations_online() -> None:
    connection = config.attributes.get("connection")
    if connection is not None:
        context.configure(connection=connection, target_metadata=target_metadata, render_as_batch=True)
        with context.begin_transaction():
            context.run_migrations()
        return
    url = config.attributes.get("url") or config.get_main_option("sqlalchemy.url")
    if not url:
        raise RuntimeError("no database connection or URL given to the aoi migrations")
    engine = create_engine(url)
    with engine.connect() as conn:
        context.configure(connection=conn, target_metadata=target_metadata, render_as_batch=True)
        with context.begin_transaction():
            context.run_migrations()
    engine.dispose()


if context.is_offline_mode():
    raise RuntimeError("offline (SQL script) migrations are not supported; run them against a database")
run_migrations_online()
