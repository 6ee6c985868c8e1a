"""The audit log: who viewed or changed what, and when. Rows are only ever added.

There is no function here (or anywhere on the desk) that changes or deletes a row, and the
model refuses updates and deletes through the ORM.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from flask import has_request_context, request
from sqlalchemy.orm import Session

from staff.roles import DeskUser
from storage.models import Complaint, utcnow
from storage.staff_models import AuditEvent

ACTIONS: tuple[str, ...] = (
    "login.success",
    "login.failure",
    "logout",
    "case.view",
    "attachment.view",
    "case.status",
    "case.priority",
    "case.assign",
    "case.referral",
    "case.note",
    "case.checkin",
    "message.sent",
    "export",
    "user.create",
    "user.password_reset",
    "user.deactivate",
    "user.activate",
    "account.password",
    "campaign.create",
    "campaign.update",
    "retention.purge",
)
"""Every action the desk records."""


def client_ip() -> str | None:
    """The address of the request (the proxy's view of it when behind ProxyFix)."""
    if not has_request_context():
        return None
    return (request.remote_addr or "")[:45] or None


def record(
    session: Session,
    action: str,
    *,
    user: DeskUser | None = None,
    email: str | None = None,
    actor_id: int | None = None,
    complaint: Complaint | None = None,
    detail: dict[str, Any] | None = None,
    at: datetime | None = None,
) -> AuditEvent:
    """Append one event to the audit log, in the caller's transaction."""
    if action not in ACTIONS:
        raise ValueError(f"unknown audit action {action!r}")
    event = AuditEvent(
        at=at or utcnow(),
        actor_id=user.id if user else actor_id,
        actor_email=user.email if user else email,
        action=action,
        complaint_id=complaint.id if complaint else None,
        reference=complaint.reference if complaint else None,
        ip=client_ip(),
        detail=detail or {},
    )
    session.add(event)
    return event
