"""The intake service end to end on SQLite and PostgreSQL: storage, effects, exactly once."""

from __future__ import annotations

import threading
from datetime import timedelta

from sqlalchemy import func, select

from bot.app import Services
from storage.models import Complaint, Contact, Conversation, Message
from tests.helpers import FULL_REPORT, conversation, say, texts


def _count(services: Services, model: type) -> int:
    with services.uow() as session:
        return int(session.scalar(select(func.count()).select_from(model)) or 0)


def test_full_report_is_stored_with_every_answer(services: Services) -> None:
    results = conversation(services, FULL_REPORT)
    assert "Your report:" in texts(results[-1])[0]
    sent = say(services, "1")
    assert sent.complaint_reference is not None
    assert sent.complaint_reference.startswith("RAE-")
    with services.uow() as session:
        complaint = session.scalars(select(Complaint)).one()
        assert complaint.reference == sent.complaint_reference
        assert complaint.area == "education"
        assert complaint.ground == "ethnicity"
        assert complaint.perpetrator == "school"
        assert complaint.municipality == "gjakove"
        assert complaint.occurred == "this_month"
        assert complaint.description is not None
        assert "back of the class" in complaint.description
        assert complaint.stakes == ["child", "job"]
        assert complaint.contact_preference == "this"
        assert complaint.legal_support is True
        assert complaint.sharing == "after_talk"
        assert complaint.urgent is False
        assert complaint.language == "en"
        assert complaint.channel == "sms"
        assert complaint.status == "new"
        conv = session.scalars(select(Conversation)).one()
        assert conv.state == "idle"
        assert conv.answers == {}


def test_redelivered_message_is_handled_once(services: Services) -> None:
    say(services, "hello", message_id="SM1")
    first = say(services, "7", message_id="SM2")
    again = say(services, "7", message_id="SM2")
    assert not first.duplicate
    assert again.duplicate
    assert again.replies == []
    with services.uow() as session:
        inbound = session.scalar(
            select(func.count()).select_from(Message).where(Message.direction == "in")
        )
        assert inbound == 2


def test_concurrent_duplicates_are_processed_once(services: Services) -> None:
    conversation(services, ["hello", "7", "1", "2"])
    results = []
    barrier = threading.Barrier(4)

    def deliver() -> None:
        barrier.wait()
        results.append(say(services, "2", message_id="SAME"))

    threads = [threading.Thread(target=deliver) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sum(not r.duplicate for r in results) == 1
    with services.uow() as session:
        conv = session.scalars(select(Conversation)).one()
        assert conv.state == "ground"


def test_two_messages_at_once_are_handled_one_after_the_other(services: Services) -> None:
    conversation(services, ["hello", "7", "1", "2"])  # now at the area question
    barrier = threading.Barrier(2)

    def deliver(text: str) -> None:
        barrier.wait()
        say(services, text)

    threads = [threading.Thread(target=deliver, args=("1",)) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    with services.uow() as session:
        conv = session.scalars(select(Conversation)).one()
        # Each message saw the state the other left: area answered, then ground answered.
        assert conv.state == "perpetrator"
        assert conv.answers["area"] == "employment"
        assert conv.answers["ground"] == "ethnicity"


def test_no_consent_keeps_nothing_about_the_person(services: Services) -> None:
    conversation(services, ["hello", "1"])
    result = say(services, "2")
    assert len(result.replies) == 1
    assert _count(services, Contact) == 0
    assert _count(services, Conversation) == 0
    with services.uow() as session:
        for message in session.scalars(select(Message)):
            assert message.contact_id is None
            if message.direction == "in":
                assert message.body is None
            else:
                # The goodbye still has to reach them; the worker erases it once sent.
                assert message.ephemeral


def test_raw_database_holds_neither_phone_nor_description(services: Services) -> None:
    conversation(services, FULL_REPORT[:14] + ["2", "+38349555111"] + FULL_REPORT[15:])
    say(services, "1")
    with services.uow() as session:
        complaint = session.scalars(select(Complaint)).one()
        assert complaint.contact_phone == "+38349555111"
        raw_rows: list[bytes] = []
        for table in ("contact", "conversation", "message", "complaint"):
            for row in session.connection().exec_driver_sql(f"SELECT * FROM {table}"):  # noqa: S608
                raw_rows.append(repr(tuple(row)).encode())
    blob = b"\n".join(raw_rows)
    for secret in (b"38344123456", b"44123456", b"38349555111", b"back of the class"):
        assert secret not in blob


def test_delete_my_data_withdraws_and_erases(services: Services) -> None:
    conversation(services, FULL_REPORT)
    say(services, "1")
    confirm = say(services, "delete my data")
    assert "Delete all your data" in texts(confirm)[0]
    say(services, "1")
    assert _count(services, Contact) == 0
    with services.uow() as session:
        complaint = session.scalars(select(Complaint)).one()
        assert complaint.status == "withdrawn"
        assert complaint.contact_id is None
        assert complaint.contact_phone is None
        bodies = session.scalars(select(Message.body).where(Message.direction == "in")).all()
        assert all(b is None for b in bodies)


def test_status_from_the_same_contact_and_with_pin_from_another(services: Services) -> None:
    conversation(services, FULL_REPORT)
    sent = say(services, "1")
    ref = sent.complaint_reference
    assert ref is not None
    pin = texts(sent)[0].split("PIN: ")[1][:4]
    mine = say(services, f"status {ref}")
    assert f"Report {ref}: received, waiting for review." in texts(mine)[0]
    other = "+38345000111"
    conversation(services, ["hello", "7"], sender=other)
    refused = say(services, f"status {ref}", sender=other)
    assert "We found no report" in texts(refused)[0]
    allowed = say(services, f"status {ref} {pin}", sender=other)
    assert "received, waiting for review" in texts(allowed)[0]
    wrong_pin = say(
        services, f"status {ref} 0000" if pin != "0000" else f"status {ref} 1111", sender=other
    )
    assert "We found no report" in texts(wrong_pin)[0]


def test_draft_expires_after_72_hours(services: Services) -> None:
    conversation(services, ["hello", "7", "1", "2", "1"])
    later = services.intake.clock() + timedelta(hours=73)
    services.intake.clock = lambda: later
    result = say(services, "1")
    shown = texts(result)
    assert "deleted after 72 hours" in shown[0]
    assert any("May we record your report?" in t for t in shown)
    with services.uow() as session:
        conv = session.scalars(select(Conversation)).one()
        assert conv.state == "consent"
        assert "area" not in conv.answers


def test_draft_resumes_hours_later(services: Services) -> None:
    conversation(services, ["hello", "7", "1", "2", "1"])
    later = services.intake.clock() + timedelta(hours=20)
    services.intake.clock = lambda: later
    result = say(services, "1")
    assert "Who did it?" in texts(result)[0]


def test_language_is_remembered_per_contact(services: Services) -> None:
    conversation(services, FULL_REPORT)
    say(services, "1")
    again = say(services, "hi")
    assert any("May we record your report?" in t for t in texts(again))
