"""Awareness campaigns on the desk: admin only, validation, deep link, poster PDF, figures."""

from __future__ import annotations

import itertools
from pathlib import Path

import pytest
from flask import Flask
from sqlalchemy import select

from bot.app import Services
from bot.settings import Settings
from staff import poster
from staff.campaigns import campaign_figures
from staff.poster import poster_texts, qr_matrix, telegram_deep_link
from storage.models import Campaign, Conversation
from storage.repositories import ContactRepository
from tests.conftest import make_settings
from tests.staff.desk_support import audit_events, login, make_complaint, post

BOT = "RaportoTestBot"
NUMBER = "+38344123456"
_phones = itertools.count(1)


@pytest.fixture
def settings(database_url: str, tmp_path: Path) -> Settings:
    """Settings with a bot username and an SMS number, for links and posters."""
    return make_settings(
        database_url, tmp_path, telegram_bot_username=BOT, twilio_from_number=NUMBER
    )


def _campaigns(services: Services) -> list[Campaign]:
    with services.uow() as db:
        return list(db.scalars(select(Campaign).order_by(Campaign.id)))


def _conversation(services: Services, channel: str, campaign: str, *, test: bool = False) -> None:
    """A contact who started a conversation from a campaign."""
    with services.uow() as db:
        contact, _ = ContactRepository(db).get_or_create(channel, f"+3834599{next(_phones):04d}")
        contact.is_test = test
        db.add(Conversation(contact_id=contact.id, state="start", answers={}, campaign=campaign))


def test_admin_creates_and_edits_a_campaign(app: Flask, desk: Services) -> None:
    client = app.test_client()
    login(client, "admin")
    response = post(
        client,
        "/desk/campaigns",
        {"name": "Schools spring", "code": "schools-1", "sms_keyword": "dikh"},
    )
    assert response.status_code == 302
    [campaign] = _campaigns(desk)
    assert (campaign.code, campaign.sms_keyword) == ("schools-1", "DIKH")
    page = client.get("/desk/campaigns").get_data(as_text=True)
    assert f"https://t.me/{BOT}?start=schools-1" in page
    assert "Schools spring" in page
    assert (
        post(
            client,
            f"/desk/campaigns/{campaign.id}",
            {"name": "Schools autumn", "code": "schools-2", "sms_keyword": ""},
        ).status_code
        == 302
    )
    [campaign] = _campaigns(desk)
    assert (campaign.name, campaign.code, campaign.sms_keyword) == (
        "Schools autumn",
        "schools-2",
        None,
    )
    assert [e.action for e in audit_events(desk, "campaign.create")] == ["campaign.create"]
    assert len(audit_events(desk, "campaign.update")) == 1


def test_campaign_fields_are_validated(app: Flask, desk: Services) -> None:
    client = app.test_client()
    login(client, "admin")
    post(client, "/desk/campaigns", {"name": "One", "code": "one", "sms_keyword": "DIKH"})
    for data, wrong in (
        ({"name": "", "code": "ok", "sms_keyword": ""}, "name"),
        ({"name": "Two", "code": "has space", "sms_keyword": ""}, "code"),
        ({"name": "Two", "code": "x" * 65, "sms_keyword": ""}, "code"),
        ({"name": "Two", "code": "ONE", "sms_keyword": ""}, "code"),
        ({"name": "Two", "code": "two", "sms_keyword": "dikh"}, "sms_keyword"),
        ({"name": "Two", "code": "two", "sms_keyword": "two words"}, "sms_keyword"),
    ):
        response = post(client, "/desk/campaigns", data)
        assert response.status_code == 400, data
        assert f'id="c-{wrong}-error"' in response.get_data(as_text=True), data
    assert [c.code for c in _campaigns(desk)] == ["one"]


def test_only_admins_manage_campaigns(app: Flask, desk: Services) -> None:
    with desk.uow() as db:
        db.add(Campaign(code="c1", name="C1"))
    [campaign] = _campaigns(desk)
    for role in ("triage", "legal", "viewer"):
        client = app.test_client()
        login(client, role)
        for url in ("/desk/campaigns", f"/desk/campaigns/{campaign.id}/poster.pdf"):
            assert client.get(url).status_code == 403, (role, url)
        data = {"name": "X", "code": "x", "sms_keyword": ""}
        assert post(client, "/desk/campaigns", data).status_code == 403
    assert app.test_client().get("/desk/campaigns").status_code == 302  # to the sign-in page


def test_poster_is_a_pdf_with_the_deep_link(
    app: Flask, desk: Services, monkeypatch: pytest.MonkeyPatch
) -> None:
    payloads: list[str] = []

    def recording(payload: str) -> list[list[bool]]:
        payloads.append(payload)
        return qr_matrix(payload)

    monkeypatch.setattr(poster, "qr_matrix", recording)
    with desk.uow() as db:
        db.add(Campaign(code="roma-2026", name="Roma day", sms_keyword="DIKH"))
    [campaign] = _campaigns(desk)
    client = app.test_client()
    login(client, "admin")
    response = client.get(f"/desk/campaigns/{campaign.id}/poster.pdf")
    assert response.status_code == 200
    assert response.mimetype == "application/pdf"
    assert response.data.startswith(b"%PDF")
    assert f"https://t.me/{BOT}?start=roma-2026".encode() in response.data
    assert payloads == [f"https://t.me/{BOT}?start=roma-2026"]  # the QR code's payload


def test_qr_code_and_texts_of_the_poster(desk: Services) -> None:
    link = telegram_deep_link("@" + BOT, "roma-2026")
    assert link == f"https://t.me/{BOT}?start=roma-2026"
    assert telegram_deep_link("", "x") == ""
    matrix = qr_matrix(link)
    assert len(matrix) == len(matrix[0]) and any(any(row) for row in matrix)
    cv2 = pytest.importorskip("cv2", reason="OpenCV decodes the QR code when installed")
    np = pytest.importorskip("numpy")
    image = np.array([[0 if dark else 255 for dark in row] for row in matrix], dtype=np.uint8)
    image = cv2.resize(image, None, fx=8, fy=8, interpolation=cv2.INTER_NEAREST)
    assert cv2.QRCodeDetector().detectAndDecode(image)[0] == link


def test_poster_texts_come_in_three_languages(desk: Services) -> None:
    texts = poster_texts(desk.catalogs, "DIKH", NUMBER)
    assert [t.language for t in texts] == ["sq", "rom", "sr_Latn"]
    assert all("DIKH" in t.sms and NUMBER in t.sms for t in texts)
    assert len({t.headline for t in texts}) == 3  # translated, not the English source thrice
    assert poster_texts(desk.catalogs, None, NUMBER)[0].sms == ""


def test_campaign_figures_count_conversations_and_reports(app: Flask, desk: Services) -> None:
    for channel in ("telegram", "telegram", "telegram", "sms"):
        _conversation(desk, channel, "c1")
    _conversation(desk, "sms", "c1", test=True)
    _conversation(desk, "telegram", "other")
    make_complaint(desk, channel="telegram", campaign="c1")
    make_complaint(desk, channel="telegram", campaign="c1")
    make_complaint(desk, channel="telegram", campaign="c1", is_test=True)
    make_complaint(desk, channel="sms", campaign="other")
    with desk.uow() as db:
        db.add(Campaign(code="c1", name="C1"))
        figures = campaign_figures(db, "c1")
    assert figures.conversations == {"telegram": 3, "sms": 1}
    assert figures.reports == {"telegram": 2}
    assert figures.total_conversations == 4 and figures.total_reports == 2
    assert figures.rate() == 0.5
    assert figures.rate("telegram") == pytest.approx(2 / 3)
    assert figures.rate("sms") == 0.0
    client = app.test_client()
    login(client, "admin")
    page = client.get("/desk/campaigns").get_data(as_text=True)
    assert "50 %" in page and "67 %" in page
