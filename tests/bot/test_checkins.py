"""Check-ins: sent by the worker's housekeeping when due, answered with 1, 2 or 3."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime, timedelta

import pytest
from sqlalchemy import select, update

from bot import case_events, checkins
from bot.app import Services
from dialogs.messages import Prompt
from storage.models import Complaint, Message, utcnow
from storage.staff_models import CheckIn
from tests.helpers import FULL_REPORT, conversation, say, texts

# Today, so that answers arrive within the answer window of the real clock the intake uses.
WORKING_HOURS = utcnow().replace(hour=10, minute=0, second=0, microsecond=0)  # 11:00 or 12:00
NIGHT = WORKING_HOURS.replace(hour=22)


@pytest.fixture
def events() -> Iterator[list[dict[str, object]]]:
    seen: list[dict[str, object]] = []
    unsubscribe = case_events.subscribe(lambda _s, c, changes: seen.append(dict(changes)))
    yield seen
    unsubscribe()


def _render(services: Services) -> checkins.Render:
    def render(
        prompt: Prompt, language: str, channel: str, plain: bool
    ) -> tuple[str, dict[str, object] | None]:
        rendered = services.renderer.render(prompt, language, channel, plain_letters=plain)
        return rendered.text, rendered.reply_markup

    return render


def _report(services: Services, **kwargs: object) -> Complaint:
    conversation(services, FULL_REPORT, **kwargs)  # type: ignore[arg-type]
    reference = say(services, "1", **kwargs).complaint_reference  # type: ignore[arg-type]
    with services.uow() as db:
        return db.scalars(select(Complaint).where(Complaint.reference == reference)).one()


def _schedule(services: Services, complaint: Complaint, due: datetime) -> int:
    with services.uow() as db:
        return checkins.schedule(db, db.merge(complaint), due, created_by=None).id


def _check_in(services: Services, check_in_id: int) -> CheckIn:
    with services.uow() as db:
        found = db.get(CheckIn, check_in_id)
        assert found is not None
        return found


def test_due_check_in_is_sent_in_working_hours(services: Services) -> None:
    complaint = _report(services)
    due = _schedule(services, complaint, WORKING_HOURS - timedelta(minutes=1))
    later = _schedule(services, complaint, WORKING_HOURS + timedelta(days=1))
    render = _render(services)
    assert checkins.send_due_checkins(services.uow, render, NIGHT, frozenset({"sms"})) == 0
    assert checkins.send_due_checkins(services.uow, render, WORKING_HOURS, frozenset()) == 0
    assert checkins.send_due_checkins(services.uow, render, WORKING_HOURS, frozenset({"sms"})) == 1
    sent = _check_in(services, due)
    assert sent.status == "sent"
    assert _check_in(services, later).status == "scheduled"
    with services.uow() as db:
        message = db.get(Message, sent.message_id)
        assert message is not None
        assert message.complaint_id == complaint.id
        assert message.status == "queued"
        body = message.body or ""
    assert complaint.reference in body
    assert "1 Yes\n2 No\n3 I want to talk to someone" in body


@pytest.mark.parametrize(
    ("reply", "answer"),
    [("1", "resolved"), ("2", "not_resolved"), ("3", "talk"), ("no", "not_resolved")],
)
def test_answer_is_recorded_on_the_case(
    services: Services, events: list[dict[str, object]], reply: str, answer: str
) -> None:
    complaint = _report(services)
    check_in_id = _schedule(services, complaint, WORKING_HOURS)
    checkins.send_due_checkins(services.uow, _render(services), WORKING_HOURS, frozenset({"sms"}))
    result = say(services, reply)
    assert result.complaint_reference is None
    assert len(result.replies) == 1
    assert "Thank you" in texts(result)[0]
    recorded = _check_in(services, check_in_id)
    assert (recorded.status, recorded.answer) == ("answered", answer)
    assert events == [{"check_in": answer}]
    # Answered once: a second "1" is a reply to the desk, passed to the case, not an answer.
    assert "passed your message" in " ".join(texts(say(services, "1")))
    assert _check_in(services, check_in_id).answer == answer


def test_telegram_button_answers(services: Services) -> None:
    complaint = _report(services, channel="telegram", sender="4242")
    check_in_id = _schedule(services, complaint, WORKING_HOURS)
    checkins.send_due_checkins(
        services.uow, _render(services), WORKING_HOURS, frozenset({"telegram"})
    )
    with services.uow() as db:
        sent = db.get(Message, _check_in(services, check_in_id).message_id)
        assert sent is not None and sent.reply_markup is not None
        data = [row[0]["callback_data"] for row in sent.reply_markup["inline_keyboard"]]
    assert data == ["checkin:resolved", "checkin:not_resolved", "checkin:talk"]
    say(services, channel="telegram", sender="4242", choice="checkin:talk")
    assert _check_in(services, check_in_id).answer == "talk"


def test_a_number_in_the_middle_of_a_new_report_is_not_an_answer(services: Services) -> None:
    complaint = _report(services)
    check_in_id = _schedule(services, complaint, WORKING_HOURS)
    checkins.send_due_checkins(services.uow, _render(services), WORKING_HOURS, frozenset({"sms"}))
    assert "May we record" in " ".join(texts(say(services, "restart")))  # a new report
    say(services, "1")  # consent, not a check-in answer
    assert _check_in(services, check_in_id).status == "sent"


def test_no_check_in_for_people_who_cannot_be_reached(services: Services) -> None:
    complaint = _report(services)
    check_in_id = _schedule(services, complaint, WORKING_HOURS)
    with services.uow() as db:
        db.execute(update(Complaint).values(contact_preference="none"))
    checkins.send_due_checkins(services.uow, _render(services), WORKING_HOURS, frozenset({"sms"}))
    assert _check_in(services, check_in_id).status == "cancelled"


def test_unanswered_check_ins_expire(services: Services) -> None:
    complaint = _report(services)
    check_in_id = _schedule(services, complaint, WORKING_HOURS)
    render = _render(services)
    checkins.send_due_checkins(services.uow, render, WORKING_HOURS, frozenset({"sms"}))
    checkins.send_due_checkins(
        services.uow,
        render,
        WORKING_HOURS + checkins.ANSWER_WINDOW + timedelta(hours=1),
        frozenset({"sms"}),
    )
    assert _check_in(services, check_in_id).status == "expired"


def test_the_delivery_worker_housekeeping_sends_due_check_ins(services: Services) -> None:
    import asyncio

    from bot.delivery import DeliveryWorker
    from bot.senders import Outgoing, Sent

    class Idle:
        async def send(self, message: Outgoing) -> Sent:
            raise AssertionError("housekeeping only queues")

    complaint = _report(services)
    check_in_id = _schedule(services, complaint, WORKING_HOURS - timedelta(days=1))
    worker = DeliveryWorker(
        services.uow,
        {"sms": Idle()},
        clock=lambda: WORKING_HOURS,
        render_reminder=_render(services),
    )
    asyncio.run(worker.housekeeping())
    assert _check_in(services, check_in_id).status == "sent"


def _follow_up(services: Services, complaint: Complaint, text: str) -> None:
    from bot import outreach

    with services.uow() as db:
        found = db.get(Complaint, complaint.id)
        assert found is not None
        route = outreach.route_to_complainant(db, found, sms_enabled=True)
        assert isinstance(route, outreach.Route)
        outreach.queue_to_complainant(db, found, route, text, now=utcnow())


def test_a_reply_to_the_desk_goes_to_the_case(
    services: Services, events: list[dict[str, object]]
) -> None:
    complaint = _report(services)
    _follow_up(services, complaint, "Could you call us back?")
    result = say(services, "Yes, I will call tomorrow")
    assert result.complaint_reference is None
    [reply] = texts(result)
    assert reply.startswith("Thank you. We have passed your message")
    assert complaint.reference in reply
    with services.uow() as db:
        logged = db.scalars(
            select(Message).where(Message.direction == "in").order_by(Message.id.desc()).limit(1)
        ).one()
    assert logged.complaint_id == complaint.id
    assert events and "reply" in events[0]
    # Commands still work: "restart" begins a new report.
    assert "May we record your report?" in " ".join(texts(say(services, "restart")))


def test_without_a_message_from_the_desk_a_message_starts_a_new_report(services: Services) -> None:
    complaint = _report(services)
    _follow_up(services, complaint, "Could you call us back?")
    with services.uow() as db:
        db.execute(
            update(Message)
            .where(Message.complaint_id == complaint.id)
            .values(created_at=utcnow() - checkins.REPLY_WINDOW - timedelta(hours=1))
        )
    assert "May we record your report?" in " ".join(texts(say(services, "hello again")))
