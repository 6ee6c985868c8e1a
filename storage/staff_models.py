"""The staff desk's tables: accounts, sessions, the audit log and the work done on a case."""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    Boolean,
    Date,
    ForeignKey,
    Index,
    Integer,
    String,
    event,
)
from sqlalchemy.orm import Mapped, mapped_column

from storage.crypto import EncryptedText
from storage.models import ENCRYPTED_COLUMNS, Base, Complaint, Id, utcnow


class StaffUser(Base):
    """A person who works on the desk; the password is kept as an argon2id hash."""

    __tablename__ = "staff_user"

    id: Mapped[int] = mapped_column(Id, primary_key=True)
    email: Mapped[str] = mapped_column(String(254), unique=True)  # stored lower-case
    name: Mapped[str] = mapped_column(String(200))
    role: Mapped[str] = mapped_column(String(16))  # admin, triage, legal, viewer
    password_hash: Mapped[str] = mapped_column(String(255))
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    language: Mapped[str] = mapped_column(String(8), default="sq")
    failed_logins: Mapped[int] = mapped_column(Integer, default=0)
    locked_until: Mapped[datetime | None]
    last_login_at: Mapped[datetime | None]
    password_changed_at: Mapped[datetime] = mapped_column(default=utcnow)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class StaffSession(Base):
    """A signed-in browser: a new random token per login, kept only as its hash.

    The session cookie carries the token; logging out, a password reset or deactivating the
    account revokes the row, so a copied cookie stops working at once.
    """

    __tablename__ = "staff_session"
    __table_args__ = (Index("ix_staff_session_user", "user_id"),)

    id: Mapped[int] = mapped_column(Id, primary_key=True)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("staff_user.id", ondelete="CASCADE"))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    last_seen_at: Mapped[datetime] = mapped_column(default=utcnow)
    expires_at: Mapped[datetime]
    revoked_at: Mapped[datetime | None]


class LoginThrottle(Base):
    """Failed sign-ins from one address (keyed hash) in the current window."""

    __tablename__ = "login_throttle"

    key: Mapped[str] = mapped_column(String(64), primary_key=True)
    failures: Mapped[int] = mapped_column(Integer, default=0)
    window_start: Mapped[datetime] = mapped_column(default=utcnow)


class AuditEvent(Base):
    """One line of the audit log: who did what to which case, and when. Never changed."""

    __tablename__ = "audit_event"
    __table_args__ = (
        Index("ix_audit_event_complaint", "complaint_id", "id"),
        Index("ix_audit_event_action", "action", "id"),
    )

    id: Mapped[int] = mapped_column(Id, primary_key=True)
    at: Mapped[datetime] = mapped_column(default=utcnow)
    actor_id: Mapped[int | None] = mapped_column(ForeignKey("staff_user.id", ondelete="SET NULL"))
    # A copy of the actor's e-mail, so the log reads the same if the account is renamed.
    actor_email: Mapped[str | None] = mapped_column(String(254))
    action: Mapped[str] = mapped_column(String(32))
    complaint_id: Mapped[int | None] = mapped_column(
        ForeignKey("complaint.id", ondelete="SET NULL")
    )
    reference: Mapped[str | None] = mapped_column(String(16))
    ip: Mapped[str | None] = mapped_column(String(45))
    detail: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)


@event.listens_for(AuditEvent, "before_update")
def _audit_is_append_only(*_args: Any) -> None:
    raise RuntimeError("the audit log is append-only")


@event.listens_for(AuditEvent, "before_delete")
def _audit_is_never_deleted(*_args: Any) -> None:
    raise RuntimeError("the audit log is append-only")


class CaseAssignment(Base):
    """Who on the desk is working on a complaint."""

    __tablename__ = "case_assignment"
    __table_args__ = (Index("ix_case_assignment_user", "staff_user_id"),)

    complaint_id: Mapped[int] = mapped_column(
        ForeignKey("complaint.id", ondelete="CASCADE"), primary_key=True
    )
    staff_user_id: Mapped[int] = mapped_column(ForeignKey("staff_user.id", ondelete="CASCADE"))
    assigned_by: Mapped[int | None] = mapped_column(
        ForeignKey("staff_user.id", ondelete="SET NULL")
    )
    assigned_at: Mapped[datetime] = mapped_column(default=utcnow)


class CaseNote(Base):
    """An internal note on a case; never shown to the complainant."""

    __tablename__ = "case_note"
    __table_args__ = (Index("ix_case_note_complaint", "complaint_id", "id"),)

    id: Mapped[int] = mapped_column(Id, primary_key=True)
    complaint_id: Mapped[int] = mapped_column(ForeignKey("complaint.id", ondelete="CASCADE"))
    author_id: Mapped[int | None] = mapped_column(ForeignKey("staff_user.id", ondelete="SET NULL"))
    body: Mapped[str] = mapped_column(EncryptedText())
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class Referral(Base):
    """A case passed to a competent institution."""

    __tablename__ = "referral"
    __table_args__ = (Index("ix_referral_complaint", "complaint_id", "id"),)

    id: Mapped[int] = mapped_column(Id, primary_key=True)
    complaint_id: Mapped[int] = mapped_column(ForeignKey("complaint.id", ondelete="CASCADE"))
    institution: Mapped[str] = mapped_column(String(200))
    referred_on: Mapped[date] = mapped_column(Date)
    note: Mapped[str | None] = mapped_column(EncryptedText())
    author_id: Mapped[int | None] = mapped_column(ForeignKey("staff_user.id", ondelete="SET NULL"))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class CheckIn(Base):
    """A question sent to the complainant when due ("Has the situation been resolved?").

    status: scheduled → sent → answered, or cancelled (no way to reach the person) or expired
    (no answer in time). ``contact_id`` is the contact the question went to, whose next "1",
    "2" or "3" is taken as the answer.
    """

    __tablename__ = "check_in"
    __table_args__ = (
        Index("ix_check_in_due", "status", "due_at"),
        Index("ix_check_in_contact", "contact_id", "status"),
        Index("ix_check_in_complaint", "complaint_id", "id"),
    )

    id: Mapped[int] = mapped_column(Id, primary_key=True)
    complaint_id: Mapped[int] = mapped_column(ForeignKey("complaint.id", ondelete="CASCADE"))
    contact_id: Mapped[int | None] = mapped_column(ForeignKey("contact.id", ondelete="SET NULL"))
    status: Mapped[str] = mapped_column(String(16), default="scheduled")
    due_at: Mapped[datetime]
    sent_at: Mapped[datetime | None]
    message_id: Mapped[int | None] = mapped_column(ForeignKey("message.id", ondelete="SET NULL"))
    answer: Mapped[str | None] = mapped_column(String(16))  # resolved, not_resolved, talk
    answered_at: Mapped[datetime | None]
    created_by: Mapped[int | None] = mapped_column(ForeignKey("staff_user.id", ondelete="SET NULL"))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


# The inbox sorts by priority ("P1" first), then oldest first, then id. These indexes serve that
# order with and without the most common filters, so a page is one index range scan.
Index(
    "ix_complaint_inbox",
    Complaint.is_test,
    Complaint.priority,
    Complaint.created_at,
    Complaint.id,
)
Index(
    "ix_complaint_inbox_status",
    Complaint.status,
    Complaint.is_test,
    Complaint.priority,
    Complaint.created_at,
    Complaint.id,
)
Index(
    "ix_complaint_inbox_legal",
    Complaint.legal_support,
    Complaint.is_test,
    Complaint.priority,
    Complaint.created_at,
    Complaint.id,
)

# Key rotation and the raw-bytes test walk this table of personal-data columns.
ENCRYPTED_COLUMNS.update({CaseNote: ("body",), Referral: ("note",)})
