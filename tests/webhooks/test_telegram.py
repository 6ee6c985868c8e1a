"""POST /webhooks/telegram: authentication, body checks, ignored updates, exactly-once, pipeline."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select

from bot.app import Services, create_app
from storage.models import Attachment, Complaint, Contact, Conversation, Message
from tests.conftest import sqlite_url
from tests.fakes.telegram_api import (
    DEFAULT_TOKEN,
    FakeTelegramAPI,
    callback_query_update,
    message_update,
    photo_message_update,
)
from tests.webhooks.channel_support import (
    CHAT,
    TELEGRAM_PATH,
    TELEGRAM_SECRET,
    channel_settings,
    count,
    delivery,
    live_server,
    outbox,
    post_update,
    telegram_dialog,
    telegram_report_steps,
)

SQLITE_ONLY = pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
"""For tests whose subject is not the database (the others run on PostgreSQL too)."""


@pytest.fixture
def tg() -> Iterator[FakeTelegramAPI]:
    """The fake Bot API the worker sends to."""
    with FakeTelegramAPI() as fake:
        yield fake


@pytest.fixture
def app(database_url: str, tmp_path: Path, tg: FakeTelegramAPI) -> Iterator[Flask]:
    """The app with Telegram on (a small request limit, to test 413 cheaply)."""
    settings = channel_settings(database_url, tmp_path, tg=tg, max_request_bytes=4096)
    flask_app = create_app(settings)
    flask_app.config["TESTING"] = True
    yield flask_app
    flask_app.extensions["raporto"].engine.dispose()


@pytest.fixture
def client(app: Flask) -> FlaskClient:
    """A test client of the app."""
    return app.test_client()


@pytest.fixture(scope="module")
def strict_app(sqlite_template: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Flask]:
    """One SQLite app for the requests that must be refused (they store nothing)."""
    tmp_path = tmp_path_factory.mktemp("telegram-refusals")
    settings = channel_settings(
        sqlite_url(sqlite_template, tmp_path),
        tmp_path,
        telegram_bot_token=DEFAULT_TOKEN,
        telegram_webhook_secret=TELEGRAM_SECRET,
        max_request_bytes=4096,
    )
    flask_app = create_app(settings)
    yield flask_app
    flask_app.extensions["raporto"].engine.dispose()


@pytest.fixture
def strict(strict_app: Flask) -> Iterator[tuple[FlaskClient, Services]]:
    """A client of the shared app, checking afterwards that nothing was stored."""
    services: Services = strict_app.extensions["raporto"]
    yield strict_app.test_client(), services
    assert_nothing_stored(services)


@pytest.fixture
def services(app: Flask) -> Services:
    """The app's services."""
    found: Services = app.extensions["raporto"]
    return found


def assert_nothing_stored(services: Services) -> None:
    """No contact, conversation or message was written."""
    assert count(services, Message) == 0
    assert count(services, Contact) == 0
    assert count(services, Conversation) == 0


# --- authentication -------------------------------------------------------------------------


@pytest.mark.parametrize("secret", [None, "", "wrong", TELEGRAM_SECRET + "x", TELEGRAM_SECRET[:-1]])
def test_missing_or_wrong_secret_is_403_and_nothing_stored(
    strict: tuple[FlaskClient, Services], secret: str | None
) -> None:
    client, _ = strict
    response = post_update(client, message_update(CHAT, "hello"), secret=secret)
    assert response.status_code == 403
    assert response.is_json  # a short JSON error, never an HTML page


def test_disabled_without_token_is_404(database_url: str, tmp_path: Path) -> None:
    settings = channel_settings(database_url, tmp_path, telegram_webhook_secret=TELEGRAM_SECRET)
    assert not settings.telegram_enabled
    flask_app = create_app(settings)
    try:
        response = post_update(flask_app.test_client(), message_update(CHAT, "hello"))
        assert response.status_code == 404
        assert_nothing_stored(flask_app.extensions["raporto"])
    finally:
        flask_app.extensions["raporto"].engine.dispose()


# --- body checks ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "body",
    [b"{", b"not json", b"", b'{"update_id": 1,}', b"[" * 2000 + b"]" * 2000],
    ids=["truncated", "text", "empty", "trailing-comma", "deeply-nested"],
)
def test_malformed_json_is_400(strict: tuple[FlaskClient, Services], body: bytes) -> None:
    response = post_update(strict[0], body)
    assert response.status_code == 400


@pytest.mark.parametrize(
    "data",
    [[], 5, "update", None, {}, {"message": {}}, {"update_id": "7"}, {"update_id": True}],
    ids=["list", "number", "string", "null", "empty", "no-id", "string-id", "bool-id"],
)
def test_not_an_update_is_400(strict: tuple[FlaskClient, Services], data: Any) -> None:
    response = post_update(strict[0], json.dumps(data).encode())
    assert response.status_code == 400


def _private(**fields: Any) -> dict[str, Any]:
    message = {"message_id": 1, "date": 1_700_000_000, "chat": {"id": CHAT, "type": "private"}}
    message.update(fields)
    return {"update_id": 900_001, "message": message}


BROKEN_UPDATES = {
    "message-without-chat": {"update_id": 1, "message": {"message_id": 1, "date": 1, "text": "x"}},
    "message-is-a-string": {"update_id": 1, "message": "hello"},
    "message-is-a-list": {"update_id": 1, "message": []},
    "chat-is-a-string": _private(chat="x", text="hi"),
    "chat-without-type": _private(chat={"id": CHAT}, text="hi"),
    "chat-id-not-a-number": _private(chat={"id": "abc", "type": "private"}, text="hi"),
    "message-without-date": {"update_id": 1, "message": {"chat": {"id": 1, "type": "private"}}},
    "date-out-of-range": _private(date=10**20, text="hi"),
    "text-not-a-string": _private(text=5),
    "photo-not-a-list": _private(photo="x"),
    "photo-size-incomplete": _private(photo=[{"file_id": "a"}]),
    "entities-not-a-list": _private(text="hi", entities="x"),
    "callback-without-chat-instance": {"update_id": 1, "callback_query": {"id": "1", "data": "x"}},
    "callback-is-a-string": {"update_id": 1, "callback_query": "x"},
    "callback-message-without-chat": {
        "update_id": 1,
        "callback_query": {
            "id": "1",
            "from": {"id": 1, "is_bot": False, "first_name": "a"},
            "chat_instance": "1",
            "data": "x",
            "message": {"message_id": 1, "date": 1},
        },
    },
}


def _nested_replies(depth: int) -> dict[str, Any]:
    message: dict[str, Any] = {"message_id": 0, "date": 1, "chat": {"id": 1, "type": "private"}}
    for n in range(1, depth):
        message = {
            "message_id": n,
            "date": 1,
            "chat": {"id": 1, "type": "private"},
            "reply_to_message": message,
        }
    return {"update_id": 1, "message": message}


@pytest.mark.parametrize("name", sorted(BROKEN_UPDATES))
def test_structurally_broken_update_is_400_not_500(
    strict: tuple[FlaskClient, Services], name: str
) -> None:
    response = post_update(strict[0], BROKEN_UPDATES[name])
    assert response.status_code == 400, response.get_data(as_text=True)


def test_deeply_nested_replies_are_400_not_500(sqlite_only_url: str, tmp_path: Path) -> None:
    settings = channel_settings(  # the default 256 KiB limit
        sqlite_only_url,
        tmp_path,
        telegram_bot_token=DEFAULT_TOKEN,
        telegram_webhook_secret=TELEGRAM_SECRET,
    )
    flask_app = create_app(settings)
    try:
        response = post_update(flask_app.test_client(), _nested_replies(900))
        assert response.status_code == 400
        assert_nothing_stored(flask_app.extensions["raporto"])
    finally:
        flask_app.extensions["raporto"].engine.dispose()


def test_body_over_the_limit_is_413(strict: tuple[FlaskClient, Services]) -> None:
    update = message_update(CHAT, "x" * 5000)  # settings.max_request_bytes is 4096 here
    assert post_update(strict[0], update).status_code == 413


@SQLITE_ONLY
def test_body_within_the_limit_is_taken(client: FlaskClient, services: Services) -> None:
    assert post_update(client, message_update(CHAT, "x" * 3000)).status_code == 200
    assert count(services, Message, Message.direction == "in") == 1


def test_chunked_body_over_the_limit_is_413(strict_app: Flask) -> None:
    app = strict_app
    body = json.dumps(message_update(CHAT, "y" * 10_000)).encode()

    def chunks() -> Iterator[bytes]:  # no Content-Length: Transfer-Encoding: chunked
        for start in range(0, len(body), 1000):
            yield body[start : start + 1000]

    with live_server(app) as base, httpx.Client(base_url=base) as http:
        response = http.post(
            TELEGRAM_PATH,
            content=chunks(),
            headers={
                "X-Telegram-Bot-Api-Secret-Token": TELEGRAM_SECRET,
                "Content-Type": "application/json",
            },
        )
    assert response.status_code == 413
    assert_nothing_stored(app.extensions["raporto"])


def test_invalid_utf8_is_400(strict: tuple[FlaskClient, Services]) -> None:
    body = json.dumps(message_update(CHAT, "PLACEHOLDER")).encode()
    response = post_update(strict[0], body.replace(b"PLACEHOLDER", b"\xff\xfe bad \xc3"))
    assert response.status_code == 400


# --- ignored update types -------------------------------------------------------------------


def _ignored_updates() -> dict[str, dict[str, Any]]:
    plain = message_update(CHAT, "hello", update_id=1)["message"]
    group = dict(plain, chat={"id": -100123, "type": "supergroup", "title": "Roma group"})
    channel_post = dict(plain, chat={"id": -100777, "type": "channel", "title": "News"})
    channel_post.pop("from")
    member = {
        "chat": {"id": CHAT, "type": "private", "first_name": "Test"},
        "from": plain["from"],
        "date": 1_700_000_000,
        "old_chat_member": {
            "status": "member",
            "user": {"id": 1, "is_bot": True, "first_name": "R"},
        },
        "new_chat_member": {
            "status": "kicked",
            "until_date": 0,
            "user": {"id": 1, "is_bot": True, "first_name": "R"},
        },
    }
    return {
        "edited_message": {"update_id": 11, "edited_message": dict(plain, edit_date=1_700_000_100)},
        "my_chat_member": {"update_id": 12, "my_chat_member": member},
        "channel_post": {"update_id": 13, "channel_post": channel_post},
        "group_message": {"update_id": 14, "message": group},
        "group_group": {
            "update_id": 15,
            "message": dict(plain, chat={"id": -5, "type": "group", "title": "g"}),
        },
    }


@pytest.mark.parametrize("name", sorted(_ignored_updates()))
def test_other_update_types_are_ignored(strict: tuple[FlaskClient, Services], name: str) -> None:
    response = post_update(strict[0], _ignored_updates()[name])
    assert response.status_code == 200
    assert response.get_json() == {"ok": True, "ignored": True}


# --- exactly once ---------------------------------------------------------------------------


def test_duplicate_update_id_is_processed_once(client: FlaskClient, services: Services) -> None:
    update = message_update(CHAT, "hello")
    first = post_update(client, update)
    again = post_update(client, update)
    assert first.status_code == again.status_code == 200
    assert first.get_json()["duplicate"] is False
    assert again.get_json()["duplicate"] is True
    assert count(services, Message, Message.direction == "in") == 1
    assert len(outbox(services)) == 1  # the language menu, once


def test_concurrent_copies_through_a_real_server_are_processed_once(
    app: Flask, services: Services
) -> None:
    post_update(app.test_client(), message_update(CHAT, "hello"))  # the contact exists
    update = message_update(CHAT, "7")  # English: the welcome and the consent question
    statuses: list[int] = []
    duplicates: list[bool] = []
    barrier = threading.Barrier(8)
    with live_server(app) as base:

        def deliver() -> None:
            with httpx.Client(base_url=base, timeout=30) as http:
                barrier.wait()
                response = http.post(
                    TELEGRAM_PATH,
                    json=update,
                    headers={"X-Telegram-Bot-Api-Secret-Token": TELEGRAM_SECRET},
                )
            statuses.append(response.status_code)
            duplicates.append(response.json()["duplicate"])

        threads = [threading.Thread(target=deliver) for _ in range(8)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    assert statuses == [200] * 8
    assert sorted(duplicates) == [False] + [True] * 7
    assert count(services, Message, Message.direction == "in") == 2
    assert len(outbox(services)) == 3  # menu + welcome + consent question, nothing twice
    with services.uow() as session:
        assert session.scalars(select(Conversation)).one().state == "consent"


# --- through the pipeline to the fake Bot API -----------------------------------------------


@SQLITE_ONLY
def test_callback_query_is_answered_through_the_outbox(
    client: FlaskClient, services: Services, tg: FakeTelegramAPI
) -> None:
    with delivery(services) as worker:
        post_update(client, message_update(CHAT, "hello"))
        worker.drain()
        menu = tg.sent_messages()[-1]
        update = callback_query_update(
            CHAT, "language:en", message_id=menu["message_id"], callback_id="777000111"
        )
        assert post_update(client, update).status_code == 200
        answers = outbox(services, kind="callback_answer")
        assert len(answers) == 1
        assert answers[0].reply_markup == {"callback_query_id": "777000111"}
        assert answers[0].status == "queued"
        worker.drain()
    calls = tg.calls("answerCallbackQuery")
    assert [c.params["callback_query_id"] for c in calls] == ["777000111"]
    assert outbox(services, kind="callback_answer")[0].status == "sent"
    assert any(m["text"].startswith("Raporto sends your report") for m in tg.sent_messages())
    with services.uow() as session:
        assert session.scalars(select(Contact)).one().language == "en"


@SQLITE_ONLY
def test_start_campaign_is_recorded_on_conversation_and_complaint(
    client: FlaskClient, services: Services, tg: FakeTelegramAPI
) -> None:
    with delivery(services) as worker:
        steps = telegram_report_steps(first="/start tv_nov26")
        telegram_dialog(client, tg, worker, CHAT, steps[:3])
        with services.uow() as session:
            assert session.scalars(select(Conversation)).one().campaign == "tv_nov26"
        telegram_dialog(client, tg, worker, CHAT, steps[3:])
    with services.uow() as session:
        complaint = session.scalars(select(Complaint)).one()
        assert complaint.campaign == "tv_nov26"
        assert complaint.channel == "telegram"
    assert complaint.reference in tg.sent_messages()[-2]["text"]
    assert tg.sent_messages()[-1]["text"].startswith("On a shared phone?")


@SQLITE_ONLY
def test_photo_during_evidence_is_stored_and_downloaded(
    client: FlaskClient, services: Services, tg: FakeTelegramAPI
) -> None:
    content = b"\xff\xd8\xff\xe0 a photo of the class list"
    tg.add_file("AgACphotoOfEvidence1", content)
    evidence = [
        ("update", photo_message_update(CHAT, "AgACphotoOfEvidence1", file_size=len(content))),
        ("type", "0"),
    ]
    with delivery(services) as worker:
        telegram_dialog(client, tg, worker, CHAT, telegram_report_steps(evidence=evidence))
        with services.uow() as session:
            complaint = session.scalars(select(Complaint)).one()
            attachment = session.scalars(select(Attachment)).one()
            assert attachment.complaint_id == complaint.id
            assert attachment.kind == "photo"
            assert attachment.source_ref == "AgACphotoOfEvidence1"
            assert attachment.fetched_at is None
        assert worker.fetch_attachments() == 1
    with services.uow() as session:
        attachment = session.scalars(select(Attachment)).one()
        assert attachment.fetched_at is not None
        assert attachment.size == len(content)
        assert attachment.path == f"{complaint.id}/{attachment.id}.jpg"
    stored = services.settings.storage_dir / attachment.path
    assert stored.read_bytes() == content
    assert [c.params["file_id"] for c in tg.calls("getFile")] == ["AgACphotoOfEvidence1"]
