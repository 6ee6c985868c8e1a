"""Retention: erase the personal parts of cases closed longer than the retention period.

A case is due when its status is "closed" or "withdrawn" and it has not changed
(``Complaint.updated_at``) for the period. "resolved" is not final (staff still close it, or
reopen it), so it is kept. The description, the "other" reason, the other phone number, the
bodies of its messages and its evidence files go; the structured answers (area, reason, who,
municipality, dates, status, priority) stay for anonymous statistics. Running it again erases
nothing more.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

from sqlalchemy import or_, select, update
from sqlalchemy.orm import Session

from storage.models import Attachment, Complaint, Message, utcnow

log = logging.getLogger(__name__)

PURGED_STATUSES = ("closed", "withdrawn")
"""Statuses after which nothing more happens to a case."""
FINAL_OUTBOX = ("sent", "delivered", "failed", "local")
"""Outbound rows no longer waiting to be sent (their address may go)."""


@dataclass
class PurgeCounts:
    """What one purge erased."""

    complaints: int = 0
    messages: int = 0
    attachments: int = 0
    files: int = 0

    def as_dict(self) -> dict[str, int]:
        """The counts, for the audit log."""
        return {
            "complaints": self.complaints,
            "messages": self.messages,
            "attachments": self.attachments,
            "files": self.files,
        }


def purge(
    session: Session,
    *,
    older_than_days: int,
    storage_dir: Path | None,
    now: datetime | None = None,
) -> PurgeCounts:
    """Erase the personal parts of due cases in the caller's transaction; the counts."""
    if older_than_days < 0:
        raise ValueError("older_than_days must not be negative")
    cutoff = (now or utcnow()) - timedelta(days=older_than_days)
    counts = PurgeCounts()
    due = list(
        session.scalars(
            select(Complaint).where(
                Complaint.status.in_(PURGED_STATUSES), Complaint.updated_at < cutoff
            )
        )
    )
    if not due:
        return counts
    due_ids = {c.id for c in due}
    for complaint in due:
        if any(
            v is not None
            for v in (complaint.description, complaint.ground_other, complaint.contact_phone)
        ):
            complaint.description = None
            complaint.ground_other = None
            complaint.contact_phone = None
            counts.complaints += 1
    # A contact's own messages go only when every case of theirs is due, so an open case
    # keeps its conversation; messages tied to a due case go in any event.
    contact_ids = {c.contact_id for c in due if c.contact_id is not None}
    blocked = set(
        session.scalars(
            select(Complaint.contact_id).where(
                Complaint.contact_id.in_(contact_ids), Complaint.id.not_in(due_ids)
            )
        )
    )
    contacts = contact_ids - blocked
    tied = Message.complaint_id.in_(due_ids)
    own = Message.contact_id.in_(contacts) & (Message.created_at < cutoff)
    erasable = or_(tied, own) & or_(Message.status.is_(None), Message.status.in_(FINAL_OUTBOX))
    has_data = or_(Message.body.is_not(None), Message.to_address.is_not(None))
    result = session.execute(
        update(Message).where(erasable, has_data).values(body=None, to_address=None)
    )
    counts.messages = int(getattr(result, "rowcount", 0) or 0)
    attachments = list(
        session.scalars(select(Attachment).where(Attachment.complaint_id.in_(due_ids)))
    )
    root = storage_dir.resolve() if storage_dir is not None else None
    for attachment in attachments:
        if attachment.path is None and not attachment.source_ref:
            continue  # purged before
        if root is not None and attachment.path:
            target = (root / attachment.path).resolve()
            if target.is_relative_to(root) and target.is_file():
                target.unlink()
                counts.files += 1
        attachment.path = None
        attachment.source_ref = ""
        counts.attachments += 1
    session.flush()
    log.info("purge: %s", counts.as_dict())
    return counts
