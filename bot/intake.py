"""The intake service: one inbound message handled end to end in one unit of work.

dedupe → load conversation (locked) → engine step → effects → store → queue replies → commit.
"""

from __future__ import annotations

import logging
import secrets
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import delete, select
from sqlalchemy.exc import IntegrityError, OperationalError
from sqlalchemy.orm import Session
from sqlalchemy.orm.exc import StaleDataError

from bot import checkins
from bot.notify import ComplaintEvents
from bot.rendering import Rendered, Renderer
from dialogs import complaint_dialog
from dialogs.complaint_dialog import Context
from dialogs.lexicon import Lexicon
from dialogs.messages import (
    ClearChat,
    Conversation,
    DeleteMyData,
    Forget,
    Inbound,
    OptIn,
    OptOut,
    Prompt,
    SetLanguage,
    SetPlainLetters,
    StatusQuery,
    Submit,
)
from dialogs.options import N_, STATUS_LABELS
from storage.crypto import keyring
from storage.db import CoreUnit, UnitOfWork
from storage.intake_store import ContactRow, ConversationRow, IntakeStore
from storage.models import Attachment, Complaint, Contact, Message, utcnow
from storage.repositories import ComplaintRepository, MessageRepository

log = logging.getLogger(__name__)

# No 0/O, 1/I/L, 2/Z, 5/S, 6/G, 8/B: codes are read aloud and typed on keypads.
REFERENCE_ALPHABET = "ACDEFHJKMNPRTUVWXY3479"
MAX_ATTEMPTS = 5
SMS_ACK_DELAY = timedelta(seconds=4)
ACK_STATES = frozenset({"description", "evidence"})  # where a delayed "got it" can be pending
CHAT_DELETE_WINDOW = timedelta(hours=47)  # Telegram deletes private-chat messages up to 48 h
MAX_TEXT_CHARS = 5_000  # one inbound message; longer is cut (SMS joins and Telegram cap 4096)


def new_reference() -> str:
    """A short, unambiguous reference code that carries no personal data."""
    return "RAE-" + "".join(secrets.choice(REFERENCE_ALPHABET) for _ in range(6))


def new_pin() -> str:
    """A 4-digit PIN for checking a report's status from another phone."""
    return f"{secrets.randbelow(10_000):04d}"


@dataclass
class Reply:
    """A reply as queued: the channel, the rendered message and the outbox row id."""

    channel: str
    rendered: Rendered
    message_id: int | None = None
    slot: int = field(default=-1, repr=False)  # its place among the writes, until they are sent


@dataclass
class HandleResult:
    """What handling one inbound message did."""

    duplicate: bool = False
    replies: list[Reply] = field(default_factory=list)
    complaint_reference: str | None = None
    state: str | None = None


class IntakeService:
    """Handles inbound messages from any channel against the dialog engine and storage."""

    def __init__(
        self,
        uow: UnitOfWork,
        renderer: Renderer,
        lexicon: Lexicon,
        *,
        clock: Callable[[], datetime] = utcnow,
        notify_channel: str | None = None,
        complaints: ComplaintEvents | None = None,
    ) -> None:
        self.uow = uow
        self.renderer = renderer
        self.lexicon = lexicon
        self.clock = clock
        self.notify_channel = notify_channel  # PostgreSQL NOTIFY wakes the delivery workers
        self.complaints = complaints  # priority, routing and webhook events (bot/notify.py)

    def handle(
        self,
        inbound: Inbound,
        *,
        is_test: bool = False,
        callback_query_id: str | None = None,
        chat_message_id: str | None = None,
        opt_out_type: str | None = None,
    ) -> HandleResult:
        """Handle one message exactly once; retried when a concurrent writer got there first."""
        extra = _Extra(callback_query_id, chat_message_id, opt_out_type)
        for attempt in range(1, MAX_ATTEMPTS + 1):
            try:
                with self.uow.core() as unit:
                    return self._handle(unit, inbound, extra, is_test=is_test)
            except (StaleDataError, IntegrityError, OperationalError) as exc:
                # Another message from the same person, or a colliding reference code: the
                # transaction rolled back whole, so trying again is safe.
                if attempt == MAX_ATTEMPTS:
                    raise
                log.info("retrying inbound after %s (attempt %d)", type(exc).__name__, attempt)
        raise AssertionError("unreachable")  # pragma: no cover

    def _handle(
        self, unit: CoreUnit, inbound: Inbound, extra: _Extra, *, is_test: bool
    ) -> HandleResult:
        now = self.clock()
        store = IntakeStore(unit)
        contact, row, logged = store.arrive(
            inbound.channel,
            inbound.sender,
            inbound.message_id,
            inbound.text[:MAX_TEXT_CHARS],
            chat_message_id=extra.chat_message_id,
            is_test=is_test,
            now=now,
        )
        stored_contact = (contact.language, contact.plain_letters, contact.opted_out_at)
        if logged is None:
            return HandleResult(duplicate=True)
        if extra.callback_query_id is not None and not is_test:
            # Every button press is answered, or the person's app shows a spinner.
            store.queue(
                contact_id=None,
                channel=inbound.channel,
                to_address=inbound.sender,
                body="",
                reply_markup={"callback_query_id": extra.callback_query_id},
                now=now,
                kind="callback_answer",
            )
        if inbound.channel == "sms" and row is not None and row.state in ACK_STATES:
            # A new message makes a pending "got it" moot: the reply to this one follows.
            store.drop_pending(_ack_key(contact.id))
        # An answer to a check-in the desk sent ("1 Yes 2 No 3 talk"), or a reply to a message
        # from the desk, goes to its case and is thanked; all else goes to the dialog engine.
        state = row.state if row else None
        answered = None
        # A contact created just now has had no message from the desk: no look-up either.
        if not contact.new and checkins.may_be_for_the_desk(inbound, state):
            session = unit.session
            answered = checkins.take_answer(
                session, contact, inbound, self.lexicon, now, state
            ) or checkins.take_reply(session, contact, inbound, logged, self.lexicon, now, state)
        if answered is not None:
            queued = self._queue(
                store,
                contact,
                inbound,
                [answered.reply],
                answered.language,
                now,
                forget=False,
                is_test=is_test,
                suppress=False,
            )
            self._write(store, queued, is_test)
            return HandleResult(replies=queued, state=state)
        snapshot = _snapshot(row, contact)
        # Codes are drawn only by the step that submits: six secure draws cost about 8 µs.
        ctx = Context(now=now, lexicon=self.lexicon, new_reference=new_reference, new_pin=new_pin)
        result = complaint_dialog.step(snapshot, inbound, ctx)
        conv = result.conversation
        status_replies: list[Prompt] = []
        forget = False
        submitted: Complaint | None = None
        for effect in result.effects:
            if isinstance(effect, SetLanguage):
                contact.language = effect.language
            elif isinstance(effect, OptOut):
                contact.opted_out_at = now
            elif isinstance(effect, OptIn):
                contact.opted_out_at = None
            elif isinstance(effect, Submit):
                submitted = self._submit(unit.session, contact, inbound, effect, is_test=is_test)
            elif isinstance(effect, SetPlainLetters):
                contact.plain_letters = effect.on
            elif isinstance(effect, ClearChat):
                self._clear_chat(unit.session, store, contact, inbound, now, is_test=is_test)
            elif isinstance(effect, StatusQuery):
                status_replies.append(self._status(unit.session, contact, effect))
            elif isinstance(effect, Forget | DeleteMyData):
                if isinstance(effect, DeleteMyData):
                    self._withdraw(unit.session, contact, now)
                forget = True
        replies = status_replies + result.replies
        language = conv.language or contact.language or "en"
        carrier_opt_out = inbound.channel == "sms" and (
            extra.opt_out_type == "STOP" or self.lexicon.carrier_stop_word(inbound.text)
        )
        if forget:
            self._forget(unit.session, store, contact)
        else:
            if (contact.language, contact.plain_letters, contact.opted_out_at) != stored_contact:
                store.save_contact(contact)
            store.save_conversation(
                contact.id,
                row,
                state=conv.state,
                answers=conv.answers,
                flow=conv.to_json(),
                campaign=conv.campaign,
                now=now,
            )
        queued = self._queue(
            store,
            contact,
            inbound,
            replies,
            language,
            now,
            forget=forget,
            is_test=is_test,
            suppress=carrier_opt_out,
        )
        self._write(store, queued, is_test)
        return HandleResult(
            replies=queued,
            complaint_reference=submitted.reference if submitted else None,
            state=conv.state,
        )

    def _write(self, store: IntakeStore, queued: list[Reply], is_test: bool) -> None:
        """Send the collected writes, waking the delivery workers when replies wait to be sent."""
        if self.notify_channel is not None and queued and not is_test:
            store.notify(self.notify_channel)
        ids = store.write()
        for reply in queued:
            reply.message_id = ids[reply.slot]

    def _queue(
        self,
        store: IntakeStore,
        contact: ContactRow,
        inbound: Inbound,
        prompts: list[Prompt],
        language: str,
        now: datetime,
        *,
        forget: bool,
        is_test: bool,
        suppress: bool,
    ) -> list[Reply]:
        out: list[Reply] = []
        for prompt in prompts:
            rendered = self.renderer.render(
                prompt, language, inbound.channel, plain_letters=contact.plain_letters
            )
            # Test contacts (terminal chat, simulator) are answered on screen, never sent.
            status = "local" if is_test else "queued"
            if suppress and not is_test:
                status = "suppressed"  # Twilio blocks the number and confirms the opt-out itself
            coalesce = None
            not_before = None
            if prompt.ack and inbound.channel == "sms" and status == "queued":
                # SMS parts of one long text arrive seconds apart: one "got it" for all of them.
                coalesce = _ack_key(contact.id)
                not_before = now + SMS_ACK_DELAY
            slot = store.queue(
                contact_id=None if forget else contact.id,
                channel=inbound.channel,
                to_address=inbound.sender,
                body=rendered.text,
                reply_markup=rendered.reply_markup,
                now=now,
                ephemeral=forget,
                status=status,
                coalesce_key=coalesce,
                not_before=not_before,
                erase=forget and status in ("local", "suppressed"),
            )
            out.append(Reply(inbound.channel, rendered, slot=slot))
        return out

    def _submit(
        self,
        session: Session,
        contact: ContactRow,
        inbound: Inbound,
        effect: Submit,
        *,
        is_test: bool,
    ) -> Complaint:
        a: dict[str, Any] = effect.answers
        complaint = Complaint(
            reference=effect.reference,
            pin_hash=keyring().lookup_hash("pin", effect.reference, effect.pin),
            contact_id=contact.id,
            channel=inbound.channel,
            language=a.get("language") or contact.language or "en",
            status="new",
            urgent=bool(a.get("danger")),
            area=a["area"],
            ground=a["ground"],
            ground_other=a.get("ground_other"),
            perpetrator=a["perpetrator"],
            municipality=a["municipality"],
            occurred=a["when"],
            description=a["description"],
            stakes=list(a.get("stakes", [])),
            contact_preference=a["contact"],
            contact_phone=a.get("contact_phone"),
            legal_support=bool(a.get("legal")),
            sharing=a["sharing"],
            campaign=a.get("campaign"),
            is_test=is_test,
        )
        attachments = [
            Attachment(
                channel=inbound.channel,
                kind=item["kind"],
                source_ref=item["ref"],
                content_type=item.get("content_type"),
                size=item.get("size"),
            )
            for item in a.get("evidence", [])
        ]
        if self.complaints is None:
            ComplaintRepository(session).insert(complaint, attachments)
            return complaint
        # Priority and events in this transaction: stored if and only if the complaint is.
        self.complaints.submitted(
            session, complaint, attachments, self.clock(), contact_address=inbound.sender
        )
        return complaint

    def _status(self, session: Session, contact: ContactRow, query: StatusQuery) -> Prompt:
        complaint = ComplaintRepository(session).by_reference(query.reference)
        allowed = complaint is not None and (
            complaint.contact_id == contact.id
            or (
                query.pin is not None
                and secrets.compare_digest(
                    complaint.pin_hash,
                    keyring().lookup_hash("pin", complaint.reference, query.pin),
                )
            )
        )
        if complaint is None or not allowed:
            # One answer for "no such code" and "not yours": codes cannot be probed.
            return Prompt(
                N_(
                    "We found no report %(reference)s for you. Check the code, or send: "
                    "status CODE PIN"
                ),
                {"reference": query.reference},
            )
        return Prompt(
            N_("Report %(reference)s: %(status)s."),
            {"reference": complaint.reference, "status": STATUS_LABELS[complaint.status]},
        )

    def _clear_chat(
        self,
        session: Session,
        store: IntakeStore,
        contact: ContactRow,
        inbound: Inbound,
        now: datetime,
        *,
        is_test: bool,
    ) -> None:
        """Queue deletions of this chat's messages (Telegram allows it for 48 hours)."""
        if is_test or inbound.channel != "telegram":
            return
        since = now - CHAT_DELETE_WINDOW
        ids = session.scalars(
            select(Message.chat_message_id).where(
                Message.contact_id == contact.id,
                Message.chat_message_id.is_not(None),
                Message.created_at >= since,
            )
        ).all()
        for chat_message_id in ids:
            store.queue(
                contact_id=None,
                channel=inbound.channel,
                to_address=inbound.sender,
                body="",
                reply_markup={"message_id": int(chat_message_id or 0)},
                now=now,
                kind="delete",
            )

    def _withdraw(self, session: Session, contact: ContactRow, now: datetime) -> None:
        for complaint in ComplaintRepository(session).of_contact(contact.id):
            previous_status = complaint.status
            complaint.contact_phone = None
            complaint.contact_id = None
            complaint.contact_preference = "none"
            if complaint.status not in ("resolved", "closed", "withdrawn"):
                complaint.status = "withdrawn"
                complaint.updated_at = now
            if self.complaints is not None:
                self.complaints.withdrawn(session, complaint, previous_status, now)

    def _forget(self, session: Session, store: IntakeStore, contact: ContactRow) -> None:
        """Keep nothing about the person: messages erased, conversation and contact deleted."""
        session.flush()  # ORM changes of this message (a withdrawn report) go first
        MessageRepository(session).forget_contact(contact.id)
        store.delete_conversation(contact.id)
        session.execute(delete(Contact).where(Contact.id == contact.id))
        loaded = session.identity_map.get(session.identity_key(Contact, contact.id))
        if loaded is not None:
            session.expunge(loaded)  # loaded by the webhook events of a withdrawn report


@dataclass(frozen=True)
class _Extra:
    """Channel details that travel beside the neutral inbound message."""

    callback_query_id: str | None = None
    chat_message_id: str | None = None
    opt_out_type: str | None = None


def _ack_key(contact_id: int) -> str:
    return f"ack:{contact_id}"


def _snapshot(row: ConversationRow | None, contact: ContactRow) -> Conversation:
    """The engine's view of a stored conversation."""
    if row is None:
        return Conversation(
            state=complaint_dialog.State.LANGUAGE.value if contact.language is None else "idle",
            language=contact.language,
            opted_out=contact.opted_out_at is not None,
            plain_letters=contact.plain_letters,
        )
    flow = row.flow
    state = row.state
    if contact.language is None and state != complaint_dialog.State.LANGUAGE.value:
        state = complaint_dialog.State.NEW.value
    return Conversation(
        state=state,
        language=contact.language,
        answers=dict(row.answers),
        history=list(flow.get("history", [])),
        misses=int(flow.get("misses", 0)),
        editing=bool(flow.get("editing", False)),
        resume=flow.get("resume"),
        campaign=row.campaign,
        opted_out=contact.opted_out_at is not None,
        plain_letters=contact.plain_letters,
        updated_at=row.updated_at,
    )
