"""Shared plumbing for channel tests: settings pointed at the fakes, signed requests, a worker.

Used by the webhook tests here and by the delivery/sender/poll tests under ``tests/bot``. Nothing
of the project is replaced: the app, the intake service, the senders and the worker are the real
ones, talking HTTP to the local fakes in ``tests/fakes``.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import threading
from collections.abc import Awaitable, Callable, Iterator
from datetime import datetime
from pathlib import Path
from typing import Any, TypeVar

from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import func, select
from twilio.request_validator import RequestValidator
from werkzeug.serving import BaseWSGIServer, make_server
from werkzeug.test import TestResponse

from bot.app import Services
from bot.delivery import DeliveryWorker
from bot.senders import RateLimiter, Sender, TelegramSender
from bot.settings import Settings
from bot.worker import channel_senders, make_worker
from storage.models import Message
from tests.conftest import make_settings
from tests.fakes.telegram_api import (
    DEFAULT_TOKEN,
    FakeTelegramAPI,
    callback_query_update,
    message_update,
)
from tests.fakes.twilio_api import DEFAULT_ACCOUNT_SID, DEFAULT_AUTH_TOKEN, FakeTwilioAPI

T = TypeVar("T")

PUBLIC_BASE_URL = "https://raporto.example"
TELEGRAM_SECRET = "webhook_secret-0123456789"
SMS_FROM = "+15005550006"
PHONE = "+38344123456"
CHAT = 5550001
SMS_PATH = "/webhooks/twilio/sms"
STATUS_PATH = "/webhooks/twilio/status"
TELEGRAM_PATH = "/webhooks/telegram"

_sids = itertools.count(1)


def channel_settings(
    database_url: str,
    tmp_path: Path,
    *,
    tg: FakeTelegramAPI | None = None,
    tw: FakeTwilioAPI | None = None,
    **overrides: object,
) -> Settings:
    """Test settings with Telegram and/or Twilio on, their APIs pointed at the fakes."""
    values: dict[str, object] = {"public_base_url": PUBLIC_BASE_URL}
    if tg is not None:
        values.update(
            telegram_bot_token=DEFAULT_TOKEN,
            telegram_webhook_secret=TELEGRAM_SECRET,
            telegram_api_base_url=tg.base_url,
        )
    if tw is not None:
        values.update(
            twilio_account_sid=DEFAULT_ACCOUNT_SID,
            twilio_auth_token=DEFAULT_AUTH_TOKEN,
            twilio_from_number=SMS_FROM,
            twilio_api_base_url=tw.base_url,
        )
    values.update(overrides)
    return make_settings(database_url, tmp_path, **values)


# --- Telegram -----------------------------------------------------------------------------


def post_update(
    client: FlaskClient, update: dict[str, Any] | bytes, *, secret: str | None = TELEGRAM_SECRET
) -> TestResponse:
    """POST an update (JSON, or raw bytes as given) to the Telegram webhook."""
    headers = {} if secret is None else {"X-Telegram-Bot-Api-Secret-Token": secret}
    body = update if isinstance(update, bytes) else json.dumps(update).encode()
    return client.post(TELEGRAM_PATH, data=body, headers=headers, content_type="application/json")


def press(tg: FakeTelegramAPI, chat: int, number: int) -> dict[str, Any]:
    """A callback-query update pressing button ``number`` (1-based) of the bot's last message."""
    last = [m for m in tg.sent_messages() if m["chat_id"] == chat][-1]
    markup = last["reply_markup"]
    assert markup is not None, f"no buttons under {last['text']!r}"
    buttons = [row[0] for row in markup["inline_keyboard"]]
    button = buttons[number - 1]
    assert button["text"].startswith(f"{number}. ")
    return callback_query_update(
        chat, button["callback_data"], message_id=last["message_id"], message_text=last["text"]
    )


# --- Twilio -------------------------------------------------------------------------------


def new_sid(prefix: str = "SM") -> str:
    """A fresh, well-formed Twilio message SID."""
    return f"{prefix}{next(_sids):032x}"


def sms_params(
    body: str, *, sid: str | None = None, sender: str = PHONE, **extra: str
) -> dict[str, str]:
    """The form fields of an inbound SMS webhook, as Twilio posts them."""
    sid = sid or new_sid()
    params = {
        "ToCountry": "XK",
        "SmsMessageSid": sid,
        "NumMedia": "0",
        "SmsSid": sid,
        "SmsStatus": "received",
        "Body": body,
        "To": SMS_FROM,
        "NumSegments": "1",
        "MessageSid": sid,
        "AccountSid": DEFAULT_ACCOUNT_SID,
        "From": sender,
        "ApiVersion": "2010-04-01",
    }
    params.update(extra)
    return params


def twilio_signature(
    path: str, params: dict[str, str], *, token: str = DEFAULT_AUTH_TOKEN, base: str | None = None
) -> str:
    """``X-Twilio-Signature`` computed by twilio's own validator for the public URL."""
    url = (base or PUBLIC_BASE_URL) + path
    return str(RequestValidator(token).compute_signature(url, params))


def post_signed(
    client: FlaskClient,
    path: str,
    params: dict[str, str],
    *,
    signature: str | None = "",
    token: str = DEFAULT_AUTH_TOKEN,
) -> TestResponse:
    """POST a form signed as Twilio would (``signature=None`` sends no header at all)."""
    headers = {}
    if signature == "":
        signature = twilio_signature(path, params, token=token)
    if signature is not None:
        headers["X-Twilio-Signature"] = signature
    return client.post(path, data=params, headers=headers)


def say_sms(client: FlaskClient, body: str, **kwargs: str) -> TestResponse:
    """One inbound SMS through the webhook; asserts Twilio got an empty TwiML answer."""
    response = post_signed(client, SMS_PATH, sms_params(body, **kwargs))
    assert response.status_code == 200, response.get_data(as_text=True)
    return response


# --- the delivery worker in one long-lived event loop -------------------------------------


class VirtualTime:
    """A clock for the Telegram rate limiter that advances when it is slept on (no waiting)."""

    def __init__(self) -> None:
        self.now = 0.0
        self.sleeps: list[float] = []

    def clock(self) -> float:
        """The current virtual time."""
        return self.now

    async def sleep(self, seconds: float) -> None:
        """Advance the clock instead of waiting."""
        self.sleeps.append(seconds)
        self.now += seconds


class LoopThread:
    """An event loop in a thread: PTB's Bot must live in one loop for its whole life."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()

    def run(self, coro: Awaitable[T], timeout: float = 30.0) -> T:
        """Run a coroutine in the loop and wait for its result."""

        async def wrapped() -> T:
            return await coro

        return asyncio.run_coroutine_threadsafe(wrapped(), self.loop).result(timeout)

    def close(self) -> None:
        """Stop the loop, finish its executor and close it."""

        async def finish() -> None:
            await self.loop.shutdown_default_executor()

        self.run(finish())
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(timeout=10)
        self.loop.close()


class Delivery:
    """The real worker (``make_worker``) with the real senders (``channel_senders``)."""

    def __init__(self, services: Services, loop: LoopThread, senders: dict[str, Sender]) -> None:
        self.services = services
        self.loop = loop
        self.senders = senders
        self.worker: DeliveryWorker = make_worker(services, senders)

    def run_once(self) -> int:
        """Claim and send one batch."""
        return self.loop.run(self.worker.run_once())

    def drain(self, limit: int = 100) -> int:
        """Send until nothing due is left; how many sends were attempted."""
        total = 0
        for _ in range(limit):
            done = self.run_once()
            if not done:
                return total
            total += done
        raise AssertionError("the outbox did not drain")

    def fetch_attachments(self) -> int:
        """Download pending evidence."""
        return self.loop.run(self.worker.fetch_attachments())

    def housekeeping(self) -> None:
        """Heartbeat, reminders, draft expiry, downloads."""
        self.loop.run(self.worker.housekeeping())

    def set_clock(self, clock: Callable[[], datetime]) -> None:
        """Inject the worker's clock (the worker reads ``self.clock`` on every step)."""
        self.worker.clock = clock


@contextlib.contextmanager
def delivery(services: Services, *, virtual_limiter: bool = True) -> Iterator[Delivery]:
    """Open the senders built from settings in one event loop and yield a worker around them.

    With ``virtual_limiter`` the Telegram sender keeps its real RateLimiter logic but on a
    virtual clock, so a conversation of twenty replies to one chat needs no twenty seconds.
    """
    loop = LoopThread()
    stack = contextlib.AsyncExitStack()
    try:
        senders = loop.run(stack.enter_async_context(channel_senders(services)))
        senders = dict(senders)
        if virtual_limiter and "telegram" in senders:
            telegram = senders["telegram"]
            assert isinstance(telegram, TelegramSender)
            vt = VirtualTime()
            senders["telegram"] = TelegramSender(
                telegram.bot, RateLimiter(clock=vt.clock, sleep=vt.sleep)
            )
        try:
            yield Delivery(services, loop, senders)
        finally:
            loop.run(stack.aclose())
    finally:
        loop.close()


# --- database look-ups --------------------------------------------------------------------


def outbox(services: Services, **where: object) -> list[Message]:
    """Outgoing rows (optionally filtered by column values), oldest first."""
    with services.uow() as session:
        query = select(Message).where(Message.direction == "out")
        for name, value in where.items():
            query = query.where(getattr(Message, name) == value)
        return list(session.scalars(query.order_by(Message.id)))


def count(services: Services, model: type, *conditions: Any) -> int:
    """How many rows of ``model`` match."""
    with services.uow() as session:
        query = select(func.count()).select_from(model)
        for condition in conditions:
            query = query.where(condition)
        return int(session.scalar(query) or 0)


@contextlib.contextmanager
def live_server(app: Flask) -> Iterator[str]:
    """The app on a real threaded WSGI server on 127.0.0.1; yields its base URL."""
    server: BaseWSGIServer = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05})
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)


# --- a whole Telegram dialog ----------------------------------------------------------------

Step = tuple[str, Any]
"""("type", text), ("press", button number) or ("update", a ready update)."""

REPORT_DESCRIPTION = "The teacher put my son at the back of the class with the other Roma children."


def telegram_report_steps(first: str = "hello", evidence: list[Step] | None = None) -> list[Step]:
    """The Telegram twin of ``tests.helpers.FULL_REPORT`` plus "send", pressing buttons."""
    return [
        ("type", first),  # the language menu
        ("press", 7),  # English
        ("press", 1),  # consent
        ("press", 2),  # not in danger
        ("press", 2),  # education
        ("press", 1),  # ethnicity
        ("press", 3),  # school
        ("type", "Gjakova"),
        ("press", 1),  # yes, Gjakovë
        ("press", 3),  # this month
        ("type", REPORT_DESCRIPTION),
        ("type", "0"),
        *(evidence if evidence is not None else [("type", "0")]),
        ("type", "1 3"),  # child, job (several picks are typed)
        ("press", 1),  # contact in this chat
        ("press", 1),  # legal support
        ("press", 2),  # share after talking
        ("press", 1),  # send
    ]


def telegram_dialog(
    client: FlaskClient,
    tg: FakeTelegramAPI,
    worker: Delivery,
    chat: int,
    steps: list[Step],
) -> list[dict[str, Any]]:
    """Play the steps through the webhook, delivering the replies after each; the updates."""
    updates = []
    for kind, value in steps:
        if kind == "press":
            update = press(tg, chat, value)
        elif kind == "type":
            update = message_update(chat, value)
        else:
            update = value
        response = post_update(client, update)
        assert response.status_code == 200, response.get_data(as_text=True)
        worker.drain()
        updates.append(update)
    return updates
