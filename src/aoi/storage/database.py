"""Engine, sessions and schema migrations for the results database (SQLite by default, PostgreSQL by URL)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from sqlalchemy import Engine, create_engine, event
from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError, SQLAlchemyError
from sqlalchemy.exc import TimeoutError as PoolTimeoutError
from sqlalchemy.orm import Session, sessionmaker

MIGRATIONS_DIR = Path(__file__).with_name("migrations")
SQLITE_FILE_NAME = "aoi.db"


class DatabaseConfigError(ValueError):
    """The database URL names a backend the service does not support."""


def resolve_database_url(data_dir: Path | str, database_url: str | None = None) -> str:
    """The given URL, or the embedded default: a SQLite file under the data directory."""
    if database_url:
        scheme, sep, rest = database_url.partition("://")
        if sep and scheme in ("postgres", "postgresql"):
            # No driver named: use psycopg2 (the declared dependency; SQLAlchemy 2.1 would pick psycopg 3).
            return f"postgresql+psycopg2://{rest}"
        if database_url.startswith(("postgresql+", "sqlite")):
            return database_url
        raise DatabaseConfigError(f"unsupported database URL {database_url!r}; use postgresql://... or sqlite:///...")
    path = Path(data_dir).resolve() / SQLITE_FILE_NAME
    return f"sqlite:///{path}"


def is_unavailable(exc: BaseException) -> bool:
    """The database could not be reached or dropped the connection (restarted, shut down, locked, pool
    exhausted): the same request may succeed if retried, unlike a constraint or a bug."""
    if isinstance(exc, OperationalError | InterfaceError | PoolTimeoutError):
        return True
    return isinstance(exc, DBAPIError) and exc.connection_invalidated


def is_disk_full(exc: BaseException) -> bool:
    """SQLite's 'database or disk is full' (PostgreSQL's 53100 disk_full): no space for the row."""
    if not isinstance(exc, DBAPIError):
        return False
    code = getattr(exc.orig, "pgcode", None)
    return code == "53100" or "disk is full" in str(exc.orig)


def _tune_sqlite(dbapi_connection: Any, _record: Any) -> None:
    """WAL lets the dashboard read while the line writes; busy_timeout queues writers instead of failing."""
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA busy_timeout=30000")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.close()


class Database:
    """One engine and session factory per process; `migrate()` brings the schema to the newest revision."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.is_sqlite = url.startswith("sqlite")
        kwargs: dict[str, Any] = {"pool_pre_ping": not self.is_sqlite}
        if self.is_sqlite:
            kwargs["connect_args"] = {"check_same_thread": False, "timeout": 30}
            kwargs["pool_size"] = 16
            kwargs["max_overflow"] = 32
        self.engine: Engine = create_engine(url, **kwargs)
        if self.is_sqlite:
            event.listen(self.engine, "connect", _tune_sqlite)
        self._sessions = sessionmaker(self.engine, expire_on_commit=False)

    @classmethod
    def open(cls, data_dir: Path | str, database_url: str | None = None, migrate: bool = True) -> Database:
        Path(data_dir).mkdir(parents=True, exist_ok=True)
        db = cls(resolve_database_url(data_dir, database_url))
        if migrate:
            db.migrate()
        return db

    def migrate(self) -> None:
        config = Config()
        config.set_main_option("script_location", str(MIGRATIONS_DIR))
        with self.engine.begin() as connection:
            config.attributes["connection"] = connection
            command.upgrade(config, "head")

    def session(self) -> Session:
        return self._sessions()

    @contextmanager
    def transaction(self) -> Iterator[Session]:
        """A session whose work is committed on success and rolled back on any exception."""
        with self._sessions() as session, session.begin():
            yield session

    def row_exists(self, model: type[Any], ident: str) -> bool | None:
        """Whether row `ident` of `model` is stored; None when the database cannot answer. Asked after
        a commit failed on a lost connection: the commit may have landed before the connection went."""
        try:
            with self._sessions() as session:
                return session.get(model, ident) is not None
        except SQLAlchemyError:
            return None

    def dispose(self) -> None:
        self.engine.dispose()
