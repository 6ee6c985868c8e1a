"""The audit log: written for what matters, shown to admins, never changed."""

from __future__ import annotations

import pytest
from flask import Flask
from sqlalchemy import select

from bot.app import Services
from staff import audit
from storage.staff_models import AuditEvent
from tests.staff.desk_support import audit_events, login, make_complaint, post


def test_admin_reads_the_log_with_filters(app: Flask, desk: Services) -> None:
    reference = make_complaint(desk)
    other = make_complaint(desk)
    triage = app.test_client()
    login(triage, "triage")
    triage.get(f"/desk/case/{reference}")
    triage.get(f"/desk/case/{other}")
    post(triage, f"/desk/case/{reference}/status", {"status": "in_review"})
    admin = app.test_client()
    login(admin, "admin")
    page = admin.get("/desk/audit").get_data(as_text=True)
    for action in ("login.success", "case.view", "case.status"):
        assert action in page
    only = admin.get(f"/desk/audit?action=case.view&q={reference}").get_data(as_text=True)
    assert reference in only
    assert other not in only.split('id="audit"')[1]


def test_the_log_pages_by_id(app: Flask, desk: Services, monkeypatch: pytest.MonkeyPatch) -> None:
    from staff import admin as admin_views

    monkeypatch.setattr(admin_views, "AUDIT_PAGE", 2)
    reference = make_complaint(desk)
    client = app.test_client()
    login(client, "admin")
    for _ in range(3):
        client.get(f"/desk/case/{reference}")
    first = client.get("/desk/audit?action=case.view").get_data(as_text=True)
    assert first.count("<code>case.view</code>") == 2
    assert 'rel="next"' in first
    ids = [e.id for e in audit_events(desk, "case.view")]
    last = client.get(f"/desk/audit?action=case.view&before={ids[1]}").get_data(as_text=True)
    assert last.count("<code>case.view</code>") == 1


def test_the_log_has_no_route_that_changes_it(app: Flask) -> None:
    for rule in app.url_map.iter_rules():
        if "audit" in rule.rule:
            assert (rule.methods or set()) <= {"GET", "HEAD", "OPTIONS"}, rule


def test_the_log_is_append_only(desk: Services) -> None:
    with desk.uow() as db:
        audit.record(db, "export", email="x@y", detail={"format": "csv"})
    with pytest.raises(RuntimeError, match="append-only"), desk.uow() as db:
        event = db.scalars(select(AuditEvent)).one()
        event.action = "logout"
    with pytest.raises(RuntimeError, match="append-only"), desk.uow() as db:
        db.delete(db.scalars(select(AuditEvent)).one())
    assert [e.action for e in audit_events(desk)] == ["export"]
    with pytest.raises(ValueError, match="unknown audit action"), desk.uow() as db:
        audit.record(db, "made.up")


def test_the_address_is_recorded(app: Flask, desk: Services) -> None:
    client = app.test_client()
    client.get("/desk/login")
    login(client, "triage")
    [event] = audit_events(desk, "login.success")
    assert event.ip == "127.0.0.1"
