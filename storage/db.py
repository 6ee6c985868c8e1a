"""Engines, sessions and the unit of work."""

from __future__ import annotations

import contextlib
import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from sqlalchemy import Connection, Engine, create_engine, event
from sqlalchemy.engine import Dialect
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session, sessionmaker
from sqlalchemy.pool import PoolProxiedConnection


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
            # A CoreUnit's connection is already in its transaction when SQLAlchemy joins it.
            dbapi_connection = conn.connection.dbapi_connection
            if not dbapi_connection.in_transaction:
                _begin_immediate(dbapi_connection, conn.dialect)

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
        """One transaction on a pooled driver connection, for the statements of the hot path.

        No ORM bookkeeping, and no SQLAlchemy ``Connection`` either, unless a message asks for
        an ORM session (:attr:`CoreUnit.session`), which then joins the same transaction and is
        flushed before the commit.
        """
        unit = CoreUnit(self._factory.kw["bind"], self._factory)
        try:
            yield unit
            unit.commit()
        except BaseException:
            unit.rollback()
            raise
        finally:
            unit.close()


class CoreUnit:
    """A transaction on a driver connection from the pool; SQLAlchemy joins it on demand.

    Checking a SQLAlchemy ``Connection`` out, beginning, committing and returning it cost about
    35 µs of a 0.4 ms message on SQLite, more than any statement. So the unit takes the pool's
    connection itself and begins and commits on the driver. When an ORM session is needed (a
    submitted report, a status query), or when listeners watch the engine's statements or
    commits (tests, benchmarks), a ``Connection`` is made on the same driver connection and
    transaction, and the commit goes through it, so SQLAlchemy sees everything as usual.
    """

    def __init__(self, engine: Engine, factory: sessionmaker[Session]) -> None:
        self.engine = engine
        self.dialect = engine.dialect
        self._factory = factory
        self._connection: Connection | None = None
        self._session: Session | None = None
        self._closed = False
        dispatch = engine.dispatch
        if dispatch.before_cursor_execute or dispatch.commit:
            # Listened to: through SQLAlchemy from the start, so every event fires.
            self._connection = engine.connect()
            self._connection.begin()
            self.fairy: PoolProxiedConnection = self._connection.connection
            return
        self.fairy = engine.raw_connection()
        if self.dialect.name == "sqlite":
            try:
                _begin_immediate(self.fairy.dbapi_connection, self.dialect)
            except BaseException:
                self.fairy.close()
                raise
        # psycopg opens a transaction by itself at the first statement (autocommit is off).

    @property
    def connection(self) -> Connection:
        """A SQLAlchemy ``Connection`` in this unit's transaction (made on first use)."""
        if self._connection is None:
            connection = Connection(self.engine, connection=self.fairy)
            connection.begin()  # on SQLite the begin listener sees the open transaction
            self._connection = connection
        return self._connection

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
        return self.dialect.name == "postgresql"

    def invalidate(self, exc: BaseException) -> None:
        """Drop the driver connection (it was lost): the pool will not hand it out again."""
        if self._connection is not None:
            self._connection.invalidate(exc)
        else:
            self.fairy.invalidate(exc)

    def commit(self) -> None:
        """Flush the ORM session, if one was used, and commit."""
        if self._session is not None:
            self._session.flush()
        if self._connection is not None:
            self._connection.commit()
            return
        error = self.dialect.loaded_dbapi.Error
        try:
            self.fairy.commit()
        except error as exc:
            lost = self.dialect.is_disconnect(exc, self.fairy.dbapi_connection, None)
            if lost:
                self.fairy.invalidate(exc)  # the pool must not hand it out again
            raise DBAPIError.instance(
                "COMMIT", (), exc, error, connection_invalidated=lost, dialect=self.dialect
            ) from exc

    def rollback(self) -> None:
        """Roll the transaction back; a connection that broke meanwhile is dropped instead.

        This runs while an error is on its way out: a second one from the rollback (the server
        went away) must not replace it, and the transaction is gone with the connection anyway.
        """
        if self._connection is not None:
            if not self._connection.invalidated:
                with contextlib.suppress(DBAPIError):  # SQLAlchemy invalidates a lost one
                    self._connection.rollback()
            return
        if not self.fairy.is_valid:
            return
        try:
            self.fairy.rollback()
        except self.dialect.loaded_dbapi.Error as exc:
            self.fairy.invalidate(exc)

    def close(self) -> None:
        """Close the ORM session, if any, and give the connection back to the pool."""
        if self._closed:
            return
        self._closed = True
        if self._session is not None:
            self._session.close()
        if self._connection is not None:
            self._connection.close()  # it returns the driver connection too
        else:
            self.fairy.close()


def _begin_immediate(dbapi_connection: Any, dialect: Dialect) -> None:
    """``BEGIN IMMEDIATE`` on a SQLite driver connection, errors as SQLAlchemy's (retryable)."""
    try:
        dbapi_connection.execute("BEGIN IMMEDIATE")
    except sqlite3.Error as exc:  # e.g. still locked after the timeout
        raise DBAPIError.instance(
            "BEGIN IMMEDIATE", (), exc, sqlite3.Error, dialect=dialect
        ) from exc


def is_postgres(session: Session) -> bool:
    """Whether this session talks to PostgreSQL (row locks and SKIP LOCKED work there)."""
    return session.get_bind().dialect.name == "postgresql"
