"""The delivery worker: sends what the outbox holds, fetches evidence, reminds, expires drafts.

At-least-once: a row is claimed with a lease (``locked_until``) and, on PostgreSQL, under
``FOR UPDATE SKIP LOCKED`` so several workers share the outbox. A worker killed mid-send leaves
its rows to be claimed again when the lease runs out. One person's messages go out in order.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import os
import random
import socket
import time
from collections import defaultdict
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

from sqlalchemy import (
    BindParameter,
    Integer,
    Select,
    and_,
    bindparam,
    func,
    or_,
    select,
    text,
    update,
)
from sqlalchemy.orm import Session, aliased

from bot.checkins import send_due_checkins
from bot.senders import NotSent, Outgoing, PermanentFailure, RetryLater, Sender, Sent
from dialogs.complaint_dialog import DRAFT_LIFETIME, DRAFT_STEPS
from dialogs.messages import Prompt
from dialogs.options import N_
from storage.db import UnitOfWork, is_postgres
from storage.models import Attachment, Contact, Conversation, Message, WorkerHeartbeat, utcnow
from storage.repositories import MessageRepository

log = logging.getLogger(__name__)

NOTIFY_CHANNEL = "raporto_outbox"
LEASE = timedelta(seconds=60)
"""How long a claimed row stays with its worker. It must outlast sending one group: at most
MAX_GROUP messages, each with a 15 s network timeout and Telegram's 1 s per-chat pacing."""
MAX_GROUP = 10
"""At most this many messages to one person per claim, so a long backlog to one chat (paced at
one a second) cannot outlive its lease and be claimed, and sent, a second time."""
MAX_IN_FLIGHT = 64
"""Recipient groups one worker sends at once. Each is a task that mostly waits (for the network,
or for Telegram's per-chat pacing), so many cost little; the bound keeps Telegram's overall
30 messages/s queue, at MAX_GROUP messages a group, well inside the lease."""
CLAIM_AFTER_FINISH = 0.02
"""Seconds after a group finishes before claiming again for the people it held up."""
LISTEN_TIMEOUT = 1.0
"""Seconds one LISTEN wait blocks its thread; at most this long to stop."""
LISTEN_POLL = 2.0
"""With LISTEN working, still look this often for retries and held replies falling due."""
MAX_ATTEMPTS = 12
BACKOFF_SECONDS = (1, 5, 15, 60, 120, 300, 600, 1800, 3600, 7200, 14400)
REMINDER_AFTER = timedelta(hours=24)
KOSOVO = ZoneInfo("Europe/Belgrade")
QUIET_HOURS = (21, 8)  # no reminders from 21:00 to 08:00 Kosovo time
MAX_ATTACHMENT_BYTES = 20 * 1024 * 1024
MAX_FETCH_ATTEMPTS = 8

REMINDER = Prompt(
    N_("You have an unfinished report. Reply to continue, or send restart to begin again.")
)


def backoff(attempts: int, rng: random.Random | None = None) -> float:
    """Seconds to wait before the next try, with jitter so retries do not march in step."""
    base = BACKOFF_SECONDS[min(attempts, len(BACKOFF_SECONDS)) - 1] if attempts else 0
    return base * (0.8 + 0.4 * (rng or random).random())  # noqa: S311 - jitter, not secrets


STATUS_RANK = {
    "accepted": 1,
    "scheduled": 1,
    "queued": 1,
    "sending": 2,
    "sent": 3,
    "delivered": 4,
    "undelivered": 4,
    "failed": 4,
    "canceled": 4,
    "read": 5,
}
"""How far a provider status is along the way. Our own "sent" (handed to Twilio) ranks as
Twilio's "sent": Twilio's earlier statuses ("queued", "sending") carry no news after it."""


def record_status(session: Session, provider_id: str, status: str, error_code: str | None) -> bool:
    """Record a delivery status callback on the message it is about; False when unknown."""
    message = session.scalars(
        select(Message).where(Message.direction == "out", Message.channel_message_id == provider_id)
    ).one_or_none()
    if message is None:
        return False
    # Callbacks can arrive out of order: a status only ever moves forward ("sent" never
    # overwrites "delivered"). Above all, Twilio's "queued" must never be written over our
    # outbox status "queued": the worker would claim the row and send the message again.
    rank = STATUS_RANK.get(status)
    if rank is None or rank <= STATUS_RANK.get(message.status or "", 0):
        return True
    message.status = status[:16]
    if error_code:
        message.error = f"twilio {error_code}"
        if error_code == "21610" and message.contact_id is not None:
            contact = session.get(Contact, message.contact_id)
            if contact is not None and contact.opted_out_at is None:
                contact.opted_out_at = utcnow()
    return True


UNORDERED_KINDS = ("callback_answer",)
"""Outbox kinds that need not wait for a person's earlier messages: answering a button press
only stops the spinner in their app, so it never queues behind paced texts to the same chat."""


@functools.cache
def _due_query(postgres: bool) -> Select[tuple[Message]]:
    """Due rows, oldest first, of people not held up by an earlier message (built once: building
    it, with its correlated subquery, costs more than running it)."""
    now: BindParameter[datetime] = bindparam("now", type_=Message.next_attempt_at.type)
    earlier = aliased(Message)
    held_up = (
        select(earlier.id)
        .where(
            earlier.recipient_key == Message.recipient_key,
            earlier.direction == "out",
            earlier.status == "queued",
            earlier.kind.not_in(UNORDERED_KINDS),
            earlier.id < Message.id,
            or_(earlier.locked_until >= now, earlier.next_attempt_at > now),
        )
        .exists()
    )
    in_order = and_(
        Message.kind.not_in(UNORDERED_KINDS),
        Message.recipient_key.is_not(None),
        Message.recipient_key.not_in(bindparam("busy", expanding=True)),
        ~held_up,
    )
    due = (
        select(Message)
        .where(
            Message.direction == "out",
            Message.status == "queued",
            Message.next_attempt_at <= now,
            or_(Message.locked_until.is_(None), Message.locked_until < now),
            Message.channel.in_(bindparam("channels", expanding=True)),
            or_(Message.kind.in_(UNORDERED_KINDS), in_order),
        )
        .order_by(Message.id)
        .limit(bindparam("limit", type_=Integer))
    )
    return due.with_for_update(skip_locked=True) if postgres else due


@functools.cache
def _heads_query() -> Select[tuple[str | None, int]]:
    """The first queued message (in order) of each of some people."""
    return (
        select(Message.recipient_key, func.min(Message.id))
        .where(
            Message.direction == "out",
            Message.status == "queued",
            Message.kind.not_in(UNORDERED_KINDS),
            Message.recipient_key.in_(bindparam("keys", expanding=True)),
        )
        .group_by(Message.recipient_key)
    )


@dataclass
class Claimed:
    """Rows claimed by this worker, grouped by recipient so each person's stay in order.

    ``keys[i]`` is the recipient of ``groups[i]``, or None for a group that keeps no order (a
    callback answer); ``full`` says the claim hit its limit, so more rows may be due already.
    """

    groups: list[list[Outgoing]]
    keys: list[str | None] = field(default_factory=list)
    full: bool = False


@dataclass(frozen=True)
class _Outcome:
    """The result of one send, waiting in the buffer to be written on its row."""

    outgoing: Outgoing
    result: Sent | RetryLater | PermanentFailure


@dataclass(frozen=True)
class _Release:
    """Claimed rows given back unsent (they wait behind a failed one, or the lease ran low)."""

    ids: tuple[int, ...]


class OutcomeBuffer:
    """Outcomes of sends, written a few milliseconds' worth at a time in one transaction.

    Made inside the worker's event loop. ``add`` returns a future that is done once the entry
    is committed. While one write runs, new entries gather for the next, so the busier the
    worker, the larger each transaction.
    """

    def __init__(
        self, write: Callable[[list[_Outcome | _Release]], None], interval: float = 0.005
    ) -> None:
        self._write = write
        self.interval = interval
        self.loop = asyncio.get_running_loop()
        self._entries: list[_Outcome | _Release] = []
        self._done: asyncio.Future[None] | None = None
        self._lock = asyncio.Lock()
        self._flushes: set[asyncio.Task[None]] = set()

    def add(self, entry: _Outcome | _Release) -> asyncio.Future[None]:
        """Queue an entry for the next write; the future is done when it is committed."""
        if self._done is None:
            self._done = asyncio.get_running_loop().create_future()
            flush = asyncio.create_task(self._flush_soon())
            self._flushes.add(flush)
            flush.add_done_callback(self._flushes.discard)
        self._entries.append(entry)
        return self._done

    async def _flush_soon(self) -> None:
        await asyncio.sleep(self.interval)
        async with self._lock:  # one write at a time; entries keep gathering meanwhile
            entries, done = self._entries, self._done
            self._entries, self._done = [], None
            assert done is not None  # noqa: S101 - set by the add that scheduled this flush
            try:
                await asyncio.to_thread(self._write, entries)
            except Exception as exc:  # noqa: BLE001 - handed to every sender waiting on it
                done.set_exception(exc)
            else:
                done.set_result(None)


class DeliveryWorker:
    """Claims outbox rows, sends them through the channel senders, records the outcome.

    Each claimed recipient group is sent by a task of its own and the loop claims again while
    they run (up to ``max_in_flight`` groups), so one chat paced at a message a second never
    holds up everybody else's replies. A recipient is never in two groups at once.
    """

    def __init__(
        self,
        uow: UnitOfWork,
        senders: dict[str, Sender],
        *,
        name: str | None = None,
        clock: Callable[[], datetime] = utcnow,
        batch_size: int = 100,
        poll_interval: float = 0.25,
        storage_dir: Path | None = None,
        render_reminder: Callable[[Prompt, str, str, bool], tuple[str, dict[str, object] | None]]
        | None = None,
        database_url: str | None = None,
        lease: timedelta = LEASE,
        max_in_flight: int = MAX_IN_FLIGHT,
        flush_interval: float = 0.005,
    ) -> None:
        if lease <= timedelta(0):
            raise ValueError("the lease must be positive")
        if max_in_flight < 1:
            raise ValueError("max_in_flight must be at least 1")
        self.uow = uow
        self.senders = senders
        self.name = name or f"{socket.gethostname()}:{os.getpid()}"
        self.clock = clock
        self.batch_size = batch_size
        self.poll_interval = poll_interval
        self.storage_dir = storage_dir
        self.render_reminder = render_reminder
        self.database_url = database_url
        self.lease = lease
        self.max_in_flight = max_in_flight
        self.flush_interval = flush_interval
        self._stop = asyncio.Event()
        self._wake = asyncio.Event()
        self._busy: set[str] = set()
        self._in_flight: set[asyncio.Task[None]] = set()
        self._outcomes: OutcomeBuffer | None = None
        self._claim_soon: asyncio.TimerHandle | None = None

    def stop(self) -> None:
        """Ask the worker to finish the groups it is sending and return."""
        self._stop.set()
        self._wake.set()

    # --- claiming and recording -------------------------------------------------------------

    def claim(self, max_groups: int | None = None, busy: Collection[str] = ()) -> Claimed:
        """Lease a batch of due rows, keeping each recipient's messages in order.

        At most ``max_groups`` groups; recipients in ``busy`` (being sent to by this worker)
        are left out, as are people whose earlier message is leased or waiting for a retry.
        """
        now = self.clock()
        with self.uow() as session:
            due = _due_query(is_postgres(session))
            params = {
                "now": now,
                "channels": list(self.senders),
                "busy": list(busy),
                "limit": self.batch_size,
            }
            rows = list(session.scalars(due, params))
            full = len(rows) == self.batch_size
            if not rows:
                return Claimed([])
            ordered = [r for r in rows if r.kind not in UNORDERED_KINDS]
            keys = {r.recipient_key for r in ordered}
            heads: dict[str | None, int] = {}
            if keys:
                heads = {
                    key: first
                    for key, first in session.execute(_heads_query(), {"keys": list(keys)}).all()
                }
            by_key: dict[str | None, list[Message]] = defaultdict(list)
            for row in ordered:
                by_key[row.recipient_key].append(row)
            # Button answers first: each is a group of its own and takes no time to send.
            candidates: list[tuple[str | None, list[Message]]] = [
                (None, [r]) for r in rows if r.kind in UNORDERED_KINDS
            ]
            for key, group in by_key.items():
                # An earlier message to this person is held elsewhere or waiting to retry:
                # sending these now would overtake it.
                if key is None or key in busy or heads.get(key) != group[0].id:
                    continue
                candidates.append((key, group[:MAX_GROUP]))
            if max_groups is not None:
                full = full or len(candidates) > max_groups
                candidates = candidates[:max_groups]
            claimed = Claimed([], [], full)
            # No send starts after half the lease: one that did could still be in flight when
            # the lease runs out and another worker claims, and sends, the same row again.
            send_by = time.monotonic() + self.lease.total_seconds() / 2
            for key, group in candidates:
                for row in group:
                    row.locked_until = now + self.lease
                    row.attempts += 1
                claimed.keys.append(key)
                claimed.groups.append(
                    [
                        Outgoing(
                            r.id,
                            r.channel,
                            r.kind,
                            r.to_address or "",
                            r.body or "",
                            r.reply_markup,
                            send_by,
                        )
                        for r in group
                    ]
                )
            return claimed

    def record(self, outgoing: Outgoing, outcome: Sent | RetryLater | PermanentFailure) -> None:
        """Write the outcome of one send on its row."""
        self.record_outcomes([_Outcome(outgoing, outcome)])

    def record_outcomes(self, entries: Sequence[_Outcome | _Release]) -> None:
        """Write outcomes of sends, and rows given back unsent, in one transaction, in order."""
        now = self.clock()
        with self.uow() as session:
            ids = [e.outgoing.id for e in entries if isinstance(e, _Outcome)]
            rows = {
                row.id: row for row in session.scalars(select(Message).where(Message.id.in_(ids)))
            }
            for entry in entries:
                if isinstance(entry, _Release):
                    self._release(session, entry.ids)
                elif (row := rows.get(entry.outgoing.id)) is not None:
                    self._apply(session, row, entry.result, now)

    def _apply(
        self,
        session: Session,
        row: Message,
        outcome: Sent | RetryLater | PermanentFailure,
        now: datetime,
    ) -> None:
        row.locked_until = None
        if isinstance(outcome, Sent):
            row.status = "sent"
            row.sent_at = now
            row.error = None
            if outcome.provider_id:
                row.channel_message_id = outcome.provider_id
            if outcome.chat_message_id:
                row.chat_message_id = outcome.chat_message_id
            self._erase_if_ephemeral(row)
        elif isinstance(outcome, RetryLater):
            row.error = str(outcome)[:500]
            if row.attempts >= MAX_ATTEMPTS:
                row.status = "failed"
                self._erase_if_ephemeral(row)
            else:
                wait = max(outcome.after or 0.0, backoff(row.attempts))
                row.next_attempt_at = now + timedelta(seconds=wait)
        else:
            row.status = "failed"
            row.error = str(outcome)[:500]
            self._erase_if_ephemeral(row)
            if outcome.opted_out and row.contact_id is not None:
                contact = session.get(Contact, row.contact_id)
                if contact is not None and contact.opted_out_at is None:
                    contact.opted_out_at = now
                # Nothing more goes to a person who opted out or blocked the bot.
                session.execute(
                    update(Message)
                    .where(
                        Message.contact_id == row.contact_id,
                        Message.direction == "out",
                        Message.status == "queued",
                        Message.id != row.id,
                    )
                    .values(status="suppressed")
                    .execution_options(synchronize_session=False)
                )

    @staticmethod
    def _erase_if_ephemeral(row: Message) -> None:
        if row.ephemeral:
            row.body = None
            row.to_address = None

    @staticmethod
    def _release(session: Session, ids: Sequence[int]) -> None:
        if ids:
            session.execute(
                update(Message)
                .where(Message.id.in_(list(ids)))
                .values(locked_until=None, attempts=Message.attempts - 1)
                .execution_options(synchronize_session=False)
            )

    # --- sending ----------------------------------------------------------------------------

    def _buffer(self) -> OutcomeBuffer:
        loop = asyncio.get_running_loop()
        if self._outcomes is None or self._outcomes.loop is not loop:  # e.g. asyncio.run twice
            self._outcomes = OutcomeBuffer(self.record_outcomes, self.flush_interval)
        return self._outcomes

    async def _attempt(self, outgoing: Outgoing) -> Sent | RetryLater | PermanentFailure | NotSent:
        if outgoing.send_by is not None and time.monotonic() > outgoing.send_by:
            return NotSent("the lease runs low")
        sender = self.senders[outgoing.channel]
        try:
            return await sender.send(outgoing)
        except (RetryLater, PermanentFailure, NotSent) as exc:
            return exc
        except Exception as exc:  # noqa: BLE001 - a bug in one send must not kill the worker
            log.exception("unexpected error sending message %s", outgoing.id)
            return RetryLater(f"unexpected: {type(exc).__name__}")

    async def _send_group(self, group: list[Outgoing]) -> None:
        """Send one person's messages in order; each outcome is written as soon as it is known.

        A row is marked sent only once its send call returned (at-least-once). A send that
        could not start before ``Outgoing.send_by`` gives its row, and the rest, back unsent.
        """
        buffer = self._buffer()
        written: set[asyncio.Future[None]] = set()
        for index, outgoing in enumerate(group):
            outcome = await self._attempt(outgoing)
            if isinstance(outcome, NotSent):
                written.add(buffer.add(_Release(tuple(o.id for o in group[index:]))))
                break
            written.add(buffer.add(_Outcome(outgoing, outcome)))
            if isinstance(outcome, Sent):
                continue
            if isinstance(outcome, PermanentFailure) and not outcome.opted_out:
                continue
            # Later messages to this person wait for this one to be retried (or are suppressed).
            written.add(buffer.add(_Release(tuple(o.id for o in group[index + 1 :]))))
            break
        await asyncio.gather(*written)

    def _start(self, claimed: Claimed) -> list[asyncio.Task[None]]:
        """A task per claimed group; the recipient stays busy until its outcomes are written."""
        tasks = []
        for key, group in zip(claimed.keys, claimed.groups, strict=True):
            if key is not None:
                self._busy.add(key)
            task = asyncio.create_task(self._guarded(group))
            self._in_flight.add(task)
            task.add_done_callback(functools.partial(self._finished, key))
            tasks.append(task)
        return tasks

    async def _guarded(self, group: list[Outgoing]) -> None:
        try:
            await self._send_group(group)
        except Exception:  # noqa: BLE001 - e.g. the database restarting: the lease runs out
            log.exception("recording the outcomes of %s failed", [o.id for o in group])

    def _finished(self, key: str | None, task: asyncio.Task[None]) -> None:
        full = len(self._in_flight) >= self.max_in_flight
        self._in_flight.discard(task)
        if key is not None:
            self._busy.discard(key)
        if full:
            self._wake.set()  # room for another group
        elif self._claim_soon is None:
            # This person's next messages may be due now. Claim shortly, once for all the groups
            # finishing meanwhile, rather than a transaction for every group that finishes.
            self._claim_soon = asyncio.get_running_loop().call_later(
                CLAIM_AFTER_FINISH, self._wake.set
            )

    async def _claim_and_start(self) -> tuple[Claimed, list[asyncio.Task[None]]]:
        room = self.max_in_flight - len(self._in_flight)
        claimed = await asyncio.to_thread(self.claim, room, frozenset(self._busy))
        return claimed, self._start(claimed)

    async def run_once(self) -> int:
        """Claim one batch and send it to the end; how many messages were attempted."""
        claimed, tasks = await self._claim_and_start()
        if tasks:
            await asyncio.gather(*tasks)
        return sum(len(g) for g in claimed.groups)

    # --- housekeeping -----------------------------------------------------------------------

    def heartbeat(self) -> None:
        """Record that this worker is alive."""
        now = self.clock()
        with self.uow() as session:
            beat = session.get(WorkerHeartbeat, self.name)
            if beat is None:
                session.add(WorkerHeartbeat(name=self.name, beat_at=now))
            else:
                beat.beat_at = now

    def expire_drafts(self) -> int:
        """Discard answers of reports silent for 72 hours."""
        now = self.clock()
        with self.uow() as session:
            query = select(Conversation).where(
                Conversation.updated_at < now - DRAFT_LIFETIME,
                Conversation.state.in_([s.value for s in DRAFT_STEPS]),
            )
            if is_postgres(session):
                query = query.with_for_update(skip_locked=True)
            rows = list(session.scalars(query.limit(500)))
            for row in rows:
                row.state = "idle"
                row.answers = {}
                row.flow = {"expired": True}
            return len(rows)

    def send_reminders(self) -> int:
        """One reminder, in their language, to people silent for 24 hours mid-report."""
        now = self.clock()
        local_hour = now.astimezone(KOSOVO).hour
        if local_hour >= QUIET_HOURS[0] or local_hour < QUIET_HOURS[1]:
            return 0
        if self.render_reminder is None:
            return 0
        count = 0
        with self.uow() as session:
            query = (
                select(Conversation, Contact)
                .join(Contact, Contact.id == Conversation.contact_id)
                .where(
                    Conversation.updated_at < now - REMINDER_AFTER,
                    Conversation.updated_at >= now - DRAFT_LIFETIME,
                    Conversation.reminded_at.is_(None),
                    Conversation.state.in_([s.value for s in DRAFT_STEPS]),
                    Contact.opted_out_at.is_(None),
                    Contact.is_test.is_(False),
                    Contact.channel.in_(list(self.senders)),
                )
                .limit(200)
            )
            if is_postgres(session):
                query = query.with_for_update(skip_locked=True, of=Conversation)
            messages = MessageRepository(session)
            for conv, contact in session.execute(query).all():
                text_, markup = self.render_reminder(
                    REMINDER, contact.language or "en", contact.channel, contact.plain_letters
                )
                messages.queue_outbound(
                    contact, contact.channel, contact.address, text_, markup, now=now
                )
                conv.reminded_at = now
                count += 1
        return count

    async def fetch_attachments(self) -> int:
        """Download evidence people sent into the storage folder."""
        if self.storage_dir is None:
            return 0
        with self.uow() as session:
            pending = list(
                session.scalars(
                    select(Attachment)
                    .where(
                        Attachment.fetched_at.is_(None),
                        Attachment.fetch_attempts < MAX_FETCH_ATTEMPTS,
                        Attachment.channel.in_(list(self.senders)),
                    )
                    .order_by(Attachment.id)
                    .limit(20)
                )
            )
            jobs = [
                (a.id, a.channel, a.source_ref, a.complaint_id, a.content_type) for a in pending
            ]
        done = 0
        for attachment_id, channel, ref, complaint_id, content_type in jobs:
            sender = self.senders.get(channel)
            download = getattr(sender, "download", None)
            if download is None:
                continue
            try:
                data: bytes = await download(ref, MAX_ATTACHMENT_BYTES)
                path = self._store_file(attachment_id, complaint_id, content_type, data)
            except (RetryLater, PermanentFailure) as exc:
                permanent = isinstance(exc, PermanentFailure)
                await asyncio.to_thread(self._attachment_failed, attachment_id, str(exc), permanent)
                continue
            except Exception as exc:  # noqa: BLE001 - one bad file must not block the others
                log.exception("unexpected error fetching attachment %s", attachment_id)
                error = f"unexpected: {type(exc).__name__}"
                await asyncio.to_thread(self._attachment_failed, attachment_id, error, False)
                continue
            await asyncio.to_thread(self._attachment_fetched, attachment_id, path, len(data))
            done += 1
        return done

    def _store_file(
        self, attachment_id: int, complaint_id: int | None, content_type: str | None, data: bytes
    ) -> str:
        assert self.storage_dir is not None  # noqa: S101 - checked by the caller
        folder = self.storage_dir / str(complaint_id or "unassigned")
        folder.mkdir(parents=True, exist_ok=True)
        name = f"{attachment_id}{_extension(content_type)}"
        target = folder / name
        tmp = target.with_suffix(target.suffix + ".part")
        tmp.write_bytes(data)
        tmp.replace(target)  # atomic: a half-written file is never taken for the evidence
        return str(target.relative_to(self.storage_dir))

    def _attachment_fetched(self, attachment_id: int, path: str, size: int) -> None:
        with self.uow() as session:
            attachment = session.get(Attachment, attachment_id)
            if attachment is not None:
                attachment.path = path
                attachment.size = size
                attachment.fetched_at = self.clock()
                attachment.fetch_error = None

    def _attachment_failed(self, attachment_id: int, error: str, permanent: bool) -> None:
        with self.uow() as session:
            attachment = session.get(Attachment, attachment_id)
            if attachment is not None:
                attachment.fetch_attempts = (
                    MAX_FETCH_ATTEMPTS if permanent else attachment.fetch_attempts + 1
                )
                attachment.fetch_error = error[:500]

    async def housekeeping(self) -> None:
        """Heartbeat, reminders, draft expiry, due check-ins and evidence downloads."""
        await asyncio.to_thread(self.heartbeat)
        await asyncio.to_thread(self.expire_drafts)
        await asyncio.to_thread(self.send_reminders)
        await asyncio.to_thread(
            send_due_checkins, self.uow, self.render_reminder, self.clock(), frozenset(self.senders)
        )
        await self.fetch_attachments()

    # --- the loop ---------------------------------------------------------------------------

    async def run(self, *, housekeeping_every: float = 15.0) -> None:
        """Send until stopped; claim again on NOTIFY (PostgreSQL), a finished group or a poll."""
        listener = Listener(self.database_url) if self.database_url else None
        if listener is not None:
            await asyncio.to_thread(listener.start)
        listening = (
            asyncio.create_task(self._listen(listener))
            if listener is not None and listener.ready
            else None
        )
        loop = asyncio.get_running_loop()
        housekeeping: asyncio.Task[None] | None = None
        last_housekeeping = float("-inf")
        try:
            while not self._stop.is_set():
                if (housekeeping is None or housekeeping.done()) and (
                    loop.time() - last_housekeeping >= housekeeping_every
                ):
                    # Beside the sends: a slow download must not hold up replies.
                    housekeeping = asyncio.create_task(self._housekeeping_quietly())
                    last_housekeeping = loop.time()
                self._wake.clear()  # before claiming: a NOTIFY during the claim is not lost
                if self._claim_soon is not None:  # this claim sees what finished so far
                    self._claim_soon.cancel()
                    self._claim_soon = None
                more = False
                if len(self._in_flight) < self.max_in_flight:
                    try:
                        claimed, _ = await self._claim_and_start()
                    except Exception:  # noqa: BLE001 - e.g. the database restarting: try again
                        log.exception("claiming a batch failed")
                        await asyncio.sleep(1.0)
                        continue
                    more = claimed.full
                if more and len(self._in_flight) < self.max_in_flight:
                    continue
                notified = listener is not None and listener.ready
                try:
                    await asyncio.wait_for(
                        self._wake.wait(), LISTEN_POLL if notified else self.poll_interval
                    )
                except TimeoutError:
                    pass
        finally:
            # Finish what was claimed: its outcomes are written before the worker returns.
            await asyncio.gather(*self._in_flight, return_exceptions=True)
            if self._claim_soon is not None:
                self._claim_soon.cancel()
                self._claim_soon = None
            if housekeeping is not None:
                await asyncio.gather(housekeeping, return_exceptions=True)
            if listening is not None:
                await asyncio.gather(listening, return_exceptions=True)
            if listener is not None:
                await asyncio.to_thread(listener.close)

    async def _listen(self, listener: Listener) -> None:
        """Turn NOTIFYs into wake-ups of the loop (the wait blocks, so in a thread)."""
        while not self._stop.is_set() and listener.ready:
            if await asyncio.to_thread(listener.wait, LISTEN_TIMEOUT):
                self._wake.set()

    async def _housekeeping_quietly(self) -> None:
        try:
            await self.housekeeping()
        except Exception:  # noqa: BLE001 - housekeeping must not stop deliveries
            log.exception("housekeeping failed")


class Listener:
    """LISTEN on a PostgreSQL channel so a commit that NOTIFYs it wakes a worker at once."""

    def __init__(self, database_url: str, channel: str = NOTIFY_CHANNEL) -> None:
        self.database_url = database_url
        self.channel = channel
        self.ready = False
        self._conn: object | None = None

    def start(self) -> None:
        if not self.database_url.startswith("postgresql"):
            return
        import psycopg

        url = self.database_url.replace("postgresql+psycopg://", "postgresql://", 1)
        try:
            conn = psycopg.connect(url, autocommit=True)
            conn.execute(f"LISTEN {self.channel}")
        except psycopg.Error:
            log.warning("LISTEN %s failed; polling instead", self.channel)
            return
        self._conn = conn
        self.ready = True

    def wait(self, timeout: float) -> bool:
        """Block until a notification arrives (True) or ``timeout`` seconds pass (False)."""
        import psycopg

        conn = self._conn
        if not isinstance(conn, psycopg.Connection):
            return False
        notified = False
        try:
            for _ in conn.notifies(timeout=timeout, stop_after=1):
                notified = True
        except psycopg.Error:
            self.ready = False
        return notified

    def close(self) -> None:
        import psycopg

        if isinstance(self._conn, psycopg.Connection):
            self._conn.close()


def notify_outbox(session: Session) -> None:
    """Wake the workers when this transaction commits (PostgreSQL NOTIFY is transactional)."""
    if is_postgres(session):
        session.execute(text(f"NOTIFY {NOTIFY_CHANNEL}"))


def _extension(content_type: str | None) -> str:
    return {
        "image/jpeg": ".jpg",
        "image/png": ".png",
        "image/gif": ".gif",
        "image/webp": ".webp",
        "audio/ogg": ".ogg",
        "audio/mpeg": ".mp3",
        "audio/amr": ".amr",
        "video/mp4": ".mp4",
        "video/3gpp": ".3gp",
        "application/pdf": ".pdf",
    }.get((content_type or "").split(";")[0].strip(), ".bin")
