"""The channel senders against the fake APIs: what each answer of Telegram and Twilio becomes."""

from __future__ import annotations

import asyncio
import socket
import time
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import replace
from typing import TypeVar

import pytest
from twilio.rest import Client

from bot.channels.telegram import make_bot
from bot.channels.twilio_sms import RedirectingHttpClient, make_client
from bot.senders import (
    NotSent,
    Outgoing,
    PermanentFailure,
    RateLimiter,
    RetryLater,
    Sent,
    TelegramSender,
    TwilioSender,
)
from tests.fakes.telegram_api import DEFAULT_TOKEN, FakeTelegramAPI
from tests.fakes.twilio_api import DEFAULT_ACCOUNT_SID, DEFAULT_AUTH_TOKEN, FakeTwilioAPI
from tests.webhooks.channel_support import CHAT, PHONE, SMS_FROM, VirtualTime

T = TypeVar("T")
KEYBOARD = {"inline_keyboard": [[{"text": "1. Yes", "callback_data": "consent:yes"}]]}


@pytest.fixture
def tg() -> Iterator[FakeTelegramAPI]:
    """The fake Telegram Bot API."""
    with FakeTelegramAPI() as fake:
        yield fake


@pytest.fixture
def tw() -> Iterator[FakeTwilioAPI]:
    """The fake Twilio REST API."""
    with FakeTwilioAPI() as fake:
        yield fake


def with_telegram(tg: FakeTelegramAPI, body: Callable[[TelegramSender], Awaitable[T]]) -> T:
    """Run ``body`` with a TelegramSender (virtual-time limiter) in one event loop."""

    async def main() -> T:
        async with make_bot(DEFAULT_TOKEN, tg.base_url) as bot:
            vt = VirtualTime()
            return await body(TelegramSender(bot, RateLimiter(clock=vt.clock, sleep=vt.sleep)))

    return asyncio.run(main())


def text(to: int | str = CHAT, body: str = "Hello", markup: dict | None = None) -> Outgoing:
    """An outgoing text message."""
    return Outgoing(1, "telegram", "text", str(to), body, markup)


# --- Telegram -------------------------------------------------------------------------------


def test_telegram_text_with_keyboard(tg: FakeTelegramAPI) -> None:
    sent = with_telegram(tg, lambda s: s.send(text(markup=KEYBOARD)))
    (message,) = tg.sent_messages()
    assert sent == Sent(chat_message_id=str(message["message_id"]))
    assert message["chat_id"] == CHAT
    assert message["reply_markup"] == KEYBOARD


def test_telegram_callback_answer_and_delete(tg: FakeTelegramAPI) -> None:
    async def body(sender: TelegramSender) -> list[Sent]:
        answer = Outgoing(
            1, "telegram", "callback_answer", str(CHAT), "", {"callback_query_id": "99"}
        )
        delete = Outgoing(2, "telegram", "delete", str(CHAT), "", {"message_id": 7})
        return [await sender.send(answer), await sender.send(delete)]

    assert with_telegram(tg, body) == [Sent(), Sent()]
    assert tg.calls("answerCallbackQuery")[0].params == {"callback_query_id": "99"}
    assert tg.calls("deleteMessage")[0].params == {"chat_id": CHAT, "message_id": 7}


def test_telegram_too_old_callback_answer_is_not_retried(tg: FakeTelegramAPI) -> None:
    tg.fail_next("answerCallbackQuery", 400, "Bad Request: query is too old")
    answer = Outgoing(1, "telegram", "callback_answer", str(CHAT), "", {"callback_query_id": "1"})
    assert with_telegram(tg, lambda s: s.send(answer)) == Sent()


@pytest.mark.parametrize(
    ("status", "description", "expected", "opted_out"),
    [
        (403, "Forbidden: bot was blocked by the user", PermanentFailure, True),
        (403, "Forbidden: user is deactivated", PermanentFailure, True),
        (400, "Bad Request: chat not found", PermanentFailure, False),
        (500, None, RetryLater, None),
        (502, None, RetryLater, None),
    ],
)
def test_telegram_errors(
    tg: FakeTelegramAPI,
    status: int,
    description: str | None,
    expected: type[Exception],
    opted_out: bool | None,
) -> None:
    tg.fail_next("sendMessage", status, description)

    async def body(sender: TelegramSender) -> Exception:
        with pytest.raises(expected) as info:
            await sender.send(text())
        return info.value

    error = with_telegram(tg, body)
    if isinstance(error, PermanentFailure):
        assert error.opted_out is opted_out
        assert str(error).startswith(f"telegram {status}")


def test_telegram_429_carries_retry_after(tg: FakeTelegramAPI) -> None:
    tg.fail_next("sendMessage", 429, retry_after=17)

    async def body(sender: TelegramSender) -> RetryLater:
        with pytest.raises(RetryLater) as info:
            await sender.send(text())
        return info.value

    assert with_telegram(tg, body).after == 17.0


def test_telegram_too_long_button_data_is_refused(tg: FakeTelegramAPI) -> None:
    markup = {"inline_keyboard": [[{"text": "x", "callback_data": "ë" * 33}]]}  # 66 bytes

    async def body(sender: TelegramSender) -> None:
        with pytest.raises(PermanentFailure):
            await sender.send(text(markup=markup))

    with_telegram(tg, body)


def test_rate_limiter_paces_each_chat_and_the_whole_bot() -> None:
    vt = VirtualTime()
    limiter = RateLimiter(
        per_chat_interval=1.0,
        overall_per_second=30,
        clock=vt.clock,
        sleep=vt.sleep,
        per_chat_burst=1,
    )

    async def body() -> list[float]:
        at = []
        for chat in ["a", "a", "b", "a"]:
            await limiter.wait(chat)
            at.append(vt.now)
        return at

    first, second, other, third = asyncio.run(body())
    assert first == 0.0
    assert second == pytest.approx(1.0)  # one a second to one chat
    assert other == pytest.approx(1.0 + 1 / 30)  # thirty a second overall
    assert third == pytest.approx(2.0)


def test_a_chat_may_send_a_short_burst_then_one_a_second() -> None:
    """An answer and the next question go out together; a longer run is paced."""
    vt = VirtualTime()
    limiter = RateLimiter(clock=vt.clock, sleep=vt.sleep)  # the worker's own settings

    async def body() -> list[float]:
        at = []
        for _ in range(5):
            await limiter.wait("a")
            at.append(vt.now)
        await vt.sleep(10.0)  # a quiet chat earns its burst back
        for _ in range(3):
            await limiter.wait("a")
            at.append(vt.now)
        return at

    at = asyncio.run(body())
    assert at[:3] == pytest.approx([0.0, 1 / 30, 2 / 30])  # only the overall 30/s spacing
    assert at[3] == pytest.approx(1.0)
    assert at[4] == pytest.approx(2.0)
    assert at[5:] == pytest.approx([12.0, 12.0 + 1 / 30, 12.0 + 2 / 30])


def test_a_chat_paced_ahead_does_not_hold_up_other_chats() -> None:
    limiter = RateLimiter(per_chat_interval=0.5, overall_per_second=30, per_chat_burst=1)

    async def body() -> dict[str, float]:
        start = time.monotonic()
        at: dict[str, float] = {}

        async def send(name: str, chat: str) -> None:
            await limiter.wait(chat)
            at[name] = time.monotonic() - start

        await send("a1", "a")
        paced = asyncio.create_task(send("a2", "a"))  # waits half a second for chat "a"
        await asyncio.sleep(0.01)
        await send("b", "b")
        await paced
        return at

    at = asyncio.run(body())
    assert at["a2"] >= 0.45
    assert at["b"] < 0.25  # the next overall slot, not one after "a2"


def test_rate_limiter_refuses_a_slot_after_the_deadline() -> None:
    vt = VirtualTime()
    limiter = RateLimiter(per_chat_interval=1.0, clock=vt.clock, sleep=vt.sleep, per_chat_burst=1)

    async def body() -> float:
        await limiter.wait("a")
        with pytest.raises(NotSent):
            await limiter.wait("a", send_by=time.monotonic() + 0.5)  # the slot is 1 s away
        await limiter.wait("a", send_by=time.monotonic() + 5.0)
        return vt.now

    assert asyncio.run(body()) == pytest.approx(1.0)  # the refused slot was not booked


def test_senders_do_not_start_a_send_past_its_deadline(
    tg: FakeTelegramAPI, tw: FakeTwilioAPI, twilio: TwilioSender
) -> None:
    late = time.monotonic() - 1.0

    async def body(sender: TelegramSender) -> None:
        for _ in range(3):  # a chat's burst: the next slot is then a second away
            await sender.send(text(body="in time"))
        with pytest.raises(NotSent):
            await sender.send(replace(text(body="too late"), send_by=time.monotonic() + 0.5))

    with_telegram(tg, body)
    assert [m["text"] for m in tg.sent_messages()] == ["in time"] * 3
    with pytest.raises(NotSent):
        asyncio.run(twilio.send(replace(sms(), send_by=late)))
    assert tw.requests() == []


def test_telegram_download(tg: FakeTelegramAPI) -> None:
    tg.add_file("AgACgood", b"\xff\xd8jpeg bytes")
    tg.add_file("AgACbig", b"x" * 2048)

    async def body(sender: TelegramSender) -> bytes:
        with pytest.raises(PermanentFailure, match="too large"):
            await sender.download("AgACbig", 1024)
        with pytest.raises(PermanentFailure, match="400"):
            await sender.download("AgACunknown", 1024)
        return await sender.download("AgACgood", 1024)

    assert with_telegram(tg, body) == b"\xff\xd8jpeg bytes"


def test_telegram_download_of_a_vanished_file_is_retried(tg: FakeTelegramAPI) -> None:
    tg.set_result(
        "getFile", {"file_id": "AgACgone", "file_unique_id": "u1", "file_path": "photos/gone.jpg"}
    )

    async def body(sender: TelegramSender) -> None:
        with pytest.raises(RetryLater):  # a fresh getFile next time
            await sender.download("AgACgone", 1024)

    with_telegram(tg, body)


# --- Twilio ---------------------------------------------------------------------------------


def sms(body: str = "Hello") -> Outgoing:
    """An outgoing SMS."""
    return Outgoing(1, "sms", "text", PHONE, body, None)


def twilio_sender(tw: FakeTwilioAPI, **kwargs: str) -> TwilioSender:
    """A TwilioSender with the project's client pointed at the fake."""
    client = make_client(DEFAULT_ACCOUNT_SID, DEFAULT_AUTH_TOKEN, tw.base_url)
    return TwilioSender(client, **kwargs)


@pytest.fixture
def twilio(tw: FakeTwilioAPI) -> Iterator[TwilioSender]:
    """A sender from a number, with a status callback; its HTTP session closed afterwards."""
    sender = twilio_sender(
        tw, from_number=SMS_FROM, status_callback="https://raporto.example/webhooks/twilio/status"
    )
    yield sender
    sender.client.http_client.session.close()


def test_twilio_send(tw: FakeTwilioAPI, twilio: TwilioSender) -> None:
    sent = asyncio.run(twilio.send(sms("Faleminderit, ë ç")))
    (message,) = tw.sent_messages()
    assert sent == Sent(provider_id=message["Sid"])
    assert message["Body"] == "Faleminderit, ë ç"
    assert (message["To"], message["From"]) == (PHONE, SMS_FROM)
    assert message["StatusCallback"] == "https://raporto.example/webhooks/twilio/status"


def test_twilio_send_through_a_messaging_service(tw: FakeTwilioAPI) -> None:
    sender = twilio_sender(tw, messaging_service_sid="MG" + "1" * 32)
    try:
        asyncio.run(sender.send(sms()))
    finally:
        sender.client.http_client.session.close()
    (message,) = tw.sent_messages()
    assert message["MessagingServiceSid"] == "MG" + "1" * 32
    assert "From" not in message


@pytest.mark.parametrize(
    ("status", "code", "expected", "opted_out"),
    [
        (400, 21610, PermanentFailure, True),
        (400, 21211, PermanentFailure, False),
        (401, 20003, PermanentFailure, False),
        (429, 20429, RetryLater, None),
        (500, 20500, RetryLater, None),
        (503, 20503, RetryLater, None),
    ],
)
def test_twilio_errors(
    tw: FakeTwilioAPI,
    twilio: TwilioSender,
    status: int,
    code: int,
    expected: type[Exception],
    opted_out: bool | None,
) -> None:
    tw.fail_next(status, code)
    with pytest.raises(expected) as info:
        asyncio.run(twilio.send(sms()))
    if isinstance(info.value, PermanentFailure):
        assert info.value.opted_out is opted_out
        assert str(code) in str(info.value)


def test_twilio_unreachable_or_slow_is_retried(tw: FakeTwilioAPI) -> None:
    with socket.socket() as probe:  # a port nothing listens on
        probe.bind(("127.0.0.1", 0))
        closed = f"http://127.0.0.1:{probe.getsockname()[1]}"
    for base, timeout in [(closed, 5.0), (tw.base_url, 0.2)]:
        if base == tw.base_url:
            tw.delay_next(2.0)  # longer than the client's timeout
        http = RedirectingHttpClient(base, timeout=timeout)
        sender = TwilioSender(Client(DEFAULT_ACCOUNT_SID, DEFAULT_AUTH_TOKEN, http_client=http))
        try:
            with pytest.raises(RetryLater):
                asyncio.run(sender.send(sms()))
        finally:
            http.session.close()


def test_twilio_media_download(tw: FakeTwilioAPI, twilio: TwilioSender) -> None:
    path = f"/2010-04-01/Accounts/{DEFAULT_ACCOUNT_SID}/Messages/MM{'1' * 32}/Media/ME{'2' * 32}"
    tw.add_media(path, b"voice note", "audio/amr", require_auth=True)
    twilio.media_base_url = tw.base_url
    data = asyncio.run(twilio.download("https://api.twilio.com" + path, 1024))
    assert data == b"voice note"
    with pytest.raises(PermanentFailure, match="too large"):
        asyncio.run(twilio.download("https://api.twilio.com" + path, 5))
    with pytest.raises(PermanentFailure, match="404|401"):
        asyncio.run(twilio.download(tw.base_url + "/nothing-here", 1024))
