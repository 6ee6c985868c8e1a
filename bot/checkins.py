"""Check-ins ("Has the situation been resolved?") and what people answer to the desk.

The desk creates a ``CheckIn`` row with a due time; the delivery worker's housekeeping calls
:func:`send_due_checkins`, which queues the question when due. The intake service calls
:func:`take_answer` before the dialog engine, so the person's "1", "2" or "3" (or a button) is
recorded on the case instead of starting a new report, and :func:`take_reply`, so a reply to a
staff member's message is passed to the case rather than answered with the welcome of a new
report. The dialog engine stays pure.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from bot import case_events
from bot.i18n import KOSOVO_TIME
from bot.outreach import Route, queue_to_complainant, route_to_complainant
from dialogs.complaint_dialog import State
from dialogs.lexicon import Lexicon
from dialogs.messages import Choice, Inbound, Prompt
from dialogs.options import N_, Cx
from storage.db import UnitOfWork, is_postgres
from storage.intake_store import ContactRow
from storage.models import Complaint, Message
from storage.staff_models import CheckIn

STEP = "checkin"
"""The step name in Telegram button payloads (``checkin:resolved``)."""

CHOICES: tuple[Choice, ...] = (
    Choice("resolved", Cx("choice", "Yes")),
    Choice("not_resolved", Cx("choice", "No")),
    Choice("talk", Cx("choice", "I want to talk to someone")),
)
ANSWERS = tuple(c.value for c in CHOICES)

THANKS: dict[str, str] = {
    "resolved": N_("Thank you. We are glad to hear it. You can write to us again at any time."),
    "not_resolved": N_("Thank you for telling us. We will look at your report again."),
    "talk": N_("Thank you. Someone from our team will contact you soon."),
}

ANSWER_WINDOW = timedelta(days=14)
"""A question unanswered this long is expired: a later "1" is an ordinary message again."""
SEND_HOURS = (9, 19)
"""Check-ins go out in working hours, Kosovo time, when someone can answer "talk to someone"."""
_AT_REST = frozenset({None, State.IDLE.value})

Render = Callable[[Prompt, str, str, bool], tuple[str, dict[str, object] | None]]
"""(prompt, language, channel, plain letters) → (text, reply markup), as the worker renders."""


def question(reference: str) -> Prompt:
    """The check-in question for a report, with its three numbered answers."""
    return Prompt(
        # TRANSLATORS: SMS; the three answers follow as numbered lines. Keep it short.
        N_("Has the situation in your report %(reference)s been resolved?"),
        {"reference": reference},
        choices=CHOICES,
        step=STEP,
    )


def schedule(
    session: Session, complaint: Complaint, due_at: datetime, *, created_by: int | None
) -> CheckIn:
    """Schedule a check-in on a complaint."""
    check_in = CheckIn(
        complaint_id=complaint.id, status="scheduled", due_at=due_at, created_by=created_by
    )
    session.add(check_in)
    session.flush()
    return check_in


def send_due_checkins(
    uow: UnitOfWork,
    render: Render | None,
    now: datetime,
    channels: frozenset[str],
    *,
    limit: int = 100,
) -> int:
    """Queue the check-ins that are due (in working hours); how many were queued."""
    if render is None:
        return 0
    local_hour = now.astimezone(KOSOVO_TIME).hour
    if not SEND_HOURS[0] <= local_hour < SEND_HOURS[1]:
        return 0
    sent = 0
    with uow() as session:
        session.execute(
            update(CheckIn)
            .where(CheckIn.status == "sent", CheckIn.sent_at < now - ANSWER_WINDOW)
            .values(status="expired")
        )
        query = (
            select(CheckIn)
            .where(CheckIn.status == "scheduled", CheckIn.due_at <= now)
            .order_by(CheckIn.due_at, CheckIn.id)
            .limit(limit)
        )
        if is_postgres(session):
            query = query.with_for_update(skip_locked=True)
        for check_in in list(session.scalars(query)):
            complaint = session.get(Complaint, check_in.complaint_id)
            if complaint is None or complaint.status == "withdrawn":
                check_in.status = "cancelled"
                continue
            route = route_to_complainant(session, complaint, sms_enabled="sms" in channels)
            if not isinstance(route, Route):
                check_in.status = "cancelled"
                continue
            if route.channel not in channels:
                continue  # sent once that channel is set up
            _send(session, complaint, check_in, route, render, now)
            sent += 1
    return sent


def _send(
    session: Session,
    complaint: Complaint,
    check_in: CheckIn,
    route: Route,
    render: Render,
    now: datetime,
) -> None:
    # One open question per person: an older unanswered one is superseded.
    session.execute(
        update(CheckIn)
        .where(CheckIn.contact_id == route.contact.id, CheckIn.status == "sent")
        .values(status="expired")
    )
    text, markup = render(
        question(complaint.reference), route.language, route.channel, route.contact.plain_letters
    )
    message = queue_to_complainant(session, complaint, route, text, now=now, reply_markup=markup)
    check_in.status = "sent"
    check_in.sent_at = now
    check_in.contact_id = route.contact.id
    check_in.message_id = message.id


@dataclass(frozen=True)
class Answered:
    """An inbound message taken for the desk: the reply to send and its language."""

    reply: Prompt
    language: str
    check_in_id: int | None = None


def may_be_for_the_desk(inbound: Inbound, state: str | None) -> bool:
    """Whether a message may answer a check-in or reply to the desk (else none is looked up)."""
    if inbound.choice is not None:
        return inbound.choice.partition(":")[0] == STEP
    return state in _AT_REST


def take_answer(
    session: Session,
    contact: ContactRow,
    inbound: Inbound,
    lexicon: Lexicon,
    now: datetime,
    state: str | None,
) -> Answered | None:
    """Record the answer to an open check-in, when this message is one; None otherwise.

    A button press always counts; a typed "1", "2", "3" (or the words of the answers) counts
    only when the person is not in the middle of a new report.
    """
    value: str | None = None
    if inbound.choice is not None:
        step, _, picked = inbound.choice.partition(":")
        if step != STEP or picked not in ANSWERS:
            return None
        value = picked
    elif state not in _AT_REST or not inbound.text.strip():
        return None
    pending = session.scalars(
        select(CheckIn)
        .where(
            CheckIn.contact_id == contact.id,
            CheckIn.status == "sent",
            CheckIn.sent_at >= now - ANSWER_WINDOW,
        )
        .order_by(CheckIn.id.desc())
        .limit(1)
    ).one_or_none()
    if pending is None:
        return None
    if value is None:
        value = lexicon.option(STEP, CHOICES, inbound.text)
        if value is None:
            return None
    pending.status = "answered"
    pending.answer = value
    pending.answered_at = now
    complaint = session.get(Complaint, pending.complaint_id)
    language = contact.language or "en"
    if complaint is not None:
        complaint.updated_at = now
        language = complaint.language
        case_events.complaint_updated(session, complaint, {"check_in": value})
    return Answered(Prompt(THANKS[value]), language, pending.id)


REPLY_WINDOW = timedelta(days=7)
"""How long after a message from the desk the person's messages are taken as replies to it."""

REPLY_THANKS = N_(
    "Thank you. We have passed your message to the team working on your report %(reference)s. "
    "To make a new report, send: restart"
)


def take_reply(
    session: Session,
    contact: ContactRow,
    inbound: Inbound,
    logged_id: int,
    lexicon: Lexicon,
    now: datetime,
    state: str | None,
) -> Answered | None:
    """Pass a reply to a recent message from the desk to its case; None for anything else.

    Only when the person is not in a dialog, the message is not a command (stop, help,
    restart, status... keep working), and the desk wrote to this contact in the last
    :data:`REPLY_WINDOW`. The message is linked to the complaint, and acknowledged once per
    burst of SMS parts.
    """
    if state not in _AT_REST or inbound.choice is not None or not inbound.text.strip():
        return None
    if lexicon.command(inbound.text, inbound.channel) is not None:
        return None
    complaint_id = session.scalar(
        select(Message.complaint_id)
        .where(
            Message.contact_id == contact.id,
            Message.direction == "out",
            Message.complaint_id.is_not(None),
            Message.created_at >= now - REPLY_WINDOW,
        )
        .order_by(Message.id.desc())
        .limit(1)
    )
    complaint = session.get(Complaint, complaint_id) if complaint_id is not None else None
    if complaint is None:
        return None
    session.execute(
        update(Message).where(Message.id == logged_id).values(complaint_id=complaint.id)
    )
    complaint.updated_at = now
    case_events.complaint_updated(session, complaint, {"reply": logged_id})
    prompt = Prompt(REPLY_THANKS, {"reference": complaint.reference}, ack=True)
    return Answered(prompt, complaint.language)
