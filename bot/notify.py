"""Outbound webhooks: complaint events written to an outbox, and the worker that delivers them.

Events are rows written in the same transaction as the complaint change they report (a
transactional outbox); their JSON body holds personal data and is stored encrypted. Each event
gets one delivery row per endpoint that takes it. The worker claims due deliveries with a lease
(and ``FOR UPDATE SKIP LOCKED`` on PostgreSQL, so several workers share the work), signs each
request the Standard Webhooks way and records the outcome. At-least-once: a worker killed
mid-delivery leaves its rows to be claimed again when the lease runs out, and the receiver sees
the same ``webhook-id`` again. Payloads and secrets are never logged.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import contextlib
import functools
import importlib.util
import ipaddress
import json
import logging
import os
import random
import secrets
import socket
import ssl
import sys
import time
import uuid
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from email.utils import parsedate_to_datetime
from typing import Any, Self

import anyio
import httpcore
import httpx
from sqlalchemy import (
    Connection,
    Integer,
    Select,
    bindparam,
    delete,
    exists,
    func,
    insert,
    inspect,
    or_,
    select,
    text,
    update,
)
from sqlalchemy.orm import Session
from standardwebhooks import Webhook

from bot import case_events
from bot.delivery import Listener
from bot.priority import (
    REPEAT_MIN_EARLIER,
    REPEAT_WINDOW_DAYS,
    Assessment,
    Reason,
    assess,
    counts_for_pattern,
)
from bot.routing import LEGAL_SUPPORT_SIGNAL, RoutingTable
from bot.settings import Settings, SettingsError
from dialogs.municipalities import BY_CODE
from dialogs.options import STATUS_LABELS
from storage.db import UnitOfWork, is_postgres
from storage.events import WebhookDelivery, WebhookEndpoint, WebhookEvent
from storage.models import Attachment, Complaint, Contact, utcnow
from storage.repositories import ComplaintRepository

log = logging.getLogger(__name__)

# httpcore tries `import sniffio` for every lock it sets up (several per request). Without
# sniffio installed (anyio 4 no longer needs it) each failed import searches sys.path again,
# which cost about a millisecond per delivery. Recording the absence makes the import fail at
# once; httpcore then assumes asyncio, which is what runs here.
if "sniffio" not in sys.modules and importlib.util.find_spec("sniffio") is None:
    sys.modules["sniffio"] = None  # type: ignore[assignment]

SUBMITTED = "complaint.submitted"
LEGAL_REQUESTED = "legal_support.requested"
UPDATED = "complaint.updated"
WITHDRAWN = "complaint.withdrawn"
TEST = "webhook.test"
EVENT_TYPES = (SUBMITTED, LEGAL_REQUESTED, UPDATED, WITHDRAWN)
"""The events an endpoint can subscribe to (``webhook.test`` is sent on request only)."""
EVENT_VERSION = 1

NOTIFY_CHANNEL = "raporto_webhooks"
# Seconds to wait before each attempt: the first at once, the last 24 h after the ninth.
SCHEDULE = (0, 5, 300, 1800, 7200, 18000, 36000, 50400, 72000, 86400)
JITTER = 0.1  # ± a tenth of each wait, so retries to one receiver do not arrive in step
TIMEOUT = 15.0
LEASE = timedelta(seconds=60)  # well above TIMEOUT: a lease must outlive the slowest attempt
MAX_RETRY_AFTER = 86400.0
CAPACITY = 32  # requests in flight per worker (and keep-alive clients of its sender)
TARGETS_TTL = 2.0  # seconds a worker keeps endpoints (URL, secrets) before reading them again
CONNECTIONS_PER_CLIENT = 4  # a client may hold connections to a few endpoints at once
MAX_RESPONSE_BYTES = 64 * 1024  # read (and drop) at most this much of an answer
EVENT_RETENTION = timedelta(days=30)
USER_AGENT = "Raporto-Webhooks/1"
SECRET_PREFIX = "whsec_"  # noqa: S105 - the Standard Webhooks prefix, not a secret

CONFIGURED_ENDPOINTS: tuple[tuple[str, str, str, tuple[str, ...], bool], ...] = (
    # name, URL setting, secret setting, events, legal cases only
    ("prioritisation", "notify_prioritisation_url", "notify_prioritisation_secret",
     (SUBMITTED, UPDATED, WITHDRAWN), False),
    ("legal", "notify_legal_url", "notify_legal_secret",
     (LEGAL_REQUESTED, UPDATED, WITHDRAWN), True),
)  # fmt: skip
RESERVED_NAMES = frozenset(name for name, *_ in CONFIGURED_ENDPOINTS)


# --- secrets and targets --------------------------------------------------------------------


def new_secret() -> str:
    """A new signing secret: ``whsec_`` and 32 random bytes in base64."""
    return SECRET_PREFIX + base64.b64encode(secrets.token_bytes(32)).decode()


def parse_secrets(value: str, what: str = "secret") -> list[str]:
    """One or more whsec_ secrets (space- or comma-separated); an error says what is wrong."""
    found = [s for s in value.replace(",", " ").split() if s]
    if not found:
        raise ValueError(f"{what} is empty (make one with: raporto webhooks new-secret)")
    for secret in found:
        if not secret.startswith(SECRET_PREFIX):
            raise ValueError(f"{what} must start with {SECRET_PREFIX}")
        try:
            raw = base64.b64decode(secret[len(SECRET_PREFIX) :], validate=True)
        except (binascii.Error, ValueError) as exc:
            raise ValueError(f"{what} is not base64 after {SECRET_PREFIX}") from exc
        if not 24 <= len(raw) <= 64:
            raise ValueError(f"{what} must hold 24 to 64 random bytes (Standard Webhooks)")
    return found


def forbidden_address(address: str) -> bool:
    """Whether an IP address is not a public internet address (loopback, private, link-local…)."""
    ip = ipaddress.ip_address(address.split("%", 1)[0])  # drop an IPv6 zone id
    if isinstance(ip, ipaddress.IPv6Address):
        mapped = ip.ipv4_mapped or ip.sixtofour
        if mapped is not None:
            ip = mapped
    return (
        not ip.is_global
        or ip.is_private
        or ip.is_loopback
        or ip.is_link_local
        or ip.is_multicast
        or ip.is_reserved
        or ip.is_unspecified
    )


def check_url(url: str, *, allow_private: bool) -> str:
    """The endpoint URL if acceptable: https (http only with private targets allowed), a host."""
    try:
        parsed = httpx.URL(url.strip())
    except (httpx.InvalidURL, TypeError) as exc:
        raise ValueError(f"not a URL: {exc}") from exc
    schemes = ("https", "http") if allow_private else ("https",)
    if parsed.scheme not in schemes:
        raise ValueError(
            "the URL must start with https://"
            + ("" if allow_private else " (http only with NOTIFY_ALLOW_PRIVATE=1)")
        )
    if not parsed.host:
        raise ValueError("the URL has no host")
    if not allow_private:
        try:
            literal = ipaddress.ip_address(parsed.host)
        except ValueError:
            literal = None
        if literal is not None and forbidden_address(str(literal)):
            raise ValueError("the URL points to a private, loopback or link-local address")
    return str(parsed)


class AddressRefused(httpcore.ConnectError):
    """The target resolves to an address webhooks may not reach."""


class GuardedBackend(httpcore.AsyncNetworkBackend):
    """Resolves the host itself, refuses non-public addresses, and connects to the checked IP.

    Checking at connect time (not before the request) leaves no gap for DNS rebinding: the
    address that was checked is the address connected to. TLS still verifies the host name.
    """

    def __init__(self, *, allow_private: bool) -> None:
        self.allow_private = allow_private
        self._inner = httpcore.AnyIOBackend()

    async def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,  # noqa: ASYNC109 - httpcore's interface
        local_address: str | None = None,
        socket_options: Iterable[Any] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        """Connect to the first acceptable address of ``host``; refuse if any is not public."""
        if self.allow_private:
            return await self._inner.connect_tcp(host, port, timeout, local_address, socket_options)
        try:
            with anyio.fail_after(timeout):
                infos = await anyio.getaddrinfo(host, port, type=socket.SOCK_STREAM)
        except (OSError, TimeoutError) as exc:
            raise httpcore.ConnectError(f"cannot resolve the host: {exc}") from exc
        addresses = list(dict.fromkeys(str(info[4][0]) for info in infos))
        if not addresses or any(forbidden_address(a) for a in addresses):
            raise AddressRefused("refused: the host resolves to a non-public address")
        last: Exception | None = None
        for address in addresses:
            try:
                return await self._inner.connect_tcp(
                    address, port, timeout, local_address, socket_options
                )
            except httpcore.ConnectError as exc:
                last = exc
        assert last is not None  # noqa: S101 - addresses is not empty
        raise last

    async def connect_unix_socket(
        self,
        path: str,
        timeout: float | None = None,  # noqa: ASYNC109 - httpcore's interface
        socket_options: Iterable[Any] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        """Never: webhooks go over TCP only."""
        raise AddressRefused("refused: unix sockets")

    async def sleep(self, seconds: float) -> None:
        """Sleep the way the inner backend does."""
        await self._inner.sleep(seconds)


class GuardedTransport(httpx.AsyncHTTPTransport):
    """httpx's pooled transport with the address guard as its network backend."""

    def __init__(
        self, *, limits: httpx.Limits, allow_private: bool, ssl_context: ssl.SSLContext
    ) -> None:
        super().__init__(limits=limits, trust_env=False, verify=ssl_context)
        # httpx has no parameter for the network backend: rebuild its connection pool around
        # ours (tests/bot/test_notify.py checks that a private target is still refused).
        self._pool = httpcore.AsyncConnectionPool(
            ssl_context=ssl_context,
            max_connections=limits.max_connections,
            max_keepalive_connections=limits.max_keepalive_connections,
            keepalive_expiry=limits.keepalive_expiry,
            network_backend=GuardedBackend(allow_private=allow_private),
        )


# --- building and storing events ------------------------------------------------------------


def iso(moment: datetime) -> str:
    """A UTC timestamp as in the payloads: ``2026-11-23T10:15:00Z``."""
    return moment.astimezone(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


def new_event_id() -> str:
    """A unique event id, sent as ``webhook-id`` (the receiver's idempotency key)."""
    return "evt_" + uuid.uuid4().hex


def _contact(
    session: Session, complaint: Complaint, address: str | None = None
) -> dict[str, str] | None:
    """How to reach the person, only when they agreed to be contacted.

    ``address`` is the contact's address when the caller has it (the intake, at submit):
    otherwise the contact is loaded and its address decrypted.
    """
    if complaint.contact_preference == "this" and complaint.contact_id is not None:
        if address is not None:
            return {"preference": "this", "channel": complaint.channel, "address": address}
        contact = session.get(Contact, complaint.contact_id)
        if contact is not None:
            return {"preference": "this", "channel": contact.channel, "address": contact.address}
    if complaint.contact_preference == "other" and complaint.contact_phone:
        return {"preference": "other", "channel": "phone", "address": complaint.contact_phone}
    return None


def complaint_data(
    session: Session,
    complaint: Complaint,
    *,
    contact_address: str | None = None,
    evidence_count: int | None = None,
) -> dict[str, Any]:
    """The complaint as sent to the prioritisation and legal teams (the ``data`` of an event).

    A caller that has the contact's address or the number of attachments at hand passes them,
    which saves loading them.
    """
    if evidence_count is None:
        evidence_count = len(complaint.attachments)
    municipality = BY_CODE.get(complaint.municipality)
    return {
        "reference": complaint.reference,
        "status": complaint.status,
        "priority": complaint.priority,
        "priority_reasons": list(complaint.priority_reasons or []),
        "suggested_institutions": list(complaint.institutions or []),
        "answers": {
            "danger_now": complaint.urgent,
            "area": complaint.area,
            "ground": complaint.ground,
            "ground_other": complaint.ground_other,
            "perpetrator": complaint.perpetrator,
            "municipality": complaint.municipality,
            "municipality_name": municipality.sq if municipality else None,
            "occurred": complaint.occurred,
            "stakes": list(complaint.stakes or []),
            "evidence_count": evidence_count,
            "contact_preference": complaint.contact_preference,
            "legal_support": complaint.legal_support,
            "sharing": complaint.sharing,
        },
        "description": complaint.description or "",
        "language": complaint.language,
        "channel": complaint.channel,
        "campaign": complaint.campaign,
        "contact": _contact(session, complaint, contact_address),
        "sharing": complaint.sharing,
        "submitted_at": iso(complaint.created_at),
        "updated_at": iso(complaint.updated_at),
    }


def envelope(event_type: str, event_id: str, now: datetime, data: Mapping[str, Any]) -> str:
    """The JSON body of an event, exactly as signed and sent on every attempt."""
    return json.dumps(
        {
            "type": event_type,
            "version": EVENT_VERSION,
            "id": event_id,
            "timestamp": iso(now),
            "data": data,
        },
        ensure_ascii=False,
        separators=(",", ":"),
    )


def notify_webhooks(session: Session) -> None:
    """Wake the webhook workers when this transaction commits (PostgreSQL NOTIFY)."""
    _wake_webhook_workers(session.connection())


def _wake_webhook_workers(connection: Connection) -> None:
    if connection.dialect.name == "postgresql":
        connection.execute(text(f"NOTIFY {NOTIFY_CHANNEL}"))


Endpoints = Sequence[tuple[int, list[str] | None, bool]]


_ENABLED_ENDPOINTS = select(
    WebhookEndpoint.id, WebhookEndpoint.event_types, WebhookEndpoint.legal_only
).where(WebhookEndpoint.enabled.is_(True))


def enabled_endpoints(session: Session) -> Endpoints:
    """The enabled endpoints: id, event types and whether only legal-support events go there."""
    # Core on the session's connection: the ORM's execution path cost more than the query.
    rows = session.connection().execute(_ENABLED_ENDPOINTS)
    return [(int(i), types, bool(legal_only)) for i, types, legal_only in rows]


def _event_row(
    event_type: str, complaint: Complaint, data: Mapping[str, Any], now: datetime
) -> dict[str, Any]:
    """The columns of a new event about a complaint."""
    event_id = new_event_id()
    return {
        "event_id": event_id,
        "type": event_type,
        "complaint_id": complaint.id,
        "legal": bool(complaint.legal_support),
        "body": envelope(event_type, event_id, now, data),
        "created_at": now,
    }


def _targets(event_type: str, legal: bool, endpoints: Endpoints) -> list[int]:
    """The endpoints that take an event of this type (legal-only ones take legal events)."""
    return [
        endpoint_id
        for endpoint_id, types, legal_only in endpoints
        if event_type in (types or []) and (legal or not legal_only)
    ]


def emit(
    session: Session,
    event_type: str,
    complaint: Complaint,
    data: Mapping[str, Any],
    now: datetime,
    endpoints: Endpoints | None = None,
) -> WebhookEvent | None:
    """Write an event and its deliveries in the caller's transaction; none for test complaints.

    ``endpoints`` saves the look-up when one change emits several events.
    """
    if complaint.is_test:
        return None
    if endpoints is None:
        endpoints = enabled_endpoints(session)
    event = WebhookEvent(**_event_row(event_type, complaint, data, now))
    for endpoint_id in _targets(event_type, event.legal, endpoints):
        event.deliveries.append(
            WebhookDelivery(endpoint_id=endpoint_id, next_attempt_at=now, created_at=now)
        )
    session.add(event)
    if event.deliveries:
        notify_webhooks(session)
    return event


_INSERT_EVENT = insert(WebhookEvent).returning(WebhookEvent.id)


def emit_now(
    connection: Connection,
    event_type: str,
    complaint: Complaint,
    data: Mapping[str, Any],
    now: datetime,
    endpoints: Endpoints,
) -> int | None:
    """:func:`emit` with Core statements run at once, outside the ORM; the event's row id.

    For the intake at submission, where the ORM's unit of work cost more than the inserts.
    """
    if complaint.is_test:
        return None
    row = _event_row(event_type, complaint, data, now)
    event_id = int(connection.execute(_INSERT_EVENT, row).scalar_one())
    targets = _targets(event_type, row["legal"], endpoints)
    if targets:
        connection.execute(
            insert(WebhookDelivery),
            [
                {"event_id": event_id, "endpoint_id": e, "next_attempt_at": now, "created_at": now}
                for e in targets
            ],
        )
        _wake_webhook_workers(connection)
    return event_id


@functools.cache
def _similar_query() -> Select[tuple[int]]:
    """The count of :func:`similar_earlier`, built once (building it cost more than running it)."""
    matching = (
        select(Complaint.id)
        .where(
            Complaint.perpetrator == bindparam("perpetrator"),
            Complaint.municipality == bindparam("municipality"),
            Complaint.created_at >= bindparam("since", type_=Complaint.created_at.type),
            Complaint.is_test.is_(False),
            Complaint.status != "withdrawn",
            Complaint.id != bindparam("own_id", type_=Integer),
        )
        .limit(bindparam("at_most", type_=Integer))
        .subquery()
    )
    return select(func.count()).select_from(matching)


def similar_earlier(
    session: Session, complaint: Complaint, now: datetime, *, at_most: int = REPEAT_MIN_EARLIER
) -> int:
    """Earlier real complaints with the same perpetrator type and municipality in the window,
    counted up to ``at_most``: the priority rule only asks whether there are that many, and a
    municipality with many such reports should not make each new one slower to take in."""
    if not counts_for_pattern(complaint.perpetrator, complaint.municipality):
        return 0
    params = {
        "perpetrator": complaint.perpetrator,
        "municipality": complaint.municipality,
        "since": now - timedelta(days=REPEAT_WINDOW_DAYS),
        "own_id": complaint.id if complaint.id is not None else 0,  # ids start at 1
        "at_most": at_most,
    }
    # A Core statement on the session's connection: the ORM adds nothing to a count.
    return int(session.connection().scalar(_similar_query(), params) or 0)


class ComplaintEvents:
    """Priority, routing and events for complaints; the intake calls it at submit and withdrawal."""

    def __init__(self, routing: RoutingTable) -> None:
        self.routing = routing

    def assess(self, session: Session, complaint: Complaint, now: datetime) -> Assessment:
        """Set the complaint's priority, reasons and suggested institutions."""
        assessment = assess(
            {
                "danger": complaint.urgent,
                "stakes": complaint.stakes or [],
                "perpetrator": complaint.perpetrator,
                "municipality": complaint.municipality,
            },
            complaint.description,
            similar_earlier=similar_earlier(session, complaint, now),
        )
        signals = set(assessment.codes)
        if complaint.legal_support:
            signals.add(LEGAL_SUPPORT_SIGNAL)
        complaint.priority = assessment.priority
        complaint.priority_reasons = assessment.reasons_json()
        complaint.institutions = [
            i.to_json()
            for i in self.routing.suggest(
                complaint.area, complaint.perpetrator, complaint.municipality, signals
            )
        ]
        return assessment

    def submitted(
        self,
        session: Session,
        complaint: Complaint,
        attachments: list[Attachment],
        now: datetime,
        *,
        contact_address: str | None = None,
    ) -> list[int]:
        """Assess a new complaint, store it, and queue complaint.submitted (and
        legal_support.requested); the events' row ids.

        The complaint is assessed before it is stored, so that it is inserted once with its
        priority rather than inserted and updated.
        """
        self.assess(session, complaint, now)
        ComplaintRepository(session).insert(complaint, attachments)
        if complaint.is_test:
            return []
        data = complaint_data(
            session, complaint, contact_address=contact_address, evidence_count=len(attachments)
        )
        types = [SUBMITTED] + ([LEGAL_REQUESTED] if complaint.legal_support else [])
        endpoints = enabled_endpoints(session)
        connection = session.connection()
        return [
            e
            for t in types
            if (e := emit_now(connection, t, complaint, data, now, endpoints)) is not None
        ]

    def withdrawn(
        self, session: Session, complaint: Complaint, previous_status: str, now: datetime
    ) -> WebhookEvent | None:
        """Queue complaint.withdrawn and erase the contact from events stored for it."""
        scrub_contact(session, complaint)
        data = withdrawn_data(complaint, previous_status, now)
        return emit(session, WITHDRAWN, complaint, data, now)


def withdrawn_data(complaint: Complaint, previous_status: str, now: datetime) -> dict[str, Any]:
    """The ``data`` of complaint.withdrawn: the receiver should delete the contact details."""
    return {
        "reference": complaint.reference,
        "status": complaint.status,
        "previous_status": previous_status,
        "legal_support": complaint.legal_support,
        "contact_deleted": True,
        "withdrawn_at": iso(now),
    }


def scrub_contact(session: Session, complaint: Complaint) -> int:
    """Remove the contact from every stored event body of a complaint (the person asked)."""
    changed = 0
    for event in session.scalars(
        select(WebhookEvent).where(WebhookEvent.complaint_id == complaint.id)
    ):
        payload = json.loads(event.body)
        data = payload.get("data")
        if isinstance(data, dict) and data.get("contact") is not None:
            data["contact"] = None
            event.body = json.dumps(payload, ensure_ascii=False, separators=(",", ":"))
            changed += 1
    return changed


def _previous(complaint: Complaint, attribute: str) -> Any:
    """The value an attribute had before it was set (None when a flush already forgot it)."""
    history = inspect(complaint).attrs[attribute].history
    return history.deleted[0] if history.deleted else None


def complaint_updated(
    session: Session,
    complaint: Complaint,
    *,
    previous_status: str | None,
    previous_priority: str | None,
    now: datetime | None = None,
    changed: Sequence[str] | None = None,
) -> WebhookEvent | None:
    """Queue complaint.updated (or complaint.withdrawn) after a status or priority change.

    ``changed`` names what changed when the caller knows; otherwise the previous values tell.
    """
    now = now or utcnow()
    if changed is None:
        changed = [
            name
            for name, before, after in (
                ("status", previous_status, complaint.status),
                ("priority", previous_priority, complaint.priority),
            )
            if before != after
        ]
    changed = list(changed)
    if not changed:
        return None
    if "status" in changed and complaint.status == "withdrawn":
        data = withdrawn_data(complaint, previous_status or "", now)
        return emit(session, WITHDRAWN, complaint, data, now)
    data = {
        "reference": complaint.reference,
        "changed": changed,
        "status": complaint.status,
        "previous_status": previous_status,
        "priority": complaint.priority,
        "previous_priority": previous_priority,
        "priority_reasons": list(complaint.priority_reasons or []),
        "legal_support": complaint.legal_support,
        "updated_at": iso(now),
    }
    return emit(session, UPDATED, complaint, data, now)


def on_case_change(session: Session, complaint: Complaint, changes: Mapping[str, Any]) -> None:
    """The bot.case_events listener: a status or priority change becomes an event."""
    if "status" not in changes and "priority" not in changes:
        return  # assignments, referrals, notes: not events for the receivers
    # The caller says what changed; the previous value is known unless a flush came between.
    complaint_updated(
        session,
        complaint,
        previous_status=_previous(complaint, "status") if "status" in changes else complaint.status,
        previous_priority=(
            _previous(complaint, "priority") if "priority" in changes else complaint.priority
        ),
        changed=[name for name in ("status", "priority") if name in changes],
    )


def change_complaint(
    session: Session,
    complaint: Complaint,
    *,
    status: str | None = None,
    priority: str | None = None,
    now: datetime | None = None,
) -> bool:
    """Change a complaint's status and/or priority and announce it (events in this transaction).

    A priority set here is marked as set by staff in the reasons. True when anything changed.
    """
    now = now or utcnow()
    changes: dict[str, Any] = {}
    if status is not None and status != complaint.status:
        if status not in STATUS_LABELS:
            raise ValueError(f"unknown status {status!r}")
        complaint.status = status
        changes["status"] = status
    if priority is not None and priority != complaint.priority:
        if priority not in ("P1", "P2", "P3", "P4"):
            raise ValueError(f"unknown priority {priority!r}")
        complaint.priority = priority
        staff = Reason("staff_set", priority, "staff", f"Priority set to {priority} by staff.")
        kept = [r for r in complaint.priority_reasons or [] if r.get("source") != "staff"]
        complaint.priority_reasons = [staff.to_json(), *kept]
        changes["priority"] = priority
    if not changes:
        return False
    complaint.updated_at = now
    case_events.complaint_updated(session, complaint, changes)
    return True


# --- endpoints ------------------------------------------------------------------------------


def sync_configured_endpoints(uow: UnitOfWork, settings: Settings) -> list[str]:
    """Create or update the endpoints configured by NOTIFY_* settings; what was done, per line."""
    wanted: list[tuple[str, str, list[str], tuple[str, ...], bool]] = []
    for name, url_setting, secret_setting, types, legal_only in CONFIGURED_ENDPOINTS:
        url = str(getattr(settings, url_setting))
        if not url:
            wanted.append((name, "", [], types, legal_only))
            continue
        try:
            url = check_url(url, allow_private=settings.notify_allow_private)
            found = parse_secrets(str(getattr(settings, secret_setting)), secret_setting.upper())
        except ValueError as exc:
            raise SettingsError(f"{url_setting.upper()}: {exc}") from exc
        wanted.append((name, url, found, types, legal_only))
    done: list[str] = []
    with uow() as session:
        for name, url, found, types, legal_only in wanted:
            row = session.scalars(
                select(WebhookEndpoint).where(WebhookEndpoint.name == name)
            ).one_or_none()
            if not url:
                if row is not None and row.enabled:
                    row.enabled = False
                    row.disabled_reason = "not configured (its NOTIFY_*_URL is empty)"
                    done.append(f"{name}: disabled (not configured)")
                continue
            if row is None:
                session.add(
                    WebhookEndpoint(
                        name=name, url=url, secrets=found, event_types=list(types),
                        legal_only=legal_only, source="settings",
                    )
                )  # fmt: skip
                done.append(f"{name}: added")
                continue
            moved = row.url != url
            if moved or row.secrets != found or row.event_types != list(types):
                row.url, row.secrets, row.event_types = url, found, list(types)
                row.legal_only, row.source, row.updated_at = legal_only, "settings", utcnow()
                done.append(f"{name}: updated")
            # Re-enable what settings turned off, or a new URL for a receiver that said "gone";
            # an endpoint staff disabled stays disabled.
            reason = row.disabled_reason or ""
            revive = reason.startswith("not configured") or (moved and "410" in reason)
            if not row.enabled and revive:
                row.enabled, row.disabled_reason = True, None
                done.append(f"{name}: enabled")
    return done


def endpoint_tables_exist(uow: UnitOfWork) -> bool:
    """Whether the database is migrated far enough to hold endpoints (not during db upgrade)."""
    with uow() as session:
        return inspect(session.get_bind()).has_table(WebhookEndpoint.__tablename__)


# --- delivery -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Target:
    """An endpoint as the worker uses it: where to send and the signers of its secrets."""

    id: int
    name: str
    url: str
    signers: tuple[Webhook, ...]

    @classmethod
    def of(cls, endpoint_id: int, name: str, url: str, secret_list: Sequence[str]) -> Target:
        """A target from an endpoint's stored fields."""
        return cls(endpoint_id, name, url, tuple(Webhook(s) for s in secret_list))


@dataclass(frozen=True)
class Job:
    """One claimed delivery: which attempt this is, the event and where it goes."""

    delivery_id: int
    attempt: int
    event_id: str
    body: str
    target: Target


@dataclass(frozen=True)
class Outcome:
    """What one attempt came to; ``error`` never holds the payload."""

    ok: bool
    status: int | None = None
    error: str | None = None
    retry_after: float | None = None
    gone: bool = False


def retry_delay(attempts: int, rng: random.Random | None = None, jitter: float = JITTER) -> float:
    """Seconds before attempt ``attempts + 1`` after ``attempts`` failed ones, with jitter."""
    base = SCHEDULE[min(attempts, len(SCHEDULE) - 1)]
    spread = (rng or random).uniform(-jitter, jitter)  # noqa: S311 - jitter, not a secret
    return base * (1 + spread)


def parse_retry_after(value: str | None, now: datetime) -> float | None:
    """Seconds a Retry-After header asks us to wait (delay-seconds or an HTTP date)."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return min(float(value), MAX_RETRY_AFTER)
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return min(max((when - now).total_seconds(), 0.0), MAX_RETRY_AFTER)


class WebhookSender:
    """Signs and posts events over pooled keep-alive httpx clients, one request per client.

    httpcore's pool re-checks every idle connection (a getpeername and a poll each) for every
    request, so one big pool costs more per request the more connections it holds. Many small
    clients, each lent to one request at a time, keep that cost flat and still reuse their
    connections (HTTP keep-alive); the most recently used client is lent first.
    """

    def __init__(
        self,
        *,
        allow_private: bool = False,
        timeout: float = TIMEOUT,
        max_connections: int = CAPACITY,
        wall_clock: Callable[[], float] | None = None,
    ) -> None:
        self.timeout = timeout
        # webhook-timestamp is checked by receivers against their own clock (±5 minutes), so
        # it is the real time even when tests move the scheduling clock ahead.
        self.wall_clock = wall_clock or (lambda: datetime.now(UTC).timestamp())
        context = httpx.create_ssl_context()  # one CA bundle load for every client
        limits = httpx.Limits(
            max_connections=CONNECTIONS_PER_CLIENT,
            max_keepalive_connections=CONNECTIONS_PER_CLIENT,
            keepalive_expiry=30.0,
        )
        self.clients = [
            httpx.AsyncClient(
                transport=GuardedTransport(
                    limits=limits, allow_private=allow_private, ssl_context=context
                ),
                timeout=httpx.Timeout(timeout),
                follow_redirects=False,  # a redirect could lead anywhere: it counts as failure
                trust_env=False,  # no proxies from the environment: they would bypass the guard
                headers={"user-agent": USER_AGENT},
            )
            for _ in range(max(1, max_connections))
        ]
        self._idle: asyncio.LifoQueue[httpx.AsyncClient] = asyncio.LifoQueue()
        for client in reversed(self.clients):
            self._idle.put_nowait(client)

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await asyncio.gather(*(c.aclose() for c in self.clients))

    def headers(self, event_id: str, body: str, target: Target) -> dict[str, str]:
        """The Standard Webhooks headers; one signature per secret while rotating."""
        stamp = int(self.wall_clock())
        moment = datetime.fromtimestamp(stamp, UTC)
        return {
            "content-type": "application/json",
            "webhook-id": event_id,
            "webhook-timestamp": str(stamp),
            "webhook-signature": " ".join(s.sign(event_id, moment, body) for s in target.signers),
        }

    async def send(self, event_id: str, body: str, target: Target, now: datetime) -> Outcome:
        """One attempt: 2xx is success; anything else, or no answer in time, is a failure."""
        client = await self._idle.get()
        try:
            async with asyncio.timeout(self.timeout):
                async with client.stream(
                    "POST",
                    target.url,
                    content=body.encode("utf-8"),
                    headers=self.headers(event_id, body, target),
                ) as response:
                    read = 0
                    async for chunk in response.aiter_raw():
                        read += len(chunk)
                        if read > MAX_RESPONSE_BYTES:
                            break  # the connection is dropped instead of reused
                    code = response.status_code
                    retry_after = response.headers.get("retry-after")
        except (TimeoutError, httpx.TimeoutException):
            return Outcome(False, error=f"timeout after {self.timeout:g} s")
        except httpx.TransportError as exc:
            if isinstance(exc.__cause__, AddressRefused):
                return Outcome(False, error=str(exc.__cause__)[:200])
            return Outcome(False, error=f"connection failed: {type(exc).__name__} {exc}"[:200])
        finally:
            self._idle.put_nowait(client)
        if 200 <= code < 300:
            return Outcome(True, status=code)
        if code == 410:
            return Outcome(False, status=code, error="HTTP 410 Gone", gone=True)
        if code in (429, 503):
            wait = parse_retry_after(retry_after, now)
            return Outcome(False, status=code, error=f"HTTP {code}", retry_after=wait)
        if 300 <= code < 400:
            return Outcome(False, status=code, error=f"HTTP {code} (redirects are not followed)")
        return Outcome(False, status=code, error=f"HTTP {code}")


@dataclass
class _Pending:
    """Results waiting to be written in one transaction."""

    results: list[tuple[Job, Outcome]] = field(default_factory=list)
    since: float = 0.0


class WebhookWorker:
    """Claims due deliveries, sends them concurrently, records outcomes in batches."""

    def __init__(
        self,
        uow: UnitOfWork,
        sender: WebhookSender,
        *,
        name: str | None = None,
        clock: Callable[[], datetime] = utcnow,
        capacity: int = CAPACITY,
        lease: timedelta = LEASE,
        poll_interval: float = 1.0,
        database_url: str | None = None,
        jitter: float = JITTER,
        rng: random.Random | None = None,
        flush_every: float = 0.05,
    ) -> None:
        self.uow = uow
        self.sender = sender
        self.name = (name or f"{socket.gethostname()}:{os.getpid()}:webhooks")[:64]
        self.clock = clock
        self.capacity = capacity
        self.lease = lease
        self.poll_interval = poll_interval
        self.database_url = database_url
        self.jitter = jitter
        self.rng = rng or random.Random()  # noqa: S311 - jitter, not a secret
        self.flush_every = flush_every
        self._stop = asyncio.Event()
        self._target_cache: dict[int, Target] = {}
        self._targets_read_at = float("-inf")
        self.delivered = 0
        self.failed = 0

    def stop(self) -> None:
        """Finish what is in flight, record it, and return from run()."""
        self._stop.set()

    # --- database side (run in a thread) ----------------------------------------------------

    def claim(self, limit: int) -> list[Job]:
        """Lease up to ``limit`` due deliveries to enabled endpoints, oldest due first."""
        now = self.clock()
        due = (
            select(WebhookDelivery.id)
            .join(WebhookEndpoint, WebhookEndpoint.id == WebhookDelivery.endpoint_id)
            .where(
                WebhookDelivery.status == "pending",
                WebhookDelivery.next_attempt_at <= now,
                or_(WebhookDelivery.locked_until.is_(None), WebhookDelivery.locked_until < now),
                WebhookEndpoint.enabled.is_(True),
            )
            # next_attempt_at alone, so the partial index gives the order (no sort of the backlog).
            .order_by(WebhookDelivery.next_attempt_at)
            .limit(limit)
        )
        lease = {
            "locked_until": now + self.lease,
            "locked_by": self.name,
            "attempts": WebhookDelivery.attempts + 1,
            "last_attempt_at": now,
        }
        wanted = (
            WebhookDelivery.id,
            WebhookDelivery.attempts,
            WebhookDelivery.endpoint_id,
            WebhookEvent.event_id,
            WebhookEvent.body,
        )
        with self.uow() as session:
            if is_postgres(session):
                # One round trip: pick rows no other worker holds, lease them, read the bodies.
                picked = due.with_for_update(skip_locked=True, of=WebhookDelivery).cte("due")
                rows = session.execute(
                    update(WebhookDelivery)
                    .where(
                        WebhookDelivery.id == picked.c.id,
                        WebhookEvent.id == WebhookDelivery.event_id,
                    )
                    .values(**lease)
                    .returning(*wanted)
                ).all()
            else:
                # SQLite has one writer at a time (BEGIN IMMEDIATE), and its RETURNING cannot
                # name a joined table: lease, then read.
                ids = list(session.scalars(due))
                if not ids:
                    return []
                session.execute(
                    update(WebhookDelivery).where(WebhookDelivery.id.in_(ids)).values(**lease)
                )
                rows = session.execute(
                    select(*wanted)
                    .join(WebhookEvent, WebhookEvent.id == WebhookDelivery.event_id)
                    .where(WebhookDelivery.id.in_(ids))
                ).all()
            if not rows:
                return []
            targets = self._targets(session, {r.endpoint_id for r in rows})
        # attempts as returned already counts this attempt.
        return [Job(r.id, r.attempts, r.event_id, r.body, targets[r.endpoint_id]) for r in rows]

    def _targets(self, session: Session, wanted: set[int]) -> dict[int, Target]:
        """Endpoints by id, re-read every few seconds (decrypting secrets is not free)."""
        stale = time.monotonic() - self._targets_read_at > TARGETS_TTL
        if stale or not wanted <= self._target_cache.keys():
            self._target_cache = {
                row.id: Target.of(row.id, row.name, row.url, row.secrets)
                for row in session.execute(
                    select(
                        WebhookEndpoint.id,
                        WebhookEndpoint.name,
                        WebhookEndpoint.url,
                        WebhookEndpoint.secrets,
                    )
                )
            }
            self._targets_read_at = time.monotonic()
        return self._target_cache

    def record(self, results: Sequence[tuple[Job, Outcome]]) -> None:
        """Write the outcomes of a batch of attempts in one transaction."""
        if not results:
            return
        now = self.clock()
        with self.uow() as session:
            by_code: dict[int | None, list[int]] = {}
            for job, outcome in results:
                if outcome.ok:
                    by_code.setdefault(outcome.status, []).append(job.delivery_id)
            for code, ids in by_code.items():
                session.execute(
                    update(WebhookDelivery)
                    .where(WebhookDelivery.id.in_(ids))
                    .values(
                        status="delivered",
                        delivered_at=now,
                        locked_until=None,
                        last_status=code,
                        last_error=None,
                    )
                )
            for job, outcome in results:
                if outcome.ok:
                    continue
                if outcome.gone:
                    session.execute(
                        update(WebhookEndpoint)
                        .where(WebhookEndpoint.id == job.target.id, WebhookEndpoint.enabled)
                        .values(
                            enabled=False,
                            disabled_reason=f"receiver answered 410 Gone at {iso(now)}",
                            updated_at=now,
                        )
                    )
                    log.warning("endpoint %s answered 410 Gone: disabled", job.target.name)
                values: dict[str, Any] = {
                    "locked_until": None,
                    "last_status": outcome.status,
                    "last_error": outcome.error,
                }
                if job.attempt >= len(SCHEDULE):
                    values["status"] = "dead"
                    log.warning(
                        "event %s to %s dead-lettered after %d attempts: %s",
                        job.event_id, job.target.name, job.attempt, outcome.error,
                    )  # fmt: skip
                else:
                    wait = retry_delay(job.attempt, self.rng, self.jitter)
                    if outcome.retry_after is not None:
                        wait = max(wait, outcome.retry_after)
                    values["next_attempt_at"] = now + timedelta(seconds=wait)
                # Only while it is still ours: a late failure must not undo another worker's
                # delivery after our lease ran out.
                session.execute(
                    update(WebhookDelivery)
                    .where(
                        WebhookDelivery.id == job.delivery_id,
                        WebhookDelivery.status == "pending",
                        WebhookDelivery.locked_by == self.name,
                    )
                    .values(**values)
                )
        self.delivered += sum(1 for _, o in results if o.ok)
        self.failed += sum(1 for _, o in results if not o.ok)

    def purge(self) -> int:
        """Delete events past retention that no endpoint still waits for (bodies hold PII)."""
        cutoff = self.clock() - EVENT_RETENTION
        with self.uow() as session:
            waiting = exists().where(
                WebhookDelivery.event_id == WebhookEvent.id, WebhookDelivery.status == "pending"
            )
            result = session.execute(
                delete(WebhookEvent).where(WebhookEvent.created_at < cutoff, ~waiting)
            )
            return int(getattr(result, "rowcount", 0) or 0)

    # --- network side -----------------------------------------------------------------------

    async def attempt(self, job: Job) -> tuple[Job, Outcome]:
        """Send one claimed delivery; a bug here is a failed attempt, not a dead worker."""
        try:
            outcome = await self.sender.send(job.event_id, job.body, job.target, self.clock())
        except Exception as exc:  # noqa: BLE001 - one bad attempt must not stop the others
            log.exception("unexpected error delivering %s to %s", job.event_id, job.target.name)
            outcome = Outcome(False, error=f"unexpected: {type(exc).__name__}")
        if not outcome.ok:
            log.info(
                "event %s to %s: attempt %d failed: %s",
                job.event_id, job.target.name, job.attempt, outcome.error,
            )  # fmt: skip
        return job, outcome

    async def run_once(self, limit: int | None = None) -> int:
        """Claim one batch, send it all, record it: how many attempts were made (for tests)."""
        jobs = await asyncio.to_thread(self.claim, limit or self.capacity)
        if not jobs:
            return 0
        results = await asyncio.gather(*(self.attempt(j) for j in jobs))
        await asyncio.to_thread(self.record, results)
        return len(jobs)

    async def drain(self) -> int:
        """Run batches until nothing is due (by this worker's clock)."""
        total = 0
        while sent := await self.run_once():
            total += sent
        return total

    async def run(self, *, purge_every: float = 3600.0) -> None:
        """Deliver until stopped: keep up to ``capacity`` requests in flight, record in batches."""
        listener = Listener(self.database_url, NOTIFY_CHANNEL) if self.database_url else None
        if listener is not None:
            await asyncio.to_thread(listener.start)
        loop = asyncio.get_running_loop()
        in_flight: set[asyncio.Task[tuple[Job, Outcome]]] = set()
        pending = _Pending()
        finished = asyncio.Event()
        last_purge = loop.time()

        def done(task: asyncio.Task[tuple[Job, Outcome]]) -> None:
            # A callback per task, not asyncio.wait() over all of them: constant work each.
            in_flight.discard(task)
            if task.cancelled():
                return  # shut down mid-request: the lease runs out and it is tried again
            if not pending.results:
                pending.since = loop.time()
            pending.results.append(task.result())  # attempt() catches every failure
            finished.set()

        try:
            while not self._stop.is_set() or in_flight:
                claimed = 0
                threshold = max(1, self.capacity // 4)
                # Claim in chunks, not one by one: each claim is a transaction.
                free = self.capacity - len(in_flight)
                if not self._stop.is_set() and free >= threshold:
                    try:
                        jobs = await asyncio.to_thread(self.claim, free)
                    except Exception:  # noqa: BLE001 - e.g. the database restarting
                        log.exception("claiming webhook deliveries failed")
                        jobs = []
                        await asyncio.sleep(1.0)
                    for job in jobs:
                        task = asyncio.create_task(self.attempt(job))
                        in_flight.add(task)
                        task.add_done_callback(done)
                    claimed = len(jobs)
                waited = loop.time() - pending.since
                if pending.results and (
                    not in_flight or waited >= self.flush_every or len(pending.results) >= 256
                ):
                    await self._flush(pending)
                    continue
                if in_flight:
                    if claimed and self.capacity - len(in_flight) >= threshold:
                        continue  # more may be due: claim again before waiting
                    # Sleep until an answer arrives or the pending outcomes are due for writing.
                    finished.clear()
                    wait = self.flush_every - waited if pending.results else self.flush_every
                    with contextlib.suppress(TimeoutError):
                        async with asyncio.timeout(max(wait, 0.001)):
                            await finished.wait()
                    continue
                if claimed:
                    continue
                if loop.time() - last_purge >= purge_every:
                    await asyncio.to_thread(self._purge_quietly)
                    last_purge = loop.time()
                await self._idle(listener)
        finally:
            for task in list(in_flight):
                task.cancel()
            if pending.results:
                await self._flush(pending)
            if listener is not None:
                await asyncio.to_thread(listener.close)

    async def _flush(self, pending: _Pending) -> None:
        results, pending.results = pending.results, []
        try:
            await asyncio.to_thread(self.record, results)
        except Exception:  # noqa: BLE001 - the leases run out and the rows are tried again
            log.exception("recording %d webhook outcomes failed", len(results))

    def _purge_quietly(self) -> None:
        try:
            purged = self.purge()
        except Exception:  # noqa: BLE001 - housekeeping must not stop deliveries
            log.exception("purging old webhook events failed")
            return
        if purged:
            log.info("purged %d webhook events past retention", purged)

    async def _idle(self, listener: Listener | None) -> None:
        """Wait for a NOTIFY (PostgreSQL), a stop, or the poll interval (retries falling due)."""
        stop = asyncio.ensure_future(self._stop.wait())
        try:
            if listener is not None and listener.ready:
                wake = asyncio.ensure_future(asyncio.to_thread(listener.wait, self.poll_interval))
                await asyncio.wait({stop, wake}, return_when=asyncio.FIRST_COMPLETED)
                await wake  # the thread returns within the poll interval
            else:
                await asyncio.wait({stop}, timeout=self.poll_interval)
        finally:
            stop.cancel()


def make_webhook_worker(
    uow: UnitOfWork, settings: Settings, sender: WebhookSender, **kwargs: Any
) -> WebhookWorker:
    """A webhook worker wired to the app's database and settings."""
    return WebhookWorker(uow, sender, database_url=settings.database_url, **kwargs)


async def run_webhook_worker(uow: UnitOfWork, settings: Settings, stop: asyncio.Event) -> None:
    """Sync the configured endpoints, then deliver until ``stop`` is set (beside the channels)."""
    if endpoint_tables_exist(uow):
        for line in await asyncio.to_thread(sync_configured_endpoints, uow, settings):
            log.info("webhook endpoint %s", line)
    async with WebhookSender(allow_private=settings.notify_allow_private) as sender:
        worker = make_webhook_worker(uow, settings, sender)
        waiter = asyncio.ensure_future(stop.wait())
        waiter.add_done_callback(lambda _: worker.stop())
        try:
            await worker.run()
        finally:
            waiter.cancel()
