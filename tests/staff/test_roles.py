"""Who reaches what: anonymous visitors nothing, each role only its own part of the desk."""

from __future__ import annotations

import pytest
from flask import Flask
from sqlalchemy import select

from bot.app import Services
from staff import STAFF_BLUEPRINTS, check_views_declare_roles
from staff.queries import complaints_for
from staff.roles import DeskUser, Role, roles_required
from storage.models import Complaint
from tests.staff.desk_support import csrf_token, login, make_complaint, post

PUBLIC = {"staff_auth.login", "staff_auth.static"}
SAMPLE_ARGS = {
    "reference": "RAE-AAAAAA",
    "attachment_id": 1,
    "user_id": 1,
    "fmt": "csv",
    "filename": "desk.css",
    "campaign_id": 1,
    "chart": "area",
}


def desk_routes(app: Flask) -> list[tuple[str, str, str]]:
    """(endpoint, method, url) of every desk route, with sample arguments."""
    found = []
    with app.test_request_context():
        for rule in app.url_map.iter_rules():
            if rule.endpoint.rpartition(".")[0] not in STAFF_BLUEPRINTS:
                continue
            url = rule.build({a: SAMPLE_ARGS[a] for a in rule.arguments}, append_unknown=False)
            assert url is not None
            for method in sorted((rule.methods or set()) - {"HEAD", "OPTIONS"}):
                found.append((rule.endpoint, method, url[1]))
    return found


def test_the_desk_has_routes_in_every_blueprint(app: Flask) -> None:
    blueprints = {endpoint.rpartition(".")[0] for endpoint, _m, _u in desk_routes(app)}
    assert blueprints == set(STAFF_BLUEPRINTS)


def test_every_desk_route_refuses_anonymous_visitors(app: Flask) -> None:
    app.config["WTF_CSRF_ENABLED"] = False  # so POSTs reach the access check
    client = app.test_client()
    checked = 0
    for endpoint, method, url in desk_routes(app):
        if endpoint in PUBLIC:
            continue
        response = client.open(url, method=method)
        assert response.status_code in (302, 401, 403), (endpoint, method, response.status_code)
        if response.status_code == 302:
            assert response.headers["Location"].startswith("/desk/login"), endpoint
        checked += 1
    assert checked >= 15


def test_a_view_without_declared_roles_stops_the_app(app: Flask) -> None:
    bp_app = Flask("probe")
    bp_app.view_functions["desk.forgotten"] = lambda: "personal data"
    with pytest.raises(RuntimeError, match="declares no roles"):
        check_views_declare_roles(bp_app)
    bp_app.view_functions["desk.forgotten"] = roles_required(frozenset({Role.ADMIN}))(lambda: "ok")
    check_views_declare_roles(bp_app)


def test_a_form_post_without_csrf_token_is_refused(app: Flask, desk: Services) -> None:
    reference = make_complaint(desk)
    client = app.test_client()
    login(client, "triage")
    response = client.post(f"/desk/case/{reference}/note", data={"body": "hello"})
    assert response.status_code == 400
    response = client.post(
        f"/desk/case/{reference}/note", data={"body": "hello", "csrf_token": "forged"}
    )
    assert response.status_code == 400
    assert post(client, f"/desk/case/{reference}/note", {"body": "hello"}).status_code == 302


def test_the_login_form_needs_a_csrf_token(app: Flask, desk: Services) -> None:
    client = app.test_client()
    response = client.post("/desk/login", data={"email": "triage@desk.test", "password": "x"})
    assert response.status_code == 400


def test_webhooks_are_not_subject_to_csrf(app: Flask) -> None:
    client = app.test_client()
    # Channels are off in these settings: the webhooks answer 404 themselves, not CSRF's 400.
    assert client.post("/webhooks/telegram", json={"update_id": 1}).status_code == 404
    assert client.post("/webhooks/twilio/sms", data={"Body": "hi"}).status_code == 404


def test_viewer_sees_statistics_only(app: Flask, desk: Services) -> None:
    reference = make_complaint(desk, description="Private story")
    client = app.test_client()
    assert login(client, "viewer").headers["Location"] == "/desk/stats"
    assert client.get("/desk/stats").status_code == 200
    for url in (
        "/desk/",
        f"/desk/case/{reference}",
        "/desk/export.csv",
        "/desk/export.xlsx",
        "/desk/admin/users",
        "/desk/audit",
    ):
        assert client.get(url).status_code == 403, url
    assert b"Private story" not in client.get("/desk/stats").data
    assert post(client, f"/desk/case/{reference}/note", {"body": "x"}).status_code == 403


def test_legal_staff_see_only_legal_support_cases(app: Flask, desk: Services) -> None:
    legal = make_complaint(desk, legal_support=True)
    other = make_complaint(desk, legal_support=False)
    client = app.test_client()
    login(client, "legal")
    inbox = client.get("/desk/").get_data(as_text=True)
    assert legal in inbox
    assert other not in inbox
    assert client.get(f"/desk/case/{legal}").status_code == 200
    assert client.get(f"/desk/case/{other}").status_code == 404
    assert post(client, f"/desk/case/{other}/note", {"body": "x"}).status_code == 404
    assert post(client, f"/desk/case/{other}/status", {"status": "closed"}).status_code == 404
    assert client.get(f"/desk/case/{other}/attachment/1").status_code == 404
    export = client.get("/desk/export.csv").get_data(as_text=True)
    assert legal in export
    assert other not in export
    assert "No complaints match." in client.get("/desk/?q=" + other).get_data(as_text=True)


def test_triage_sees_every_case_but_no_admin_page(app: Flask, desk: Services) -> None:
    legal = make_complaint(desk, legal_support=True)
    other = make_complaint(desk)
    client = app.test_client()
    login(client, "triage")
    inbox = client.get("/desk/").get_data(as_text=True)
    assert legal in inbox and other in inbox
    assert client.get("/desk/admin/users").status_code == 403
    assert client.get("/desk/audit").status_code == 403
    assert post(client, "/desk/admin/users/1/active", {"active": "0"}).status_code == 403


def test_admin_reaches_everything(app: Flask, desk: Services) -> None:
    reference = make_complaint(desk)
    client = app.test_client()
    login(client, "admin")
    for url in ("/desk/", f"/desk/case/{reference}", "/desk/admin/users", "/desk/audit"):
        assert client.get(url).status_code == 200, url


@pytest.mark.parametrize("role", list(Role))
def test_the_query_filter_is_the_single_rule(desk: Services, role: Role) -> None:
    make_complaint(desk, legal_support=True)
    make_complaint(desk, legal_support=False)
    user = DeskUser(1, "x@y", "X", role, "en", "token")
    with desk.uow() as db:
        seen = list(db.scalars(complaints_for(user)))
        every = list(db.scalars(select(Complaint)))
    expected = {
        Role.ADMIN: len(every),
        Role.TRIAGE: len(every),
        Role.LEGAL: 1,
        Role.VIEWER: 0,
    }[role]
    assert len(seen) == expected
    if role is Role.LEGAL:
        assert all(c.legal_support for c in seen)


def test_csrf_token_is_on_the_login_page(app: Flask) -> None:
    assert csrf_token(app.test_client())
