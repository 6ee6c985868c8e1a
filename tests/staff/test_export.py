"""CSV and Excel exports: content, filters, roles, formula safety, the audit log."""

from __future__ import annotations

import csv
import io

from flask import Flask
from openpyxl import load_workbook

from bot.app import Services
from staff import export
from staff.queries import InboxFilter
from staff.roles import DeskUser, Role
from tests.staff.desk_support import audit_events, login, make_complaint


def _csv(data: bytes) -> list[dict[str, str]]:
    text = data.decode("utf-8")
    assert text.startswith("\ufeff")
    return list(csv.DictReader(io.StringIO(text[1:])))


def test_csv_export_has_every_visible_complaint(app: Flask, desk: Services) -> None:
    a = make_complaint(desk, description='Line one,\nline "two"', stakes=["child", "home"])
    b = make_complaint(desk, area="health", legal_support=True)
    hidden = make_complaint(desk, is_test=True)
    client = app.test_client()
    login(client, "triage")
    response = client.get("/desk/export.csv")
    assert response.status_code == 200
    assert response.mimetype == "text/csv"
    assert response.headers["Content-Disposition"].startswith('attachment; filename="raporto-')
    assert response.headers["Cache-Control"] == "no-store"
    rows = _csv(response.data)
    by_reference = {row["reference"]: row for row in rows}
    assert set(by_reference) == {a, b}
    assert hidden not in by_reference
    assert by_reference[a]["description"] == 'Line one,\nline "two"'
    assert by_reference[a]["stakes"] == "child home"
    assert by_reference[b]["legal_support"] == "yes"
    assert "contact_phone" not in rows[0]
    assert by_reference[a]["created_at"].endswith("+00:00")
    [event] = audit_events(desk, "export")
    assert event.detail == {"format": "csv", "filters": {}}
    assert event.actor_email == "triage@desk.test"


def test_export_keeps_the_filters(app: Flask, desk: Services) -> None:
    make_complaint(desk, area="education")
    health = make_complaint(desk, area="health")
    client = app.test_client()
    login(client, "admin")
    rows = _csv(client.get("/desk/export.csv?area=health").data)
    assert [row["reference"] for row in rows] == [health]
    assert audit_events(desk, "export")[0].detail["filters"] == {"area": "health"}


def test_formulas_in_descriptions_do_not_run(app: Flask, desk: Services) -> None:
    reference = make_complaint(desk, description='=HYPERLINK("http://evil.example","click")')
    client = app.test_client()
    login(client, "triage")
    [row] = _csv(client.get("/desk/export.csv").data)
    assert row["description"].startswith("'=HYPERLINK")
    workbook = load_workbook(io.BytesIO(client.get("/desk/export.xlsx").data), read_only=True)
    sheet = workbook["complaints"]
    values = list(sheet.iter_rows(values_only=True))
    header = list(values[0])
    cell = values[1][header.index("description")]
    assert cell == '=HYPERLINK("http://evil.example","click")'
    assert values[1][header.index("reference")] == reference
    workbook.close()
    raw = load_workbook(io.BytesIO(client.get("/desk/export.xlsx").data))
    assert raw["complaints"].cell(2, header.index("description") + 1).data_type == "s"
    raw.close()


def test_xlsx_export(app: Flask, desk: Services) -> None:
    references = {make_complaint(desk, description=f"case {i}\x07") for i in range(3)}
    client = app.test_client()
    login(client, "triage")
    response = client.get("/desk/export.xlsx")
    assert response.mimetype.endswith("spreadsheetml.sheet")
    workbook = load_workbook(io.BytesIO(response.data), read_only=True)
    rows = list(workbook["complaints"].iter_rows(values_only=True))
    workbook.close()
    assert rows[0][0] == "reference"
    assert {row[0] for row in rows[1:]} == references
    assert all(str(row[-1]).startswith("case ") for row in rows[1:])
    assert audit_events(desk, "export")[0].detail["format"] == "xlsx"


def test_legal_export_holds_only_legal_cases(app: Flask, desk: Services) -> None:
    legal = make_complaint(desk, legal_support=True)
    make_complaint(desk, legal_support=False)
    client = app.test_client()
    login(client, "legal")
    assert [row["reference"] for row in _csv(client.get("/desk/export.csv").data)] == [legal]


def test_rows_are_read_in_batches(app: Flask, desk: Services) -> None:
    references = [make_complaint(desk) for _ in range(7)]
    user = DeskUser(1, "t@x", "T", Role.TRIAGE, "en", "token")
    with app.app_context():
        rows = list(export.rows(user, InboxFilter(), batch=3))
    assert [row[0] for row in rows] == references


def test_unknown_format_is_404(app: Flask, desk: Services) -> None:
    client = app.test_client()
    login(client, "triage")
    assert client.get("/desk/export.pdf").status_code == 404
    assert not audit_events(desk, "export")
