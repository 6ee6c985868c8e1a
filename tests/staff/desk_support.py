"""Helpers for the desk tests: staff accounts, complaints, signing in, CSRF tokens."""

from __future__ import annotations

import itertools
import re
from datetime import datetime
from typing import Any

from flask.testing import FlaskClient
from sqlalchemy import select
from werkzeug.test import TestResponse

from bot.app import Services
from bot.intake import new_reference
from staff import accounts
from storage.models import Complaint, Contact, utcnow
from storage.repositories import ContactRepository
from storage.staff_models import AuditEvent

PASSWORD = "correct horse battery staple"
_numbers = itertools.count(1)
_CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')


def email_of(role: str) -> str:
    """The e-mail address of the test account of a role."""
    return f"{role}@desk.test"


def make_staff(services: Services, role: str, *, email: str | None = None) -> int:
    """Create an account; its id."""
    with services.uow() as db:
        user = accounts.create_user(
            db,
            email=email or email_of(role),
            name=f"{role.title()} Person",
            role=role,
            password=PASSWORD,
            language="en",
        )
        db.flush()
        return user.id


def make_complaint(services: Services, **fields: Any) -> str:
    """Store a complaint (and its SMS contact) directly; its reference."""
    phone = fields.pop("phone", f"+3834400{next(_numbers):04d}")
    channel = fields.get("channel", "sms")
    values: dict[str, Any] = {
        "reference": new_reference(),
        "pin_hash": "x" * 64,
        "channel": channel,
        "language": "en",
        "status": "new",
        "urgent": False,
        "area": "education",
        "ground": "ethnicity",
        "perpetrator": "school",
        "municipality": "gjakove",
        "occurred": "this_month",
        "description": "The teacher sent my son out of the class.",
        "stakes": ["child"],
        "contact_preference": "this",
        "legal_support": False,
        "sharing": "yes",
        "is_test": False,
        "priority": "P3",
    }
    values.update(fields)
    with services.uow() as db:
        contact, _ = ContactRepository(db).get_or_create(channel, phone)
        complaint = Complaint(contact_id=contact.id, **values)
        db.add(complaint)
        db.flush()
        return complaint.reference


def contact_of(services: Services, reference: str) -> Contact:
    """The contact who made a complaint."""
    with services.uow() as db:
        complaint = db.scalars(select(Complaint).where(Complaint.reference == reference)).one()
        contact = db.get(Contact, complaint.contact_id)
        assert contact is not None
        return contact


def csrf_token(client: FlaskClient, path: str = "/desk/login?lang=en") -> str:
    """A CSRF token of the client's session, from a page's form (the sign-in page in English)."""
    response = client.get(path)
    found = _CSRF.search(response.get_data(as_text=True))
    assert found is not None, f"no CSRF token on {path} ({response.status_code})"
    return found.group(1)


def login(client: FlaskClient, role: str = "triage", password: str = PASSWORD) -> TestResponse:
    """Sign in as the test account of a role."""
    return client.post(
        "/desk/login",
        data={"email": email_of(role), "password": password, "csrf_token": csrf_token(client)},
    )


def post(client: FlaskClient, path: str, data: dict[str, str] | None = None) -> TestResponse:
    """A form POST with the session's CSRF token, from a signed-in client."""
    token = csrf_token(client, "/desk/account")
    return client.post(path, data={**(data or {}), "csrf_token": token})


def audit_events(services: Services, action: str | None = None) -> list[AuditEvent]:
    """The audit log, oldest first (of one action)."""
    with services.uow() as db:
        query = select(AuditEvent).order_by(AuditEvent.id)
        if action:
            query = query.where(AuditEvent.action == action)
        return list(db.scalars(query))


def at(text: str) -> datetime:
    """A UTC time from ISO text."""
    return datetime.fromisoformat(text)


__all__ = ["utcnow"]
