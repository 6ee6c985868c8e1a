"""Reaching a complainant after the report: on which channel, at which address, and whether."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy.orm import Session

from bot.sms_encoding import fold_to_gsm7
from storage.models import Complaint, Contact, Message
from storage.repositories import ContactRepository, MessageRepository

NO_CONTACT = "no_contact"
"""The person asked not to be contacted, or deleted their data."""
OPTED_OUT = "opted_out"
"""The person (or their carrier) stopped messages from us."""
SMS_OFF = "sms_off"
"""The person gave a phone number, but SMS is not set up."""


@dataclass(frozen=True)
class Route:
    """Where a message to the complainant goes: channel, address and the contact row."""

    channel: str
    address: str
    contact: Contact
    language: str


def route_to_complainant(
    session: Session, complaint: Complaint, *, sms_enabled: bool
) -> Route | str:
    """The route to the person who made a complaint, or why there is none (a reason code).

    ``contact_preference`` "this" answers on the channel of the report; "other" by SMS to the
    number they gave (the contact for that number is created, so its replies and opt-out are
    found like any other's).
    """
    preference = complaint.contact_preference
    contact: Contact | None
    if preference == "other":
        phone = complaint.contact_phone
        if not phone:
            return NO_CONTACT
        if not sms_enabled:
            return SMS_OFF
        contact, _ = ContactRepository(session).get_or_create(
            "sms", phone, is_test=complaint.is_test
        )
    elif preference == "this" and complaint.contact_id is not None:
        contact = session.get(Contact, complaint.contact_id)
    else:
        return NO_CONTACT
    if contact is None:
        return NO_CONTACT
    if contact.opted_out_at is not None:
        return OPTED_OUT
    return Route(contact.channel, contact.address, contact, complaint.language)


def why_unreachable(session: Session, complaint: Complaint, *, sms_enabled: bool) -> str | None:
    """Why no message can reach the complainant now (a reason code), or None; changes nothing."""
    preference = complaint.contact_preference
    contact: Contact | None
    if preference == "other":
        if not complaint.contact_phone:
            return NO_CONTACT
        if not sms_enabled:
            return SMS_OFF
        contact = ContactRepository(session).find("sms", complaint.contact_phone)
        if contact is None:
            return None  # created on the first message
    elif preference == "this" and complaint.contact_id is not None:
        contact = session.get(Contact, complaint.contact_id)
    else:
        return NO_CONTACT
    if contact is None:
        return NO_CONTACT
    return OPTED_OUT if contact.opted_out_at is not None else None


def queue_to_complainant(
    session: Session,
    complaint: Complaint,
    route: Route,
    text: str,
    *,
    now: datetime,
    reply_markup: dict[str, Any] | None = None,
) -> Message:
    """Put a message to the complainant in the outbox, linked to the complaint.

    Test complaints (terminal chat, simulator) are recorded as "local" and never sent.
    """
    if route.channel == "sms" and route.contact.plain_letters:
        text = fold_to_gsm7(text)
    message = MessageRepository(session).queue_outbound(
        route.contact,
        route.channel,
        route.address,
        text,
        reply_markup,
        now=now,
        status="local" if complaint.is_test else "queued",
        complaint_id=complaint.id,
    )
    session.flush()
    return message
