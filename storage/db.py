"""Engines, sessions and the unit of work."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.orm import Session, sessionmaker


def make_engine(url: str, **kwargs: Any) -> Engine:
    """An engine for SQLite (WAL, waits on locks) or PostgreSQL (psycopg 3)."""
    if url.startswith("postgresql://"):
        url = "postgresql+psycopg://" + url.removeprefix("postgresql://")
    if url.startswith("sqlite"):
        engine = create_engine(
            url, connect_args={"timeout": 30, "check_same_thread": False}, **kwargs
        )

        @event.listens_for(engine, "connect")
        def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
            cursor = dbapi_connection.cursor()
            # WAL lets readers run beside the one writer; foreign keys are off by default.
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute("PRAGMA foreign_keys=ON")
            cursor.execute("PRAGMA synchronous=NORMAL")
            cursor.close()

        @event.listens_for(engine, "begin")
        def _sqlite_begin(conn: Any) -> None:
            # BEGIN IMMEDIATE takes the write lock up front, so two writers queue instead of
            # failing half-way with "database is locked" on lock upgrade.
            conn.exec_driver_sql("BEGIN IMMEDIATE")

        # Let SQLAlchemy's "begin" event issue BEGIN itself rather than pysqlite.
        @event.listens_for(engine, "connect")
        def _no_pysqlite_begin(dbapi_connection: Any, _record: Any) -> None:
            dbapi_connection.isolation_level = None

        return engine
    # No pool_pre_ping: it costs a round trip on every check-out, that is on every message. A
    # connection lost to a server restart fails its first statement instead; SQLAlchemy then
    # drops the whole pool, the intake retries the message, and the workers retry their loop.
    return create_engine(url, **kwargs)


def make_session_factory(engine: Engine) -> sessionmaker[Session]:
    """Sessions that keep loaded values after commit (replies are rendered after it)."""
    return sessionmaker(engine, expire_on_commit=False)


class UnitOfWork:
    """One transaction: commits when the block succeeds, rolls back when it raises."""

    def __init__(self, factory: sessionmaker[Session]) -> None:
        self._factory = factory

    @contextmanager
    def __call__(self) -> Iterator[Session]:
        """Open a session, yield it, commit or roll back, close."""
        session = self._factory()
        try:
            yield session
            session.commit()
        except BaseException:
            session.rollback()
            raise
        finally:
            session.close()

    @contextmanager
    def core(self) -> Iterator[Session]:
        """As calling it, but the transaction is the connection's own, not the session's.

        For the intake's hot path: Core statements run on ``session.connection()`` and the
        commit skips the ORM's transaction bookkeeping (a third of a message's cost on SQLite);
        ORM objects used on the way are flushed before the commit.
        """
        bind = self._factory.kw["bind"]
        with bind.connect() as connection, connection.begin():
            session = self._factory(bind=connection, join_transaction_mode="rollback_only")
            try:
                yield session
                session.flush()
            finally:
                session.close()


def is_postgres(session: Session) -> bool:
    """Whether this session talks to PostgreSQL (row locks and SKIP LOCKED work there)."""
    return session.get_bind().dialect.name == "postgresql"
