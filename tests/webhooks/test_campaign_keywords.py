"""The SMS webhook keeps campaign keywords in the process for a few seconds."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import event, select

from bot.app import Services, create_app
from storage.models import Campaign, Conversation
from storage.repositories import ContactRepository
from tests.fakes.twilio_api import FakeTwilioAPI
from tests.webhooks.channel_support import channel_settings, say_sms
from webhooks.twilio import KEYWORDS_EXTENSION, KEYWORDS_TTL, CampaignKeywords

pytestmark = pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)


class Ticks:
    """A monotonic clock the test moves by hand."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def app(database_url: str, tmp_path: Path) -> Iterator[Flask]:
    """The web app with SMS on (pointed at a fake nobody calls: replies stay in the outbox)."""
    with FakeTwilioAPI() as tw:
        flask_app = create_app(channel_settings(database_url, tmp_path, tw=tw))
        flask_app.config["TESTING"] = True
        yield flask_app
        flask_app.extensions["raporto"].engine.dispose()


@pytest.fixture
def ticks(app: Flask) -> Ticks:
    """The keyword cache of this app, on a clock the test moves."""
    clock = Ticks()
    app.extensions[KEYWORDS_EXTENSION] = CampaignKeywords(clock=clock)
    return clock


def campaign_of(services: Services, phone: str) -> str | None:
    """The campaign recorded on this person's conversation."""
    with services.uow() as session:
        contact = ContactRepository(session).find("sms", phone)
        assert contact is not None
        return session.scalars(
            select(Conversation.campaign).where(Conversation.contact_id == contact.id)
        ).one()


def test_a_new_campaign_keyword_works_once_the_cache_expires(app: Flask, ticks: Ticks) -> None:
    client: FlaskClient = app.test_client()
    services: Services = app.extensions["raporto"]
    say_sms(client, "DIKH hello", sender="+38344000001")  # no such campaign yet
    with services.uow() as session:
        session.add(Campaign(code="dikh_2026", name="Dikh posters", sms_keyword="DIKH"))
    ticks.now += KEYWORDS_TTL - 0.5
    say_sms(client, "DIKH hello", sender="+38344000002")  # still the keywords read before
    ticks.now += 1.0
    say_sms(client, "dikh hello", sender="+38344000003")  # read again: the new one counts
    assert campaign_of(services, "+38344000001") is None
    assert campaign_of(services, "+38344000002") is None
    assert campaign_of(services, "+38344000003") == "dikh_2026"


def test_keywords_are_read_once_per_ttl_not_once_per_sms(app: Flask, ticks: Ticks) -> None:
    client: FlaskClient = app.test_client()
    services: Services = app.extensions["raporto"]
    with services.uow() as session:
        session.add(Campaign(code="dikh_2026", name="Dikh posters", sms_keyword="DIKH"))
    reads: list[str] = []

    def seen(_conn: object, _cursor: object, statement: str, *_args: object) -> None:
        if "FROM campaign" in statement:
            reads.append(statement)

    event.listen(services.engine, "before_cursor_execute", seen)
    try:
        for n in range(5):
            say_sms(client, "DIKH hello", sender=f"+3834400001{n}")
        ticks.now += KEYWORDS_TTL
        say_sms(client, "DIKH hello", sender="+38344000020")
    finally:
        event.remove(services.engine, "before_cursor_execute", seen)
    assert len(reads) == 2
    assert campaign_of(services, "+38344000010") == "dikh_2026"
    assert campaign_of(services, "+38344000020") == "dikh_2026"
