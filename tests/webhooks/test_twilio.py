"""POST /webhooks/twilio/sms and /status: signatures, body checks, exactly-once, the pipeline."""

from __future__ import annotations

import base64
import threading
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlencode

import httpx
import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select

from bot.app import Services, create_app
from dialogs.options import COMMAND_WORDS
from storage.models import Attachment, Campaign, Complaint, Contact, Conversation, Message
from tests.conftest import sqlite_url
from tests.fakes.twilio_api import DEFAULT_ACCOUNT_SID, DEFAULT_AUTH_TOKEN, FakeTwilioAPI
from tests.helpers import FULL_REPORT
from tests.webhooks.channel_support import (
    PUBLIC_BASE_URL,
    SMS_FROM,
    SMS_PATH,
    STATUS_PATH,
    channel_settings,
    count,
    delivery,
    live_server,
    new_sid,
    outbox,
    post_signed,
    say_sms,
    sms_params,
    twilio_signature,
)

EMPTY_TWIML = '<?xml version="1.0" encoding="UTF-8"?><Response/>'


SQLITE_ONLY = pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
"""For tests whose subject is not the database (the others run on PostgreSQL too)."""


@pytest.fixture
def tw() -> Iterator[FakeTwilioAPI]:
    """The fake Twilio REST API the worker sends to."""
    with FakeTwilioAPI() as fake:
        yield fake


@pytest.fixture
def app(database_url: str, tmp_path: Path, tw: FakeTwilioAPI) -> Iterator[Flask]:
    """The app with SMS on."""
    flask_app = create_app(channel_settings(database_url, tmp_path, tw=tw))
    flask_app.config["TESTING"] = True
    yield flask_app
    flask_app.extensions["raporto"].engine.dispose()


@pytest.fixture
def client(app: Flask) -> FlaskClient:
    """A test client of the app."""
    return app.test_client()


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


@pytest.fixture(scope="module")
def strict_app(sqlite_template: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Flask]:
    """One SQLite app (4 KiB limit) for requests that must be refused: they store nothing."""
    tmp_path = tmp_path_factory.mktemp("twilio-refusals")
    settings = channel_settings(
        sqlite_url(sqlite_template, tmp_path),
        tmp_path,
        twilio_account_sid=DEFAULT_ACCOUNT_SID,
        twilio_auth_token=DEFAULT_AUTH_TOKEN,
        twilio_from_number=SMS_FROM,
        max_request_bytes=4096,
    )
    flask_app = create_app(settings)
    yield flask_app
    flask_app.extensions["raporto"].engine.dispose()


@pytest.fixture
def strict(strict_app: Flask) -> Iterator[FlaskClient]:
    """A client of the shared app; afterwards nothing may have been stored."""
    yield strict_app.test_client()
    assert_nothing_stored(strict_app.extensions["raporto"])


# --- signatures -----------------------------------------------------------------------------


def _forged() -> str:
    return base64.b64encode(b"0123456789abcdefghij").decode()


@pytest.mark.parametrize("path", [SMS_PATH, STATUS_PATH])
@pytest.mark.parametrize(
    "how", ["missing", "empty", "forged", "other-url", "other-path", "other-token", "http"]
)
def test_bad_signature_is_403_and_nothing_stored(strict: FlaskClient, path: str, how: str) -> None:
    params = sms_params("hello", MessageStatus="delivered")
    signature: str | None = {
        "missing": None,
        "empty": "",
        "forged": _forged(),
        "other-url": twilio_signature(path, params, base="https://attacker.example"),
        "other-path": twilio_signature(STATUS_PATH if path == SMS_PATH else SMS_PATH, params),
        "other-token": twilio_signature(path, params, token="another-auth-token"),
        "http": twilio_signature(path, params, base=PUBLIC_BASE_URL.replace("https", "http")),
    }[how]
    headers = {} if signature is None else {"X-Twilio-Signature": signature}
    response = strict.post(path, data=params, headers=headers)
    assert response.status_code == 403


def test_tampered_body_is_403(strict: FlaskClient) -> None:
    params = sms_params("hello")
    signature = twilio_signature(SMS_PATH, params)
    response = strict.post(
        SMS_PATH, data=dict(params, Body="goodbye"), headers={"X-Twilio-Signature": signature}
    )
    assert response.status_code == 403


@pytest.mark.parametrize("path", [SMS_PATH, STATUS_PATH])
def test_other_account_is_403(strict: FlaskClient, path: str) -> None:
    params = sms_params("hello", AccountSid="AC" + "f" * 32, MessageStatus="delivered")
    response = post_signed(strict, path, params)  # correctly signed with our token
    assert response.status_code == 403


# --- body checks ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("content_type", "body"),
    [
        ("application/json", b'{"Body": "hello"}'),
        ("text/plain", b"Body=hello"),
        ("multipart/form-data; boundary=x", b"--x--"),
    ],
)
def test_non_form_content_type_is_400(strict: FlaskClient, content_type: str, body: bytes) -> None:
    headers = {"X-Twilio-Signature": twilio_signature(SMS_PATH, {})}
    response = strict.post(SMS_PATH, data=body, content_type=content_type, headers=headers)
    assert response.status_code == 400


@pytest.mark.parametrize(
    "body",
    [b"Body=\xff\xfehello&From=%2B38344123456", b"Body=%FF%FE&From=%2B38344123456"],
    ids=["raw-bytes", "percent-encoded"],
)
def test_invalid_utf8_is_400(strict: FlaskClient, body: bytes) -> None:
    response = strict.post(
        SMS_PATH,
        data=body,
        content_type="application/x-www-form-urlencoded",
        headers={"X-Twilio-Signature": _forged()},
    )
    assert response.status_code == 400


def test_body_over_the_limit_is_413(strict: FlaskClient) -> None:
    params = sms_params("x" * 5000)  # the limit is 4096 bytes here
    assert post_signed(strict, SMS_PATH, params).status_code == 413


@pytest.mark.parametrize(
    "change",
    [
        {"MessageSid": "SM123"},
        {"MessageSid": "XX" + "0" * 32},
        {"MessageSid": "", "SmsSid": ""},
        {"From": "not a number"},
        {"From": ""},
        {"From": "+3834412345<script>"},
        {"NumMedia": "many"},
    ],
    ids=["short-sid", "wrong-prefix", "no-sid", "from-words", "no-from", "from-markup", "media"],
)
def test_malformed_fields_are_400(strict: FlaskClient, change: dict[str, str]) -> None:
    params = sms_params("hello")
    params.update(change)
    response = post_signed(strict, SMS_PATH, params)
    assert response.status_code == 400


def test_malformed_status_callback_is_400(strict: FlaskClient) -> None:
    params = {"AccountSid": DEFAULT_ACCOUNT_SID, "MessageSid": "SM" + "0" * 32}
    assert post_signed(strict, STATUS_PATH, params).status_code == 400


def test_disabled_without_credentials_is_404(sqlite_only_url: str, tmp_path: Path) -> None:
    flask_app = create_app(channel_settings(sqlite_only_url, tmp_path))
    try:
        response = post_signed(flask_app.test_client(), SMS_PATH, sms_params("hello"))
        assert response.status_code == 404
    finally:
        flask_app.extensions["raporto"].engine.dispose()


# --- answers and exactly once ---------------------------------------------------------------


@SQLITE_ONLY
def test_answer_is_empty_twiml(client: FlaskClient, services: Services) -> None:
    response = post_signed(client, SMS_PATH, sms_params("hello"))
    assert response.status_code == 200
    assert response.mimetype == "text/xml"
    assert response.get_data(as_text=True) == EMPTY_TWIML
    assert len(outbox(services)) == 1  # the reply goes through the outbox, not the TwiML


def test_duplicate_message_sid_is_processed_once(client: FlaskClient, services: Services) -> None:
    params = sms_params("hello")
    for _ in range(3):
        response = post_signed(client, SMS_PATH, params)
        assert response.status_code == 200
        assert response.get_data(as_text=True) == EMPTY_TWIML
    assert count(services, Message, Message.direction == "in") == 1
    assert len(outbox(services)) == 1


def test_concurrent_copies_are_processed_once(app: Flask, services: Services) -> None:
    say_sms(app.test_client(), "hello")
    params = sms_params("7")  # English: the welcome and the consent question
    body = urlencode(params)
    headers = {
        "X-Twilio-Signature": twilio_signature(SMS_PATH, params),
        "Content-Type": "application/x-www-form-urlencoded",
    }
    statuses: list[int] = []
    barrier = threading.Barrier(8)
    with live_server(app) as base:

        def deliver() -> None:
            with httpx.Client(base_url=base, timeout=30) as http:
                barrier.wait()
                statuses.append(http.post(SMS_PATH, content=body, headers=headers).status_code)

        threads = [threading.Thread(target=deliver) for _ in range(8)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    assert statuses == [200] * 8
    assert count(services, Message, Message.direction == "in") == 2
    assert len(outbox(services)) == 3
    with services.uow() as session:
        assert session.scalars(select(Conversation)).one().state == "consent"


# --- status callbacks -----------------------------------------------------------------------


def _status(client: FlaskClient, tw: FakeTwilioAPI, sid: str, status: str, **extra: str) -> None:
    params = tw.status_callback_params(sid, status)
    params.update(extra)
    response = post_signed(client, STATUS_PATH, params)
    assert response.status_code == 200
    assert response.get_data(as_text=True) == EMPTY_TWIML


@SQLITE_ONLY
def test_status_callbacks_move_the_row_forward_only(
    client: FlaskClient, services: Services, tw: FakeTwilioAPI
) -> None:
    with delivery(services) as worker:
        say_sms(client, "hello")
        worker.drain()
        (sent,) = tw.sent_messages()
        assert sent["StatusCallback"] == PUBLIC_BASE_URL + STATUS_PATH
        (row,) = outbox(services)
        assert (row.status, row.channel_message_id) == ("sent", sent["Sid"])

        _status(client, tw, sent["Sid"], "queued")
        _status(client, tw, sent["Sid"], "sending")
        # Twilio's "queued" is not our outbox's "queued": the row must not go out again.
        assert worker.drain() == 0
        assert len(tw.sent_messages()) == 1
        assert outbox(services)[0].status == "sent"

        _status(client, tw, sent["Sid"], "sent")
        assert outbox(services)[0].status == "sent"
        _status(client, tw, sent["Sid"], "delivered")
        assert outbox(services)[0].status == "delivered"
        _status(client, tw, sent["Sid"], "sent")  # late and out of order
        _status(client, tw, sent["Sid"], "queued")
        assert outbox(services)[0].status == "delivered"
        assert worker.drain() == 0
    assert len(tw.sent_messages()) == 1


@SQLITE_ONLY
def test_undelivered_with_21610_opts_the_contact_out(
    client: FlaskClient, services: Services, tw: FakeTwilioAPI
) -> None:
    with delivery(services) as worker:
        say_sms(client, "hello")
        worker.drain()
    sid = tw.sent_messages()[0]["Sid"]
    _status(client, tw, sid, "undelivered", ErrorCode="21610")
    (row,) = outbox(services)
    assert row.status == "undelivered"
    assert row.error == "twilio 21610"
    with services.uow() as session:
        assert session.scalars(select(Contact)).one().opted_out_at is not None


@SQLITE_ONLY
def test_status_for_an_unknown_sid_is_200(client: FlaskClient, services: Services) -> None:
    params = {
        "AccountSid": DEFAULT_ACCOUNT_SID,
        "MessageSid": new_sid(),
        "MessageStatus": "delivered",
    }
    response = post_signed(client, STATUS_PATH, params)
    assert response.status_code == 200
    assert response.get_data(as_text=True) == EMPTY_TWIML
    assert count(services, Message) == 0


# --- through the pipeline -------------------------------------------------------------------


@SQLITE_ONLY
def test_mms_during_evidence_is_fetched_by_the_worker(
    client: FlaskClient, services: Services, tw: FakeTwilioAPI
) -> None:
    message_sid = new_sid("MM")
    media_path = (
        f"/2010-04-01/Accounts/{DEFAULT_ACCOUNT_SID}/Messages/{message_sid}/Media/ME{'a' * 32}"
    )
    content = b"\xff\xd8\xff\xe0 photo of the notice on the door"
    tw.add_media(media_path, content, "image/jpeg", require_auth=True)
    media = {
        "NumMedia": "1",
        "MediaUrl0": "https://api.twilio.com" + media_path,  # rewritten to the fake
        "MediaContentType0": "image/jpeg",
    }
    with delivery(services) as worker:
        for text in FULL_REPORT[:12]:  # up to the end of the description
            say_sms(client, text)
        say_sms(client, "", sid=message_sid, **media)
        for text in ["0", *FULL_REPORT[13:], "1"]:
            say_sms(client, text)
        worker.drain()
        with services.uow() as session:
            complaint = session.scalars(select(Complaint)).one()
            attachment = session.scalars(select(Attachment)).one()
            assert attachment.complaint_id == complaint.id
            assert (attachment.kind, attachment.content_type) == ("photo", "image/jpeg")
        assert worker.fetch_attachments() == 1
    with services.uow() as session:
        attachment = session.scalars(select(Attachment)).one()
    assert attachment.path == f"{complaint.id}/{attachment.id}.jpg"
    assert (services.settings.storage_dir / attachment.path).read_bytes() == content
    downloads = [r for r in tw.raw_requests() if r.path == media_path]
    assert len(downloads) == 1
    assert (downloads[0].header("Authorization") or "").startswith("Basic ")


@SQLITE_ONLY
def test_campaign_keyword_is_recorded(client: FlaskClient, services: Services) -> None:
    with services.uow() as session:
        session.add(Campaign(code="dikh_2026", name="Dikh posters", sms_keyword="DIKH"))
    say_sms(client, "dikh I want to report")  # the keyword in any case, as the first word
    with services.uow() as session:
        assert session.scalars(select(Conversation)).one().campaign == "dikh_2026"
    for text in [*FULL_REPORT[1:], "1"]:
        say_sms(client, text)
    with services.uow() as session:
        assert session.scalars(select(Complaint)).one().campaign == "dikh_2026"


@SQLITE_ONLY
def test_keyword_later_in_the_message_is_not_a_campaign(
    client: FlaskClient, services: Services
) -> None:
    with services.uow() as session:
        session.add(Campaign(code="dikh_2026", name="Dikh posters", sms_keyword="DIKH"))
    say_sms(client, "I saw DIKH")
    with services.uow() as session:
        assert session.scalars(select(Conversation)).one().campaign is None


def _stop_and_write_again(
    client: FlaskClient, services: Services, tw: FakeTwilioAPI, stop_word: str
) -> None:
    with delivery(services) as worker:
        for text in FULL_REPORT[:4]:
            say_sms(client, text)
        worker.drain()
        before = len(tw.sent_messages())
        say_sms(client, stop_word, OptOutType="STOP")
        with services.uow() as session:
            contact = session.scalars(select(Contact)).one()
            assert contact.opted_out_at is not None
        worker.drain()
        assert len(tw.sent_messages()) == before  # Twilio confirms the opt-out itself
        assert outbox(services)[-1].status == "suppressed"

        say_sms(client, "hello")  # writing again opts back in
        with services.uow() as session:
            assert session.scalars(select(Contact)).one().opted_out_at is None
        worker.drain()
    assert len(tw.sent_messages()) > before


@SQLITE_ONLY
def test_stop_opts_out_and_writing_again_opts_in(
    client: FlaskClient, services: Services, tw: FakeTwilioAPI
) -> None:
    _stop_and_write_again(client, services, tw, "STOP")


@SQLITE_ONLY
@pytest.mark.parametrize("language", ["rom", "sq"])
def test_stop_word_of_the_catalogs(
    client: FlaskClient, services: Services, tw: FakeTwilioAPI, language: str
) -> None:
    english = set(COMMAND_WORDS["stop"].msgid.split("|"))
    words = [
        word.strip()
        for word in services.catalogs.text(language, COMMAND_WORDS["stop"]).split("|")
        if word.strip() and word.strip().casefold() not in english
    ]
    if not words:
        pytest.skip(f"the {language} catalog has no stop word of its own yet")
    say_sms(client, "hello")
    say_sms(client, words[0])
    with services.uow() as session:
        assert session.scalars(select(Contact)).one().opted_out_at is not None
    # Twilio does not know this word and blocks nothing: our confirmation goes out.
    assert outbox(services)[-1].status == "queued"
