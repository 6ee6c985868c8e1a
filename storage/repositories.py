"""Repositories: the queries the service needs, each taking a session it does not own."""

from __future__ import annotations

from datetime import datetime
from typing import Any, cast

from sqlalchemy import Table, insert, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from storage.crypto import keyring
from storage.models import Attachment, Campaign, Complaint, Contact, Message, utcnow

_COMPLAINT = cast(Table, Complaint.__table__)
_ATTACHMENT = cast(Table, Attachment.__table__)
_INSERT_COMPLAINT = insert(_COMPLAINT).returning(_COMPLAINT.c.id)


class ContactRepository:
    """Contacts, found by the keyed hash of their channel address."""

    def __init__(self, session: Session) -> None:
        self.session = session

    def find(self, channel: str, address: str) -> Contact | None:
        """The contact with this address on this channel, if any."""
        digest = keyring().lookup_hash(channel, address)
        return self.session.scalars(
            select(Contact).where(Contact.channel == channel, Contact.address_hash == digest)
        ).one_or_none()

    def get_or_create(
        self, channel: str, address: str, *, is_test: bool = False
    ) -> tuple[Contact, bool]:
        """The contact for this address, created when new; a concurrent creation wins cleanly."""
        found = self.find(channel, address)
        if found is not None:
            return found, False
        contact = Contact(
            channel=channel,
            address=address,
            address_hash=keyring().lookup_hash(channel, address),
            is_test=is_test,
        )
        try:
            with self.session.begin_nested():
                self.session.add(contact)
        except IntegrityError:
            # Another worker created it between our look-up and insert: use theirs.
            found = self.find(channel, address)
            if found is None:
                raise
            return found, False
        return contact, True


class MessageRepository:
    """The outbox and the erasure of a contact's messages (the intake logs through IntakeStore)."""

    def __init__(self, session: Session) -> None:
        self.session = session

    def queue_outbound(
        self,
        contact: Contact | None,
        channel: str,
        to_address: str,
        body: str,
        reply_markup: dict[str, Any] | None,
        *,
        now: datetime,
        ephemeral: bool = False,
        status: str = "queued",
        complaint_id: int | None = None,
        kind: str = "text",
        coalesce_key: str | None = None,
        not_before: datetime | None = None,
    ) -> Message:
        """Put a reply (or a callback answer, or a deletion) in the outbox, in this transaction."""
        message = Message(
            channel=channel,
            direction="out",
            kind=kind,
            contact_id=contact.id if contact else None,
            complaint_id=complaint_id,
            body=body,
            to_address=to_address,
            recipient_key=keyring().lookup_hash(channel, to_address),
            reply_markup=reply_markup,
            status=status,
            next_attempt_at=not_before or now,
            ephemeral=ephemeral,
            coalesce_key=coalesce_key,
            created_at=now,
        )
        self.session.add(message)
        return message

    def forget_contact(self, contact_id: int) -> None:
        """Erase the bodies of a contact's messages and cut them loose from the contact."""
        self.session.execute(
            update(Message)
            .where(Message.contact_id == contact_id, Message.direction == "in")
            .values(body=None, contact_id=None)
        )
        # Outbound rows still waiting keep their own address until sent, then erase it.
        self.session.execute(
            update(Message)
            .where(Message.contact_id == contact_id, Message.direction == "out")
            .values(contact_id=None, ephemeral=True)
        )
        self.session.execute(
            update(Message)
            .where(
                Message.contact_id.is_(None),
                Message.direction == "out",
                Message.ephemeral.is_(True),
                Message.status.in_(("sent", "delivered", "failed", "local")),
            )
            .values(body=None, to_address=None)
        )


class ComplaintRepository:
    """Complaints by reference, and what a contact has submitted."""

    def __init__(self, session: Session) -> None:
        self.session = session

    def by_reference(self, reference: str) -> Complaint | None:
        """The complaint with this reference code."""
        return self.session.scalars(
            select(Complaint).where(Complaint.reference == reference.upper())
        ).one_or_none()

    def reference_taken(self, reference: str) -> bool:
        """Whether a reference code is already in use."""
        return (
            self.session.scalar(select(Complaint.id).where(Complaint.reference == reference))
            is not None
        )

    def of_contact(self, contact_id: int) -> list[Complaint]:
        """Every complaint this contact submitted."""
        return list(
            self.session.scalars(select(Complaint).where(Complaint.contact_id == contact_id))
        )

    def insert(self, complaint: Complaint, attachments: list[Attachment]) -> int:
        """Store a new complaint and its evidence at once, with Core INSERTs; the new id.

        For the intake, where the ORM's unit of work cost more than the statements (0.5 ms a
        report). ``complaint`` stays out of the session: it is given its id and timestamps
        and may be read, but is not to be added to a session afterwards.
        """
        connection = self.session.connection()
        now = utcnow()
        complaint.created_at = complaint.created_at or now
        complaint.updated_at = complaint.updated_at or now
        # Columns left out (None) take their defaults, as with the ORM.
        values = {
            column.key: value
            for column in _COMPLAINT.columns
            if column.key != "id" and (value := getattr(complaint, column.key)) is not None
        }
        complaint.id = int(connection.execute(_INSERT_COMPLAINT, values).scalar_one())
        if attachments:
            connection.execute(
                insert(_ATTACHMENT),
                [
                    {
                        "complaint_id": complaint.id,
                        "channel": a.channel,
                        "kind": a.kind,
                        "source_ref": a.source_ref,
                        "content_type": a.content_type,
                        "size": a.size,
                        "created_at": now,
                    }
                    for a in attachments
                ],
            )
        return complaint.id


class CampaignRepository:
    """Awareness campaigns and their SMS keywords."""

    def __init__(self, session: Session) -> None:
        self.session = session

    def keywords(self) -> dict[str, str]:
        """SMS keyword (case-folded) → campaign code."""
        rows = self.session.execute(
            select(Campaign.sms_keyword, Campaign.code).where(Campaign.sms_keyword.is_not(None))
        )
        return {str(k).casefold(): code for k, code in rows}

    def by_code(self, code: str) -> Campaign | None:
        """The campaign with this code."""
        return self.session.scalars(select(Campaign).where(Campaign.code == code)).one_or_none()
