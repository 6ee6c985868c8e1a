"""The delivery worker: sends what the outbox holds, fetches evidence, reminds, expires drafts.

At-least-once: a row is claimed with a lease (``locked_until``) and, on PostgreSQL, under
``FOR UPDATE SKIP LOCKED`` so several workers share the outbox. A worker killed mid-send leaves
its rows to be claimed again when the lease runs out. One person's messages go out in order.
"""

from __future__ import annotations

import asyncio
import logging
import os
import random
import socket
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

from sqlalchemy import func, or_, select, text, update
from sqlalchemy.orm import Session

from bot.checkins import send_due_checkins
from bot.senders import Outgoing, PermanentFailure, RetryLater, Sender, Sent
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


@dataclass
class Claimed:
    """Rows claimed by this worker, grouped by recipient so each person's stay in order."""

    groups: list[list[Outgoing]]


class DeliveryWorker:
    """Claims outbox rows, sends them through the channel senders, records the outcome."""

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
    ) -> None:
        if lease <= timedelta(0):
            raise ValueError("the lease must be positive")
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
        self._stop = asyncio.Event()
        self._wake = asyncio.Event()

    def stop(self) -> None:
        """Ask the worker to finish its current batch and return."""
        self._stop.set()
        self._wake.set()

    # --- claiming and recording -------------------------------------------------------------

    def claim(self) -> Claimed:
        """Lease a batch of due rows, keeping each recipient's messages in order."""
        now = self.clock()
        with self.uow() as session:
            due = (
                select(Message)
                .where(
                    Message.direction == "out",
                    Message.status == "queued",
                    Message.next_attempt_at <= now,
                    or_(Message.locked_until.is_(None), Message.locked_until < now),
                    Message.channel.in_(list(self.senders)),
                )
                .order_by(Message.id)
                .limit(self.batch_size)
            )
            if is_postgres(session):
                due = due.with_for_update(skip_locked=True)
            rows = list(session.scalars(due))
            if not rows:
                return Claimed([])
            keys = {r.recipient_key for r in rows}
            heads: dict[str | None, int] = {
                key: first
                for key, first in session.execute(
                    select(Message.recipient_key, func.min(Message.id))
                    .where(
                        Message.direction == "out",
                        Message.status == "queued",
                        Message.recipient_key.in_(keys),
                    )
                    .group_by(Message.recipient_key)
                ).all()
            }
            by_key: dict[str | None, list[Message]] = defaultdict(list)
            for row in rows:
                by_key[row.recipient_key].append(row)
            groups: list[list[Outgoing]] = []
            for key, group in by_key.items():
                # An earlier message to this person is held elsewhere or waiting to retry:
                # sending these now would overtake it.
                if heads.get(key) != group[0].id:
                    continue
                group = group[:MAX_GROUP]
                for row in group:
                    row.locked_until = now + self.lease
                    row.attempts += 1
                groups.append(
                    [
                        Outgoing(
                            r.id,
                            r.channel,
                            r.kind,
                            r.to_address or "",
                            r.body or "",
                            r.reply_markup,
                        )
                        for r in group
                    ]
                )
            return Claimed(groups)

    def record(self, outgoing: Outgoing, outcome: Sent | RetryLater | PermanentFailure) -> None:
        """Write the outcome of one send on its row."""
        now = self.clock()
        with self.uow() as session:
            row = session.get(Message, outgoing.id)
            if row is None:
                return
            row.locked_until = None
            if isinstance(outcome, Sent):
                row.status = "sent"
                row.sent_at = now
                row.error = None
                if outcome.provider_id:
                    row.channel_message_id = outcome.provider_id
                if outcome.chat_message_id:
                    row.chat_message_id = outcome.chat_message_id
                if row.ephemeral:
                    row.body = None
                    row.to_address = None
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
                    )

    @staticmethod
    def _erase_if_ephemeral(row: Message) -> None:
        if row.ephemeral:
            row.body = None
            row.to_address = None

    async def _send_group(self, group: list[Outgoing]) -> None:
        for index, outgoing in enumerate(group):
            sender = self.senders[outgoing.channel]
            outcome: Sent | RetryLater | PermanentFailure
            try:
                outcome = await sender.send(outgoing)
            except (RetryLater, PermanentFailure) as exc:
                outcome = exc
            except Exception as exc:  # noqa: BLE001 - a bug in one send must not kill the worker
                log.exception("unexpected error sending message %s", outgoing.id)
                outcome = RetryLater(f"unexpected: {type(exc).__name__}")
            await asyncio.to_thread(self.record, outgoing, outcome)
            if not isinstance(outcome, Sent):
                # Later messages to this person wait for this one (their lease runs out first).
                if isinstance(outcome, PermanentFailure) and not outcome.opted_out:
                    continue
                await asyncio.to_thread(self._release, [o.id for o in group[index + 1 :]])
                return

    def _release(self, ids: list[int]) -> None:
        if not ids:
            return
        with self.uow() as session:
            session.execute(
                update(Message)
                .where(Message.id.in_(ids))
                .values(locked_until=None, attempts=Message.attempts - 1)
            )

    async def run_once(self) -> int:
        """Claim and send one batch; how many messages were attempted."""
        claimed = await asyncio.to_thread(self.claim)
        if not claimed.groups:
            return 0
        await asyncio.gather(*(self._send_group(g) for g in claimed.groups))
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
        """Send until stopped; wake on NOTIFY (PostgreSQL) or a short poll (SQLite)."""
        listener = Listener(self.database_url) if self.database_url else None
        if listener is not None:
            await asyncio.to_thread(listener.start)
        loop = asyncio.get_running_loop()
        last_housekeeping = 0.0
        try:
            while not self._stop.is_set():
                if loop.time() - last_housekeeping >= housekeeping_every:
                    try:
                        await self.housekeeping()
                    except Exception:  # noqa: BLE001 - housekeeping must not stop deliveries
                        log.exception("housekeeping failed")
                    last_housekeeping = loop.time()
                try:
                    sent = await self.run_once()
                except Exception:  # noqa: BLE001 - e.g. the database restarting: try again
                    log.exception("delivery batch failed")
                    sent = 0
                    await asyncio.sleep(1.0)
                if sent:
                    continue
                if listener is not None and listener.ready:
                    await asyncio.to_thread(listener.wait, 2.0)
                else:
                    self._wake.clear()
                    try:
                        await asyncio.wait_for(self._wake.wait(), self.poll_interval)
                    except TimeoutError:
                        pass
        finally:
            if listener is not None:
                await asyncio.to_thread(listener.close)


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

    def wait(self, timeout: float) -> None:
        import psycopg

        conn = self._conn
        if not isinstance(conn, psycopg.Connection):
            return
        try:
            for _ in conn.notifies(timeout=timeout, stop_after=1):
                pass
        except psycopg.Error:
            self.ready = False

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
