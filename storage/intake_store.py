"""The statements of the intake's hot path, in SQLAlchemy Core.

Every inbound message runs these, so each is built once at import and reaches the database
through SQLAlchemy's compiled cache: no ORM unit of work, no identity map, no statement
construction per message. Rare paths (a submitted report, a status query, deleting one's data)
keep using the ORM repositories in the same session and transaction.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any, cast

from sqlalchemy import Boolean, Table, bindparam, delete, insert, select, text, update
from sqlalchemy.orm import Session
from sqlalchemy.orm.exc import StaleDataError

from storage.crypto import EncryptedText, keyring
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
_CREATE_CONTACT = text(
    "INSERT INTO contact (channel, address_hash, address, plain_letters, is_test, created_at) "
    "VALUES (:channel, :address_hash, :address, false, :is_test, :created_at) "
    "ON CONFLICT (channel, address_hash) DO NOTHING RETURNING id"
).bindparams(
    bindparam("address", type_=EncryptedText()),
    bindparam("is_test", type_=Boolean()),
    bindparam("created_at", type_=UTCDateTime()),
)

_RECORD_INBOUND = text(
    "INSERT INTO message (channel, direction, channel_message_id, contact_id, body, "
    "chat_message_id, kind, attempts, ephemeral, created_at) "
    "VALUES (:channel, 'in', :channel_message_id, :contact_id, :body, :chat_message_id, "
    "'text', 0, false, :created_at) "
    "ON CONFLICT (channel, direction, channel_message_id) DO NOTHING RETURNING id"
).bindparams(
    bindparam("body", type_=EncryptedText()),
    bindparam("created_at", type_=UTCDateTime()),
)

_QUEUE = insert(_message).returning(_message.c.id)

_DROP_PENDING = delete(_message).where(
    _message.c.coalesce_key == bindparam("coalesce_key"),
    _message.c.status == "queued",
    _message.c.locked_until.is_(None),
    _message.c.attempts == 0,
)

_LINK_INBOUND = (
    update(_message)
    .where(_message.c.id == bindparam("message_id"))
    .values(complaint_id=bindparam("complaint_id"))
)

_INSERT_CONVERSATION = insert(_conversation)

_UPDATE_CONVERSATION = (
    update(_conversation)
    .where(_conversation.c.id == bindparam("conversation_id"))
    .where(_conversation.c.version == bindparam("expected_version"))
    .values(
        state=bindparam("state"),
        answers=bindparam("answers"),
        flow=bindparam("flow"),
        campaign=bindparam("campaign"),
        updated_at=bindparam("updated_at"),
        reminded_at=None,
        version=_conversation.c.version + 1,
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
        plain_letters=bindparam("plain_letters"),
        opted_out_at=bindparam("opted_out_at"),
    )
)


class IntakeStore:
    """The intake's reads and writes for one message, in the caller's session and transaction."""

    def __init__(self, session: Session, *, lock: bool) -> None:
        # The session's own connection and transaction, used directly: Session.execute() adds
        # ORM bookkeeping that plain Core statements do not need.
        self.session = session
        self.conn = session.connection()
        self.lock = lock  # PostgreSQL: rows are locked per person; SQLite locks the database

    def load(self, channel: str, address: str) -> tuple[ContactRow, ConversationRow | None] | None:
        """The contact with this address and its conversation, in one round trip."""
        statement = _LOAD_LOCKED if self.lock else _LOAD
        digest = keyring().lookup_hash(channel, address)
        row = self.conn.execute(
            statement, {"channel": channel, "address_hash": digest}
        ).one_or_none()
        if row is None:
            return None
        contact = ContactRow(
            row.id, row.channel, row.language, row.plain_letters, row.opted_out_at, row.is_test
        )
        if row.conversation_id is None:
            return contact, None
        conversation = ConversationRow(
            row.conversation_id,
            row.state,
            row.answers or {},
            row.flow or {},
            row.campaign,
            row.version,
            row.updated_at,
        )
        return contact, conversation

    def load_or_create(
        self, channel: str, address: str, *, is_test: bool, now: datetime
    ) -> tuple[ContactRow, ConversationRow | None]:
        """As :meth:`load`; a first message creates the contact (a concurrent creation wins)."""
        found = self.load(channel, address)
        if found is not None:
            return found
        self.conn.execute(
            _CREATE_CONTACT,
            {
                "channel": channel,
                "address_hash": keyring().lookup_hash(channel, address),
                "address": address,
                "is_test": is_test,
                "created_at": now,
            },
        )
        # Ours, or the one another worker created in between: read it back (and lock it).
        found = self.load(channel, address)
        if found is None:  # pragma: no cover - the insert or the conflict guarantees a row
            raise StaleDataError("contact vanished while being created")
        return found

    def record_inbound(
        self,
        channel: str,
        channel_message_id: str,
        contact_id: int,
        body: str,
        *,
        chat_message_id: str | None,
        now: datetime,
    ) -> int | None:
        """Log an inbound message; its id, or None when the id was seen before (a redelivery)."""
        return self.conn.execute(
            _RECORD_INBOUND,
            {
                "channel": channel,
                "channel_message_id": channel_message_id,
                "contact_id": contact_id,
                "body": body,
                "chat_message_id": chat_message_id,
                "created_at": now,
            },
        ).scalar_one_or_none()

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
        """Put one reply, callback answer or deletion in the outbox; its id.

        ``erase`` keeps neither body nor address (a reply shown on screen, or never sent, to
        someone who asked us to forget them).
        """
        return int(
            self.conn.execute(
                _QUEUE,
                {
                    "channel": channel,
                    "direction": "out",
                    "kind": kind,
                    "contact_id": contact_id,
                    "complaint_id": None,
                    "body": None if erase else body,
                    "to_address": None if erase else to_address,
                    "recipient_key": keyring().lookup_hash(channel, to_address),
                    "reply_markup": reply_markup,
                    "status": status,
                    "attempts": 0,
                    "next_attempt_at": not_before or now,
                    "ephemeral": ephemeral,
                    "coalesce_key": coalesce_key,
                    "created_at": now,
                },
            ).scalar_one()
        )

    def drop_pending(self, coalesce_key: str) -> None:
        """Drop replies with this key that no worker has picked up yet."""
        self.conn.execute(_DROP_PENDING, {"coalesce_key": coalesce_key})

    def link_inbound(self, message_id: int, complaint_id: int) -> None:
        """Tie a logged inbound message to the complaint it answers."""
        self.conn.execute(_LINK_INBOUND, {"message_id": message_id, "complaint_id": complaint_id})

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
        """Insert or update the conversation; StaleDataError when someone changed it meanwhile."""
        values = {
            "state": state,
            "answers": answers,
            "flow": flow,
            "campaign": campaign,
            "updated_at": now,
        }
        if stored is None:
            self.conn.execute(
                _INSERT_CONVERSATION, {**values, "contact_id": contact_id, "version": 1}
            )
            return
        result = self.conn.execute(
            _UPDATE_CONVERSATION,
            {**values, "conversation_id": stored.id, "expected_version": stored.version},
        )
        if getattr(result, "rowcount", 1) != 1:
            # The worker sent a reminder or expired the draft in between: start over.
            raise StaleDataError("conversation changed by another transaction")

    def delete_conversation(self, contact_id: int) -> None:
        """Delete the contact's conversation, if any."""
        self.conn.execute(_DELETE_CONVERSATION, {"contact_id": contact_id})

    def save_contact(self, contact: ContactRow) -> None:
        """Store the contact's language, plain-letters choice and opt-out."""
        self.conn.execute(
            _UPDATE_CONTACT,
            {
                "contact_id": contact.id,
                "language": contact.language,
                "plain_letters": contact.plain_letters,
                "opted_out_at": contact.opted_out_at,
            },
        )
