"""The engine's connection pool: the server's concurrent requests reuse connections."""

from __future__ import annotations

from sqlalchemy import event, text

from katib.storage._engine import POOL_SIZE, make_engine


def test_concurrent_connections_are_kept_for_the_next_requests(db_url: str) -> None:
    # More connections at once than SQLAlchemy's default pool keeps (5): when they are given
    # back, the next burst must reuse them instead of opening new ones (a PostgreSQL backend
    # and its authentication per request, under load).
    engine = make_engine(db_url)
    opened = []
    event.listen(engine, "connect", lambda conn, record: opened.append(conn))
    burst = 12
    assert burst <= POOL_SIZE
    try:
        for _ in range(3):
            conns = [engine.connect() for _ in range(burst)]
            for conn in conns:
                assert conn.execute(text("SELECT 1")).scalar() == 1
            for conn in conns:
                conn.close()
        assert len(opened) == burst
    finally:
        engine.dispose()


def test_an_in_memory_sqlite_database_stays_one_connection() -> None:
    engine = make_engine("sqlite://")
    with engine.begin() as conn:
        conn.execute(text("CREATE TABLE t (x INTEGER)"))
        conn.execute(text("INSERT INTO t VALUES (1)"))
    with engine.connect() as conn:
        assert conn.execute(text("SELECT count(*) FROM t")).scalar() == 1
    engine.dispose()
