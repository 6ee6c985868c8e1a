"""The desk in Albanian, Serbian (both scripts) and English, per staff member."""

from __future__ import annotations

from flask import Flask
from sqlalchemy import update

from bot.app import Services
from storage.staff_models import StaffUser
from tests.staff.desk_support import login, make_complaint


def test_sign_in_page_language_from_the_browser_or_the_choice(app: Flask) -> None:
    client = app.test_client()
    page = client.get("/desk/login", headers={"Accept-Language": "sr-RS,sr;q=0.9"}).text
    assert '<html lang="sr-Latn">' in page and "Prijavi se" in page
    assert '<html lang="en">' in client.get("/desk/login", headers={"Accept-Language": "en"}).text
    assert "Hyr" in client.get("/desk/login").text  # Albanian by default
    assert "Пријави се" in client.get("/desk/login?lang=sr_Cyrl").text
    assert "Пријави се" in client.get("/desk/login").text  # the choice is remembered
    assert "Пријави се" in client.get("/desk/login?lang=xx").text  # unknown: ignored


def test_each_staff_member_reads_the_desk_in_their_language(app: Flask, desk: Services) -> None:
    reference = make_complaint(desk, area="health", municipality="gjakove")
    with desk.uow() as db:
        db.execute(update(StaffUser).where(StaffUser.role == "triage").values(language="sr_Cyrl"))
        db.execute(update(StaffUser).where(StaffUser.role == "admin").values(language="sq"))
    serbian = app.test_client()
    login(serbian, "triage")
    albanian = app.test_client()
    login(albanian, "admin")
    page = serbian.get(f"/desk/case/{reference}").text
    assert '<html lang="sr-Cyrl">' in page
    assert "Ђаковица" in page  # the municipality in Serbian Cyrillic
    assert "Предмет " + reference in page
    page = albanian.get(f"/desk/case/{reference}").text
    assert "Gjakovë" in page and "Rasti " + reference in page
    inbox = albanian.get("/desk/").text
    assert "Kutia hyrëse" in inbox
