"""CSV and Excel exports of the complaints a user may see, with the inbox filters, streamed.

Rows are read in keyset batches (short transactions, constant memory, no lock held for the
length of a download) and written out as they come; the Excel file is built by openpyxl's
write-only workbook in a temporary file, then streamed in chunks and removed.
"""

from __future__ import annotations

import csv
import io
import os
import tempfile
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

from flask import Blueprint, Response, abort, request, stream_with_context
from flask.typing import ResponseReturnValue
from openpyxl import Workbook
from openpyxl.cell import WriteOnlyCell
from openpyxl.cell.cell import ILLEGAL_CHARACTERS_RE

from bot.app import services
from staff import audit
from staff.queries import InboxFilter, apply_filter, complaints_for
from staff.roles import CASE_ROLES, DeskUser, roles_required, signed_in
from storage.models import Complaint, utcnow

bp = Blueprint("desk_export", __name__, url_prefix="/desk")

BATCH = 1000
CHUNK = 64 * 1024
COLUMNS: tuple[tuple[str, Any], ...] = (
    ("reference", Complaint.reference),
    ("created_at", Complaint.created_at),
    ("updated_at", Complaint.updated_at),
    ("status", Complaint.status),
    ("urgent", Complaint.urgent),
    ("area", Complaint.area),
    ("ground", Complaint.ground),
    ("ground_other", Complaint.ground_other),
    ("perpetrator", Complaint.perpetrator),
    ("municipality", Complaint.municipality),
    ("occurred", Complaint.occurred),
    ("stakes", Complaint.stakes),
    ("legal_support", Complaint.legal_support),
    ("sharing", Complaint.sharing),
    ("contact_preference", Complaint.contact_preference),
    ("channel", Complaint.channel),
    ("language", Complaint.language),
    ("campaign", Complaint.campaign),
    ("is_test", Complaint.is_test),
    ("description", Complaint.description),
)
"""Exported columns: codes, not labels, so a spreadsheet can count them. No phone numbers."""

_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def _cell(value: Any) -> str:
    """A value as exported text: ISO times in UTC, yes/no, stakes space-separated."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, datetime):
        return value.astimezone(UTC).isoformat()
    if isinstance(value, list):
        return " ".join(str(v) for v in value)
    return str(value)


def rows(user: DeskUser, f: InboxFilter, batch: int = BATCH) -> Iterator[list[str]]:
    """Every complaint the user may see under the filters, as text cells, in id order."""
    uow = services().uow
    last = 0
    while True:
        with uow() as db:
            query = (
                apply_filter(complaints_for(user, Complaint.id, *(c for _n, c in COLUMNS)), f)
                .where(Complaint.id > last)
                .order_by(Complaint.id)
                .limit(batch)
            )
            found = db.execute(query).all()
        if not found:
            return
        for row in found:
            yield [_cell(v) for v in row[1:]]
        last = found[-1][0]


def csv_safe(text: str) -> str:
    """Text a spreadsheet will not run as a formula (descriptions are written by the public)."""
    return "'" + text if text.startswith(_FORMULA_START) else text


def csv_stream(user: DeskUser, f: InboxFilter) -> Iterator[str]:
    """The CSV file, a few lines at a time (UTF-8 with a BOM, which Excel needs)."""
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow([name for name, _c in COLUMNS])
    yield "\ufeff" + buffer.getvalue()
    for row in rows(user, f):
        buffer.seek(0)
        buffer.truncate()
        writer.writerow([csv_safe(cell) for cell in row])
        yield buffer.getvalue()


def xlsx_stream(user: DeskUser, f: InboxFilter) -> Iterator[bytes]:
    """The Excel file: written row by row to a temporary file, then sent in chunks."""
    workbook = Workbook(write_only=True)
    sheet = workbook.create_sheet("complaints")
    sheet.append([name for name, _c in COLUMNS])
    for row in rows(user, f):
        cells = []
        for value in row:
            cell = WriteOnlyCell(sheet, value=ILLEGAL_CHARACTERS_RE.sub("", value))
            cell.data_type = "s"  # text, never a formula, whatever it starts with
            cells.append(cell)
        sheet.append(cells)
    fd, path = tempfile.mkstemp(suffix=".xlsx")
    os.close(fd)
    try:
        workbook.save(path)
        with open(path, "rb") as fh:
            while chunk := fh.read(CHUNK):
                yield chunk
    finally:
        os.unlink(path)


MEDIA_TYPES = {
    "csv": "text/csv; charset=utf-8",
    "xlsx": "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
}


@bp.get("/export.<fmt>")
@roles_required(CASE_ROLES)
def export(fmt: str) -> ResponseReturnValue:
    """Download the filtered complaints as CSV or Excel; recorded in the audit log."""
    if fmt not in MEDIA_TYPES:
        abort(404)
    user = signed_in()
    f = InboxFilter.from_args(request.args)
    with services().uow() as db:
        audit.record(db, "export", user=user, detail={"format": fmt, "filters": f.to_args()})
    stamp = utcnow().strftime("%Y%m%d-%H%M")
    body = csv_stream(user, f) if fmt == "csv" else xlsx_stream(user, f)
    response = Response(stream_with_context(body), content_type=MEDIA_TYPES[fmt])
    response.headers["Content-Disposition"] = f'attachment; filename="raporto-{stamp}.{fmt}"'
    return response
