"""Statistics: charts and CSV for every role; small counts hidden; no test or personal data."""

from __future__ import annotations

import csv
import io
from datetime import UTC, datetime

from flask import Flask

from bot.app import Services
from staff.charts import Bar, bar_chart_svg, shown
from staff.stats import CHARTS
from tests.staff.desk_support import login, make_complaint

SECRET = "Private story about my neighbour"
PHONE = "+38344999888"


def _fill(desk: Services) -> None:
    """Six health reports in Prizren (by police), two in education, three test ones."""
    for i in range(6):
        make_complaint(
            desk,
            area="health",
            municipality="prizren",
            perpetrator="police",
            channel="telegram",
            campaign="roma-day",
            created_at=datetime(2026, 3, 1 + i, tzinfo=UTC),
            description=SECRET,
            contact_phone=PHONE,
        )
    for _ in range(2):
        make_complaint(
            desk,
            area="education",
            municipality="gjakove",
            created_at=datetime(2026, 5, 2, tzinfo=UTC),
        )
    for _ in range(3):
        make_complaint(desk, area="housing", is_test=True, description=SECRET)


def _csv(client: object, chart: str) -> list[list[str]]:
    response = client.get(f"/desk/stats/{chart}.csv")  # type: ignore[attr-defined]
    assert response.status_code == 200, chart
    assert response.mimetype == "text/csv"
    return list(csv.reader(io.StringIO(response.get_data(as_text=True))))


def test_every_role_sees_the_charts(app: Flask, desk: Services) -> None:
    _fill(desk)
    for role in ("admin", "triage", "legal", "viewer"):
        client = app.test_client()
        login(client, role)
        response = client.get("/desk/stats")
        assert response.status_code == 200, role
        page = response.get_data(as_text=True)
        assert page.count("<svg") == len(CHARTS)
        assert page.count("<title id=") == len(CHARTS)  # every chart has a title
        for chart in CHARTS:
            assert f'id="stats-{chart}"' in page  # and a table of the same numbers
            assert f"/desk/stats/{chart}.csv" in page
    assert app.test_client().get("/desk/stats").status_code == 302


def test_small_counts_are_hidden_in_html_and_csv(app: Flask, desk: Services) -> None:
    _fill(desk)
    client = app.test_client()
    login(client, "viewer")
    page = client.get("/desk/stats").get_data(as_text=True)
    area = page[page.index('id="stats-area"') :]
    area = area[: area.index("</table>")]
    assert "<td>6</td>" in area
    assert "<td>&lt; 5</td>" in area
    assert "<td>2</td>" not in area
    assert "housing" not in area.lower()  # test data is not counted
    rows = {row[1]: row[2] for row in _csv(client, "area")[1:]}
    assert sorted(rows.values()) == ["6", "< 5"]
    months = {row[0]: row[2] for row in _csv(client, "month")[1:]}
    assert months == {"2026-03": "6", "2026-04": "0", "2026-05": "< 5"}
    institutional = {row[0]: row[2] for row in _csv(client, "institutional")[1:]}
    assert institutional == {"2026-03": "6"}
    municipality = [row[2] for row in _csv(client, "municipality")[1:]]
    assert municipality == ["6", "< 5"]  # ranked, most first
    assert {row[0]: row[2] for row in _csv(client, "campaign")[1:]} == {
        "roma-day": "6",
        "": "< 5",
    }


def test_charts_draw_no_bar_for_hidden_counts() -> None:
    svg = str(
        bar_chart_svg(
            "x",
            "A <title>",
            [Bar("a", "Big", 10), Bar("b", "Small", 2), Bar("c", "None", 0)],
            hidden_note="fewer than 5",
        )
    )
    assert svg.count("<rect") == 2  # 10 and 0; the hidden 2 has no bar to measure
    assert "&lt; 5 (fewer than 5)" in svg
    assert ">2<" not in svg
    assert "A &lt;title&gt;" in svg
    assert [shown(n) for n in (0, 1, 4, 5)] == ["0", "< 5", "< 5", "5"]


def test_no_personal_data_in_statistics(app: Flask, desk: Services) -> None:
    _fill(desk)
    client = app.test_client()
    login(client, "admin")
    texts = [client.get("/desk/stats").get_data(as_text=True)]
    texts += [client.get(f"/desk/stats/{chart}.csv").get_data(as_text=True) for chart in CHARTS]
    for text in texts:
        assert SECRET not in text
        assert PHONE not in text
        assert "+3834400" not in text  # the contacts' numbers


def test_viewer_sees_stats_but_not_cases(app: Flask, desk: Services) -> None:
    reference = make_complaint(desk)
    client = app.test_client()
    login(client, "viewer")
    assert client.get("/desk/stats").status_code == 200
    assert client.get("/desk/stats/area.csv").status_code == 200
    assert client.get(f"/desk/case/{reference}").status_code == 403
    assert client.get("/desk/").status_code == 403
    assert client.get("/desk/stats/nothing.csv").status_code == 404
