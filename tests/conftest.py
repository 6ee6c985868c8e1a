"""Shared fixtures: keys, databases (SQLite and PostgreSQL), the app and its services."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from cryptography.fernet import Fernet
from sqlalchemy import create_engine, text
from sqlalchemy.exc import OperationalError

from bot.app import Services, build_services, create_app
from bot.settings import Settings
from storage import crypto, migrate

TEST_FERNET_KEYS = (Fernet.generate_key().decode(), Fernet.generate_key().decode())
TEST_HASH_KEY = "test-hash-key"
DEFAULT_PG_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/test"
PG_URL = os.environ.get("TEST_DATABASE_URL", DEFAULT_PG_URL)
REQUIRE_POSTGRES = os.environ.get("REQUIRE_POSTGRES") == "1"


@pytest.fixture(autouse=True)
def _keys() -> None:
    """Every test runs with known encryption keys."""
    crypto.configure(crypto.KeyRing(list(TEST_FERNET_KEYS), TEST_HASH_KEY))


def _postgres_available() -> str | None:
    """None when PostgreSQL answers, otherwise why not."""
    engine = create_engine(PG_URL)
    try:
        with engine.connect() as conn:
            conn.execute(text("SELECT 1"))
    except OperationalError as exc:
        return str(exc).splitlines()[0]
    finally:
        engine.dispose()
    return None


_pg_ready: bool | None = None


def _prepare_postgres() -> None:
    """A clean schema at head, once per test session."""
    global _pg_ready
    if _pg_ready:
        return
    problem = _postgres_available()
    if problem is not None:
        message = f"PostgreSQL at TEST_DATABASE_URL is not reachable: {problem}"
        if REQUIRE_POSTGRES:
            pytest.fail(message + " (REQUIRE_POSTGRES=1)", pytrace=False)
        pytest.skip(message)
    engine = create_engine(PG_URL)
    with engine.begin() as conn:
        conn.execute(text("DROP SCHEMA public CASCADE"))
        conn.execute(text("CREATE SCHEMA public"))
    engine.dispose()
    migrate.upgrade(PG_URL)
    _pg_ready = True


def _truncate_postgres() -> None:
    engine = create_engine(PG_URL)
    with engine.begin() as conn:
        tables = conn.execute(
            text(
                "SELECT tablename FROM pg_tables WHERE schemaname = 'public' "
                "AND tablename <> 'alembic_version'"
            )
        ).scalars()
        names = ", ".join(f'"{t}"' for t in tables)
        if names:
            conn.execute(text(f"TRUNCATE {names} RESTART IDENTITY CASCADE"))
    engine.dispose()


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A migrated SQLite file, copied for each test (migrating per test is slow)."""
    path = tmp_path_factory.mktemp("sqlite-template") / "template.db"
    migrate.upgrade(f"sqlite:///{path}")
    return path


def sqlite_url(template: Path, tmp_path: Path) -> str:
    """A fresh migrated SQLite database for one test."""
    target = tmp_path / "raporto.db"
    shutil.copyfile(template, target)
    return f"sqlite:///{target}"


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def database_url(
    request: pytest.FixtureRequest, sqlite_template: Path, tmp_path: Path
) -> Iterator[str]:
    """Each storage test runs on SQLite and on PostgreSQL."""
    if request.param == "postgres":
        _prepare_postgres()
        _truncate_postgres()
        yield PG_URL
    else:
        yield sqlite_url(sqlite_template, tmp_path)


@pytest.fixture
def postgres_url() -> str:
    """PostgreSQL only (row locks, SKIP LOCKED, LISTEN/NOTIFY)."""
    _prepare_postgres()
    _truncate_postgres()
    return PG_URL


@pytest.fixture
def sqlite_only_url(sqlite_template: Path, tmp_path: Path) -> str:
    """SQLite only, for tests that need nothing else."""
    return sqlite_url(sqlite_template, tmp_path)


def make_settings(database_url: str, tmp_path: Path, **overrides: object) -> Settings:
    """Settings for a test: known keys, a temporary instance folder."""
    settings = Settings(
        database_url=database_url,
        secret_key="test-secret-key",
        encryption_keys=TEST_FERNET_KEYS,
        hash_key=TEST_HASH_KEY,
        instance_dir=tmp_path / "instance",
        storage_dir=tmp_path / "attachments",
    )
    return settings.with_overrides(**overrides) if overrides else settings


@pytest.fixture
def settings(database_url: str, tmp_path: Path) -> Settings:
    """Settings on the parametrised database."""
    return make_settings(database_url, tmp_path)


@pytest.fixture
def services(settings: Settings) -> Iterator[Services]:
    """The wired services on the parametrised database."""
    built = build_services(settings)
    yield built
    built.engine.dispose()


@pytest.fixture
def app(settings: Settings):  # type: ignore[no-untyped-def]
    """The Flask app on the parametrised database."""
    flask_app = create_app(settings)
    flask_app.config["TESTING"] = True
    yield flask_app
    flask_app.extensions["raporto"].engine.dispose()
