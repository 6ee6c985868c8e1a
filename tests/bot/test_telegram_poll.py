"""``raporto telegram poll`` and ``raporto telegram set-webhook`` against the fake Bot API."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import pytest
from flask import Flask
from sqlalchemy import select

from bot.app import Services, create_app
from bot.channels.telegram import ALLOWED_UPDATES
from bot.cli import cli
from bot.notify import new_secret
from bot.telegram_poll import poll_updates
from storage.models import Contact, Message
from tests.fakes.telegram_api import FakeTelegramAPI, callback_query_update, message_update
from tests.fakes.twilio_api import FakeTwilioAPI
from tests.fakes.webhook_receiver import WebhookReceiver
from tests.helpers import FULL_REPORT, say
from tests.webhooks.channel_support import (
    CHAT,
    PHONE,
    PUBLIC_BASE_URL,
    TELEGRAM_SECRET,
    LoopThread,
    channel_settings,
    count,
)

SQLITE_ONLY = pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
"""For tests whose subject is not the database (the others run on PostgreSQL too)."""


@pytest.fixture
def tg() -> Iterator[FakeTelegramAPI]:
    """The fake Telegram Bot API."""
    with FakeTelegramAPI() as fake:
        yield fake


@pytest.fixture
def app(database_url: str, tmp_path: Path, tg: FakeTelegramAPI) -> Iterator[Flask]:
    """The app with Telegram settings pointed at the fake."""
    flask_app = create_app(channel_settings(database_url, tmp_path, tg=tg))
    yield flask_app
    flask_app.extensions["raporto"].engine.dispose()


@SQLITE_ONLY
def test_poll_updates_runs_the_pipeline_and_delivers(app: Flask, tg: FakeTelegramAPI) -> None:
    services: Services = app.extensions["raporto"]
    tg.push_update(message_update(CHAT, "hello"))
    loop = LoopThread()
    try:
        stop = asyncio.Event()
        polling = asyncio.run_coroutine_threadsafe(poll_updates(services, stop=stop), loop.loop)
        (menu,) = tg.wait_for(1, timeout=30)  # the language menu, sent by the worker within
        assert menu["reply_markup"] is not None
        press = callback_query_update(
            CHAT, "language:en", message_id=menu["message_id"], callback_id="cq-1"
        )
        tg.push_update(press)
        tg.push_update(press)  # Telegram may hand an update out twice: handled once
        sent = tg.wait_for(3, timeout=30)
        tg.wait_for(lambda: bool(tg.calls("answerCallbackQuery")), timeout=30)
        tg.wait_for(lambda: not tg.pending_updates(), timeout=30)  # offsets confirmed
        loop.loop.call_soon_threadsafe(stop.set)
        # The long poll (20 s) is cancelled rather than waited out; the timeout is a hang guard.
        polling.result(timeout=15)
    finally:
        loop.close()
    assert tg.calls("deleteWebhook")  # getUpdates and a webhook cannot coexist
    assert [c.params["allowed_updates"] for c in tg.calls("getUpdates")][0] == list(ALLOWED_UPDATES)
    assert sent[1]["text"].startswith("Raporto sends your report")
    assert [c.params["callback_query_id"] for c in tg.calls("answerCallbackQuery")] == ["cq-1"]
    assert count(services, Message, Message.direction == "in") == 2
    with services.uow() as session:
        assert session.scalars(select(Contact)).one().language == "en"


@SQLITE_ONLY
def test_set_webhook_command(app: Flask, tg: FakeTelegramAPI) -> None:
    result = app.test_cli_runner().invoke(cli, ["telegram", "set-webhook"])
    assert result.exit_code == 0, result.output
    assert tg.webhook == {
        "url": PUBLIC_BASE_URL + "/webhooks/telegram",
        "secret_token": TELEGRAM_SECRET,
        "allowed_updates": ["message", "callback_query"],
        "max_connections": 40,
    }
    assert "webhook set to https://raporto.example/webhooks/telegram" in result.output


def test_telegram_commands_need_a_token(sqlite_only_url: str, tmp_path: Path) -> None:
    flask_app = create_app(channel_settings(sqlite_only_url, tmp_path))
    try:
        runner = flask_app.test_cli_runner()
        for command in (["telegram", "set-webhook"], ["telegram", "poll"]):
            result = runner.invoke(cli, command)
            assert result.exit_code != 0
            assert "TELEGRAM_BOT_TOKEN" in result.output
    finally:
        flask_app.extensions["raporto"].engine.dispose()


def test_poll_mode_also_sends_sms_replies_and_outbound_webhooks(
    sqlite_only_url: str, tmp_path: Path, tg: FakeTelegramAPI
) -> None:
    """Polling runs the whole delivery side, as `raporto worker` does, not Telegram alone."""
    with WebhookReceiver(new_secret()) as prio, FakeTwilioAPI() as tw:
        settings = channel_settings(
            sqlite_only_url,
            tmp_path,
            tg=tg,
            tw=tw,
            notify_prioritisation_url=prio.url,
            notify_prioritisation_secret=prio.secrets[0],
            notify_allow_private=True,
        )
        flask_app = create_app(settings)
        services: Services = flask_app.extensions["raporto"]
        loop = LoopThread()
        try:
            stop = asyncio.Event()
            polling = asyncio.run_coroutine_threadsafe(poll_updates(services, stop=stop), loop.loop)
            reference = None
            for text in [*FULL_REPORT, "1"]:  # a whole report by SMS, beside the polling
                reference = say(services, text, sender=PHONE).complaint_reference or reference
            assert reference is not None
            prio.wait_for_accepted(1)
            tw.wait_for(1)
            loop.loop.call_soon_threadsafe(stop.set)
            polling.result(timeout=15)
        finally:
            loop.close()
            services.engine.dispose()
    (event,) = prio.accepted("complaint.submitted")
    assert event.payload["data"]["reference"] == reference
    assert tw.requests()  # the SMS replies went out through Twilio
