"""The statements of the intake's hot path: SQLAlchemy Core, compiled once, run on the driver.

Every inbound message runs these. Each is written as a Core statement (so SQLAlchemy writes the
SQL for SQLite and PostgreSQL alike), compiled once per dialect, and executed on the driver's
cursor inside the connection's transaction, with the column types' own bind and result
processors (encryption included). That skips SQLAlchemy's per-execution machinery, which cost
more than the SQL itself: about 25 µs a statement against 5 µs on SQLite. Driver errors are
raised as SQLAlchemy's, and a lost connection invalidates the pool, as SQLAlchemy would do.

Rare paths (a submitted report, a status query, deleting one's data) keep using the ORM
repositories, in a session joined to the same connection and transaction.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from contextlib import nullcontext
from dataclasses import dataclass
from datetime import datetime
from typing import Any, cast

from sqlalchemy import (
    Boolean,
    Connection,
    LargeBinary,
    Table,
    bindparam,
    delete,
    insert,
    literal_column,
    null,
    select,
    text,
    type_coerce,
    update,
)
from sqlalchemy.engine import Dialect
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm.exc import StaleDataError
from sqlalchemy.sql import ClauseElement
from sqlalchemy.sql.compiler import SQLCompiler

from storage.crypto import EncryptedText, keyring
from storage.db import CoreUnit
from storage.models import Contact, Conversation, Message, UTCDateTime

_contact = cast(Table, Contact.__table__)
_conversation = cast(Table, Conversation.__table__)
_message = cast(Table, Message.__table__)


@dataclass
class ContactRow:
    """The parts of a contact the intake reads and may change."""

    id: int
    channel: str
    language: str | None
    plain_letters: bool
    opted_out_at: datetime | None
    is_test: bool
    new: bool = False  # created by the message being handled


@dataclass
class ConversationRow:
    """A stored conversation as the intake sees it; ``version`` guards against lost updates."""

    id: int
    state: str
    answers: dict[str, Any]
    flow: dict[str, Any]
    campaign: str | None
    version: int
    updated_at: datetime


_LOAD = (
    select(
        _contact.c.id,
        _contact.c.channel,
        _contact.c.language,
        _contact.c.plain_letters,
        _contact.c.opted_out_at,
        _contact.c.is_test,
        _conversation.c.id.label("conversation_id"),
        _conversation.c.state,
        _conversation.c.answers,
        _conversation.c.flow,
        _conversation.c.campaign,
        _conversation.c.version,
        _conversation.c.updated_at,
        # The address as stored, still encrypted: replies to this person reuse the token
        # instead of encrypting the same address again (a Fernet encryption is about 10 µs).
        type_coerce(_contact.c.address, LargeBinary()).label("address_token"),
    )
    .select_from(_contact.outerjoin(_conversation))
    .where(
        _contact.c.channel == bindparam("channel"),
        _contact.c.address_hash == bindparam("address_hash"),
    )
)
# The contact row is the per-person lock on PostgreSQL: a second message from the same person
# waits here until the first is committed, so the dialog sees every answer in order. (The
# conversation row cannot carry the lock: it is on the nullable side of the outer join.)
_LOAD_LOCKED = _LOAD.with_for_update(of=_contact)

# Dialect-specific ``insert()`` constructs carry no cache key and are compiled anew each time;
# a text() statement with typed parameters is compiled once. SQLite 3.35+ and PostgreSQL share
# the ON CONFLICT … RETURNING syntax.
# ``address`` goes in encrypted already: replies to the new contact reuse the token.
_CREATE_CONTACT = text(
    "INSERT INTO contact (channel, address_hash, address, plain_letters, is_test, created_at) "
    "VALUES (:channel, :address_hash, :address, false, :is_test, :created_at) "
    "ON CONFLICT (channel, address_hash) DO NOTHING RETURNING id"
).bindparams(
    bindparam("address", type_=LargeBinary()),
    bindparam("is_test", type_=Boolean()),
    bindparam("created_at", type_=UTCDateTime()),
)

# The sender's contact is looked up inside the insert, so that the insert can travel with the
# load in one round trip; a first message finds no contact and is tied to it once created.
_RECORD_INBOUND = text(
    "INSERT INTO message (channel, direction, channel_message_id, contact_id, body, "
    "chat_message_id, kind, attempts, ephemeral, created_at) "
    "VALUES (:channel, 'in', :channel_message_id, "
    "(SELECT id FROM contact WHERE channel = :contact_channel AND address_hash = :address_hash), "
    ":body, :chat_message_id, 'text', 0, false, :created_at) "
    "ON CONFLICT (channel, direction, channel_message_id) DO NOTHING RETURNING id"
).bindparams(
    bindparam("body", type_=EncryptedText()),
    bindparam("created_at", type_=UTCDateTime()),
)

_QUEUED_COLUMNS = (
    "channel",
    "direction",
    "kind",
    "contact_id",
    "body",
    "to_address",
    "recipient_key",
    "reply_markup",
    "status",
    "attempts",
    "next_attempt_at",
    "ephemeral",
    "coalesce_key",
    "created_at",
)
# ``to_address`` goes in as a token already encrypted: see IntakeStore.queue.
_QUEUE = (
    insert(_message)
    .values(
        {
            name: bindparam(
                name, type_=LargeBinary() if name == "to_address" else _message.c[name].type
            )
            for name in _QUEUED_COLUMNS
        }
    )
    .returning(_message.c.id)
)

_DROP_PENDING = delete(_message).where(
    _message.c.coalesce_key == bindparam("coalesce_key"),
    _message.c.status == "queued",
    _message.c.locked_until.is_(None),
    _message.c.attempts == 0,
)

_SET_INBOUND_CONTACT = (
    update(_message)
    .where(_message.c.id == bindparam("message_id"))
    .values(contact_id=bindparam("contact_id"))
)

_CONVERSATION_COLUMNS = (
    "contact_id",
    "state",
    "answers",
    "flow",
    "campaign",
    "version",
    "updated_at",
)
_INSERT_CONVERSATION = insert(_conversation).values(
    {name: bindparam(name, type_=_conversation.c[name].type) for name in _CONVERSATION_COLUMNS}
)

_UPDATE_CONVERSATION = (
    update(_conversation)
    .where(_conversation.c.id == bindparam("conversation_id"))
    .where(_conversation.c.version == bindparam("expected_version"))
    .values(
        state=bindparam("state"),
        answers=bindparam("answers", type_=_conversation.c.answers.type),
        flow=bindparam("flow", type_=_conversation.c.flow.type),
        campaign=bindparam("campaign"),
        updated_at=bindparam("updated_at", type_=_conversation.c.updated_at.type),
        reminded_at=null(),
        version=_conversation.c.version + literal_column("1"),
    )
)

_DELETE_CONVERSATION = delete(_conversation).where(
    _conversation.c.contact_id == bindparam("contact_id")
)

_UPDATE_CONTACT = (
    update(_contact)
    .where(_contact.c.id == bindparam("contact_id"))
    .values(
        language=bindparam("language"),
        plain_letters=bindparam("plain_letters", type_=Boolean()),
        opted_out_at=bindparam("opted_out_at", type_=_contact.c.opted_out_at.type),
    )
)


_Processor = Callable[[Any], Any] | None


@dataclass(frozen=True)
class _Form:
    """One statement as compiled for one dialect, with its parameters' processors in order."""

    sql: str
    positional: bool
    binds: tuple[tuple[str, _Processor], ...]
    results: tuple[_Processor, ...]
    fixed: dict[str, Any]  # literal values of the statement itself (status == "queued")

    @classmethod
    def compile(cls, statement: ClauseElement, dialect: Dialect) -> _Form:
        """Compile ``statement`` for ``dialect``; the processors are those SQLAlchemy would use."""
        compiled = cast(SQLCompiler, statement.compile(dialect=dialect))
        processors = {
            compiled.bind_names[bind]: bind.type.dialect_impl(dialect).bind_processor(dialect)
            for bind in compiled.binds.values()
        }
        names: Sequence[str] = (
            compiled.positiontup or () if compiled.positional else list(processors)
        )
        columns = getattr(statement, "selected_columns", ())
        fixed = {
            compiled.bind_names[bind]: bind.effective_value
            for bind in compiled.binds.values()
            if not bind.required
        }
        return cls(
            sql=compiled.string,
            positional=compiled.positional,
            binds=tuple((name, processors[name]) for name in names),
            results=tuple(
                c.type.dialect_impl(dialect).result_processor(dialect, None) for c in columns
            ),
            fixed=fixed,
        )

    def parameters(self, values: dict[str, Any]) -> Sequence[Any] | dict[str, Any]:
        """The driver's parameters: processed, in order for positional paramstyles."""
        if self.fixed:
            values = {**self.fixed, **values}
        processed = [(n, values[n] if p is None else p(values[n])) for n, p in self.binds]
        if self.positional:
            return tuple(v for _, v in processed)
        return dict(processed)

    def row(self, raw: Sequence[Any]) -> list[Any]:
        """A fetched row with the result processors applied."""
        return [v if p is None else p(v) for v, p in zip(raw, self.results, strict=True)]


class _Prepared:
    """A Core statement compiled once per dialect, on first use."""

    def __init__(self, statement: ClauseElement) -> None:
        self.statement = statement
        self._forms: dict[str, _Form] = {}

    def form(self, dialect: Dialect) -> _Form:
        """The compiled form for this dialect."""
        form = self._forms.get(dialect.name)
        if form is None:
            form = self._forms[dialect.name] = _Form.compile(self.statement, dialect)
        return form


@functools.cache
def _notify(channel: str) -> _Prepared:
    """``NOTIFY channel``, prepared once per channel."""
    if not channel.isidentifier():
        raise ValueError(f"not a channel name: {channel!r}")
    return _Prepared(text(f"NOTIFY {channel}"))


_LOAD_P = _Prepared(_LOAD)
_LOAD_LOCKED_P = _Prepared(_LOAD_LOCKED)
_CREATE_CONTACT_P = _Prepared(_CREATE_CONTACT)
_RECORD_INBOUND_P = _Prepared(_RECORD_INBOUND)
_QUEUE_P = _Prepared(_QUEUE)
_DROP_PENDING_P = _Prepared(_DROP_PENDING)
_SET_INBOUND_CONTACT_P = _Prepared(_SET_INBOUND_CONTACT)
_INSERT_CONVERSATION_P = _Prepared(_INSERT_CONVERSATION)
_UPDATE_CONVERSATION_P = _Prepared(_UPDATE_CONVERSATION)
_DELETE_CONVERSATION_P = _Prepared(_DELETE_CONVERSATION)
_UPDATE_CONTACT_P = _Prepared(_UPDATE_CONTACT)


class _Cursor:
    """A unit's driver connection, running prepared statements on the driver's cursors."""

    def __init__(self, unit: CoreUnit) -> None:
        self.unit = unit
        self.dialect = unit.dialect
        self.fairy = unit.fairy  # checked out, and in the unit's transaction
        self.error: type[Exception] = self.dialect.loaded_dbapi.Error
        # Listeners (statement counts in bench/, tests) see these statements as any other; the
        # unit then works through a SQLAlchemy Connection, which they are given.
        self.conn: Connection | None = None
        self.announce: Any = None
        if unit.engine.dispatch.before_cursor_execute:
            self.conn = unit.connection
            # Looked up once: each lookup of a connection's dispatch builds a joined list.
            self.announce = self.conn.dispatch.before_cursor_execute

    def run_all(self, statements: Sequence[tuple[_Prepared, dict[str, Any]]]) -> list[Any]:
        """Run statements in order, each on a cursor of its own (returned, results unread).

        On PostgreSQL they travel together in psycopg's pipeline mode: one round trip for all
        of them instead of one each (a round trip is 0.1-0.2 ms on a small virtual machine).
        Driver errors come out as SQLAlchemy's own exceptions.
        """
        cursors: list[Any] = []
        sql, parameters, cursor = "", None, None
        driver: Any = self.fairy.driver_connection
        try:
            with driver.pipeline() if self.dialect.name == "postgresql" else nullcontext():
                for prepared, values in statements:
                    form = prepared.form(self.dialect)
                    sql, parameters = form.sql, form.parameters(values)
                    cursor = self.fairy.cursor()
                    if self.announce is not None:
                        self.announce(self.conn, cursor, sql, parameters, None, False)
                    cursor.execute(sql, parameters)
                    cursors.append(cursor)
        except self.error as exc:
            # As SQLAlchemy does: a lost connection invalidates the pool's stale connections.
            lost = self.dialect.is_disconnect(cast(Any, exc), self.fairy.dbapi_connection, cursor)
            if lost:
                self.unit.invalidate(exc)
            raise DBAPIError.instance(
                sql, parameters, exc, self.error, connection_invalidated=lost, dialect=self.dialect
            ) from exc
        return cursors

    def execute(self, prepared: _Prepared, values: dict[str, Any]) -> Any:
        """Run one statement; its cursor."""
        return self.run_all([(prepared, values)])[0]

    def one_or_none(self, prepared: _Prepared, values: dict[str, Any]) -> list[Any] | None:
        """The single row a statement returns, processed, or None."""
        cursor = self.execute(prepared, values)
        raw = cursor.fetchone()
        if raw is not None and cursor.fetchone() is not None:
            raise StaleDataError("expected one row")
        return None if raw is None else prepared.form(self.dialect).row(raw)


class IntakeStore:
    """The intake's reads and writes for one message, in the caller's transaction.

    Reads happen at once. Writes that the dialog's outcome decides (replies, the conversation,
    the contact, the wake-up call) are collected and sent together by :meth:`write`.
    """

    def __init__(self, unit: CoreUnit) -> None:
        self.db = _Cursor(unit)  # in the transaction the caller began
        # PostgreSQL: rows are locked per person; SQLite locks the whole database anyway.
        self.lock = unit.dialect.name == "postgresql"
        self._writes: list[tuple[_Prepared, dict[str, Any], str]] = []
        self._queued = 0
        # The sender of the message being handled: (channel, address) -> (look-up hash, the
        # stored address token). Replies to them reuse both instead of computing them again.
        self._sender: tuple[tuple[str, str], str, bytes | None] | None = None

    def arrive(
        self,
        channel: str,
        address: str,
        channel_message_id: str,
        body: str,
        *,
        chat_message_id: str | None,
        is_test: bool,
        now: datetime,
    ) -> tuple[ContactRow, ConversationRow | None, int | None]:
        """Log an inbound message and load (and lock) its sender's contact and conversation.

        The third value is the logged message's id, None when the id was seen before (a
        redelivery). A first message creates the contact (a concurrent creation wins).
        """
        digest = keyring().lookup_hash(channel, address)
        self._sender = ((channel, address), digest, None)
        load, record = self.db.run_all(
            [
                (
                    _LOAD_LOCKED_P if self.lock else _LOAD_P,
                    {"channel": channel, "address_hash": digest},
                ),
                (
                    _RECORD_INBOUND_P,
                    {
                        "channel": channel,
                        "contact_channel": channel,
                        "address_hash": digest,
                        "channel_message_id": channel_message_id,
                        "body": body,
                        "chat_message_id": chat_message_id,
                        "created_at": now,
                    },
                ),
            ]
        )
        found = load.fetchone()
        logged_row = record.fetchone()
        logged = None if logged_row is None else int(logged_row[0])
        if found is not None:
            contact, conversation = self._loaded(_LOAD_P.form(self.db.dialect).row(found), digest)
            return contact, conversation, logged
        token = keyring().encrypt(address)
        created = self.db.execute(
            _CREATE_CONTACT_P,
            {
                "channel": channel,
                "address_hash": digest,
                "address": token,
                "is_test": is_test,
                "created_at": now,
            },
        ).fetchone()
        if created is not None:
            # Ours: nobody else can see (or lock) it before we commit, and it has no
            # conversation yet.
            contact = ContactRow(int(created[0]), channel, None, False, None, is_test, new=True)
            self._sender = ((channel, address), digest, token)
            conversation = None
        else:
            # Another worker created it in between: read theirs back (and lock it).
            again = self.load(channel, address)
            if again is None:  # pragma: no cover - the conflict guarantees a row
                raise StaleDataError("contact vanished while being created")
            contact, conversation = again
        if logged is not None:
            self.db.execute(
                _SET_INBOUND_CONTACT_P, {"message_id": logged, "contact_id": contact.id}
            )
        return contact, conversation, logged

    def load(self, channel: str, address: str) -> tuple[ContactRow, ConversationRow | None] | None:
        """The contact with this address and its conversation (locked on PostgreSQL)."""
        digest = keyring().lookup_hash(channel, address)
        row = self.db.one_or_none(
            _LOAD_LOCKED_P if self.lock else _LOAD_P,
            {"channel": channel, "address_hash": digest},
        )
        return None if row is None else self._loaded(row, digest)

    def _loaded(self, row: Sequence[Any], digest: str) -> tuple[ContactRow, ConversationRow | None]:
        (
            contact_id,
            contact_channel,
            language,
            plain_letters,
            opted_out_at,
            is_test,
            conversation_id,
            state,
            answers,
            flow,
            campaign,
            version,
            updated_at,
            address_token,
        ) = row
        if self._sender is not None and self._sender[1] == digest:
            self._sender = (self._sender[0], digest, bytes(address_token))
        contact = ContactRow(
            contact_id, contact_channel, language, bool(plain_letters), opted_out_at, bool(is_test)
        )
        if conversation_id is None:
            return contact, None
        conversation = ConversationRow(
            conversation_id, state, answers or {}, flow or {}, campaign, version, updated_at
        )
        return contact, conversation

    def drop_pending(self, coalesce_key: str) -> None:
        """Drop replies with this key that no worker has picked up yet (at once)."""
        self.db.execute(_DROP_PENDING_P, {"coalesce_key": coalesce_key})

    def delete_conversation(self, contact_id: int) -> None:
        """Delete the contact's conversation, if any (at once)."""
        self.db.execute(_DELETE_CONVERSATION_P, {"contact_id": contact_id})

    # --- collected writes, sent by write() ----------------------------------------------------

    def queue(
        self,
        *,
        contact_id: int | None,
        channel: str,
        to_address: str,
        body: str,
        reply_markup: dict[str, Any] | None,
        now: datetime,
        kind: str = "text",
        status: str = "queued",
        ephemeral: bool = False,
        coalesce_key: str | None = None,
        not_before: datetime | None = None,
        erase: bool = False,
    ) -> int:
        """Put a reply, callback answer or deletion in the outbox; its place in :meth:`write`'s
        list of ids.

        ``erase`` keeps neither body nor address (a reply shown on screen, or never sent, to
        someone who asked us to forget them).
        """
        ring = keyring()
        sender = self._sender
        if sender is not None and sender[0] == (channel, to_address):
            recipient_key, token = sender[1], sender[2]
        else:
            recipient_key, token = ring.lookup_hash(channel, to_address), None
        if not erase and token is None:
            token = ring.encrypt(to_address)
        values = {
            "channel": channel,
            "direction": "out",
            "kind": kind,
            "contact_id": contact_id,
            "body": None if erase else body,
            "to_address": None if erase else token,
            "recipient_key": recipient_key,
            "reply_markup": reply_markup,
            "status": status,
            "attempts": 0,
            "next_attempt_at": not_before or now,
            "ephemeral": ephemeral,
            "coalesce_key": coalesce_key,
            "created_at": now,
        }
        self._writes.append((_QUEUE_P, values, "id"))
        self._queued += 1
        return self._queued - 1

    def save_conversation(
        self,
        contact_id: int,
        stored: ConversationRow | None,
        *,
        state: str,
        answers: dict[str, Any],
        flow: dict[str, Any],
        campaign: str | None,
        now: datetime,
    ) -> None:
        """Insert or update the conversation; :meth:`write` raises StaleDataError when someone
        changed it meanwhile."""
        values: dict[str, Any] = {
            "state": state,
            "answers": answers,
            "flow": flow,
            "campaign": campaign,
            "updated_at": now,
        }
        if stored is None:
            values.update(contact_id=contact_id, version=1)
            self._writes.append((_INSERT_CONVERSATION_P, values, ""))
            return
        values.update(conversation_id=stored.id, expected_version=stored.version)
        self._writes.append((_UPDATE_CONVERSATION_P, values, "one row"))

    def save_contact(self, contact: ContactRow) -> None:
        """Store the contact's language, plain-letters choice and opt-out."""
        values = {
            "contact_id": contact.id,
            "language": contact.language,
            "plain_letters": contact.plain_letters,
            "opted_out_at": contact.opted_out_at,
        }
        self._writes.append((_UPDATE_CONTACT_P, values, ""))

    def notify(self, channel: str) -> None:
        """Wake the workers listening on ``channel`` when this transaction commits (PostgreSQL)."""
        if self.lock:
            self._writes.append((_notify(channel), {}, ""))

    def write(self) -> list[int]:
        """Send the collected writes (one round trip on PostgreSQL); the queued rows' ids."""
        writes, self._writes, self._queued = self._writes, [], 0
        if not writes:
            return []
        cursors = self.db.run_all([(prepared, values) for prepared, values, _ in writes])
        ids: list[int] = []
        for cursor, (_, _, expect) in zip(cursors, writes, strict=True):
            if expect == "id":
                ids.append(int(cursor.fetchone()[0]))
            elif expect == "one row" and cursor.rowcount != 1:
                # The worker sent a reminder or expired the draft in between: start over.
                raise StaleDataError("conversation changed by another transaction")
        return ids
