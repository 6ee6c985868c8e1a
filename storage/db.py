"""Engines, sessions and the unit of work."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from sqlalchemy import Connection, Engine, create_engine, event
from sqlalchemy.exc import DBAPIError
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
            # failing half-way with "database is locked" on lock upgrade. Sent on the driver
            # connection: through SQLAlchemy's execution it cost more than the transaction.
            try:
                conn.connection.dbapi_connection.execute("BEGIN IMMEDIATE")
            except sqlite3.Error as exc:  # e.g. still locked after the timeout: retryable
                raise DBAPIError.instance(
                    "BEGIN IMMEDIATE", (), exc, sqlite3.Error, dialect=conn.dialect
                ) from exc

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
    def core(self) -> Iterator[CoreUnit]:
        """One transaction on a connection of its own, for Core statements on the hot path.

        The transaction is the connection's: no ORM bookkeeping unless an ORM session is asked
        for (:attr:`CoreUnit.session`), which then joins it and is flushed before the commit.
        """
        bind = self._factory.kw["bind"]
        with bind.connect() as connection, connection.begin():
            unit = CoreUnit(connection, self._factory)
            try:
                yield unit
                unit.flush()
            finally:
                unit.close()


class CoreUnit:
    """A connection in a transaction, with an ORM session joined to it on first use."""

    def __init__(self, connection: Connection, factory: sessionmaker[Session]) -> None:
        self.connection = connection
        self._factory = factory
        self._session: Session | None = None

    @property
    def session(self) -> Session:
        """An ORM session in this transaction (made on first use: most messages need none)."""
        if self._session is None:
            self._session = self._factory(
                bind=self.connection, join_transaction_mode="rollback_only"
            )
        return self._session

    @property
    def is_postgres(self) -> bool:
        """Whether the connection is to PostgreSQL."""
        return self.connection.dialect.name == "postgresql"

    def flush(self) -> None:
        """Write what the ORM session holds, if one was used."""
        if self._session is not None:
            self._session.flush()

    def close(self) -> None:
        """Close the ORM session, if one was used; the connection's transaction ends apart."""
        if self._session is not None:
            self._session.close()


def is_postgres(session: Session) -> bool:
    """Whether this session talks to PostgreSQL (row locks and SKIP LOCKED work there)."""
    return session.get_bind().dialect.name == "postgresql"
