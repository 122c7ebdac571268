"""Shared fixtures: an isolated KATIB_HOME per test, and databases to run storage tests on.

PostgreSQL tests use ``KATIB_TEST_POSTGRES_URL`` (default: the server that
``.ci/postgres.sh`` installs, starts and prepares on 127.0.0.1:5432, role ``katib``,
database ``katib_test``). On a laptop without it they are skipped with the reason; with
``CI=true`` they run and fail when the server is missing.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

# The Kubernetes test control plane (kube_cluster), for every test that needs it.
pytest_plugins = ["tests.cluster.fixture"]

def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Tests on the Kubernetes control plane run last: .ci/run builds it (and the Training
    Operator) in the background while the others run, and they wait for it."""
    items.sort(key=lambda item: "kube_cluster" in getattr(item, "fixturenames", ()))


IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")
POSTGRES_URL = os.environ.get(
    "KATIB_TEST_POSTGRES_URL", "postgresql+psycopg://katib:katib@127.0.0.1:5432/katib_test"
)


@pytest.fixture(autouse=True)
def katib_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    home = tmp_path / "katib-home"
    monkeypatch.setenv("KATIB_HOME", str(home))
    monkeypatch.delenv("KATIB_DB", raising=False)
    return home


def _postgres_available() -> str | None:
    try:
        import psycopg
    except ImportError:
        return "psycopg is not installed (pip install -e '.[test]')"
    try:
        url = POSTGRES_URL.replace("postgresql+psycopg://", "postgresql://")
        with psycopg.connect(url, connect_timeout=3):
            return None
    except Exception as e:  # noqa: BLE001 - any failure means: no server to test against
        return f"PostgreSQL at {POSTGRES_URL} is not reachable: {e}"


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A fresh, empty database URL of each kind."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'katib.db'}"
        return
    problem = _postgres_available()
    if problem:
        if IN_CI:
            pytest.fail(f"CI=true requires PostgreSQL: {problem}")
        pytest.skip(problem)
    import psycopg

    admin = POSTGRES_URL.replace("postgresql+psycopg://", "postgresql://")
    schema = f"katib_test_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'CREATE SCHEMA "{schema}"')
    sep = "&" if "?" in POSTGRES_URL else "?"
    try:
        yield f"{POSTGRES_URL}{sep}options=-csearch_path%3D{schema}"
    finally:
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(f'DROP SCHEMA "{schema}" CASCADE')
