"""Outbound webhooks end to end: events in the complaint's transaction, signed delivery to local
receivers, the retry schedule on an injected clock, failures of every kind, several workers on
PostgreSQL and a worker killed mid-batch."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import signal
import subprocess
import sys
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from pathlib import Path
from typing import Any

import pytest
from jsonschema import Draft202012Validator, FormatChecker
from sqlalchemy import func, select, text, update

from bot import case_events
from bot.app import Services, build_services
from bot.notify import (
    LEGAL_REQUESTED,
    SCHEDULE,
    SUBMITTED,
    TEST,
    UPDATED,
    WITHDRAWN,
    Target,
    WebhookSender,
    WebhookWorker,
    change_complaint,
    check_url,
    envelope,
    forbidden_address,
    new_event_id,
    new_secret,
    parse_retry_after,
    parse_secrets,
    retry_delay,
    sync_configured_endpoints,
)
from bot.settings import PROJECT_DIR, Settings, SettingsError
from storage.events import WebhookDelivery, WebhookEndpoint, WebhookEvent
from storage.models import Complaint, utcnow
from tests.conftest import PG_URL, TEST_FERNET_KEYS, TEST_HASH_KEY, make_settings
from tests.fakes.webhook_receiver import Answer, WebhookReceiver
from tests.helpers import FULL_REPORT, say

SCHEMAS = PROJECT_DIR / "docs" / "webhooks"
PHONE = "+38344123456"
OTHER_PHONE = "044 987 654"
DESCRIPTION = FULL_REPORT[10]


class FakeClock:
    """The worker's and intake's clock: frozen until a test moves it."""

    def __init__(self) -> None:
        self.moment = datetime.now(UTC).replace(microsecond=0)

    def __call__(self) -> datetime:
        return self.moment

    def advance(self, seconds: float) -> None:
        self.moment += timedelta(seconds=seconds)


def report(*, contact: str = "this", legal: bool = True, description: str = DESCRIPTION,
           stakes: str = "1 3", perpetrator: str = "3") -> list[str]:  # fmt: skip
    """A whole report on SMS (tests/helpers.py FULL_REPORT with some answers changed), sent."""
    script = list(FULL_REPORT)
    script[6] = perpetrator
    script[10] = description
    script[13] = stakes
    script[15] = "1" if legal else "2"
    contact_answers = {"this": ["1"], "other": ["2", OTHER_PHONE], "none": ["3"]}[contact]
    return script[:14] + contact_answers + script[15:] + ["1"]


def submit(services: Services, *, sender: str = PHONE, channel: str = "sms",
           is_test: bool = False, **answers: Any) -> str:  # fmt: skip
    """Send a whole report as one person; the reference code."""
    result = None
    for message in report(**answers):
        result = say(services, message, sender=sender, channel=channel, is_test=is_test)
    assert result is not None and result.complaint_reference is not None
    return result.complaint_reference


@dataclass
class Harness:
    """Services wired to two local receivers: the prioritisation queue and the legal team."""

    services: Services
    clock: FakeClock
    prio: WebhookReceiver
    legal: WebhookReceiver
    settings: Settings


@contextlib.contextmanager
def harness(database_url: str, tmp_path: Path, **overrides: Any) -> Iterator[Harness]:
    with WebhookReceiver(new_secret()) as prio, WebhookReceiver(new_secret()) as legal:
        settings = make_settings(
            database_url,
            tmp_path,
            notify_prioritisation_url=prio.url,
            notify_prioritisation_secret=_secret_of(prio),
            notify_legal_url=legal.url,
            notify_legal_secret=_secret_of(legal),
            notify_allow_private=True,
            **overrides,
        )
        services = build_services(settings)
        clock = FakeClock()
        services.intake.clock = clock  # events are stamped with the clock the worker uses
        try:
            yield Harness(services, clock, prio, legal, settings)
        finally:
            services.engine.dispose()


def _secret_of(receiver: WebhookReceiver) -> str:
    return " ".join(receiver.secrets)


@contextlib.asynccontextmanager
async def open_worker(
    services: Services, clock: Any = None, *, allow_private: bool = True, **kwargs: Any
) -> AsyncIterator[WebhookWorker]:
    """A webhook worker with its own sender; ``request_timeout`` shortens the 15 s timeout."""
    seconds = kwargs.pop("request_timeout", 5.0)
    async with WebhookSender(allow_private=allow_private, timeout=seconds) as sender:
        yield WebhookWorker(services.uow, sender, clock=clock or utcnow, jitter=0.0, **kwargs)


def deliver(h: Harness, **kwargs: Any) -> int:
    """Every delivery due by the harness clock, once; how many attempts were made."""

    async def go() -> int:
        async with open_worker(h.services, h.clock, **kwargs) as worker:
            return await worker.drain()

    return asyncio.run(go())


def stored_events(services: Services) -> list[dict[str, Any]]:
    with services.uow() as session:
        return [
            json.loads(e.body)
            for e in session.scalars(select(WebhookEvent).order_by(WebhookEvent.id))
        ]


def deliveries(services: Services) -> list[tuple[str, str, str, int]]:
    """(event type, endpoint, status, attempts) of every delivery."""
    with services.uow() as session:
        return [
            (t, n, d.status, d.attempts)
            for d, t, n in session.execute(
                select(WebhookDelivery, WebhookEvent.type, WebhookEndpoint.name)
                .join(WebhookEvent, WebhookEvent.id == WebhookDelivery.event_id)
                .join(WebhookEndpoint, WebhookEndpoint.id == WebhookDelivery.endpoint_id)
                .order_by(WebhookDelivery.id)
            )
        ]


def only_delivery(services: Services) -> WebhookDelivery:
    with services.uow() as session:
        return session.scalars(select(WebhookDelivery)).one()


def validate(payload: dict[str, Any]) -> None:
    schema = json.loads((SCHEMAS / f"{payload['type']}.v{payload['version']}.json").read_text())
    Draft202012Validator(schema, format_checker=FormatChecker()).validate(payload)


# --- events in the complaint's transaction ---------------------------------------------------


def test_a_submitted_complaint_gets_priority_institutions_and_events(
    database_url: str, tmp_path: Path
) -> None:
    with harness(database_url, tmp_path) as h:
        reference = submit(h.services)
        with h.services.uow() as session:
            complaint = session.scalars(select(Complaint)).one()
            assert complaint.priority == "P2"  # a child is affected, the job at risk
            assert [r["code"] for r in complaint.priority_reasons] == [
                "child_affected",
                "income_cut",
            ]
            names = [i["name"] for i in complaint.institutions]
            assert names[0] == "Ombudsperson Institution of Kosovo"
            assert "Municipal Office for Communities and Return, Gjakovë" in names
            assert "Free Legal Aid Agency" in names  # legal support was asked
        events = stored_events(h.services)
        assert [e["type"] for e in events] == [SUBMITTED, LEGAL_REQUESTED]
        assert all(e["data"]["reference"] == reference for e in events)
        assert deliveries(h.services) == [
            (SUBMITTED, "prioritisation", "pending", 0),
            (LEGAL_REQUESTED, "legal", "pending", 0),
        ]


def test_event_bodies_are_encrypted_at_rest(database_url: str, tmp_path: Path) -> None:
    with harness(database_url, tmp_path) as h:
        submit(h.services)
        with h.services.engine.connect() as conn:
            raw = conn.execute(text("SELECT body FROM webhook_event")).scalars().all()
            secrets_raw = conn.execute(text("SELECT secrets FROM webhook_endpoint")).scalars()
            stored = b"".join(bytes(r) for r in [*raw, *secrets_raw])
        assert stored
        for plain in (b"back of the class", PHONE.encode(), b"whsec_", b"RAE-"):
            assert plain not in stored


def test_test_complaints_never_emit_events(database_url: str, tmp_path: Path) -> None:
    with harness(database_url, tmp_path) as h:
        submit(h.services, is_test=True)
        with h.services.uow() as session:
            assert session.scalars(select(Complaint)).one().priority == "P2"
        assert stored_events(h.services) == []


def test_no_legal_support_no_legal_event(database_url: str, tmp_path: Path) -> None:
    with harness(database_url, tmp_path) as h:
        submit(h.services, legal=False)
        assert [e["type"] for e in stored_events(h.services)] == [SUBMITTED]


@pytest.mark.parametrize(
    ("contact", "expected"),
    [
        ("this", {"preference": "this", "channel": "sms", "address": PHONE}),
        ("other", {"preference": "other", "channel": "phone", "address": "+38344987654"}),
        ("none", None),
    ],
)
def test_contact_details_only_when_the_person_agreed(
    sqlite_only_url: str, tmp_path: Path, contact: str, expected: dict[str, str] | None
) -> None:
    with harness(sqlite_only_url, tmp_path) as h:
        submit(h.services, contact=contact)
        for event in stored_events(h.services):
            assert event["data"]["contact"] == expected
            assert event["data"]["answers"]["contact_preference"] == contact


def test_violence_in_the_description_makes_it_p1_and_routes_to_police(
    sqlite_only_url: str, tmp_path: Path
) -> None:
    with harness(sqlite_only_url, tmp_path) as h:
        submit(h.services, description="Më rrahën dy policë para shkollës", stakes="7")
        data = stored_events(h.services)[0]["data"]
        assert data["priority"] == "P1"
        assert data["priority_reasons"][0]["code"] == "violence_or_threat"
        assert data["priority_reasons"][0]["source"] == "words"
        assert "Kosovo Police" in [i["name"] for i in data["suggested_institutions"]]


def test_third_similar_complaint_in_90_days_is_a_pattern(database_url: str, tmp_path: Path) -> None:
    with harness(database_url, tmp_path) as h:
        for n in range(3):
            submit(h.services, sender=f"+3834400000{n}", stakes="7", legal=False)
        with h.services.uow() as session:
            rows = session.scalars(select(Complaint).order_by(Complaint.id)).all()
            assert [c.priority for c in rows] == ["P4", "P4", "P3"]
            assert rows[2].priority_reasons[0]["code"] == "repeated_pattern"


def test_every_emitted_payload_validates_against_its_schema(
    database_url: str, tmp_path: Path
) -> None:
    with harness(database_url, tmp_path) as h:
        submit(h.services, contact="other")
        submit(h.services, sender="+38344111111", contact="none", legal=False, stakes="7")
        arson = "они су нам запалили кућу"  # sr Cyrillic: they set our house on fire
        submit(h.services, sender="12345", channel="telegram", description=arson)
        with h.services.uow() as session:
            first = session.scalars(select(Complaint).order_by(Complaint.id)).first()
            assert first is not None
            change_complaint(session, first, status="in_review", priority="P1")
        say(h.services, "delete my data", sender="12345", channel="telegram")
        say(h.services, "1", sender="12345", channel="telegram")  # confirm
        payloads = stored_events(h.services)
        payloads.append(json.loads(envelope(TEST, new_event_id(), h.clock(),
                                            {"endpoint": "x", "message": "hi"})))  # fmt: skip
        types = {p["type"] for p in payloads}
        assert types == {SUBMITTED, LEGAL_REQUESTED, UPDATED, WITHDRAWN, TEST}
        for payload in payloads:
            validate(payload)


# --- changes and withdrawal ------------------------------------------------------------------


def test_status_and_priority_changes_emit_complaint_updated(
    database_url: str, tmp_path: Path
) -> None:
    with harness(database_url, tmp_path) as h:
        submit(h.services)
        with h.services.uow() as session:
            complaint = session.scalars(select(Complaint)).one()
            assert change_complaint(session, complaint, priority="P1")
            assert not change_complaint(session, complaint, priority="P1")  # no change, no event
            # The desk's way: set the status, then announce it on bot.case_events.
            complaint.status = "in_review"
            case_events.complaint_updated(session, complaint, {"status": "in_review"})
            case_events.complaint_updated(session, complaint, {"assignee": 3})  # not an event
        updates = [e["data"] for e in stored_events(h.services) if e["type"] == UPDATED]
        assert [(u["changed"], u["previous_priority"], u["priority"]) for u in updates] == [
            (["priority"], "P2", "P1"),
            (["status"], "P1", "P1"),
        ]
        assert updates[0]["priority_reasons"][0]["source"] == "staff"
        assert updates[1]["previous_status"] == "new"
        assert updates[1]["status"] == "in_review"
        # Both teams hear about a legal case's changes.
        names = sorted(n for t, n, *_ in deliveries(h.services) if t == UPDATED)
        assert names == ["legal", "legal", "prioritisation", "prioritisation"]


def test_a_change_announced_after_a_flush_still_becomes_an_event(
    sqlite_only_url: str, tmp_path: Path
) -> None:
    with harness(sqlite_only_url, tmp_path) as h:
        submit(h.services, legal=False)
        with h.services.uow() as session:
            complaint = session.scalars(select(Complaint)).one()
            complaint.status = "referred"
            session.flush()  # e.g. an audit row written first: the old value is forgotten
            case_events.complaint_updated(session, complaint, {"status": "referred"})
        [update_] = [e for e in stored_events(h.services) if e["type"] == UPDATED]
        assert update_["data"]["changed"] == ["status"]
        assert update_["data"]["previous_status"] is None
        validate(update_)


def test_updates_of_non_legal_cases_do_not_reach_the_legal_team(
    sqlite_only_url: str, tmp_path: Path
) -> None:
    with harness(sqlite_only_url, tmp_path) as h:
        submit(h.services, legal=False)
        with h.services.uow() as session:
            change_complaint(session, session.scalars(select(Complaint)).one(), status="referred")
        assert [n for t, n, *_ in deliveries(h.services) if t == UPDATED] == ["prioritisation"]


def test_delete_my_data_emits_withdrawn_and_erases_the_contact_from_events(
    database_url: str, tmp_path: Path
) -> None:
    with harness(database_url, tmp_path) as h:
        reference = submit(h.services)
        say(h.services, "delete my data")
        say(h.services, "1")
        events = stored_events(h.services)
        withdrawn = [e["data"] for e in events if e["type"] == WITHDRAWN]
        assert withdrawn == [
            {
                "reference": reference,
                "status": "withdrawn",
                "previous_status": "new",
                "legal_support": True,
                "contact_deleted": True,
                "withdrawn_at": withdrawn[0]["withdrawn_at"],
            }
        ]
        # Not yet delivered events lose the contact before they go out.
        assert all(e["data"].get("contact") is None for e in events)
        assert sorted(n for t, n, *_ in deliveries(h.services) if t == WITHDRAWN) == [
            "legal",
            "prioritisation",
        ]


# --- delivery --------------------------------------------------------------------------------


def test_sms_complaint_reaches_both_teams_correctly_signed(
    database_url: str, tmp_path: Path
) -> None:
    with harness(database_url, tmp_path) as h:
        reference = submit(h.services)
        assert deliver(h) == 2
        [submitted] = h.prio.accepted()
        [legal] = h.legal.accepted()
        for received, event_type in ((submitted, SUBMITTED), (legal, LEGAL_REQUESTED)):
            assert received.verified  # standardwebhooks.Webhook(secret).verify(body, headers)
            assert received.payload["type"] == event_type
            assert received.payload["data"]["reference"] == reference
            assert received.webhook_id == received.payload["id"]
            assert received.signature is not None and received.signature.startswith("v1,")
            validate(received.payload)
        assert submitted.payload["data"]["description"] == DESCRIPTION
        assert submitted.payload["data"]["contact"]["address"] == PHONE
        assert {s for *_, s, _ in deliveries(h.services)} == {"delivered"}
        assert deliver(h) == 0  # nothing is sent twice


def test_telegram_complaint_reaches_the_prioritisation_queue(
    sqlite_only_url: str, tmp_path: Path
) -> None:
    with harness(sqlite_only_url, tmp_path) as h:
        reference = submit(h.services, sender="7000001", channel="telegram", legal=False)
        deliver(h)
        [received] = h.prio.accepted(SUBMITTED)
        data = received.payload["data"]
        assert data["reference"] == reference
        assert data["channel"] == "telegram"
        assert data["contact"] == {"preference": "this", "channel": "telegram",
                                   "address": "7000001"}  # fmt: skip
        assert h.legal.received() == []


def test_legal_request_arrives_after_the_receiver_was_down_for_hours(
    database_url: str, tmp_path: Path
) -> None:
    with harness(database_url, tmp_path) as h:
        port, secret = h.legal.port, _secret_of(h.legal)
        h.legal.stop()
        reference = submit(h.services)
        deliver(h)
        assert len(h.prio.accepted()) == 1
        elapsed = 0
        for wait in SCHEDULE[1:6]:  # 5 s, 5 min, 30 min, 2 h, 5 h: down all along
            h.clock.advance(wait)
            elapsed += wait
            assert deliver(h) == 1
        assert elapsed > 7 * 3600
        with WebhookReceiver(secret, port=port) as back:
            h.clock.advance(SCHEDULE[6])  # 10 h later it is up again
            assert deliver(h) == 1
            [received] = back.accepted()
        assert received.payload["type"] == LEGAL_REQUESTED
        assert received.payload["data"]["reference"] == reference
        legal_row = [d for d in deliveries(h.services) if d[1] == "legal"]
        assert legal_row == [(LEGAL_REQUESTED, "legal", "delivered", 7)]


def _single_endpoint(h: Harness, receiver: WebhookReceiver) -> None:
    """Only the prioritisation receiver takes events (fewer moving parts)."""
    with h.services.uow() as session:
        session.execute(update(WebhookEndpoint).where(WebhookEndpoint.name == "legal")
                        .values(enabled=False))  # fmt: skip
        session.execute(update(WebhookEndpoint).where(WebhookEndpoint.name == "prioritisation")
                        .values(url=receiver.url, secrets=[_secret_of(receiver)]))  # fmt: skip


def test_the_retry_schedule_then_dead_letter_then_replay(
    sqlite_only_url: str, tmp_path: Path
) -> None:
    with harness(sqlite_only_url, tmp_path) as h:
        _single_endpoint(h, h.prio)
        h.prio.answer_always(Answer(500))
        submit(h.services, legal=False)
        waits = []
        for attempt in range(1, len(SCHEDULE) + 1):
            assert deliver(h) == 1, attempt
            row = only_delivery(h.services)
            assert row.attempts == attempt
            assert row.last_status == 500
            assert row.last_error == "HTTP 500"
            if attempt < len(SCHEDULE):
                assert row.status == "pending"
                assert row.last_attempt_at is not None
                waits.append((row.next_attempt_at - row.last_attempt_at).total_seconds())
                h.clock.advance(waits[-1] - 1)
                assert deliver(h) == 0  # not a second early
                h.clock.advance(1)
        assert waits == list(SCHEDULE[1:])
        row = only_delivery(h.services)
        assert row.status == "dead"
        ids = {r.webhook_id for r in h.prio.received()}
        assert len(h.prio.received()) == len(SCHEDULE) and len(ids) == 1  # stable webhook-id
        h.clock.advance(10 * 86400)
        assert deliver(h) == 0  # dead stays dead
        # raporto webhooks replay EVENT does this:
        h.prio.answer_always(Answer(204))
        with h.services.uow() as session:
            session.execute(update(WebhookDelivery).values(status="pending", attempts=0,
                                                           next_attempt_at=h.clock()))  # fmt: skip
        assert deliver(h) == 1
        assert h.prio.accepted()[0].webhook_id in ids


def test_jitter_spreads_retries_within_a_tenth() -> None:
    import random

    rng = random.Random(7)
    for attempts, base in enumerate(SCHEDULE[1:], start=1):
        delays = [retry_delay(attempts, rng) for _ in range(200)]
        assert all(base * 0.9 <= d <= base * 1.1 for d in delays)
        assert len(set(delays)) > 1
    assert retry_delay(0, rng) == 0  # the first attempt is immediate


@pytest.mark.parametrize("status", [429, 503])
def test_retry_after_is_honoured(sqlite_only_url: str, tmp_path: Path, status: int) -> None:
    with harness(sqlite_only_url, tmp_path) as h:
        _single_endpoint(h, h.prio)
        h.prio.script(Answer(status, {"Retry-After": "600"}))
        submit(h.services, legal=False)
        assert deliver(h) == 1
        h.clock.advance(SCHEDULE[1] + 1)  # the schedule alone would retry now
        assert deliver(h) == 0
        h.clock.advance(600)
        assert deliver(h) == 1
        assert len(h.prio.accepted()) == 1


def test_retry_after_as_an_http_date() -> None:
    now = datetime(2026, 11, 23, 10, 0, tzinfo=UTC)
    later = format_datetime(now + timedelta(minutes=2), usegmt=True)
    assert parse_retry_after(later, now) == 120
    assert parse_retry_after("30", now) == 30
    assert parse_retry_after("10000000", now) == 86400  # capped at a day
    assert parse_retry_after("soon", now) is None
    assert parse_retry_after(None, now) is None


def test_410_disables_the_endpoint(database_url: str, tmp_path: Path) -> None:
    with harness(database_url, tmp_path) as h:
        h.legal.answer_always(Answer(410))
        submit(h.services)
        deliver(h)
        with h.services.uow() as session:
            legal = session.scalars(
                select(WebhookEndpoint).where(WebhookEndpoint.name == "legal")
            ).one()
            assert not legal.enabled
            assert legal.disabled_reason is not None and "410" in legal.disabled_reason
        # The next complaint is not queued for it; the prioritisation queue is unaffected.
        submit(h.services, sender="+38344222222")
        h.clock.advance(3600)
        deliver(h)
        assert len(h.legal.received()) == 1
        assert len(h.prio.accepted()) == 2
        # Enabled again (raporto webhooks enable legal), its waiting delivery goes out.
        h.legal.answer_always(Answer(204))
        with h.services.uow() as session:
            session.execute(update(WebhookEndpoint).values(enabled=True, disabled_reason=None))
        deliver(h)
        assert len(h.legal.accepted()) == 1


def test_a_slow_receiver_times_out_and_is_retried_with_the_same_id(
    sqlite_only_url: str, tmp_path: Path
) -> None:
    with harness(sqlite_only_url, tmp_path) as h:
        _single_endpoint(h, h.prio)
        h.prio.script(Answer(204, delay=3.0))
        submit(h.services, legal=False)
        assert deliver(h, request_timeout=0.5) == 1
        row = only_delivery(h.services)
        assert row.status == "pending"
        assert row.last_error == "timeout after 0.5 s"
        h.clock.advance(SCHEDULE[1])
        assert deliver(h, request_timeout=0.5) == 1
        assert only_delivery(h.services).status == "delivered"
        h.prio.wait_for_accepted(2)  # the slow answer arrived too, too late to count for us
        assert len({r.webhook_id for r in h.prio.accepted()}) == 1


def test_receiver_down_is_a_connection_failure(sqlite_only_url: str, tmp_path: Path) -> None:
    with harness(sqlite_only_url, tmp_path) as h:
        _single_endpoint(h, h.prio)
        h.prio.stop()
        submit(h.services, legal=False)
        deliver(h)
        row = only_delivery(h.services)
        assert row.status == "pending" and row.attempts == 1
        assert row.last_error is not None and row.last_error.startswith("connection failed")


@pytest.mark.parametrize("status", [301, 302, 307, 308])
def test_redirects_are_failures_and_not_followed(
    sqlite_only_url: str, tmp_path: Path, status: int
) -> None:
    with harness(sqlite_only_url, tmp_path) as h:
        _single_endpoint(h, h.prio)
        h.prio.script(Answer(status, {"Location": h.prio.origin + "/elsewhere"}))
        submit(h.services, legal=False)
        deliver(h)
        assert [r.path for r in h.prio.received()] == ["/hooks"]
        row = only_delivery(h.services)
        assert row.status == "pending"
        assert row.last_error == f"HTTP {status} (redirects are not followed)"


@pytest.mark.parametrize("host", ["127.0.0.1", "localhost"])
def test_private_targets_are_refused_unless_allowed(
    sqlite_only_url: str, tmp_path: Path, host: str
) -> None:
    with harness(sqlite_only_url, tmp_path) as h:
        _single_endpoint(h, h.prio)
        with h.services.uow() as session:
            session.execute(
                update(WebhookEndpoint).values(url=f"http://{host}:{h.prio.port}/hooks")
            )
        submit(h.services, legal=False)
        deliver(h, allow_private=False)
        assert h.prio.received() == []
        row = only_delivery(h.services)
        assert row.last_error == "refused: the host resolves to a non-public address"


@pytest.mark.parametrize(
    "address",
    ["127.0.0.1", "10.1.2.3", "172.16.0.1", "192.168.1.1", "169.254.169.254", "100.64.0.1",
     "0.0.0.0", "::1", "fe80::1", "fc00::1", "::ffff:127.0.0.1", "::ffff:10.0.0.1",
     "2002:7f00:1::1", "224.0.0.1"],
)  # fmt: skip
def test_non_public_addresses_are_forbidden(address: str) -> None:
    assert forbidden_address(address)


@pytest.mark.parametrize("address", ["93.184.216.34", "8.8.8.8", "2606:4700:4700::1111"])
def test_public_addresses_are_allowed(address: str) -> None:
    assert not forbidden_address(address)


def test_endpoint_urls_are_checked() -> None:
    assert check_url("https://hooks.example.org/x", allow_private=False)
    for bad in ("http://hooks.example.org/x", "https://10.0.0.5/x", "https://[::1]/x",
                "ftp://example.org", "https:///nohost"):  # fmt: skip
        with pytest.raises(ValueError):
            check_url(bad, allow_private=False)
    assert check_url("http://127.0.0.1:8080/x", allow_private=True)


def test_secrets_are_checked() -> None:
    secret = new_secret()
    assert parse_secrets(f"{secret} {new_secret()}")[0] == secret
    for bad in ("", "abc", "whsec_!!!", "whsec_" + "QUJD"):  # not base64, too short
        with pytest.raises(ValueError):
            parse_secrets(bad)


def test_two_secrets_sign_side_by_side_during_rotation(
    sqlite_only_url: str, tmp_path: Path
) -> None:
    old, new = new_secret(), new_secret()
    with (
        WebhookReceiver(old) as knows_old,
        WebhookReceiver(new) as knows_new,
        harness(sqlite_only_url, tmp_path) as h,
    ):
        with h.services.uow() as session:
            session.execute(update(WebhookEndpoint).where(WebhookEndpoint.name == "legal")
                            .values(url=knows_old.url, secrets=[new, old]))  # fmt: skip
            session.execute(update(WebhookEndpoint).where(WebhookEndpoint.name == "prioritisation")
                            .values(url=knows_new.url, secrets=[new, old]))  # fmt: skip
        submit(h.services)
        deliver(h)
        for receiver in (knows_old, knows_new):
            [received] = receiver.accepted()
            assert received.signature is not None
            assert len(received.signature.split(" ")) == 2


def test_nothing_personal_or_secret_is_logged(
    sqlite_only_url: str, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    with harness(sqlite_only_url, tmp_path) as h:
        h.prio.script(Answer(500))
        h.legal.script(Answer(410))
        submit(h.services, contact="other")
        deliver(h)
        h.clock.advance(SCHEDULE[1])
        deliver(h)
        logged = caplog.text
        assert "attempt 1 failed" in logged  # failures are logged, by id and endpoint name
        for secret in (_secret_of(h.prio), _secret_of(h.legal)):
            assert secret not in logged
        for personal in ("back of the class", PHONE, "+38344987654"):
            assert personal not in logged


# --- configured endpoints --------------------------------------------------------------------


def test_configured_endpoints_are_synced_at_start_up(sqlite_only_url: str, tmp_path: Path) -> None:
    with harness(sqlite_only_url, tmp_path) as h:
        with h.services.uow() as session:
            rows = {e.name: e for e in session.scalars(select(WebhookEndpoint))}
        assert rows["prioritisation"].event_types == [SUBMITTED, UPDATED, WITHDRAWN]
        assert not rows["prioritisation"].legal_only
        assert rows["legal"].event_types == [LEGAL_REQUESTED, UPDATED, WITHDRAWN]
        assert rows["legal"].legal_only
        # The legal URL is removed from the settings: the endpoint is switched off.
        assert sync_configured_endpoints(
            h.services.uow, h.settings.with_overrides(notify_legal_url="")
        ) == ["legal: disabled (not configured)"]
        # A new secret pair (rotation) and the URL back: updated and on again.
        rotated = f"{new_secret()} {_secret_of(h.legal)}"
        done = sync_configured_endpoints(
            h.services.uow, h.settings.with_overrides(notify_legal_secret=rotated)
        )
        assert done == ["legal: updated", "legal: enabled"]
        with h.services.uow() as session:
            legal = session.scalars(
                select(WebhookEndpoint).where(WebhookEndpoint.name == "legal")
            ).one()
            assert len(legal.secrets) == 2 and legal.enabled


def test_bad_endpoint_settings_stop_the_start(sqlite_only_url: str, tmp_path: Path) -> None:
    base = make_settings(sqlite_only_url, tmp_path)
    with pytest.raises(SettingsError, match="NOTIFY_PRIORITISATION_URL: .*https"):
        build_services(base.with_overrides(
            notify_prioritisation_url="http://hooks.example.org/x",
            notify_prioritisation_secret=new_secret()))  # fmt: skip
    with pytest.raises(SettingsError, match="NOTIFY_LEGAL_SECRET"):
        build_services(base.with_overrides(notify_legal_url="https://hooks.example.org/x",
                                           notify_legal_secret="secret"))  # fmt: skip


def test_the_worker_loop_delivers_as_complaints_arrive(database_url: str, tmp_path: Path) -> None:
    with harness(database_url, tmp_path) as h:
        h.services.intake.clock = utcnow

        async def go() -> None:
            async with open_worker(h.services, poll_interval=0.05,
                                   database_url=h.settings.database_url) as worker:  # fmt: skip
                task = asyncio.create_task(worker.run())
                await asyncio.to_thread(submit, h.services)
                await asyncio.to_thread(h.prio.wait_for_accepted, 1)
                await asyncio.to_thread(h.legal.wait_for_accepted, 1)
                worker.stop()
                await task

        asyncio.run(go())
        assert {s for *_, s, _ in deliveries(h.services)} == {"delivered"}


# --- several workers on PostgreSQL -----------------------------------------------------------


def queue_raw_events(services: Services, count: int) -> None:
    """Events straight into the outbox for the prioritisation endpoint (load for the workers)."""
    now = datetime.now(UTC) - timedelta(seconds=1)
    with services.uow() as session:
        endpoint = session.scalars(
            select(WebhookEndpoint).where(WebhookEndpoint.name == "prioritisation")
        ).one()
        session.execute(update(WebhookEndpoint).where(WebhookEndpoint.name == "legal")
                        .values(enabled=False))  # fmt: skip
        for n in range(count):
            event_id = new_event_id()
            body = envelope(TEST, event_id, now, {"endpoint": "prioritisation", "message": str(n)})
            event = WebhookEvent(
                event_id=event_id, type=TEST, legal=False, created_at=now, body=body
            )
            event.deliveries.append(WebhookDelivery(endpoint_id=endpoint.id, next_attempt_at=now))
            session.add(event)


@pytest.mark.postgres
def test_two_workers_share_the_work_and_deliver_each_event_once(
    postgres_url: str, tmp_path: Path
) -> None:
    with harness(postgres_url, tmp_path) as h:
        queue_raw_events(h.services, 120)

        async def go() -> None:
            async with (
                open_worker(h.services, name="a", capacity=8) as a,
                open_worker(h.services, name="b", capacity=8) as b,
            ):
                # Claims never overlap: SKIP LOCKED, then the lease.
                first = await asyncio.to_thread(a.claim, 10)
                second = await asyncio.to_thread(b.claim, 10)
                assert not {j.delivery_id for j in first} & {j.delivery_id for j in second}
                a.record(await asyncio.gather(*(a.attempt(j) for j in first)))
                b.record(await asyncio.gather(*(b.attempt(j) for j in second)))
                runs = [asyncio.create_task(w.run()) for w in (a, b)]
                await asyncio.to_thread(h.prio.wait_for_accepted, 120)
                a.stop()
                b.stop()
                await asyncio.gather(*runs)
                assert a.delivered >= 10 and b.delivered >= 10

        asyncio.run(go())
        ids = [r.webhook_id for r in h.prio.accepted()]
        assert len(ids) == 120 == len(set(ids))
        with h.services.uow() as session:
            by = dict(session.execute(select(WebhookDelivery.locked_by, func.count())
                                      .group_by(WebhookDelivery.locked_by)).all())  # fmt: skip
            assert set(by) == {"a", "b"}


KILLED_WORKER = """
import asyncio, sys
from storage import crypto
from storage.db import UnitOfWork, make_engine, make_session_factory
from bot.notify import WebhookSender, WebhookWorker

url, keys, hash_key = sys.argv[1], sys.argv[2].split(","), sys.argv[3]
crypto.configure(crypto.KeyRing(keys, hash_key))
uow = UnitOfWork(make_session_factory(make_engine(url)))

async def main():
    async with WebhookSender(allow_private=True) as sender:
        await WebhookWorker(uow, sender, name="doomed", capacity=4, database_url=url).run()

asyncio.run(main())
"""


@pytest.mark.postgres
def test_a_worker_killed_mid_batch_loses_nothing(postgres_url: str, tmp_path: Path) -> None:
    with harness(postgres_url, tmp_path) as h:
        h.prio.answer_always(Answer(204, delay=0.3))
        queue_raw_events(h.services, 30)
        proc = subprocess.Popen(  # noqa: S603 - our own interpreter and script
            [
                sys.executable,
                "-c",
                KILLED_WORKER,
                PG_URL,
                ",".join(TEST_FERNET_KEYS),
                TEST_HASH_KEY,
            ],  # fmt: skip
            cwd=PROJECT_DIR,
            env={**os.environ, "PYTHONPATH": str(PROJECT_DIR)},
        )
        try:
            h.prio.wait_for_requests(6)
        finally:
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait()
        assert proc.returncode == -signal.SIGKILL
        with h.services.uow() as session:
            leased = session.scalar(
                select(func.count())
                .select_from(WebhookDelivery)
                .where(WebhookDelivery.status == "pending", WebhookDelivery.locked_by == "doomed")
            )
        assert leased  # the killed worker left rows under its lease
        h.prio.answer_always(Answer(204))
        later = FakeClock()
        later.advance(120)  # past the killed worker's lease

        async def go() -> None:
            async with open_worker(h.services, later, name="survivor") as worker:
                await worker.drain()

        asyncio.run(go())
        accepted = h.prio.wait_for_accepted(30)
        by_id: dict[str, set[str]] = {}
        for received in accepted:
            by_id.setdefault(received.payload["id"], set()).add(str(received.webhook_id))
        assert len(by_id) == 30  # every event arrived at least once
        assert all(ids == {event_id} for event_id, ids in by_id.items())  # same id when again
        with h.services.uow() as session:
            statuses = set(session.scalars(select(WebhookDelivery.status)))
        assert statuses == {"delivered"}


def test_old_delivered_events_are_purged(sqlite_only_url: str, tmp_path: Path) -> None:
    with harness(sqlite_only_url, tmp_path) as h:
        submit(h.services)
        deliver(h)
        submit(h.services, sender="+38344333333")  # still pending: kept

        async def purge() -> int:
            async with open_worker(h.services, h.clock) as worker:
                h.clock.advance(31 * 86400)
                return await asyncio.to_thread(worker.purge)

        h.prio.stop()
        h.legal.stop()
        assert asyncio.run(purge()) == 2
        assert len(stored_events(h.services)) == 2


def test_sender_target_signatures_verify_with_the_library() -> None:
    from standardwebhooks import Webhook

    secret = new_secret()
    target = Target.of(1, "x", "https://hooks.example.org/", [secret])

    async def go() -> dict[str, str]:
        async with WebhookSender() as sender:
            return sender.headers("evt_1", '{"a":1}', target)

    headers = asyncio.run(go())
    assert Webhook(secret).verify('{"a":1}', headers) == {"a": 1}
