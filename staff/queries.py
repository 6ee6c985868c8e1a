"""The desk's complaint queries: filters from the query string, keyset pages, one case.

Every query here starts from :func:`complaints_for`, which applies the role filter.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, fields
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

from sqlalchemy import ColumnElement, Row, Select, false, literal, select, true, tuple_
from sqlalchemy.orm import Session

from bot.i18n import KOSOVO_TIME
from dialogs import options as opt
from dialogs.messages import LANGUAGES
from dialogs.municipalities import BY_CODE
from staff.i18n import STATUSES
from staff.roles import DeskUser, visible_complaints
from storage.models import Complaint
from storage.staff_models import CaseAssignment, StaffUser

PAGE_SIZE = 50
PRIORITIES: tuple[str, ...] = ("P1", "P2", "P3", "P4")
"""Priorities as bot.priority sets them: P1 is the most urgent."""
_REFERENCE = re.compile(r"^(?:RAE)?-?([A-Z0-9]{6})$")


def _choice_values(choices: tuple[opt.Choice, ...]) -> frozenset[str]:
    return frozenset(c.value for c in choices)


FILTER_VALUES: dict[str, frozenset[str]] = {
    "status": frozenset(STATUSES),
    "area": _choice_values(opt.AREAS),
    "ground": _choice_values(opt.GROUNDS),
    "perpetrator": _choice_values(opt.PERPETRATORS),
    "municipality": frozenset(BY_CODE) | {"outside"},
    "language": frozenset(LANGUAGES),
    "channel": frozenset({"sms", "telegram"}),
    "priority": frozenset(PRIORITIES),
    "legal": frozenset({"yes", "no"}),
}
"""Accepted values of each choice filter; anything else is ignored."""


@dataclass(frozen=True)
class InboxFilter:
    """The inbox filters, as read from the query string."""

    status: str | None = None
    priority: str | None = None
    area: str | None = None
    ground: str | None = None
    perpetrator: str | None = None
    municipality: str | None = None
    language: str | None = None
    channel: str | None = None
    legal: str | None = None
    campaign: str | None = None
    date_from: date | None = None
    date_to: date | None = None
    reference: str | None = None
    test: bool = False

    @classmethod
    def from_args(cls, args: Mapping[str, str]) -> InboxFilter:
        """Filters from request arguments; unknown or malformed values are left out."""
        values: dict[str, Any] = {}
        for name, allowed in FILTER_VALUES.items():
            value = args.get(name) or None
            if value in allowed:
                values[name] = value
        campaign = (args.get("campaign") or "").strip()
        if campaign:
            values["campaign"] = campaign[:64]
        values["date_from"] = _date(args.get("from"))
        values["date_to"] = _date(args.get("to"))
        values["reference"] = normalize_reference(args.get("q") or "")
        values["test"] = args.get("test") == "1"
        return cls(**values)

    def to_args(self) -> dict[str, str]:
        """The filters as query-string arguments (for links to the next page and exports)."""
        args: dict[str, str] = {}
        for f in fields(self):
            value = getattr(self, f.name)
            if value in (None, False):
                continue
            key = {"date_from": "from", "date_to": "to", "reference": "q"}.get(f.name, f.name)
            args[key] = "1" if value is True else str(value)
        return args

    @property
    def active(self) -> bool:
        """Whether any filter is set."""
        return bool(self.to_args())


def normalize_reference(text: str) -> str | None:
    """A reference code as typed ("rae-7k3q9p", "7K3Q9P") in its stored form, or None."""
    match = _REFERENCE.match(re.sub(r"\s+", "", text).upper())
    return f"RAE-{match.group(1)}" if match else None


def _date(text: str | None) -> date | None:
    try:
        return date.fromisoformat(text) if text else None
    except ValueError:
        return None


def kosovo_midnight(day: date) -> datetime:
    """The start of a day in Kosovo, in UTC."""
    return datetime.combine(day, time(0), tzinfo=KOSOVO_TIME).astimezone(UTC)


def complaints_for(user: DeskUser, *columns: Any) -> Select[Any]:
    """A complaint query (whole rows, or the given columns) narrowed to what the user may see."""
    query: Select[Any] = select(*columns) if columns else select(Complaint)
    return visible_complaints(query, user)


def apply_filter(query: Select[Any], f: InboxFilter) -> Select[Any]:
    """Add the inbox filters to a complaint query."""
    if f.reference:
        query = query.where(Complaint.reference == f.reference)
    if not f.test:
        query = query.where(Complaint.is_test.is_(False))
    conditions: list[ColumnElement[bool]] = []
    for name, column in (
        ("status", Complaint.status),
        ("priority", Complaint.priority),
        ("area", Complaint.area),
        ("ground", Complaint.ground),
        ("perpetrator", Complaint.perpetrator),
        ("municipality", Complaint.municipality),
        ("language", Complaint.language),
        ("channel", Complaint.channel),
        ("campaign", Complaint.campaign),
    ):
        value = getattr(f, name)
        if value is not None:
            conditions.append(column == value)
    if f.legal is not None:
        conditions.append(Complaint.legal_support.is_(f.legal == "yes"))
    if f.date_from is not None:
        conditions.append(Complaint.created_at >= kosovo_midnight(f.date_from))
    if f.date_to is not None:
        conditions.append(Complaint.created_at < kosovo_midnight(f.date_to + timedelta(days=1)))
    return query.where(*conditions) if conditions else query


# --- keyset pages ---------------------------------------------------------------------------


def encode_cursor(priority: str, created_at: datetime, complaint_id: int) -> str:
    """The position after a row, as an opaque URL-safe string."""
    raw = json.dumps([priority, created_at.astimezone(UTC).isoformat(), complaint_id])
    return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")


def decode_cursor(cursor: str | None) -> tuple[str, datetime, int] | None:
    """A position from :func:`encode_cursor`; None when absent or malformed."""
    if not cursor:
        return None
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        priority, created, complaint_id = json.loads(raw)
        at = datetime.fromisoformat(created)
    except (ValueError, TypeError, binascii.Error):
        return None
    if not isinstance(priority, str) or not isinstance(complaint_id, int) or at.tzinfo is None:
        return None
    return priority, at, complaint_id


INBOX_COLUMNS = (
    Complaint.id,
    Complaint.reference,
    Complaint.created_at,
    Complaint.status,
    Complaint.priority,
    Complaint.urgent,
    Complaint.area,
    Complaint.ground,
    Complaint.perpetrator,
    Complaint.municipality,
    Complaint.language,
    Complaint.channel,
    Complaint.legal_support,
    Complaint.campaign,
    Complaint.is_test,
)
"""What the inbox lists: no encrypted column, so nothing is decrypted for a list."""


@dataclass(frozen=True)
class Page:
    """One page of the inbox and the cursor of the next, if there is one."""

    rows: list[Row[Any]]
    next_cursor: str | None


def after_position(
    position: tuple[str, datetime, int], priority: str | None
) -> ColumnElement[bool]:
    """Rows after a keyset position, ``(priority, created_at, id) > position``.

    With a priority filter the comparison is narrowed to ``(created_at, id)`` within it: next to
    ``priority = 'P4'`` PostgreSQL starts the index scan at the first P4 entry and filters the
    three-column comparison row by row (half of 445,000 entries for a deep P4 page at a million
    complaints), while the narrowed one positions the scan at the cursor.
    """
    after, created, last_id = position
    created_at = literal(created, Complaint.created_at.type)
    complaint_id = literal(last_id, Complaint.id.type)
    if priority is None:
        return tuple_(Complaint.priority, Complaint.created_at, Complaint.id) > tuple_(
            literal(after, Complaint.priority.type), created_at, complaint_id
        )
    if priority == after:
        return tuple_(Complaint.created_at, Complaint.id) > tuple_(created_at, complaint_id)
    return true() if priority > after else false()


def inbox_page(
    session: Session, user: DeskUser, f: InboxFilter, cursor: str | None, size: int = PAGE_SIZE
) -> Page:
    """A page of complaints by priority (P1 first), then oldest first, then id.

    Keyset pagination: the page after a cursor is ``(priority, created_at, id) > cursor``, one
    range scan of the ``ix_complaint_inbox*`` indexes however deep the page, no OFFSET.
    """
    columns = (*INBOX_COLUMNS, StaffUser.name.label("assignee"))
    query = apply_filter(complaints_for(user, *columns), f)
    query = query.outerjoin(CaseAssignment, CaseAssignment.complaint_id == Complaint.id).outerjoin(
        StaffUser, StaffUser.id == CaseAssignment.staff_user_id
    )
    position = decode_cursor(cursor)
    if position is not None:
        query = query.where(after_position(position, f.priority))
    rows = list(
        session.execute(
            query.order_by(Complaint.priority, Complaint.created_at, Complaint.id).limit(size + 1)
        )
    )
    if len(rows) <= size:
        return Page(rows, None)
    last = rows[size - 1]
    return Page(rows[:size], encode_cursor(last.priority, last.created_at, last.id))


def case_for(session: Session, user: DeskUser, reference: str) -> Complaint | None:
    """The complaint with this reference, if the user may see it."""
    normalized = normalize_reference(reference)
    if normalized is None:
        return None
    return session.scalars(
        complaints_for(user).where(Complaint.reference == normalized)
    ).one_or_none()
