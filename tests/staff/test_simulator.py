"""The simulator: the real engine in the browser, as test data, kept out of stats and webhooks."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import func, select

from bot.app import Services
from bot.notify import new_secret
from bot.settings import Settings
from storage.events import WebhookEvent
from storage.models import Complaint, Contact, Message
from storage.models import Conversation as ConversationRow
from tests.conftest import make_settings
from tests.helpers import FULL_REPORT, conversation
from tests.staff.desk_support import login, post

_BUTTON = re.compile(r'<button type="submit" name="choice" value="([^"]+)"')


@pytest.fixture
def settings(database_url: str, tmp_path: Path) -> Settings:
    """Settings with a prioritisation webhook configured, so events would be written."""
    return make_settings(
        database_url,
        tmp_path,
        notify_prioritisation_url="http://127.0.0.1:9/hook",
        notify_prioritisation_secret=new_secret(),
        notify_allow_private=True,
    )


@pytest.fixture
def client(app: Flask) -> FlaskClient:
    """A test client of the desk."""
    return app.test_client()


def _count(services: Services, model: type) -> int:
    with services.uow() as db:
        return int(db.scalar(select(func.count()).select_from(model)) or 0)


def test_sms_simulator_completes_a_test_report_without_webhook_events(
    client: FlaskClient, desk: Services
) -> None:
    login(client, "triage")
    page = client.get("/desk/simulator?channel=sms").get_data(as_text=True)
    assert "No messages yet" in page
    for text in [*FULL_REPORT, "1"]:
        response = post(client, "/desk/simulator", {"channel": "sms", "text": text})
        assert response.status_code == 302
    page = client.get("/desk/simulator?channel=sms").get_data(as_text=True)
    assert "RAE-" in page
    assert "the back of the class" in page
    with desk.uow() as db:
        complaint = db.scalars(select(Complaint)).one()
        contact = db.get(Contact, complaint.contact_id)
        statuses = set(db.scalars(select(Message.status).where(Message.direction == "out")))
    assert complaint.is_test and contact is not None and contact.is_test
    assert statuses == {"local"}
    assert _count(desk, WebhookEvent) == 0
    # A real report on the same set-up does emit: the webhook is configured.
    conversation(desk, [*FULL_REPORT, "1"], sender="+38344999000")
    assert _count(desk, WebhookEvent) > 0


def test_telegram_simulator_buttons_carry_the_payload_and_start_over(
    client: FlaskClient, desk: Services
) -> None:
    login(client, "legal")
    post(client, "/desk/simulator", {"channel": "telegram", "text": "hi"})
    page = client.get("/desk/simulator?channel=telegram").get_data(as_text=True)
    payloads = _BUTTON.findall(page)
    assert payloads, "the language menu shows as buttons"
    english = next(p for p in payloads if p.endswith(":en"))
    post(client, "/desk/simulator", {"channel": "telegram", "choice": english})
    page = client.get("/desk/simulator?channel=telegram").get_data(as_text=True)
    assert _BUTTON.findall(page) != payloads  # the consent question now
    with desk.uow() as db:
        contact = db.scalars(select(Contact)).one()
        assert contact.is_test and contact.channel == "telegram"
    post(client, "/desk/simulator/restart", {"channel": "telegram"})
    page = client.get("/desk/simulator?channel=telegram").get_data(as_text=True)
    assert "No messages yet" in page
    assert _count(desk, Contact) == 0
    assert _count(desk, ConversationRow) == 0


def test_viewers_may_not_use_the_simulator(client: FlaskClient, desk: Services) -> None:
    login(client, "viewer")
    assert client.get("/desk/simulator").status_code == 403


def test_simulators_of_two_staff_members_are_apart(
    client: FlaskClient, app: Flask, desk: Services
) -> None:
    login(client, "triage")
    post(client, "/desk/simulator", {"channel": "sms", "text": "hello"})
    other = app.test_client()
    login(other, "admin")
    assert "No messages yet" in other.get("/desk/simulator?channel=sms").get_data(as_text=True)
