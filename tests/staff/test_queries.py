"""Inbox order, filters and keyset pagination."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

from flask import Flask
from sqlalchemy import select, update

from bot.app import Services
from staff.queries import (
    InboxFilter,
    decode_cursor,
    encode_cursor,
    inbox_page,
    normalize_reference,
)
from staff.roles import DeskUser, Role
from storage.models import Complaint
from tests.staff.desk_support import login, make_complaint

TRIAGE = DeskUser(1, "t@x", "T", Role.TRIAGE, "en", "token")
LEGAL = DeskUser(2, "l@x", "L", Role.LEGAL, "en", "token")


def _set_created(services: Services, reference: str, created: datetime) -> None:
    with services.uow() as db:
        db.execute(
            update(Complaint).where(Complaint.reference == reference).values(created_at=created)
        )


def _all_pages(services: Services, user: DeskUser, f: InboxFilter, size: int) -> list[str]:
    seen: list[str] = []
    cursor = None
    for _ in range(100):
        with services.uow() as db:
            page = inbox_page(db, user, f, cursor, size=size)
        seen += [row.reference for row in page.rows]
        if page.next_cursor is None:
            return seen
        cursor = page.next_cursor
    raise AssertionError("pagination does not end")


def test_keyset_pages_have_no_duplicates_or_gaps_with_equal_times(desk: Services) -> None:
    same = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
    references = []
    for i in range(23):
        reference = make_complaint(desk, priority=("P1", "P2", "P3", "P4")[i % 4])
        _set_created(desk, reference, same if i % 3 else same - timedelta(days=i))
        references.append(reference)
    with desk.uow() as db:
        expected = list(
            db.scalars(
                select(Complaint.reference).order_by(
                    Complaint.priority, Complaint.created_at, Complaint.id
                )
            )
        )
    for size in (1, 2, 5, 7, 23, 50):
        pages = _all_pages(desk, TRIAGE, InboxFilter(), size)
        assert pages == expected, size
    assert sorted(expected) == sorted(references)


def test_keyset_pages_within_one_priority(desk: Services) -> None:
    same = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
    for i in range(20):
        reference = make_complaint(desk, priority=("P1", "P2", "P4")[i % 3])
        _set_created(desk, reference, same if i % 2 else same - timedelta(days=i))
    with desk.uow() as db:
        expected = list(
            db.scalars(
                select(Complaint.reference)
                .where(Complaint.priority == "P2")
                .order_by(Complaint.created_at, Complaint.id)
            )
        )
    only_p2 = InboxFilter(priority="P2")
    for size in (1, 2, 3, 50):
        assert _all_pages(desk, TRIAGE, only_p2, size) == expected, size
    # A cursor from another priority (a link kept from before the filter changed).
    with desk.uow() as db:
        before = inbox_page(db, TRIAGE, only_p2, encode_cursor("P1", same, 10**9))
        after = inbox_page(db, TRIAGE, only_p2, encode_cursor("P3", same, 0))
    assert [row.reference for row in before.rows] == expected
    assert after.rows == []


def test_priority_first_then_oldest(desk: Services) -> None:
    old_low = make_complaint(desk, priority="P4")
    new_high = make_complaint(desk, priority="P1", urgent=True)
    old_high = make_complaint(desk, priority="P1")
    _set_created(desk, old_low, datetime(2026, 1, 1, tzinfo=UTC))
    _set_created(desk, new_high, datetime(2026, 2, 2, tzinfo=UTC))
    _set_created(desk, old_high, datetime(2026, 1, 5, tzinfo=UTC))
    assert _all_pages(desk, TRIAGE, InboxFilter(), 10) == [old_high, new_high, old_low]


def test_filters(desk: Services) -> None:
    a = make_complaint(desk, area="health", municipality="prishtine", language="sq")
    b = make_complaint(desk, area="housing", channel="telegram", campaign="posters-2026")
    c = make_complaint(desk, legal_support=True, status="referred", priority="P2")
    test = make_complaint(desk, is_test=True)
    _set_created(desk, a, datetime(2026, 5, 10, 21, 30, tzinfo=UTC))  # 23:30 in Kosovo

    def only(**args: str) -> list[str]:
        return _all_pages(desk, TRIAGE, InboxFilter.from_args(args), 50)

    assert only(area="health") == [a]
    assert only(municipality="prishtine", language="sq") == [a]
    assert only(channel="telegram") == [b]
    assert only(campaign="posters-2026") == [b]
    assert only(legal="yes") == [c]
    assert only(status="referred") == [c]
    assert only(priority="P2") == [c]
    assert test not in only()
    assert test in only(test="1")
    assert only(**{"from": "2026-05-10", "to": "2026-05-10"}) == [a]
    assert only(**{"from": "2026-05-11"}) != [a]
    assert only(q=c.lower().replace("rae-", "")) == [c]
    assert only(area="not-an-area") == only()  # unknown values are ignored
    assert set(_all_pages(desk, LEGAL, InboxFilter(), 50)) == {c}


def test_reference_and_cursor_parsing() -> None:
    assert normalize_reference(" rae-7k3q9p ") == "RAE-7K3Q9P"
    assert normalize_reference("7K3Q9P") == "RAE-7K3Q9P"
    assert normalize_reference("RAE7K3Q9P") == "RAE-7K3Q9P"
    assert normalize_reference("DROP TABLE") is None
    at = datetime(2026, 1, 1, tzinfo=UTC)
    assert decode_cursor(encode_cursor("P2", at, 7)) == ("P2", at, 7)
    for bad in ("", "!!!", "bm90IGpzb24", encode_cursor("P2", at, 7)[:-3]):
        assert decode_cursor(bad) is None


def test_next_page_link_keeps_the_filters(app: Flask, desk: Services) -> None:
    for _ in range(55):
        make_complaint(desk, area="health")
    make_complaint(desk, area="housing")
    client = app.test_client()
    login(client, "triage")
    first = client.get("/desk/?area=health").get_data(as_text=True)
    assert first.count('href="/desk/case/') == 50
    link = re.search(r'href="(/desk/\?[^"]*after=[^"]*)" rel="next"', first)
    assert link is not None
    second = client.get(link.group(1).replace("&amp;", "&")).get_data(as_text=True)
    assert second.count('href="/desk/case/') == 5
    assert 'rel="next"' not in second
