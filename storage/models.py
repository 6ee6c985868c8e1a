"""The tables: contacts, conversations, the message log and outbox, complaints, attachments."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
    text,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship
from sqlalchemy.types import TypeDecorator

from storage.crypto import EncryptedJSON, EncryptedText


def utcnow() -> datetime:
    """The current time in UTC, timezone-aware."""
    return datetime.now(UTC)


class UTCDateTime(TypeDecorator[datetime]):
    """A timestamp that comes back timezone-aware in UTC on SQLite as on PostgreSQL."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Any) -> datetime | None:
        """Store in UTC."""
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to a UTC column")
        return value.astimezone(UTC)

    def process_result_value(self, value: datetime | None, dialect: Any) -> datetime | None:
        """SQLite forgets the zone: put UTC back."""
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


# BigInteger ids on PostgreSQL, but INTEGER on SQLite so that they autoincrement.
Id = BigInteger().with_variant(Integer, "sqlite")


class Base(DeclarativeBase):
    """The declarative base of every table."""

    type_annotation_map = {datetime: UTCDateTime()}


class Contact(Base):
    """A person as reached on one channel; the address is encrypted and found by keyed hash."""

    __tablename__ = "contact"
    __table_args__ = (UniqueConstraint("channel", "address_hash", name="uq_contact_address"),)

    id: Mapped[int] = mapped_column(Id, primary_key=True)
    channel: Mapped[str] = mapped_column(String(16))
    address_hash: Mapped[str] = mapped_column(String(64))
    address: Mapped[str] = mapped_column(EncryptedText())
    language: Mapped[str | None] = mapped_column(String(8))
    plain_letters: Mapped[bool] = mapped_column(Boolean, default=False)
    opted_out_at: Mapped[datetime | None]
    is_test: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)

    conversation: Mapped[Conversation | None] = relationship(
        back_populates="contact", cascade="all, delete-orphan", uselist=False
    )


class Conversation(Base):
    """The dialog state of one contact; ``version`` guards against lost updates."""

    __tablename__ = "conversation"

    id: Mapped[int] = mapped_column(Id, primary_key=True)
    contact_id: Mapped[int] = mapped_column(
        ForeignKey("contact.id", ondelete="CASCADE"), unique=True
    )
    state: Mapped[str] = mapped_column(String(32))
    answers: Mapped[dict[str, Any]] = mapped_column(EncryptedJSON(remember=True))
    flow: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    campaign: Mapped[str | None] = mapped_column(String(64))
    version: Mapped[int] = mapped_column(Integer, default=1)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)
    reminded_at: Mapped[datetime | None]

    contact: Mapped[Contact] = relationship(back_populates="conversation")

    __mapper_args__ = {"version_id_col": version}


class Message(Base):
    """The message log and the outbox: inbound messages, and replies waiting to be sent."""

    __tablename__ = "message"
    __table_args__ = (
        UniqueConstraint(
            "channel", "direction", "channel_message_id", name="uq_message_channel_id"
        ),
        # Partial: inbound messages have neither a status nor a recipient, and leaving them
        # out of these two indexes spares each inbound insert two index pages.
        Index(
            "ix_message_outbox",
            "status",
            "next_attempt_at",
            sqlite_where=text("status IS NOT NULL"),
            postgresql_where=text("status IS NOT NULL"),
        ),
        Index("ix_message_contact", "contact_id", "id"),
        Index(
            "ix_message_recipient",
            "recipient_key",
            "status",
            sqlite_where=text("recipient_key IS NOT NULL"),
            postgresql_where=text("recipient_key IS NOT NULL"),
        ),
        # Only the SMS "got it" replies carry a key: a partial index stays small, and the
        # intake finds a pending one without scanning the outbox.
        Index(
            "ix_message_coalesce",
            "coalesce_key",
            "status",
            sqlite_where=text("coalesce_key IS NOT NULL"),
            postgresql_where=text("coalesce_key IS NOT NULL"),
        ),
    )

    id: Mapped[int] = mapped_column(Id, primary_key=True)
    contact_id: Mapped[int | None] = mapped_column(ForeignKey("contact.id", ondelete="SET NULL"))
    complaint_id: Mapped[int | None] = mapped_column(
        ForeignKey("complaint.id", ondelete="SET NULL")
    )
    channel: Mapped[str] = mapped_column(String(16))
    direction: Mapped[str] = mapped_column(String(3))  # "in" or "out"
    # Telegram update_id / Twilio MessageSid inbound; the provider's id once sent outbound.
    channel_message_id: Mapped[str | None] = mapped_column(String(64))
    body: Mapped[str | None] = mapped_column(EncryptedText())
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    # The Telegram message id inside the chat (for clearing the chat from a shared phone).
    chat_message_id: Mapped[str | None] = mapped_column(String(32))
    # Outbox fields (outbound only). kind: "text", "callback_answer" or "delete".
    kind: Mapped[str] = mapped_column(String(16), default="text")
    to_address: Mapped[str | None] = mapped_column(EncryptedText())
    # Keyed hash of channel and address: keeps one person's replies in order across workers.
    recipient_key: Mapped[str | None] = mapped_column(String(64))
    # Replies that a later message makes moot (the "got it" after each SMS part) share a key.
    coalesce_key: Mapped[str | None] = mapped_column(String(64))
    reply_markup: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    status: Mapped[str | None] = mapped_column(String(16))
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[datetime | None]
    locked_until: Mapped[datetime | None]
    error: Mapped[str | None] = mapped_column(Text)
    sent_at: Mapped[datetime | None]
    # Erase body and address once sent: the person asked us to keep nothing.
    ephemeral: Mapped[bool] = mapped_column(Boolean, default=False)


class Complaint(Base):
    """A submitted report with every structured answer; personal parts encrypted."""

    __tablename__ = "complaint"
    __table_args__ = (
        Index("ix_complaint_status_created", "status", "created_at"),
        # The desk inbox (staff/queries.py) lists by (priority, created_at, id); see migration
        # 0005 for what each of these serves. The other inbox indexes are in staff_models.py.
        Index("ix_complaint_inbox_any", "priority", "created_at", "id"),
        Index(
            "ix_complaint_inbox_campaign",
            "campaign",
            "is_test",
            "priority",
            "created_at",
            "id",
            postgresql_where=text("campaign IS NOT NULL"),
            sqlite_where=text("campaign IS NOT NULL"),
        ),
        Index(
            "ix_complaint_inbox_municipality",
            "municipality",
            "is_test",
            "priority",
            "created_at",
            "id",
        ),
        Index("ix_complaint_area", "area"),
        Index("ix_complaint_ground", "ground"),
        Index("ix_complaint_perpetrator", "perpetrator"),
        Index("ix_complaint_language", "language"),
        # The repeat-pattern count at every submission (bot/notify.py, similar_earlier):
        # covering, so the count reads the index alone.
        Index(
            "ix_complaint_pattern",
            "perpetrator",
            "municipality",
            "created_at",
            "is_test",
            "status",
        ),
    )

    id: Mapped[int] = mapped_column(Id, primary_key=True)
    reference: Mapped[str] = mapped_column(String(16), unique=True)
    pin_hash: Mapped[str] = mapped_column(String(64))
    contact_id: Mapped[int | None] = mapped_column(ForeignKey("contact.id", ondelete="SET NULL"))
    channel: Mapped[str] = mapped_column(String(16))
    language: Mapped[str] = mapped_column(String(8))
    status: Mapped[str] = mapped_column(String(16), default="new")
    urgent: Mapped[bool] = mapped_column(Boolean, default=False)
    area: Mapped[str] = mapped_column(String(32))
    ground: Mapped[str] = mapped_column(String(32))
    ground_other: Mapped[str | None] = mapped_column(EncryptedText())
    perpetrator: Mapped[str] = mapped_column(String(32))
    municipality: Mapped[str] = mapped_column(String(32))  # a code, or "outside"
    occurred: Mapped[str] = mapped_column(String(16))
    description: Mapped[str | None] = mapped_column(EncryptedText())
    stakes: Mapped[list[str]] = mapped_column(JSON, default=list)
    contact_preference: Mapped[str] = mapped_column(String(8))  # this, other, none
    contact_phone: Mapped[str | None] = mapped_column(EncryptedText())
    legal_support: Mapped[bool] = mapped_column(Boolean, default=False)
    sharing: Mapped[str] = mapped_column(String(16))  # yes, after_talk, no
    campaign: Mapped[str | None] = mapped_column(String(64))
    is_test: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)
    # Set at submission by bot.priority and bot.routing (docs/priority.md): "P1" is the most
    # urgent, so ascending order puts it first. Reasons and institutions hold no personal data.
    priority: Mapped[str] = mapped_column(String(2), default="P4", server_default="P4")
    priority_reasons: Mapped[list[dict[str, Any]]] = mapped_column(JSON, default=list)
    institutions: Mapped[list[dict[str, Any]]] = mapped_column(JSON, default=list)

    attachments: Mapped[list[Attachment]] = relationship(back_populates="complaint")


class Attachment(Base):
    """Evidence: a photo, voice note or document, referenced by the channel and fetched later."""

    __tablename__ = "attachment"

    id: Mapped[int] = mapped_column(Id, primary_key=True)
    complaint_id: Mapped[int | None] = mapped_column(ForeignKey("complaint.id", ondelete="CASCADE"))
    channel: Mapped[str] = mapped_column(String(16))
    kind: Mapped[str] = mapped_column(String(16))
    source_ref: Mapped[str] = mapped_column(EncryptedText())
    content_type: Mapped[str | None] = mapped_column(String(128))
    size: Mapped[int | None] = mapped_column(BigInteger)
    path: Mapped[str | None] = mapped_column(String(255))
    fetched_at: Mapped[datetime | None]
    fetch_attempts: Mapped[int] = mapped_column(Integer, default=0)
    fetch_error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)

    complaint: Mapped[Complaint | None] = relationship(back_populates="attachments")


class Campaign(Base):
    """An awareness campaign: its Telegram deep-link code and SMS keyword."""

    __tablename__ = "campaign"

    id: Mapped[int] = mapped_column(Id, primary_key=True)
    code: Mapped[str] = mapped_column(String(64), unique=True)
    name: Mapped[str] = mapped_column(String(200))
    sms_keyword: Mapped[str | None] = mapped_column(String(32), unique=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class WorkerHeartbeat(Base):
    """When each worker last said it was alive (for /healthz)."""

    __tablename__ = "worker_heartbeat"

    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    beat_at: Mapped[datetime] = mapped_column(default=utcnow)


ENCRYPTED_COLUMNS: dict[type[Base], tuple[str, ...]] = {
    Contact: ("address",),
    Conversation: ("answers",),
    Message: ("body", "to_address"),
    Complaint: ("ground_other", "description", "contact_phone"),
    Attachment: ("source_ref",),
}
"""Every column that holds personal data, for key rotation and the raw-bytes test."""

# The outbound-webhook tables (events outbox, endpoints, deliveries), seen by Alembic too.
from storage import events as _events  # noqa: E402, F401

# The staff desk's tables live in their own module; importing it here lets Alembic see them.
from storage import staff_models as _staff_models  # noqa: E402, F401
