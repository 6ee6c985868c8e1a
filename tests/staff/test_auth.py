"""Signing in and out: new sessions, lock-out, throttling, response headers."""

from __future__ import annotations

from datetime import timedelta

import pytest
from flask import Flask
from sqlalchemy import select, update

from bot.app import Services
from staff import accounts
from storage.models import utcnow
from storage.staff_models import AuditEvent, StaffSession, StaffUser
from tests.staff.desk_support import (
    PASSWORD,
    audit_events,
    csrf_token,
    email_of,
    login,
    make_complaint,
    post,
)


def _session_token(client: object) -> str | None:
    with client.session_transaction() as session:  # type: ignore[attr-defined]
        value = session.get("_user_id")
        return str(value) if value else None


def test_sign_in_and_out(app: Flask, desk: Services) -> None:
    client = app.test_client()
    response = login(client, "triage")
    assert response.status_code == 302
    assert response.headers["Location"] == "/desk/"
    assert client.get("/desk/").status_code == 200
    response = post(client, "/desk/logout")
    assert response.headers["Location"] == "/desk/login"
    assert client.get("/desk/").status_code == 302
    [success] = audit_events(desk, "login.success")
    assert success.actor_email == email_of("triage")
    assert audit_events(desk, "logout")


def test_sign_in_gives_a_new_session_and_drops_the_old_one(app: Flask, desk: Services) -> None:
    client = app.test_client()
    client.get("/desk/login?lang=sr_Cyrl")  # something stored in the session before signing in
    with client.session_transaction() as session:
        assert session["desk_lang"] == "sr_Cyrl"
        session["planted"] = "by an attacker"
    login(client, "triage")
    with client.session_transaction() as session:
        assert "planted" not in session
        assert "desk_lang" not in session
    first = _session_token(client)
    post(client, "/desk/logout")
    login(client, "triage")
    second = _session_token(client)
    assert first and second and first != second


def test_a_session_cookie_stops_working_after_sign_out(app: Flask, desk: Services) -> None:
    client = app.test_client()
    login(client, "triage")
    stolen = client.get_cookie("session")
    assert stolen is not None
    post(client, "/desk/logout")
    thief = app.test_client()
    thief.set_cookie("session", stolen.value)
    assert thief.get("/desk/").status_code == 302


def test_sessions_end_when_the_account_is_deactivated(app: Flask, desk: Services) -> None:
    triage = app.test_client()
    login(triage, "triage")
    admin = app.test_client()
    login(admin, "admin")
    with desk.uow() as db:
        user_id = db.scalars(select(StaffUser.id).where(StaffUser.role == "triage")).one()
    post(admin, f"/desk/admin/users/{user_id}/active", {"active": "0"})
    assert triage.get("/desk/").status_code == 302
    assert login(app.test_client(), "triage").status_code == 200  # the form again
    assert audit_events(desk, "user.deactivate")


def test_idle_and_expired_sessions_end(app: Flask, desk: Services) -> None:
    client = app.test_client()
    login(client, "triage")
    with desk.uow() as db:
        db.execute(update(StaffSession).values(last_seen_at=utcnow() - accounts.SESSION_IDLE * 2))
    assert client.get("/desk/").status_code == 302


def test_wrong_password_is_refused_with_a_generic_message(app: Flask, desk: Services) -> None:
    client = app.test_client()
    response = login(client, "triage", password="wrong password!")
    assert response.status_code == 200
    assert "is wrong, or the account is locked" in response.get_data(as_text=True)
    response = client.post(
        "/desk/login",
        data={"email": "nobody@desk.test", "password": "x", "csrf_token": csrf_token(client)},
    )
    assert "is wrong, or the account is locked" in response.get_data(as_text=True)
    reasons = [e.detail["reason"] for e in audit_events(desk, "login.failure")]
    assert reasons == ["password", "unknown"]
    unknown = audit_events(desk, "login.failure")[-1]
    assert unknown.actor_email is None  # what was typed is not kept


def test_five_failures_lock_the_account_for_fifteen_minutes(app: Flask, desk: Services) -> None:
    client = app.test_client()
    for _ in range(accounts.MAX_FAILED_LOGINS):
        login(client, "legal", password="not the password")
    # Even the right password is refused while the lock holds.
    assert login(client, "legal").status_code == 200
    assert client.get("/desk/").status_code == 302
    events = audit_events(desk, "login.failure")
    assert events[accounts.MAX_FAILED_LOGINS - 1].detail["locked"] is True
    assert events[-1].detail["reason"] == "locked"
    with desk.uow() as db:
        user = db.scalars(select(StaffUser).where(StaffUser.role == "legal")).one()
        assert user.locked_until is not None
        lock = user.locked_until - utcnow()
        assert timedelta(minutes=14) < lock <= timedelta(minutes=15)
        user.locked_until = utcnow() - timedelta(seconds=1)  # fifteen minutes later
    assert login(client, "legal").status_code == 302


def test_many_failures_from_one_address_are_throttled(
    app: Flask, desk: Services, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(accounts, "IP_MAX_FAILURES", 3)
    client = app.test_client()
    for n in range(3):
        client.post(
            "/desk/login",
            data={"email": f"guess{n}@x.test", "password": "x", "csrf_token": csrf_token(client)},
        )
    response = login(client, "triage")
    assert response.status_code == 429
    other = app.test_client()
    response = other.post(
        "/desk/login",
        data={"email": email_of("triage"), "password": PASSWORD, "csrf_token": csrf_token(other)},
        environ_base={"REMOTE_ADDR": "198.51.100.7"},
    )
    assert response.status_code == 302  # another address is not affected
    assert audit_events(desk, "login.failure")[-1].detail["reason"] == "throttled"


def test_next_only_leads_inside_the_desk(app: Flask, desk: Services) -> None:
    reference = make_complaint(desk)
    client = app.test_client()
    response = client.get(f"/desk/case/{reference}")
    assert response.headers["Location"].startswith("/desk/login?next=")
    token = csrf_token(client)
    response = client.post(
        "/desk/login",
        data={
            "email": email_of("triage"),
            "password": PASSWORD,
            "csrf_token": token,
            "next": f"/desk/case/{reference}",
        },
    )
    assert response.headers["Location"] == f"/desk/case/{reference}"
    post(client, "/desk/logout")
    for evil in ("https://evil.example/desk/", "//evil.example/desk", "/\\evil.example"):
        response = client.post(
            "/desk/login",
            data={
                "email": email_of("triage"),
                "password": PASSWORD,
                "csrf_token": csrf_token(client),
                "next": evil,
            },
        )
        assert response.headers["Location"] == "/desk/", evil
        post(client, "/desk/logout")


def test_desk_responses_carry_security_headers(app: Flask, desk: Services) -> None:
    client = app.test_client()
    for response in (client.get("/desk/login"), client.get("/desk/")):
        headers = response.headers
        assert "default-src 'self'" in headers["Content-Security-Policy"]
        assert "frame-ancestors 'none'" in headers["Content-Security-Policy"]
        assert headers["Referrer-Policy"] == "no-referrer"
        assert headers["X-Content-Type-Options"] == "nosniff"
        assert headers["Cache-Control"] == "no-store"
    login(client, "triage")
    page = client.get("/desk/")
    assert page.headers["Cache-Control"] == "no-store"
    with client.get("/desk/static/desk.css") as css:
        assert css.status_code == 200
        assert "no-store" not in css.headers.get("Cache-Control", "")
    # Other parts of the app keep their own headers.
    assert "Content-Security-Policy" not in client.get("/healthz").headers


def test_session_cookie_flags(app: Flask, desk: Services, tmp_path: object) -> None:
    client = app.test_client()
    response = login(client, "triage")
    cookie = response.headers["Set-Cookie"]
    assert "HttpOnly" in cookie
    assert "SameSite=Lax" in cookie


def test_session_cookie_is_secure_behind_https(sqlite_only_url: str, tmp_path: object) -> None:
    from pathlib import Path

    from bot.app import create_app
    from tests.conftest import make_settings

    app = create_app(
        make_settings(sqlite_only_url, Path(str(tmp_path)), public_base_url="https://r.example")
    )
    assert app.config["SESSION_COOKIE_SECURE"] is True
    app.extensions["raporto"].engine.dispose()


def test_change_own_password_and_language(app: Flask, desk: Services) -> None:
    client = app.test_client()
    login(client, "triage")
    other_device = app.test_client()
    login(other_device, "triage")
    new = "another long passphrase"
    response = post(
        client,
        "/desk/account/password",
        {"current_password": PASSWORD, "new_password": new, "confirm_password": new},
    )
    assert response.status_code == 302
    assert client.get("/desk/").status_code == 200  # this device stays signed in
    assert other_device.get("/desk/").status_code == 302
    post(client, "/desk/account/language", {"language": "sq"})
    page = client.get("/desk/account").get_data(as_text=True)
    assert '<html lang="sq">' in page
    assert audit_events(desk, "account.password")


def test_wrong_current_password_changes_nothing(app: Flask, desk: Services) -> None:
    client = app.test_client()
    login(client, "triage")
    post(
        client,
        "/desk/account/password",
        {"current_password": "wrong", "new_password": "x" * 20, "confirm_password": "x" * 20},
    )
    assert "The current password is wrong." in client.get("/desk/account").get_data(as_text=True)
    with desk.uow() as db:
        changed = select(AuditEvent).where(AuditEvent.action == "account.password")
        assert not db.scalars(changed).all()
