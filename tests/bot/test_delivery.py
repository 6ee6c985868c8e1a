"""The delivery worker against the fake Telegram and Twilio APIs, with the real senders.

Conversations go in through the HTTP endpoints; the worker is ``bot.worker.make_worker`` with
the senders ``bot.worker.channel_senders`` builds from settings (the Telegram rate limiter on a
virtual clock). Waiting for retries is never slept out: the worker's clock is injected.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import event, func, select, update

from bot.app import Services, build_services, create_app
from bot.delivery import MAX_GROUP, DeliveryWorker, notify_outbox
from bot.rendering import CALLBACK_DATA_MAX_BYTES
from bot.settings import Settings
from bot.worker import make_worker
from storage.models import Attachment, Complaint, Contact, Conversation, Message, utcnow
from storage.repositories import ContactRepository, MessageRepository
from tests.fakes.telegram_api import FakeTelegramAPI, TelegramCall
from tests.fakes.twilio_api import FakeTwilioAPI, TwilioRequest
from tests.helpers import FULL_REPORT, conversation, say
from tests.webhooks.channel_support import (
    CHAT,
    PHONE,
    SMS_FROM,
    Delivery,
    channel_settings,
    delivery,
    outbox,
    say_sms,
    telegram_dialog,
    telegram_report_steps,
)

SQLITE_ONLY = pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
"""For tests whose subject is not the database (both are covered by the tests around them)."""


class Clock:
    """A settable clock for the worker."""

    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **delta: float) -> datetime:
        self.now += timedelta(**delta)
        return self.now


@pytest.fixture
def tg() -> Iterator[FakeTelegramAPI]:
    """The fake Telegram Bot API."""
    with FakeTelegramAPI() as fake:
        yield fake


@pytest.fixture
def tw() -> Iterator[FakeTwilioAPI]:
    """The fake Twilio REST API."""
    with FakeTwilioAPI() as fake:
        yield fake


@pytest.fixture
def settings(database_url: str, tmp_path: Path, tg: FakeTelegramAPI, tw: FakeTwilioAPI) -> Settings:
    """Both channels on, pointed at the fakes."""
    return channel_settings(database_url, tmp_path, tg=tg, tw=tw)


@pytest.fixture
def app(settings: Settings) -> Iterator[Flask]:
    """The web app on those settings."""
    flask_app = create_app(settings)
    flask_app.config["TESTING"] = True
    yield flask_app
    flask_app.extensions["raporto"].engine.dispose()


@pytest.fixture
def client(app: Flask) -> FlaskClient:
    """A test client of the app."""
    return app.test_client()


@pytest.fixture
def services(app: Flask) -> Services:
    """The app's services (the worker shares them)."""
    found: Services = app.extensions["raporto"]
    return found


def queue(
    services: Services,
    channel: str,
    to: str,
    bodies: list[str],
    *,
    kind: str = "text",
    markup: dict[str, object] | None = None,
) -> list[int]:
    """Put rows straight in the outbox for one person, due a second ago; their ids.

    The commit NOTIFYs the workers on PostgreSQL, as the intake's does.
    """
    now = utcnow() - timedelta(seconds=1)
    with services.uow() as session:
        contact, _ = ContactRepository(session).get_or_create(channel, to)
        repo = MessageRepository(session)
        rows = [
            repo.queue_outbound(contact, channel, to, body, markup, now=now, kind=kind)
            for body in bodies
        ]
        session.flush()
        notify_outbox(session)
        return [row.id for row in rows]


def row(services: Services, message_id: int) -> Message:
    """One message row, fresh from the database."""
    with services.uow() as session:
        found = session.get(Message, message_id)
        assert found is not None
        return found


# --- whole conversations --------------------------------------------------------------------


def test_full_telegram_conversation_arrives_in_order_with_buttons(
    client: FlaskClient, services: Services, tg: FakeTelegramAPI
) -> None:
    steps = telegram_report_steps()
    with delivery(services) as worker:
        telegram_dialog(client, tg, worker, CHAT, steps)
    sent = tg.sent_messages()
    rows = outbox(services, kind="text")
    assert [r.status for r in rows] == ["sent"] * len(rows)
    # Every reply arrived, once, in the order it was queued, with its keyboard.
    assert [m["text"] for m in sent] == [r.body for r in rows]
    assert [m["reply_markup"] for m in sent] == [r.reply_markup for r in rows]
    assert [str(m["chat_id"]) for m in sent] == [str(CHAT)] * len(sent)
    keyboards = [m["reply_markup"] for m in sent if m["reply_markup"]]
    assert len(keyboards) >= 12
    for keyboard in keyboards:
        for number, (button,) in enumerate(keyboard["inline_keyboard"], 1):
            assert button["text"].startswith(f"{number}. ")
            assert 1 <= len(button["callback_data"].encode()) <= CALLBACK_DATA_MAX_BYTES
    # Each button press was answered (no spinner left in the person's app).
    presses = sum(1 for kind, _ in steps if kind == "press")
    assert len(tg.calls("answerCallbackQuery")) == presses
    assert [r.status for r in outbox(services, kind="callback_answer")] == ["sent"] * presses
    with services.uow() as session:
        complaint = session.scalars(select(Complaint)).one()
    assert complaint.channel == "telegram"
    assert complaint.stakes == ["child", "job"]
    assert complaint.reference in sent[-2]["text"]
    assert sent[-1]["text"].startswith("On a shared phone?")  # the chat clean-up offer


def test_full_sms_conversation_arrives_in_order_as_numbered_lines(
    client: FlaskClient, services: Services, tw: FakeTwilioAPI
) -> None:
    with delivery(services) as worker:
        for text in [*FULL_REPORT, "1"]:
            say_sms(client, text)
            worker.drain()
    sent = tw.sent_messages()
    rows = outbox(services, status="sent")
    assert [m["Body"] for m in sent] == [r.body for r in rows]
    assert all((m["To"], m["From"]) == (PHONE, SMS_FROM) for m in sent)
    assert all(r.reply_markup is None for r in rows)
    # Nothing waits and nothing went twice; the "got it" after the description was made moot
    # by the next message before it was due, so it was dropped rather than sent.
    assert outbox(services, status="queued") == []
    assert len({m["Sid"] for m in sent}) == len(sent)
    assert not any(m["Body"].startswith("Got it") for m in sent)
    menu = sent[0]["Body"].splitlines()
    assert menu[1:] == [
        "1 Shqip",
        "2 Romani",
        "3 Srpski",
        "4 Српски",
        "5 Türkçe",
        "6 Bosanski",
        "7 English",
    ]
    numbered = 0
    for message in sent:
        options = [line for line in message["Body"].splitlines()[1:] if re.match(r"^\d+ ", line)]
        if options:
            numbered += 1
            assert [int(line.split()[0]) for line in options] == list(range(1, len(options) + 1))
    assert numbered >= 12
    with services.uow() as session:
        complaint = session.scalars(select(Complaint)).one()
    assert complaint.reference in sent[-1]["Body"]


# --- retries --------------------------------------------------------------------------------


def test_telegram_429_waits_retry_after_and_delivers_once(
    client: FlaskClient, services: Services, tg: FakeTelegramAPI
) -> None:
    (message_id,) = queue(services, "telegram", str(CHAT), ["Pershendetje"])
    tg.fail_next("sendMessage", status=429, retry_after=30)
    clock = Clock(utcnow())
    with delivery(services) as worker:
        worker.set_clock(clock)
        assert worker.run_once() == 1
        waiting = row(services, message_id)
        assert waiting.status == "queued"
        assert waiting.next_attempt_at == clock.now + timedelta(seconds=30)
        assert waiting.error is not None and "429" in waiting.error
        clock.advance(seconds=29)
        assert worker.run_once() == 0  # not before Telegram's retry_after
        clock.advance(seconds=2)
        assert worker.run_once() == 1
        assert worker.drain() == 0
    assert [m["text"] for m in tg.sent_messages()] == ["Pershendetje"]
    assert [c.status for c in tg.calls("sendMessage")] == [429, 200]
    done = row(services, message_id)
    assert (done.status, done.attempts, done.error) == ("sent", 2, None)


@SQLITE_ONLY
@pytest.mark.parametrize("channel", ["telegram", "sms"])
def test_server_errors_are_retried_with_growing_backoff(
    services: Services, tg: FakeTelegramAPI, tw: FakeTwilioAPI, channel: str
) -> None:
    to = str(CHAT) if channel == "telegram" else PHONE
    (message_id,) = queue(services, channel, to, ["after two failures"])
    if channel == "telegram":
        tg.fail_next("sendMessage", status=500)
        tg.fail_next("sendMessage", status=502, body=b"<html>502 Bad Gateway</html>")
    else:
        tw.fail_next(status=500)
        tw.fail_next(status=503)
    clock = Clock(utcnow())
    waits = []
    with delivery(services) as worker:
        worker.set_clock(clock)
        for _ in range(2):
            assert worker.run_once() == 1
            retry = row(services, message_id)
            assert retry.status == "queued"
            waits.append((retry.next_attempt_at - clock.now).total_seconds())
            assert worker.run_once() == 0  # not due yet
            clock.now = retry.next_attempt_at
        assert worker.run_once() == 1
    assert 0.8 <= waits[0] <= 1.2  # BACKOFF_SECONDS (1, 5, ...) with ±20 % jitter
    assert 4.0 <= waits[1] <= 6.0
    done = row(services, message_id)
    assert (done.status, done.attempts) == ("sent", 3)
    if channel == "telegram":
        assert [m["text"] for m in tg.sent_messages()] == ["after two failures"]
    else:
        assert [m["Body"] for m in tw.sent_messages()] == ["after two failures"]


def test_order_is_kept_when_a_middle_message_is_retried(
    services: Services, tg: FakeTelegramAPI
) -> None:
    (answer,) = queue(
        services,
        "telegram",
        str(CHAT),
        [""],
        kind="callback_answer",
        markup={"callback_query_id": "42"},
    )
    second, third = queue(services, "telegram", str(CHAT), ["second", "third"])
    tg.fail_next("sendMessage", status=500)
    clock = Clock(utcnow())
    with delivery(services) as worker:
        worker.set_clock(clock)
        assert worker.run_once() == 3  # one group: answer sent, "second" failed, "third" held
        assert row(services, answer).status == "sent"
        assert row(services, second).status == "queued"
        held = row(services, third)
        assert (held.status, held.locked_until, held.attempts) == ("queued", None, 0)
        assert worker.run_once() == 0  # "third" must not overtake "second"
        clock.advance(seconds=5)
        assert worker.drain() == 2
    calls = [(c.method, c.params.get("text"), c.status) for c in tg.calls() if c.method != "getMe"]
    assert calls == [
        ("answerCallbackQuery", None, 200),
        ("sendMessage", "second", 500),
        ("sendMessage", "second", 200),
        ("sendMessage", "third", 200),
    ]


@SQLITE_ONLY
def test_a_long_backlog_to_one_person_is_claimed_in_small_groups(
    services: Services, tw: FakeTwilioAPI
) -> None:
    ids = queue(services, "sms", PHONE, [f"part {n}" for n in range(15)])
    clock = Clock(utcnow())
    with delivery(services) as worker:
        worker.set_clock(clock)
        assert worker.run_once() == MAX_GROUP  # paced sends to one chat must outrun the lease
        assert worker.run_once() == 15 - MAX_GROUP
    assert [m["Body"] for m in tw.sent_messages()] == [f"part {n}" for n in range(15)]
    assert {row(services, i).status for i in ids} == {"sent"}


@SQLITE_ONLY
def test_a_claim_is_leased_for_the_configured_time(services: Services) -> None:
    (message_id,) = queue(services, "sms", PHONE, ["leased"])
    clock = Clock(utcnow())
    with delivery(services) as worker:
        lease = make_worker(services, worker.senders, clock=clock, lease=timedelta(seconds=7))
        claimed = lease.claim()
    assert [[o.id for o in group] for group in claimed.groups] == [[message_id]]
    held = row(services, message_id)
    assert held.locked_until == clock.now + timedelta(seconds=7)
    assert held.attempts == 1


# --- permanent failures ---------------------------------------------------------------------


@SQLITE_ONLY
@pytest.mark.parametrize("channel", ["telegram", "sms"])
def test_blocked_or_opted_out_person_gets_nothing_more(
    services: Services, tg: FakeTelegramAPI, tw: FakeTwilioAPI, channel: str
) -> None:
    if channel == "telegram":
        to = str(CHAT)
        tg.block_chat(CHAT)
    else:
        to = PHONE
        tw.opt_out(PHONE)
    first, *later = queue(services, channel, to, ["one", "two", "three"])
    with delivery(services) as worker:
        assert worker.drain() == 3
        failed = row(services, first)
        assert failed.status == "failed"
        expected = "telegram 403" if channel == "telegram" else "twilio 21610"
        assert failed.error is not None and failed.error.startswith(expected)
        assert [row(services, i).status for i in later] == ["suppressed", "suppressed"]
        with services.uow() as session:
            assert session.scalars(select(Contact)).one().opted_out_at is not None
        assert worker.drain() == 0  # nothing retried
    if channel == "telegram":
        assert len(tg.calls("sendMessage")) == 1
        assert tg.sent_messages() == []
    else:
        assert len(tw.requests()) == 1
        assert tw.sent_messages() == []
    assert row(services, first).attempts == 1


@SQLITE_ONLY
@pytest.mark.parametrize("channel", ["telegram", "sms"])
def test_bad_request_fails_with_the_error_and_the_next_message_goes(
    services: Services, tg: FakeTelegramAPI, tw: FakeTwilioAPI, channel: str
) -> None:
    to = str(CHAT) if channel == "telegram" else PHONE
    if channel == "telegram":
        tg.fail_next("sendMessage", status=400, description="Bad Request: chat not found")
    else:
        tw.fail_next(status=400, code=21211, message="Invalid 'To' Phone Number")
    bad, good = queue(services, channel, to, ["bad", "good"])
    with delivery(services) as worker:
        assert worker.drain() == 2
        assert worker.drain() == 0  # not retried
    failed = row(services, bad)
    assert (failed.status, failed.attempts) == ("failed", 1)
    if channel == "telegram":
        assert failed.error == "telegram 400: Chat not found"
    else:
        assert failed.error is not None and "21211" in failed.error
    assert row(services, good).status == "sent"
    with services.uow() as session:
        assert session.scalars(select(Contact)).one().opted_out_at is None


# --- privacy --------------------------------------------------------------------------------


@SQLITE_ONLY
@pytest.mark.parametrize("outcome", ["sent", "failed"])
def test_no_consent_goodbye_is_erased_after_sending(
    client: FlaskClient, services: Services, tw: FakeTwilioAPI, outcome: str
) -> None:
    with delivery(services) as worker:
        for text in ["hello", "7"]:
            say_sms(client, text)
        worker.drain()
        say_sms(client, "2")  # no consent: keep nothing
        (goodbye,) = outbox(services, status="queued")
        assert goodbye.ephemeral and goodbye.contact_id is None
        assert goodbye.body is not None and goodbye.to_address == PHONE
        if outcome == "failed":
            tw.fail_next(status=400, code=21211)
        worker.drain()
    erased = row(services, goodbye.id)
    assert erased.status == outcome
    assert (erased.body, erased.to_address) == (None, None)
    with services.uow() as session:
        assert session.scalar(select(func.count()).select_from(Contact)) == 0
        leftovers = session.scalars(
            select(Message).where((Message.body.is_not(None)) | (Message.to_address.is_not(None)))
        ).all()
        assert leftovers == []
    if outcome == "sent":
        assert tw.sent_messages()[-1]["Body"].startswith("We understand. Nothing was recorded.")


@SQLITE_ONLY
def test_one_failing_download_does_not_hold_up_the_others(
    services: Services, tg: FakeTelegramAPI
) -> None:
    tg.add_file("AgACfirst", b"first photo")
    tg.add_file("AgACsecond", b"second photo")
    with services.uow() as session:
        for ref in ["AgACfirst", "AgACsecond"]:
            session.add(
                Attachment(
                    channel="telegram", kind="photo", source_ref=ref, content_type="image/jpeg"
                )
            )
    tg.fail_next("getFile", 401, "Unauthorized")  # PTB: InvalidToken, neither 400 nor network
    with delivery(services) as worker:
        assert worker.fetch_attachments() == 1
        with services.uow() as session:
            first, second = session.scalars(select(Attachment).order_by(Attachment.id)).all()
        assert (first.fetched_at, first.fetch_attempts) == (None, 1)
        assert first.fetch_error is not None
        assert second.path is not None
        assert worker.fetch_attachments() == 1  # tried again later
    with services.uow() as session:
        paths = [a.path for a in session.scalars(select(Attachment).order_by(Attachment.id))]
    storage = services.settings.storage_dir
    assert [(storage / p).read_bytes() for p in paths if p] == [b"first photo", b"second photo"]


# --- several workers ------------------------------------------------------------------------


def test_two_workers_on_postgres_never_send_a_message_twice(
    postgres_url: str, tmp_path: Path, tw: FakeTwilioAPI
) -> None:
    settings = channel_settings(postgres_url, tmp_path, tw=tw)
    services = build_services(settings)
    try:
        people = [f"+3834410{n:04d}" for n in range(30)]
        expected = {person: [f"{person} #{i}" for i in range(10)] for person in people}
        now = utcnow() - timedelta(seconds=1)
        with services.uow() as session:
            contacts = {p: ContactRepository(session).get_or_create("sms", p)[0] for p in people}
            repo = MessageRepository(session)
            for i in range(10):  # interleaved, as replies to many people are queued
                for person in people:
                    body = expected[person][i]
                    repo.queue_outbound(contacts[person], "sms", person, body, None, now=now)

        def left() -> int:
            with services.uow() as session:
                return int(
                    session.scalar(
                        select(func.count()).select_from(Message).where(Message.status == "queued")
                    )
                    or 0
                )

        async def share(worker: DeliveryWorker) -> int:
            worker.batch_size = 25
            done = 0
            while True:
                claimed = await worker.run_once()
                done += claimed
                if not claimed:
                    if await asyncio.to_thread(left) == 0:
                        return done
                    await asyncio.sleep(0.01)

        counts: list[int] = []
        errors: list[BaseException] = []
        start = threading.Barrier(2)

        def run() -> None:
            try:
                with delivery(services) as worker:
                    start.wait()
                    counts.append(worker.loop.run(share(worker.worker), timeout=60))
            except BaseException as exc:  # reported below
                errors.append(exc)

        threads = [threading.Thread(target=run) for _ in range(2)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert errors == []
        sent = tw.sent_messages()
        bodies = [m["Body"] for m in sent]
        assert len(bodies) == 300
        assert len(set(bodies)) == 300  # never the same message twice
        assert sum(counts) == 300
        for person in people:  # and each person's messages in order
            assert [m["Body"] for m in sent if m["To"] == person] == expected[person]
        with services.uow() as session:
            statuses = session.scalars(select(Message.status).distinct()).all()
        assert statuses == ["sent"]
    finally:
        services.engine.dispose()


# --- sending while others wait --------------------------------------------------------------


@contextlib.contextmanager
def running(worker: Delivery) -> Iterator[None]:
    """The worker's own loop (``DeliveryWorker.run``) in its event loop until the block ends."""
    done = asyncio.run_coroutine_threadsafe(
        worker.worker.run(housekeeping_every=3600), worker.loop.loop
    )
    try:
        yield
    finally:
        worker.loop.loop.call_soon_threadsafe(worker.worker.stop)
        done.result(timeout=30)


def arrived(calls: list[TelegramCall] | list[TwilioRequest]) -> list[float]:
    """When each call reached the fake (``time.monotonic``)."""
    return [c.raw.received_at for c in calls]


def test_a_chat_paced_at_one_a_second_does_not_hold_up_other_people(
    services: Services, tg: FakeTelegramAPI, tw: FakeTwilioAPI
) -> None:
    words = ["one", "two", "three", "four", "five"]
    paced = queue(services, "telegram", str(CHAT), words)
    with delivery(services, virtual_limiter=False) as worker, running(worker):
        tg.wait_for(3)  # a burst of three, then the paced chat's next two wait a second each
        queued_at = time.monotonic()
        (sms,) = queue(services, "sms", PHONE, ["to another person"])
        (other,) = queue(services, "telegram", str(CHAT + 1), ["to another chat"])
        tw.wait_for(1)
        tg.wait_for(lambda: len(tg.sent_messages()) == 6, timeout=10)
    chat = arrived([c for c in tg.calls("sendMessage") if c.params["chat_id"] == CHAT])
    (other_at,) = arrived([c for c in tg.calls("sendMessage") if c.params["chat_id"] == CHAT + 1])
    (sms_at,) = arrived(tw.requests())
    # A burst of three, then one a second: the fifth goes two seconds after the first at the
    # earliest (from the third it can be less: the burst's sends take their own time).
    assert chat[4] - chat[0] >= 1.9  # Telegram's limit for one chat is kept
    # The others neither waited for the paced chat's group nor for a poll (NOTIFY on PostgreSQL).
    assert sms_at < chat[4] and other_at < chat[4]
    assert sms_at - queued_at < 1.0 and other_at - queued_at < 1.0
    assert [m["text"] for m in tg.sent_messages() if m["chat_id"] == CHAT] == words
    assert {row(services, i).status for i in [*paced, sms, other]} == {"sent"}


def test_a_button_answer_does_not_wait_behind_paced_texts_to_its_chat(
    services: Services, tg: FakeTelegramAPI
) -> None:
    words = ["one", "two", "three", "four", "five"]
    queue(services, "telegram", str(CHAT), words)
    with delivery(services, virtual_limiter=False) as worker, running(worker):
        tg.wait_for(3)  # the burst is out; the last two are paced a second apart
        (answer,) = queue(
            services,
            "telegram",
            str(CHAT),
            [""],
            kind="callback_answer",
            markup={"callback_query_id": "77"},
        )
        tg.wait_for(lambda: len(tg.calls("answerCallbackQuery")) == 1)
        tg.wait_for(5, timeout=10)
    texts = arrived(tg.calls("sendMessage"))
    (answered,) = arrived(tg.calls("answerCallbackQuery"))
    assert texts[0] < answered < texts[4]  # not after the texts queued before it
    assert tg.calls("answerCallbackQuery")[0].params == {"callback_query_id": "77"}
    assert row(services, answer).status == "sent"
    assert [m["text"] for m in tg.sent_messages()] == words


def test_a_waiting_button_answer_does_not_hold_up_the_next_text(
    services: Services, tg: FakeTelegramAPI
) -> None:
    (answer,) = queue(
        services,
        "telegram",
        str(CHAT),
        [""],
        kind="callback_answer",
        markup={"callback_query_id": "78"},
    )
    (text,) = queue(services, "telegram", str(CHAT), ["the next question"])
    tg.fail_next("answerCallbackQuery", status=500)
    with delivery(services) as worker:
        assert worker.run_once() == 2
    assert row(services, answer).status == "queued"  # retried later, on its own
    assert row(services, text).status == "sent"


@pytest.mark.parametrize("database_url", ["postgres"], indirect=True)
def test_one_persons_messages_stay_in_order_while_groups_overlap(
    services: Services, tw: FakeTwilioAPI
) -> None:
    people = [f"+3834420{n:04d}" for n in range(8)]
    expected: dict[str, list[str]] = {p: [] for p in people}

    def more(round_: int) -> None:
        for person in people:
            bodies = [f"{person} r{round_} #{i}" for i in range(MAX_GROUP + 2)]
            expected[person] += bodies
            queue(services, "sms", person, bodies)

    tw.delay_next(0.05, times=40)  # sends take a while, so groups overlap and queue up
    with delivery(services) as worker, running(worker):
        more(0)
        tw.wait_for(20, timeout=30)
        more(1)  # queued while earlier groups to the same people are in flight
        total = sum(len(b) for b in expected.values())
        tw.wait_for(total, timeout=60)
    sent = tw.sent_messages()
    assert len({m["Body"] for m in sent}) == len(sent) == total  # each once
    for person in people:
        assert [m["Body"] for m in sent if m["To"] == person] == expected[person]
    with services.uow() as session:
        assert session.scalars(select(Message.status).distinct()).all() == ["sent"]


@SQLITE_ONLY
def test_outcomes_are_written_in_few_transactions(services: Services, tw: FakeTwilioAPI) -> None:
    people = [f"+3834430{n:04d}" for n in range(30)]
    for person in people:
        queue(services, "sms", person, [f"hello {person}"])
    commits: list[object] = []

    def committed(connection: object) -> None:
        commits.append(connection)

    event.listen(services.engine, "commit", committed)
    try:
        with delivery(services) as worker:
            assert worker.run_once() == 30
    finally:
        event.remove(services.engine, "commit", committed)
    assert len(tw.sent_messages()) == 30
    assert {r.status for r in outbox(services)} == {"sent"}
    assert all(r.channel_message_id for r in outbox(services))
    # One claim and a few batches of outcomes, not a transaction per message.
    assert len(commits) <= 1 + 30 // 3


@SQLITE_ONLY
def test_no_send_starts_when_the_lease_is_running_low(
    services: Services, tg: FakeTelegramAPI
) -> None:
    words = ["one", "two", "three", "four", "five"]
    ids = queue(services, "telegram", str(CHAT), words)
    with delivery(services, virtual_limiter=False) as worker:
        # A burst of three goes at once; half the lease (0.6 s) is gone before "four" could
        # go a second later: it and "five" are given back unsent.
        worker.worker.lease = timedelta(seconds=1.2)
        assert worker.run_once() == 5
        assert [m["text"] for m in tg.sent_messages()] == words[:3]
        assert {row(services, i).status for i in ids[:3]} == {"sent"}
        for held in (row(services, i) for i in ids[3:]):
            assert (held.status, held.locked_until, held.attempts) == ("queued", None, 0)
        # Each claim made too early gives the rows back at once, so a fast loop of claims could
        # run out before a slot comes near: claim now and then until the slots have come.
        deadline = time.monotonic() + 10
        while len(tg.sent_messages()) < len(words) and time.monotonic() < deadline:
            worker.run_once()
            time.sleep(0.05)
    assert [m["text"] for m in tg.sent_messages()] == words
    assert [row(services, i).attempts for i in ids] == [1] * 5


@SQLITE_ONLY
def test_stopping_finishes_the_groups_in_flight(services: Services, tg: FakeTelegramAPI) -> None:
    words = ["one", "two", "three", "four"]
    ids = queue(services, "telegram", str(CHAT), words)
    with delivery(services, virtual_limiter=False) as worker:
        with running(worker):
            tg.wait_for(1)
        # run() returned only after the paced fourth message (a second after the burst of
        # three) went and was recorded.
        assert [m["text"] for m in tg.sent_messages()] == words
        assert [row(services, i).status for i in ids] == ["sent"] * 4


# --- reminders and expiry -------------------------------------------------------------------

DAYTIME = datetime(2026, 3, 10, 10, 0, tzinfo=UTC)  # 11:00 in Kosovo
OTHER = "+38349000111"


def _silence(
    services: Services, silent_for: timedelta, *, at: datetime, sender: str = PHONE
) -> None:
    """Make one person's conversation look silent since ``at - silent_for``."""
    with services.uow() as session:
        contact = ContactRepository(session).find("sms", sender)
        assert contact is not None
        session.execute(
            update(Conversation)
            .where(Conversation.contact_id == contact.id)
            .values(updated_at=at - silent_for)
        )


def _silent_report(
    services: Services, silent_for: timedelta, *, at: datetime, sender: str = PHONE
) -> None:
    """A report left in the middle (the "ground" question), silent for ``silent_for``."""
    conversation(services, FULL_REPORT[:5], sender=sender)
    _silence(services, silent_for, at=at, sender=sender)


def _reminders(tw: FakeTwilioAPI) -> list[str]:
    return [m["Body"] for m in tw.sent_messages() if m["Body"].startswith("You have an unfinished")]


def test_a_silent_report_gets_exactly_one_reminder(services: Services, tw: FakeTwilioAPI) -> None:
    _silent_report(services, timedelta(hours=25), at=DAYTIME)
    clock = Clock(DAYTIME)
    with delivery(services) as worker:
        worker.drain()
        worker.set_clock(clock)
        worker.housekeeping()
        worker.drain()
        clock.advance(hours=3)
        worker.housekeeping()
        assert worker.worker.send_reminders() == 0
        worker.drain()
    assert _reminders(tw) == [
        "You have an unfinished report. Reply to continue, or send restart to begin again."
    ]
    with services.uow() as session:
        assert session.scalars(select(Conversation)).one().reminded_at == DAYTIME


@SQLITE_ONLY
def test_writing_again_makes_a_later_reminder_possible(services: Services) -> None:
    _silent_report(services, timedelta(hours=25), at=DAYTIME)
    with delivery(services) as worker:
        worker.set_clock(lambda: DAYTIME)
        assert worker.worker.send_reminders() == 1
        say(services, "1")  # the person answers
        with services.uow() as session:
            assert session.scalars(select(Conversation)).one().reminded_at is None


NIGHT_AND_DAY = [
    (datetime(2026, 3, 10, 19, 59, tzinfo=UTC), 1),  # 20:59 in Kosovo (CET)
    (datetime(2026, 3, 10, 20, 0, tzinfo=UTC), 0),  # 21:00
    (datetime(2026, 3, 10, 23, 30, tzinfo=UTC), 0),  # 00:30
    (datetime(2026, 3, 11, 6, 59, tzinfo=UTC), 0),  # 07:59
    (datetime(2026, 3, 11, 7, 0, tzinfo=UTC), 1),  # 08:00
    (datetime(2026, 7, 10, 5, 30, tzinfo=UTC), 0),  # 07:30 in summer (CEST)
    (datetime(2026, 7, 10, 19, 0, tzinfo=UTC), 0),  # 21:00 in summer
    (datetime(2026, 7, 10, 6, 0, tzinfo=UTC), 1),  # 08:00 in summer
]


@SQLITE_ONLY
def test_no_reminders_at_night_in_kosovo(services: Services) -> None:
    conversation(services, FULL_REPORT[:5])
    with delivery(services) as worker:
        for when, reminders in NIGHT_AND_DAY:
            with services.uow() as session:
                session.execute(update(Conversation).values(reminded_at=None))
            _silence(services, timedelta(hours=25), at=when)
            worker.set_clock(lambda when=when: when)
            assert worker.worker.send_reminders() == reminders, when


@SQLITE_ONLY
def test_no_reminder_when_opted_out_or_too_early_or_expired(
    services: Services, tw: FakeTwilioAPI
) -> None:
    _silent_report(services, timedelta(hours=23), at=DAYTIME)
    with delivery(services) as worker:
        worker.drain()
        worker.set_clock(lambda: DAYTIME)
        assert worker.worker.send_reminders() == 0  # silent for less than 24 hours
        _silence(services, timedelta(hours=73), at=DAYTIME)
        assert worker.worker.send_reminders() == 0  # the draft is past its 72 hours
        _silence(services, timedelta(hours=25), at=DAYTIME)
        say(services, "stop")
        _silence(services, timedelta(hours=25), at=DAYTIME)
        assert worker.worker.send_reminders() == 0  # opted out
        worker.drain()
    assert _reminders(tw) == []


def test_drafts_silent_for_72_hours_are_expired(services: Services) -> None:
    _silent_report(services, timedelta(hours=73), at=DAYTIME)
    _silent_report(services, timedelta(hours=71), at=DAYTIME, sender=OTHER)
    with delivery(services) as worker:
        worker.set_clock(lambda: DAYTIME)
        assert worker.worker.expire_drafts() == 1
        assert worker.worker.expire_drafts() == 0
    with services.uow() as session:
        states = {
            contact.address: (conv.state, conv.answers)
            for conv, contact in session.execute(
                select(Conversation, Contact).join(Contact, Contact.id == Conversation.contact_id)
            )
        }
    assert states[PHONE] == ("idle", {})
    assert states[OTHER][0] == "ground" and states[OTHER][1]
