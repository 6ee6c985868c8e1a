"""``raporto staff create`` and ``raporto staff reset-password``."""

from __future__ import annotations

from flask import Flask
from sqlalchemy import select

from bot.app import Services
from staff.cli import staff
from storage.staff_models import StaffUser
from tests.staff.desk_support import audit_events, login


def test_create_with_a_prompted_password(app: Flask) -> None:
    services: Services = app.extensions["raporto"]
    result = app.test_cli_runner().invoke(
        staff,
        ["create", "--role", "triage", "--email", "Ana@Example.org", "--name", "Ana"],
        input="a long enough secret\na long enough secret\n",
    )
    assert result.exit_code == 0, result.output
    assert "a long enough secret" not in result.output  # hidden
    with services.uow() as db:
        user = db.scalars(select(StaffUser)).one()
    assert (user.email, user.role, user.active) == ("ana@example.org", "triage", True)
    assert user.password_hash.startswith("$argon2id$")
    assert audit_events(services, "user.create")[0].detail["via"] == "cli"


def test_create_refuses_mismatch_short_password_and_duplicates(app: Flask) -> None:
    runner = app.test_cli_runner()
    args = ["create", "--role", "admin", "--email", "a@x.org", "--name", "A"]
    mismatch = runner.invoke(staff, args, input="first password!!\nsecond password!!\n" * 3)
    assert mismatch.exit_code != 0
    short = runner.invoke(staff, [*args, "--password-stdin"], input="short\n")
    assert short.exit_code != 0 and "at least 12" in short.output
    ok = runner.invoke(staff, [*args, "--password-stdin"], input="good long password\n")
    assert ok.exit_code == 0, ok.output
    again = runner.invoke(staff, [*args, "--password-stdin"], input="good long password\n")
    assert again.exit_code != 0 and "already has an account" in again.output
    bad_role = runner.invoke(
        staff, ["create", "--role", "boss", "--email", "b@x.org", "--name", "B"], input="x\n"
    )
    assert bad_role.exit_code != 0


def test_reset_password_unlocks_and_lets_the_user_in(app: Flask) -> None:
    runner = app.test_cli_runner()
    runner.invoke(
        staff,
        [
            "create",
            "--role",
            "triage",
            "--email",
            "triage@desk.test",
            "--name",
            "T",
            "--password-stdin",
        ],
        input="first long password\n",
    )
    services: Services = app.extensions["raporto"]
    with services.uow() as db:
        user = db.scalars(select(StaffUser)).one()
        user.failed_logins = 3
    result = runner.invoke(
        staff,
        ["reset-password", "TRIAGE@desk.test", "--password-stdin"],
        input="second long password\n",
    )
    assert result.exit_code == 0, result.output
    client = app.test_client()
    assert login(client, "triage", password="first long password").status_code == 200
    assert login(client, "triage", password="second long password").status_code == 302
    missing = runner.invoke(
        staff, ["reset-password", "nobody@x.org", "--password-stdin"], input="whatever long pw\n"
    )
    assert missing.exit_code != 0


def test_admin_page_creates_resets_and_deactivates(app: Flask, desk: Services) -> None:
    import re

    from tests.staff.desk_support import post

    client = app.test_client()
    login(client, "admin")
    page = post(
        client,
        "/desk/admin/users",
        {"email": "new@desk.test", "name": "New Person", "role": "legal", "language": "sr_Cyrl"},
    ).get_data(as_text=True)
    shown = re.search(r'id="new-password">([^<]+)<', page)
    assert shown is not None
    newcomer = app.test_client()
    response = newcomer.post(
        "/desk/login",
        data={
            "email": "new@desk.test",
            "password": shown.group(1),
            "csrf_token": re.search(
                r'name="csrf_token" value="([^"]+)"', newcomer.get("/desk/login").text
            ).group(1),  # type: ignore[union-attr]
        },
    )
    assert response.status_code == 302
    assert '<html lang="sr-Cyrl">' in newcomer.get("/desk/").get_data(as_text=True)
    with desk.uow() as db:
        new_id = db.scalars(select(StaffUser.id).where(StaffUser.email == "new@desk.test")).one()
        admin_id = db.scalars(select(StaffUser.id).where(StaffUser.role == "admin")).one()
    page = post(client, f"/desk/admin/users/{new_id}/password").get_data(as_text=True)
    assert re.search(r'id="new-password">([^<]+)<', page)
    assert newcomer.get("/desk/").status_code == 302  # signed out by the reset
    post(client, f"/desk/admin/users/{admin_id}/active", {"active": "0"})
    assert client.get("/desk/admin/users").status_code == 200  # not allowed on oneself
    duplicate = post(
        client, "/desk/admin/users", {"email": "new@desk.test", "name": "X", "role": "legal"}
    )
    assert duplicate.status_code == 302
    for action in ("user.create", "user.password_reset"):
        assert audit_events(desk, action), action
