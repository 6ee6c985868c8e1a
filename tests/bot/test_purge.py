"""``raporto purge``: personal parts of long-closed cases go, the structured answers stay."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest
from flask import Flask
from sqlalchemy import select

from bot.app import Services
from bot.cli import purge as purge_command
from bot.purge import purge
from bot.settings import SettingsError, load_settings
from storage.models import Attachment, Complaint, Message, utcnow
from storage.staff_models import AuditEvent
from tests.conftest import TEST_FERNET_KEYS
from tests.helpers import FULL_REPORT, conversation

DESCRIPTION = FULL_REPORT[10]


def _report(services: Services, sender: str) -> str:
    results = conversation(services, [*FULL_REPORT, "1"], sender=sender)
    reference = results[-1].complaint_reference
    assert reference is not None
    return reference


def _age(services: Services, reference: str, status: str, days: int) -> None:
    """Set a case's status and make it (and its messages) ``days`` old."""
    with services.uow() as db:
        complaint = db.scalars(select(Complaint).where(Complaint.reference == reference)).one()
        complaint.status = status
        complaint.updated_at = utcnow() - timedelta(days=days)
        complaint.contact_phone = "+38349000111"
        db.query(Message).filter(Message.contact_id == complaint.contact_id).update(
            {Message.created_at: utcnow() - timedelta(days=days + 1)}
        )
        db.query(Message).filter(
            Message.contact_id == complaint.contact_id, Message.direction == "out"
        ).update({Message.status: "sent"})


def _complaint(services: Services, reference: str) -> Complaint:
    with services.uow() as db:
        return db.scalars(select(Complaint).where(Complaint.reference == reference)).one()


def _bodies(services: Services, reference: str) -> list[str | None]:
    with services.uow() as db:
        complaint = db.scalars(select(Complaint).where(Complaint.reference == reference)).one()
        return list(
            db.scalars(select(Message.body).where(Message.contact_id == complaint.contact_id))
        )


def test_purge_erases_only_long_closed_cases_and_is_idempotent(
    services: Services, tmp_path: Path
) -> None:
    old_closed = _report(services, "+38344000001")
    old_withdrawn = _report(services, "+38344000002")
    old_open = _report(services, "+38344000003")
    recent_closed = _report(services, "+38344000004")
    old_resolved = _report(services, "+38344000005")
    _age(services, old_closed, "closed", 400)
    _age(services, old_withdrawn, "withdrawn", 400)
    _age(services, old_open, "in_review", 400)
    _age(services, recent_closed, "closed", 10)
    _age(services, old_resolved, "resolved", 400)
    storage = tmp_path / "files"
    evidence = storage / "1" / "photo.jpg"
    evidence.parent.mkdir(parents=True)
    evidence.write_bytes(b"jpeg")
    with services.uow() as db:
        complaint = db.scalars(select(Complaint).where(Complaint.reference == old_closed)).one()
        db.add(
            Attachment(
                complaint_id=complaint.id,
                channel="sms",
                kind="photo",
                source_ref="https://example.org/media/1",
                path="1/photo.jpg",
                size=4,
            )
        )

    with services.uow() as db:
        counts = purge(db, older_than_days=365, storage_dir=storage)
    assert counts.complaints == 2
    assert counts.attachments == 1 and counts.files == 1
    assert counts.messages > 0
    assert not evidence.exists()

    for reference in (old_closed, old_withdrawn):
        purged = _complaint(services, reference)
        assert (purged.description, purged.ground_other, purged.contact_phone) == (None,) * 3
        assert (purged.area, purged.ground, purged.municipality) == (
            "education", "ethnicity", "gjakove",
        )  # fmt: skip
        assert set(_bodies(services, reference)) == {None}
    for reference in (old_open, recent_closed, old_resolved):
        kept = _complaint(services, reference)
        assert kept.description is not None and DESCRIPTION in kept.description
        assert kept.contact_phone == "+38349000111"
        assert any(body and DESCRIPTION in body for body in _bodies(services, reference))
    with services.uow() as db:
        attachment = db.scalars(select(Attachment)).one()
        assert attachment.path is None and attachment.source_ref == ""

    with services.uow() as db:
        again = purge(db, older_than_days=365, storage_dir=storage)
    assert again.as_dict() == {"complaints": 0, "messages": 0, "attachments": 0, "files": 0}


def test_purge_command_prints_counts_and_audits(app: Flask) -> None:
    services: Services = app.extensions["raporto"]
    reference = _report(services, "+38344000009")
    _age(services, reference, "closed", 40)
    runner = app.test_cli_runner()
    kept = runner.invoke(purge_command, [])  # default 365 days: too young
    assert kept.exit_code == 0, kept.output
    assert "0 complaints" in kept.output
    done = runner.invoke(purge_command, ["--older-than-days", "30"])
    assert done.exit_code == 0, done.output
    assert "1 complaints" in done.output
    assert _complaint(services, reference).description is None
    with services.uow() as db:
        events = list(db.scalars(select(AuditEvent).where(AuditEvent.action == "retention.purge")))
    assert [e.detail["complaints"] for e in events] == [0, 1]
    assert events[-1].detail["older_than_days"] == 30


def test_retention_days_setting(tmp_path: Path) -> None:
    base = {
        "SECRET_KEY": "k",
        "RAPORTO_HASH_KEY": "h",
        "RAPORTO_ENCRYPTION_KEYS": ",".join(TEST_FERNET_KEYS),
        "RAPORTO_INSTANCE_DIR": str(tmp_path),
    }
    assert load_settings(base).retention_days == 365
    assert load_settings({**base, "RAPORTO_RETENTION_DAYS": "30"}).retention_days == 30
    with pytest.raises(SettingsError):
        load_settings({**base, "RAPORTO_RETENTION_DAYS": "a year"})
