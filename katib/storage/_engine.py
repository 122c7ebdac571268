"""Database URLs, engines and schema migration.

The default database is ``$KATIB_HOME/katib.db`` (``~/.katib``), a SQLite file in WAL mode;
any SQLAlchemy URL works through ``--db`` or ``KATIB_DB``.
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, create_engine, event, inspect, text
from sqlalchemy.exc import SQLAlchemyError

from katib.errors import KatibError

#: The newest Alembic revision; a test checks it against migrations/versions.
SCHEMA_REVISION = "0004"


class StorageError(KatibError):
    """The database cannot be opened or migrated."""


def katib_home() -> Path:
    return Path(os.environ.get("KATIB_HOME") or Path.home() / ".katib")


def default_url() -> str:
    env = os.environ.get("KATIB_DB")
    if env:
        return normalize_url(env)
    return f"sqlite:///{katib_home() / 'katib.db'}"


def normalize_url(url: str) -> str:
    """Accept a plain file path as a SQLite database, and ``postgresql://`` as psycopg 3."""
    if "://" not in url:
        return f"sqlite:///{Path(url).expanduser().resolve()}"
    if url.startswith("postgresql://") or url.startswith("postgres://"):
        return "postgresql+psycopg://" + url.split("://", 1)[1]
    return url


def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
    cursor = dbapi_conn.cursor()
    # WAL lets readers (katib get, the dashboard) work while the controller writes;
    # NORMAL sync is durable across process crashes, which is what matters here.
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA busy_timeout=10000")
    cursor.close()


#: Connections the pool keeps open once made, and how many more it may open at peak. The
#: server handles requests in up to 40 threads (anyio's default) beside its controller: with
#: SQLAlchemy's default of 5 kept, every connection past the fifth was opened and closed per
#: request (a new PostgreSQL backend and its authentication, or SQLite's pragmas), which
#: under load starved the controller. Connections are made on demand, so a one-thread
#: ``katib run`` still holds one or two.
POOL_SIZE = 20
POOL_MAX_OVERFLOW = 20


def make_engine(url: str) -> Engine:
    url = normalize_url(url)
    pool = {"pool_size": POOL_SIZE, "max_overflow": POOL_MAX_OVERFLOW}
    try:
        if url.startswith("sqlite"):
            path = url.split("///", 1)[1] if "///" in url else ""
            if path and path != ":memory:":
                Path(path).parent.mkdir(parents=True, exist_ok=True)
                kwargs: dict[str, Any] = pool
            else:
                kwargs = {}  # an in-memory database is one connection (SingletonThreadPool)
            engine = create_engine(
                url, connect_args={"check_same_thread": False, "timeout": 10}, **kwargs
            )
            event.listen(engine, "connect", _sqlite_pragmas)
        else:
            engine = create_engine(url, pool_pre_ping=True, **pool)
    except (SQLAlchemyError, ImportError, OSError, ValueError) as e:
        raise StorageError(f"cannot open database {url!r}: {e}") from e
    return engine


def migrate(engine: Engine) -> None:
    """Bring the schema to the newest revision (cheap when it already is)."""
    try:
        with engine.connect() as conn:
            tables = set(inspect(conn).get_table_names())
            if "alembic_version" in tables:
                current = conn.execute(text("SELECT version_num FROM alembic_version")).scalar()
                if current == SCHEMA_REVISION:
                    return
        if not tables:
            try:
                _create_fresh(engine)
            except SQLAlchemyError:
                # Another process created it at the same moment (`katib run` and `katib get`
                # on a new database): fine once it has stamped the newest schema.
                deadline = time.monotonic() + 15
                while _revision(engine) != SCHEMA_REVISION:
                    if time.monotonic() > deadline:
                        raise
                    time.sleep(0.05)
            return
    except SQLAlchemyError as e:
        raise StorageError(f"cannot open database {engine.url!r}: {e}") from e
    _upgrade(engine)


def _revision(engine: Engine) -> str | None:
    with engine.connect() as conn:
        if "alembic_version" not in set(inspect(conn).get_table_names()):
            return None
        value = conn.execute(text("SELECT version_num FROM alembic_version")).scalar()
        return None if value is None else str(value)


def _create_fresh(engine: Engine) -> None:
    """An empty database gets the newest schema directly, stamped with its revision.

    Equivalent to running every migration (a test compares the two) but without importing
    Alembic, which is most of the cost of a first ``katib run``.
    """
    from katib.storage._schema import Base

    with engine.begin() as conn:
        Base.metadata.create_all(conn)
        conn.execute(text("CREATE TABLE alembic_version (version_num VARCHAR(32) NOT NULL, "
                          "CONSTRAINT alembic_version_pkc PRIMARY KEY (version_num))"))
        conn.execute(text("INSERT INTO alembic_version (version_num) VALUES (:v)"),
                     {"v": SCHEMA_REVISION})


def _upgrade(engine: Engine) -> None:
    from alembic import command
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(Path(__file__).parent / "migrations"))
    try:
        with engine.connect() as conn:
            if engine.dialect.name == "sqlite":
                # Alembic's batch mode rebuilds SQLite tables (create, copy, drop, rename);
                # with foreign keys enforced, dropping `experiments` would cascade-delete
                # every trial. The pragma only takes effect outside a transaction.
                conn.exec_driver_sql("PRAGMA foreign_keys=OFF")
                conn.commit()
            with conn.begin():
                config.attributes["connection"] = conn
                command.upgrade(config, "head")
            if engine.dialect.name == "sqlite":
                conn.exec_driver_sql("PRAGMA foreign_keys=ON")
                conn.commit()
    except SQLAlchemyError as e:
        raise StorageError(f"cannot migrate database {engine.url!r}: {e}") from e
