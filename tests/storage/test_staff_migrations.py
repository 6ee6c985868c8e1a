"""The desk's migrations (0003 tables, 0004-0005 inbox indexes) go up and down on both databases."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import create_engine, inspect, text
from sqlalchemy.engine import make_url

from storage import migrate
from storage.db import make_engine
from storage.models import Base
from tests.conftest import PG_URL, _postgres_available

DESK_TABLES = {
    "staff_user",
    "staff_session",
    "login_throttle",
    "audit_event",
    "case_assignment",
    "case_note",
    "referral",
    "check_in",
}
INBOX_INDEXES = {"ix_complaint_inbox", "ix_complaint_inbox_status", "ix_complaint_inbox_legal"}
FILTER_INDEXES = {
    "ix_complaint_inbox_any",
    "ix_complaint_inbox_campaign",
    "ix_complaint_inbox_municipality",
    "ix_complaint_area",
    "ix_complaint_ground",
    "ix_complaint_perpetrator",
    "ix_complaint_language",
}


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def empty_database(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """An empty database of its own (on PostgreSQL, a fresh one beside the test database)."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'migrations.db'}"
        return
    problem = _postgres_available()
    if problem is not None:
        pytest.skip(problem)
    server = make_url(PG_URL)
    name = f"{server.database}_desk_migrations"
    admin = create_engine(server.set(database="postgres"), isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{name}"'))
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    try:
        yield server.set(database=name).render_as_string(hide_password=False)
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


def _tables_and_indexes(url: str) -> tuple[set[str], set[str]]:
    engine = make_engine(url)
    try:
        inspector = inspect(engine)
        tables = set(inspector.get_table_names())
        indexes = (
            {i["name"] or "" for i in inspector.get_indexes("complaint")}
            if "complaint" in tables
            else set()
        )
        return tables, indexes
    finally:
        engine.dispose()


def test_upgrade_downgrade_upgrade(empty_database: str) -> None:
    migrate.upgrade(empty_database)
    tables, indexes = _tables_and_indexes(empty_database)
    assert DESK_TABLES <= tables
    assert INBOX_INDEXES | FILTER_INDEXES <= indexes
    engine = make_engine(empty_database)
    with engine.connect() as conn:
        context = MigrationContext.configure(conn, opts={"compare_type": True})
        assert compare_metadata(context, Base.metadata) == []
    engine.dispose()
    migrate.downgrade(empty_database, "0004")
    tables, indexes = _tables_and_indexes(empty_database)
    assert INBOX_INDEXES <= indexes and not FILTER_INDEXES & indexes
    migrate.downgrade(empty_database, "0002")
    tables, indexes = _tables_and_indexes(empty_database)
    assert DESK_TABLES <= tables and not INBOX_INDEXES & indexes
    migrate.downgrade(empty_database, "0001")
    tables, _ = _tables_and_indexes(empty_database)
    assert not DESK_TABLES & tables
    migrate.upgrade(empty_database)
    tables, indexes = _tables_and_indexes(empty_database)
    assert DESK_TABLES <= tables and INBOX_INDEXES | FILTER_INDEXES <= indexes
