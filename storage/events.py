"""The outbound-webhook tables: endpoints, the event outbox and one delivery per event and endpoint.

An event row is written in the same transaction as the complaint change it reports (a
transactional outbox); its body holds personal data and is stored encrypted. Deliveries are
claimed by workers with a lease, the same way the message outbox is.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import (
    JSON,
    Boolean,
    ForeignKey,
    Index,
    Integer,
    SmallInteger,
    String,
    Text,
    UniqueConstraint,
    text,
)
from sqlalchemy.orm import Mapped, mapped_column, relationship

from storage.crypto import EncryptedJSON, EncryptedText
from storage.models import ENCRYPTED_COLUMNS, Base, Id, utcnow


class WebhookEndpoint(Base):
    """A receiver of events: its URL, signing secrets (encrypted) and which events it takes."""

    __tablename__ = "webhook_endpoint"

    id: Mapped[int] = mapped_column(Id, primary_key=True)
    name: Mapped[str] = mapped_column(String(64), unique=True)
    url: Mapped[str] = mapped_column(String(2000))
    # whsec_ secrets; the first signs, every one signs side by side while a rotation is under way.
    secrets: Mapped[list[str]] = mapped_column(EncryptedJSON())
    event_types: Mapped[list[str]] = mapped_column(JSON, default=list)
    # Only events about complaints where the person asked for legal support.
    legal_only: Mapped[bool] = mapped_column(Boolean, default=False)
    enabled: Mapped[bool] = mapped_column(Boolean, default=True)
    disabled_reason: Mapped[str | None] = mapped_column(String(200))
    # "settings" for the endpoints synced from NOTIFY_* settings, "cli" for those staff add.
    source: Mapped[str] = mapped_column(String(16), default="cli")
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)


class WebhookEvent(Base):
    """One event as it will be sent: the exact JSON body, encrypted, and its stable id."""

    __tablename__ = "webhook_event"
    __table_args__ = (Index("ix_webhook_event_complaint", "complaint_id"),)

    id: Mapped[int] = mapped_column(Id, primary_key=True)
    # The webhook-id header: the same on every attempt, the receiver's idempotency key.
    event_id: Mapped[str] = mapped_column(String(40), unique=True)
    type: Mapped[str] = mapped_column(String(40))
    complaint_id: Mapped[int | None] = mapped_column(
        ForeignKey("complaint.id", ondelete="SET NULL")
    )
    legal: Mapped[bool] = mapped_column(Boolean, default=False)
    body: Mapped[str] = mapped_column(EncryptedText())
    created_at: Mapped[datetime] = mapped_column(default=utcnow)

    deliveries: Mapped[list[WebhookDelivery]] = relationship(
        back_populates="event", cascade="all, delete-orphan", passive_deletes=True
    )


class WebhookDelivery(Base):
    """One event to one endpoint: pending until a 2xx answer, dead after the retry schedule."""

    __tablename__ = "webhook_delivery"
    __table_args__ = (
        UniqueConstraint("event_id", "endpoint_id", name="uq_webhook_delivery"),
        # Only what is still to send: the claim walks this in order and stops after a batch,
        # however many delivered rows the table holds.
        Index(
            "ix_webhook_delivery_due",
            "next_attempt_at",
            postgresql_where=text("status = 'pending'"),
            sqlite_where=text("status = 'pending'"),
        ),
        Index("ix_webhook_delivery_endpoint", "endpoint_id", "status"),
    )

    id: Mapped[int] = mapped_column(Id, primary_key=True)
    event_id: Mapped[int] = mapped_column(ForeignKey("webhook_event.id", ondelete="CASCADE"))
    endpoint_id: Mapped[int] = mapped_column(ForeignKey("webhook_endpoint.id", ondelete="CASCADE"))
    status: Mapped[str] = mapped_column(String(16), default="pending")  # delivered, dead
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[datetime] = mapped_column(default=utcnow)
    locked_until: Mapped[datetime | None]
    locked_by: Mapped[str | None] = mapped_column(String(64))
    last_status: Mapped[int | None] = mapped_column(SmallInteger)
    # What went wrong, never the payload: "HTTP 500", "timeout", "refused: private address".
    last_error: Mapped[str | None] = mapped_column(Text)
    last_attempt_at: Mapped[datetime | None]
    delivered_at: Mapped[datetime | None]
    created_at: Mapped[datetime] = mapped_column(default=utcnow)

    event: Mapped[WebhookEvent] = relationship(back_populates="deliveries")
    endpoint: Mapped[WebhookEndpoint] = relationship()


# Key rotation and the raw-bytes test walk this table of personal-data columns.
ENCRYPTED_COLUMNS.update({WebhookEndpoint: ("secrets",), WebhookEvent: ("body",)})
