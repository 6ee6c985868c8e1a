"""Statistics: bar charts and CSV of real (not test) complaints; counts only, small ones hidden."""

from __future__ import annotations

import csv
import io
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from flask import Blueprint, Response, abort, render_template
from flask.typing import ResponseReturnValue
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from bot.app import services
from staff.charts import SMALL_COUNT, Bar, bar_chart_svg, shown
from staff.i18n import _, pgettext, value_label
from staff.roles import ALL_ROLES, roles_required
from storage.models import Complaint

bp = Blueprint("desk_stats", __name__, url_prefix="/desk/stats", template_folder="templates")

INSTITUTIONAL = ("public_institution", "police")
"""Perpetrator types that are institutions: their cases are followed over time."""

CHARTS: tuple[str, ...] = (
    "month",
    "status",
    "priority",
    "institutional",
    "area",
    "ground",
    "perpetrator",
    "municipality",
    "channel",
    "language",
    "campaign",
)
"""Every chart, in page order; each has its CSV at /desk/stats/<chart>.csv."""


@dataclass(frozen=True)
class Chart:
    """One chart: its name, title, the heading of its label column and its bars."""

    name: str
    title: str
    heading: str
    bars: list[Bar]


def _counts(db: Session, column: object, *extra: object) -> list[tuple[str | None, int]]:
    """Real complaints counted by one column, most first."""
    rows = db.execute(
        select(column, func.count())  # type: ignore[call-overload]
        .where(Complaint.is_test.is_(False), *extra)
        .group_by(column)
        .order_by(func.count().desc(), column)
    ).all()
    return [(None if value is None else str(value), int(count)) for value, count in rows]


def _by_month(db: Session, *extra: object) -> list[tuple[str, int]]:
    """Real complaints per calendar month (UTC), oldest first, months without any included."""
    dates = db.scalars(
        select(Complaint.created_at).where(Complaint.is_test.is_(False), *extra)  # type: ignore[arg-type]
    ).all()
    per_month = Counter(f"{d.year:04d}-{d.month:02d}" for d in dates)
    if not per_month:
        return []
    first, last = min(per_month), max(per_month)
    year, month = int(first[:4]), int(first[5:])
    months: list[tuple[str, int]] = []
    while True:
        key = f"{year:04d}-{month:02d}"
        months.append((key, per_month.get(key, 0)))
        if key >= last:
            return months
        year, month = (year + 1, 1) if month == 12 else (year, month + 1)


def _bars(
    rows: Sequence[tuple[str | None, int]], labeller: Callable[[str | None], str]
) -> list[Bar]:
    return [Bar(key=value or "", label=labeller(value), count=count) for value, count in rows]


def build_chart(db: Session, name: str) -> Chart:
    """The numbers of one chart, labelled in the desk language."""
    if name == "month":
        return Chart(
            name,
            _("Reports per month"),
            _("Month"),
            _bars(_by_month(db), lambda v: v or "—"),
        )
    if name == "institutional":
        months = _by_month(db, Complaint.perpetrator.in_(INSTITUTIONAL))
        return Chart(
            name,
            _("Cases against institutions (public institutions and police) per month"),
            _("Month"),
            _bars(months, lambda v: v or "—"),
        )
    if name == "campaign":
        rows = _counts(db, Complaint.campaign)
        return Chart(
            name,
            _("Reports by campaign"),
            _("Campaign"),
            _bars(rows, lambda v: v or _("No campaign")),
        )
    titles = {
        "status": (_("Reports by status"), _("Status")),
        "priority": (_("Reports by priority"), _("Priority")),
        "area": (_("Reports by area"), pgettext("choice", "Area")),
        "ground": (_("Reports by reason"), pgettext("choice", "Reason")),
        "perpetrator": (_("Reports by who did it"), pgettext("choice", "Who did it")),
        "municipality": (_("Reports by municipality"), pgettext("choice", "Where")),
        "channel": (_("Reports by channel"), _("Channel")),
        "language": (_("Reports by language"), _("Language")),
    }
    if name not in titles:
        raise KeyError(name)
    column = getattr(Complaint, name)
    title, heading = titles[name]
    return Chart(name, title, heading, _bars(_counts(db, column), lambda v: value_label(name, v)))


@bp.get("", endpoint="index")
@roles_required(ALL_ROLES)
def index() -> ResponseReturnValue:
    """Every chart, each with its title, a table of the same numbers and a CSV link."""
    with services().uow() as db:
        charts = [build_chart(db, name) for name in CHARTS]
        total = int(
            db.scalar(
                select(func.count()).where(Complaint.is_test.is_(False)).select_from(Complaint)
            )
            or 0
        )
    note = _("fewer than 5")
    svgs = {c.name: bar_chart_svg(c.name, c.title, c.bars, hidden_note=note) for c in charts}
    return render_template(
        "stats/index.html",
        charts=charts,
        svgs=svgs,
        total=shown(total),
        small=SMALL_COUNT,
    )


@bp.get("/<chart>.csv")
@roles_required(ALL_ROLES)
def chart_csv(chart: str) -> ResponseReturnValue:
    """One chart's numbers as CSV (small counts as "< 5")."""
    if chart not in CHARTS:
        abort(404)
    with services().uow() as db:
        data = build_chart(db, chart)
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow([chart, "label", "reports"])
    for bar in data.bars:
        writer.writerow([_safe(bar.key), _safe(bar.label), bar.shown])
    return Response(
        out.getvalue(),
        mimetype="text/csv",
        headers={"Content-Disposition": f'attachment; filename="raporto-{chart}.csv"'},
    )


def _safe(value: str) -> str:
    """A CSV cell that a spreadsheet will not run as a formula."""
    return "'" + value if value[:1] in ("=", "+", "-", "@", "\t", "\r") else value
