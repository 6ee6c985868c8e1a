"""The inbox (complaints by priority, then age, with filters) and the statistics page."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, render_template, request
from flask.typing import ResponseReturnValue
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from bot.app import services
from dialogs import options as opt
from dialogs.messages import LANGUAGE_NAMES, LANGUAGES
from dialogs.municipalities import MUNICIPALITIES
from staff.i18n import (
    CHANNEL_NAMES,
    STATUS_LABELS,
    STATUSES,
    choice_label,
    label,
    municipality_name,
    pgettext,
)
from staff.queries import PRIORITIES, InboxFilter, inbox_page
from staff.roles import ALL_ROLES, CASE_ROLES, roles_required, signed_in
from storage.models import Complaint

bp = Blueprint("desk", __name__, url_prefix="/desk", template_folder="templates")

SMALL_COUNT = 5
"""Statistics show counts below this as "< 5", so a rare combination does not point at a person."""


def filter_options() -> dict[str, list[tuple[str, str]]]:
    """The choices of each inbox filter, labelled in the desk language."""
    yes, no = pgettext("choice", "Yes"), pgettext("choice", "No")
    municipalities = sorted(
        ((m.code, municipality_name(m.code)) for m in MUNICIPALITIES), key=lambda p: p[1]
    )
    return {
        "status": [(s, label(STATUS_LABELS, s)) for s in STATUSES],
        "priority": [(p, p) for p in PRIORITIES],
        "area": [(c.value, choice_label("area", c.value)) for c in opt.AREAS],
        "ground": [(c.value, choice_label("ground", c.value)) for c in opt.GROUNDS],
        "perpetrator": [(c.value, choice_label("perpetrator", c.value)) for c in opt.PERPETRATORS],
        "municipality": [*municipalities, ("outside", municipality_name("outside"))],
        "language": [(code, LANGUAGE_NAMES[code]) for code in LANGUAGES],
        "channel": list(CHANNEL_NAMES.items()),
        "legal": [("yes", yes), ("no", no)],
    }


@bp.get("/")
@roles_required(CASE_ROLES)
def inbox() -> ResponseReturnValue:
    """Complaints the user may see, most urgent first, then oldest; 50 a page."""
    user = signed_in()
    f = InboxFilter.from_args(request.args)
    cursor = request.args.get("after")
    with services().uow() as db:
        page = inbox_page(db, user, f, cursor)
    return render_template(
        "desk/inbox.html", page=page, f=f, cursor=cursor, options=filter_options()
    )


def statistics(db: Session) -> dict[str, list[tuple[str, int]]]:
    """Counts of real (not test) complaints by status, area, ground, municipality, channel.

    Aggregates only, no record: the one desk query that does not go through the role filter,
    because viewers see exactly this and nothing else.
    """
    result: dict[str, list[tuple[str, int]]] = {}
    for name, column in (
        ("status", Complaint.status),
        ("priority", Complaint.priority),
        ("area", Complaint.area),
        ("ground", Complaint.ground),
        ("perpetrator", Complaint.perpetrator),
        ("municipality", Complaint.municipality),
        ("channel", Complaint.channel),
        ("language", Complaint.language),
    ):
        rows = db.execute(
            select(column, func.count())
            .where(Complaint.is_test.is_(False))
            .group_by(column)
            .order_by(func.count().desc())
        ).all()
        result[name] = [(str(value), int(count)) for value, count in rows]
    return result


@bp.get("/stats")
@roles_required(ALL_ROLES)
def stats() -> ResponseReturnValue:
    """Counts by status, area, reason and place; no personal data, for every role."""
    with services().uow() as db:
        counts = statistics(db)
    total = sum(count for _value, count in counts["status"])
    return render_template("desk/stats.html", counts=counts, total=total, show=_shown)


def _shown(count: int) -> Any:
    return f"< {SMALL_COUNT}" if 0 < count < SMALL_COUNT else count
