"""The routing table: the repository's file, suggestions, and clear errors for every mistake."""

from __future__ import annotations

from pathlib import Path

import pytest

from bot.app import build_services
from bot.routing import Institution, RoutingTableError, load_routing, parse_routing
from bot.settings import PROJECT_DIR
from dialogs.municipalities import MUNICIPALITIES
from tests.conftest import make_settings

TABLE = PROJECT_DIR / "data" / "routing.csv"
HEADER = "area,perpetrator,municipality,signal,institution,contact,verified,note\n"


def names(institutions: list[Institution]) -> list[str]:
    return [i.name for i in institutions]


def test_the_repository_table_is_valid() -> None:
    table = load_routing(TABLE)
    assert table.routes


def test_every_complaint_goes_to_the_ombudsperson() -> None:
    table = load_routing(TABLE)
    for area in ("employment", "education", "other"):
        assert "Ombudsperson Institution of Kosovo" in names(
            table.suggest(area, "individual", "outside")
        )


def test_every_municipality_has_its_office_and_human_rights_unit() -> None:
    table = load_routing(TABLE)
    for municipality in MUNICIPALITIES:
        found = names(table.suggest("housing", "public_institution", municipality.code))
        local = [n for n in found if n.endswith(f", {municipality.sq}")]
        assert len(local) == 2, municipality.code
        assert any("Office for Communities and Return" in n for n in local)
        assert any("Human Rights Unit" in n for n in local)


def test_no_municipal_offices_outside_kosovo() -> None:
    found = names(load_routing(TABLE).suggest("housing", "individual", "outside"))
    assert not any(n.startswith("Municipal") for n in found)


def test_violence_goes_to_the_police_and_legal_support_to_legal_aid() -> None:
    table = load_routing(TABLE)
    assert "Kosovo Police" in names(
        table.suggest("public_space", "individual", "prizren", {"violence_or_threat"})
    )
    assert "Kosovo Police" not in names(table.suggest("public_space", "individual", "prizren"))
    assert "Free Legal Aid Agency" in names(
        table.suggest("housing", "individual", "prizren", {"legal_support"})
    )


def test_work_goes_to_the_labour_inspectorate_marked_unverified() -> None:
    found = load_routing(TABLE).suggest("employment", "employer", "gjakove")
    labour = next(i for i in found if i.name == "Labour Inspectorate")
    assert labour.verified is False
    assert labour.to_json()["verified"] is False


def test_each_institution_once_in_table_order() -> None:
    table = parse_routing(
        HEADER
        + "*,*,*,,A,,yes,\n"
        + "employment,*,*,,B,,no,\n"
        + "employment|education,employer,*,,A,,yes,\n"
        + "*,*,*,legal_support,C,,,\n"
    )
    assert names(table.suggest("employment", "employer", "peje", {"legal_support"})) == [
        "A",
        "B",
        "C",
    ]
    assert names(table.suggest("health", "employer", "peje")) == ["A"]


def test_staff_may_add_comments_and_blank_lines() -> None:
    table = parse_routing("# a comment\n\n" + HEADER + "\n# another\n*,*,*,,A,,yes,\n")
    assert names(table.suggest("other", "unknown", "outside")) == ["A"]


def errors(text: str) -> list[str]:
    with pytest.raises(RoutingTableError) as caught:
        parse_routing(text, "routing.csv")
    return caught.value.problems


def test_unknown_area_with_file_and_line() -> None:
    [problem] = errors(HEADER + "*,*,*,,A,,yes,\nschool,*,*,,B,,yes,\n")
    assert problem.startswith("routing.csv:3: unknown area 'school'")
    assert "education" in problem  # the known values are listed


def test_unknown_perpetrator_municipality_and_signal() -> None:
    problems = errors(
        HEADER
        + "*,teacher,*,,A,,yes,\n"
        + "*,*,pristina,,B,,yes,\n"
        + "*,*,*,violence,C,,yes,\n"
        + "*,school|cop,*,,D,,yes,\n"
    )
    assert problems[0].startswith("routing.csv:2: unknown perpetrator 'teacher'")
    assert problems[1].startswith("routing.csv:3: unknown municipality 'pristina'")
    assert problems[2].startswith("routing.csv:4: unknown signal 'violence'")
    assert problems[3].startswith("routing.csv:5: unknown perpetrator 'cop'")


def test_missing_institution_name() -> None:
    assert errors(HEADER + "*,*,*,,  ,,yes,\n") == ["routing.csv:2: missing institution name"]


def test_duplicate_rows_name_the_first_line() -> None:
    problems = errors(
        HEADER
        + "*,*,*,,Ombudsperson,,yes,\n"
        + "employment,employer,*,,Labour,,no,\n"
        + "*,*,*,,ombudsperson,,yes,\n"  # the same institution, other case
        + "employment,employer|business,*,,Labour,,no,\n"  # overlaps line 3
    )
    assert problems[0].startswith("routing.csv:4: duplicate of line 2")
    assert problems[1].startswith("routing.csv:5: duplicate of line 3")


def test_line_numbers_count_quoted_line_breaks() -> None:
    problems = errors(HEADER + '*,*,*,,A,,yes,"two\nlines"\n*,*,*,,,,yes,\n')
    assert problems == ["routing.csv:4: missing institution name"]


def test_bad_header_and_bad_verified_and_empty_cell() -> None:
    assert errors("area,perpetrator,institution\n")[0].startswith(
        "routing.csv:1: missing column(s) municipality"
    )
    assert "verified must be yes or no" in errors(HEADER + "*,*,*,,A,,maybe,\n")[0]
    assert "empty area" in errors(HEADER + ",*,*,,A,,yes,\n")[0]
    assert "unknown column(s) phone" in errors(HEADER.strip() + ",phone\n")[0]


def test_all_mistakes_are_reported_at_once() -> None:
    problems = errors(HEADER + "x,*,*,,A,,yes,\n*,y,*,,B,,yes,\n*,*,*,,,,yes,\n")
    assert len(problems) == 3
    message = str(RoutingTableError(problems))
    assert "routing.csv:2" in message and "routing.csv:4" in message


def test_missing_file_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(RoutingTableError, match="cannot read the routing table"):
        load_routing(tmp_path / "nope.csv")


def test_app_start_stops_on_a_bad_table(sqlite_only_url: str, tmp_path: Path) -> None:
    bad = tmp_path / "routing.csv"
    bad.write_text(HEADER + "*,*,nowhere,,A,,yes,\n", encoding="utf-8")
    settings = make_settings(sqlite_only_url, tmp_path, routing_file=bad)
    with pytest.raises(RoutingTableError, match=r"routing.csv:2: unknown municipality 'nowhere'"):
        build_services(settings)
