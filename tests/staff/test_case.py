"""The case page and the work on a case: answers, conversation, evidence, actions."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest
from flask import Flask
from sqlalchemy import select

from bot.app import Services, create_app
from bot.settings import Settings
from staff.followups import TEMPLATES
from storage.models import Attachment, Complaint, Message, utcnow
from storage.repositories import MessageRepository
from storage.staff_models import CaseAssignment, CaseNote, CheckIn, Referral, StaffUser
from tests.helpers import FULL_REPORT, conversation, say
from tests.staff.desk_support import (
    audit_events,
    contact_of,
    login,
    make_complaint,
    post,
)


def _complaint(services: Services, reference: str) -> Complaint:
    with services.uow() as db:
        return db.scalars(select(Complaint).where(Complaint.reference == reference)).one()


def _outbound(services: Services, reference: str) -> list[Message]:
    complaint = _complaint(services, reference)
    with services.uow() as db:
        return list(
            db.scalars(
                select(Message)
                .where(Message.complaint_id == complaint.id, Message.direction == "out")
                .order_by(Message.id)
            )
        )


def test_case_page_shows_every_answer_with_labels(app: Flask, desk: Services) -> None:
    conversation(desk, FULL_REPORT)
    reference = say(desk, "1").complaint_reference
    assert reference is not None
    client = app.test_client()
    login(client, "triage")
    page = client.get(f"/desk/case/{reference}").get_data(as_text=True)
    for text in (
        "School or education",
        "Ethnicity or community",
        "School",
        "Gjakovë",
        "This month",
        "A child is affected",
        "May lose job soon",
        "Yes, on this number",
        "Only after talking to me",
        "back of the class",
    ):
        assert text in page, text
    assert "Reply after the report" not in page
    [view] = audit_events(desk, "case.view")
    assert view.reference == reference
    assert view.actor_email == "triage@desk.test"


def test_unknown_reference_is_404(app: Flask, desk: Services) -> None:
    client = app.test_client()
    login(client, "admin")
    assert client.get("/desk/case/RAE-AAAAAA").status_code == 404
    assert client.get("/desk/case/not-a-code").status_code == 404
    assert not audit_events(desk, "case.view")


def test_description_is_escaped(app: Flask, desk: Services) -> None:
    reference = make_complaint(
        desk,
        description='<script>alert("x")</script><img src=x onerror=alert(1)>',
        ground_other="<b>bold</b>",
        ground="other",
    )
    client = app.test_client()
    login(client, "triage")
    page = client.get(f"/desk/case/{reference}").get_data(as_text=True)
    assert "<script>alert" not in page
    assert "&lt;script&gt;alert(&#34;x&#34;)&lt;/script&gt;" in page
    assert "<img src=x" not in page
    assert "<b>bold</b>" not in page


def test_conversation_shows_both_directions_and_delivery(app: Flask, desk: Services) -> None:
    conversation(desk, FULL_REPORT)
    reference = say(desk, "1").complaint_reference
    assert reference is not None
    say(desk, "Thank you, when will you call?")  # after the report
    client = app.test_client()
    login(client, "triage")
    page = client.get(f"/desk/case/{reference}").get_data(as_text=True)
    log = page[page.index('id="conversation-heading"') :]
    assert log.index("May we record your report?") < log.index("back of the class")
    assert "From the person" in page and "From Raporto" in page
    assert "Waiting to be sent" in page
    assert "Reply after the report" in page
    assert "when will you call?" in page


@pytest.mark.parametrize("language", ["sq", "sr_Cyrl", "tr"])
def test_follow_up_is_queued_in_the_persons_language(
    app: Flask, desk: Services, language: str
) -> None:
    reference = make_complaint(desk, language=language)
    client = app.test_client()
    login(client, "triage")
    response = post(client, f"/desk/case/{reference}/message", {"template": "received"})
    assert response.status_code == 302
    [message] = _outbound(desk, reference)
    expected = desk.catalogs.gettext(language, TEMPLATES["received"]) % {
        "reference": reference,
        "phone": "",
    }
    assert message.body == expected
    assert message.body != TEMPLATES["received"] % {"reference": reference}  # translated
    assert reference in message.body
    assert message.status == "queued"
    assert message.channel == "sms"
    assert message.to_address == contact_of(desk, reference).address
    [sent] = audit_events(desk, "message.sent")
    assert sent.detail["message_id"] == message.id


def test_follow_up_free_text_and_call_back(app: Flask, desk: Services) -> None:
    reference = make_complaint(desk)
    client = app.test_client()
    login(client, "legal")  # legal staff only on legal cases
    assert post(client, f"/desk/case/{reference}/message", {"template": "free"}).status_code == 404
    client = app.test_client()
    login(client, "triage")
    post(client, f"/desk/case/{reference}/message", {"template": "call_back"})
    assert _outbound(desk, reference) == []  # no phone given
    post(client, f"/desk/case/{reference}/message", {"template": "call_back", "phone": "038 123"})
    post(client, f"/desk/case/{reference}/message", {"template": "free", "text": "Hello there"})
    bodies = [m.body or "" for m in _outbound(desk, reference)]
    assert "038 123" in bodies[0]
    assert bodies[1] == "Hello there"


def test_no_follow_up_when_the_person_said_no_or_opted_out(app: Flask, desk: Services) -> None:
    anonymous = make_complaint(desk, contact_preference="none")
    stopped = make_complaint(desk)
    with desk.uow() as db:
        contact = contact_of(desk, stopped)
        db.merge(contact).opted_out_at = utcnow()
    client = app.test_client()
    login(client, "triage")
    for reference, why in (
        (anonymous, "did not want to be contacted"),
        (stopped, "stopped messages from us"),
    ):
        page = client.get(f"/desk/case/{reference}").get_data(as_text=True)
        assert why in page
        post(client, f"/desk/case/{reference}/message", {"template": "received"})
        assert _outbound(desk, reference) == []
        flashed = client.get(f"/desk/case/{reference}").get_data(as_text=True)
        assert why in flashed
    assert not audit_events(desk, "message.sent")


def test_telegram_report_with_another_phone_gets_sms_only_when_sms_is_on(
    settings: Settings, desk: Services, app: Flask
) -> None:
    reference = make_complaint(
        desk,
        channel="telegram",
        phone="12345",
        contact_preference="other",
        contact_phone="+38349111222",
    )
    client = app.test_client()
    login(client, "triage")
    post(client, f"/desk/case/{reference}/message", {"template": "received"})
    assert _outbound(desk, reference) == []
    sms_app = create_app(
        settings.with_overrides(
            twilio_account_sid="AC" + "0" * 32,
            twilio_auth_token="token",
            twilio_from_number="+15005550006",
        )
    )
    try:
        client = sms_app.test_client()
        login(client, "triage")
        post(client, f"/desk/case/{reference}/message", {"template": "received"})
        [message] = _outbound(desk, reference)
        assert message.channel == "sms"
        assert message.to_address == "+38349111222"
    finally:
        sms_app.extensions["raporto"].engine.dispose()


def test_test_complaints_are_answered_locally(app: Flask, desk: Services) -> None:
    reference = make_complaint(desk, is_test=True)
    client = app.test_client()
    login(client, "triage")
    post(client, f"/desk/case/{reference}/message", {"template": "received"})
    [message] = _outbound(desk, reference)
    assert message.status == "local"


def test_status_changes_emit_complaint_updated(
    app: Flask, desk: Services, events: list[dict[str, object]]
) -> None:
    reference = make_complaint(desk)
    client = app.test_client()
    login(client, "triage")
    for status in ("in_review", "referred", "legal_support", "resolved", "closed"):
        post(client, f"/desk/case/{reference}/status", {"status": status})
        assert _complaint(desk, reference).status == status
    assert [e["status"] for e in events] == [
        "in_review",
        "referred",
        "legal_support",
        "resolved",
        "closed",
    ]
    post(client, f"/desk/case/{reference}/status", {"status": "new"})  # not a step back to new
    assert _complaint(desk, reference).status == "closed"
    changes = [(e.detail["from"], e.detail["to"]) for e in audit_events(desk, "case.status")]
    assert changes[0] == ("new", "in_review")
    assert len(changes) == 5


def test_withdrawn_cases_cannot_change_status(app: Flask, desk: Services) -> None:
    reference = make_complaint(desk, status="withdrawn")
    client = app.test_client()
    login(client, "triage")
    post(client, f"/desk/case/{reference}/status", {"status": "in_review"})
    assert _complaint(desk, reference).status == "withdrawn"


def test_assign_refer_and_note(app: Flask, desk: Services, events: list[dict[str, object]]) -> None:
    reference = make_complaint(desk, legal_support=True)
    with desk.uow() as db:
        legal_id = db.scalars(select(StaffUser.id).where(StaffUser.role == "legal")).one()
        viewer_id = db.scalars(select(StaffUser.id).where(StaffUser.role == "viewer")).one()
    client = app.test_client()
    login(client, "triage")
    post(client, f"/desk/case/{reference}/assign", {"staff_user_id": str(viewer_id)})
    post(client, f"/desk/case/{reference}/assign", {"staff_user_id": str(legal_id)})
    post(
        client,
        f"/desk/case/{reference}/referral",
        {"institution": "Ombudsperson Institution", "referred_on": "2026-11-20", "note": "sent"},
    )
    post(client, f"/desk/case/{reference}/note", {"body": "Called the school. <i>x</i>"})
    complaint = _complaint(desk, reference)
    with desk.uow() as db:
        assignment = db.get(CaseAssignment, complaint.id)
        assert assignment is not None and assignment.staff_user_id == legal_id
        [referral] = db.scalars(select(Referral)).all()
        assert referral.institution == "Ombudsperson Institution"
        [note] = db.scalars(select(CaseNote)).all()
        assert note.body.startswith("Called the school")
    assert complaint.status == "referred"
    assert {"assignee": legal_id, "reference": reference} in events
    page = client.get(f"/desk/case/{reference}").get_data(as_text=True)
    assert "Ombudsperson Institution" in page
    assert "Called the school. &lt;i&gt;x&lt;/i&gt;" in page
    for action in ("case.assign", "case.referral", "case.note"):
        assert audit_events(desk, action), action
    assert len(audit_events(desk, "case.assign")) == 1  # the viewer was refused
    inbox = client.get("/desk/").get_data(as_text=True)
    assert "Legal Person" in inbox


def test_schedule_a_check_in(app: Flask, desk: Services) -> None:
    reference = make_complaint(desk)
    client = app.test_client()
    login(client, "triage")
    post(client, f"/desk/case/{reference}/check-in", {"days": "14"})
    post(client, f"/desk/case/{reference}/check-in", {"days": "999"})
    with desk.uow() as db:
        [check_in] = db.scalars(select(CheckIn)).all()
    assert check_in.status == "scheduled"
    delay = check_in.due_at - utcnow()
    assert timedelta(days=13, hours=23) < delay <= timedelta(days=14)
    assert "Scheduled" in client.get(f"/desk/case/{reference}").get_data(as_text=True)
    assert audit_events(desk, "case.checkin")


def _attach(
    services: Services, reference: str, path: str | None, content_type: str, kind: str = "photo"
) -> int:
    complaint = _complaint(services, reference)
    with services.uow() as db:
        attachment = Attachment(
            complaint_id=complaint.id,
            channel="sms",
            kind=kind,
            source_ref="https://api.example/media/1",
            content_type=content_type,
            path=path,
        )
        db.add(attachment)
        db.flush()
        return attachment.id


def test_evidence_is_served_only_from_the_storage_folder(
    app: Flask, desk: Services, tmp_path: Path
) -> None:
    reference = make_complaint(desk)
    storage = desk.settings.storage_dir
    (storage / "7").mkdir(parents=True)
    (storage / "7" / "1.jpg").write_bytes(b"\xff\xd8\xff photo")
    (storage / "7" / "2.ogg").write_bytes(b"OggS voice")
    (storage / "7" / "3.html").write_bytes(b"<script>alert(1)</script>")
    (tmp_path / "secret.txt").write_text("not evidence")
    photo = _attach(desk, reference, "7/1.jpg", "image/jpeg")
    voice = _attach(desk, reference, "7/2.ogg", "audio/ogg", kind="voice")
    page_file = _attach(desk, reference, "7/3.html", "text/html", kind="document")
    escape = _attach(desk, reference, "../secret.txt", "text/plain", kind="document")
    absolute = _attach(desk, reference, str(tmp_path / "secret.txt"), "text/plain")
    pending = _attach(desk, reference, None, "image/jpeg")
    other = make_complaint(desk)
    client = app.test_client()
    login(client, "triage")
    page = client.get(f"/desk/case/{reference}").get_data(as_text=True)
    base = f"/desk/case/{reference}/attachment"
    assert f'<img src="{base}/{photo}"' in page
    assert f'<audio controls preload="none" src="{base}/{voice}"' in page
    assert "Not downloaded yet." in page
    with client.get(f"{base}/{photo}") as response:
        assert response.status_code == 200
        assert response.data == b"\xff\xd8\xff photo"
        assert response.mimetype == "image/jpeg"
        assert "sandbox" in response.headers["Content-Security-Policy"]
        assert response.headers["Cache-Control"] == "no-store"
    with client.get(f"{base}/{page_file}") as response:
        assert response.mimetype == "application/octet-stream"
        assert response.headers["Content-Disposition"].startswith("attachment")
    for attachment_id in (escape, absolute, pending):
        assert client.get(f"{base}/{attachment_id}").status_code == 404
    assert client.get(f"/desk/case/{other}/attachment/{photo}").status_code == 404
    viewed = [e.detail["id"] for e in audit_events(desk, "attachment.view")]
    assert viewed == [photo, page_file]


def test_message_repository_is_the_outbox(desk: Services) -> None:
    # The desk queues through the same repository the intake uses.
    assert hasattr(MessageRepository, "queue_outbound")


def test_staff_set_the_priority(
    app: Flask, desk: Services, events: list[dict[str, object]]
) -> None:
    reference = make_complaint(desk, priority="P4")
    client = app.test_client()
    login(client, "triage")
    post(client, f"/desk/case/{reference}/priority", {"priority": "P1"})
    post(client, f"/desk/case/{reference}/priority", {"priority": "P9"})
    complaint = _complaint(desk, reference)
    assert complaint.priority == "P1"
    assert complaint.priority_reasons[0]["source"] == "staff"
    assert events == [{"reference": reference, "priority": "P1"}]
    [changed] = audit_events(desk, "case.priority")
    assert changed.detail == {"from": "P4", "to": "P1"}
