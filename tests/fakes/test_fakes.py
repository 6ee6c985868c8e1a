"""The fake Telegram and Twilio servers work with the real PTB ``Bot`` and twilio ``Client``."""

from __future__ import annotations

import asyncio
import datetime as dtm
import re
import threading
import time
from collections.abc import Awaitable, Callable, Iterator
from typing import Any, TypeVar

import httpx
import pytest
import requests
import telegram
from telegram import InlineKeyboardButton, InlineKeyboardMarkup, Update
from telegram.error import (
    BadRequest,
    Conflict,
    Forbidden,
    InvalidToken,
    NetworkError,
    RetryAfter,
    TimedOut,
)
from telegram.warnings import PTBDeprecationWarning
from twilio.base.exceptions import TwilioRestException
from twilio.rest import Client

from tests.fakes.telegram_api import (
    DEFAULT_TOKEN,
    FakeTelegramAPI,
    callback_query_update,
    message_update,
    photo_message_update,
)
from tests.fakes.twilio_api import (
    DEFAULT_ACCOUNT_SID,
    DEFAULT_AUTH_TOKEN,
    FakeTwilioAPI,
    RedirectingTwilioHttpClient,
    count_segments,
    twilio_client,
)

T = TypeVar("T")
CHAT = 5550001
KOSOVO = "+38344123456"
SENDER = "+15005550006"


@pytest.fixture
def tg() -> Iterator[FakeTelegramAPI]:
    """A running fake Telegram API."""
    with FakeTelegramAPI() as fake:
        yield fake


@pytest.fixture
def tw() -> Iterator[FakeTwilioAPI]:
    """A running fake Twilio API."""
    with FakeTwilioAPI() as fake:
        yield fake


@pytest.fixture
def twilio(tw: FakeTwilioAPI) -> Iterator[Client]:
    """A real twilio Client pointed at the fake."""
    with twilio_client(tw) as client:
        yield client


@pytest.fixture(autouse=True)
def _ptb_timedelta(monkeypatch: pytest.MonkeyPatch) -> None:
    # PTB >= 22.2 warns (PTBDeprecationWarning) inside RetryAfter() unless this is set.
    monkeypatch.setenv("PTB_TIMEDELTA", "true")


def run_with_bot(
    fake: FakeTelegramAPI,
    body: Callable[[telegram.Bot], Awaitable[T]],
    token: str = DEFAULT_TOKEN,
) -> T:
    """Run ``body(bot)`` inside one event loop with an initialised real Bot."""

    async def main() -> T:
        bot = telegram.Bot(token, base_url=fake.base_url, base_file_url=fake.base_file_url)
        async with bot:
            return await body(bot)

    return asyncio.run(main())


# ------------------------------------------------------------------------------------------
# Telegram
# ------------------------------------------------------------------------------------------
def test_bot_initialises_with_get_me(tg: FakeTelegramAPI) -> None:
    async def body(bot: telegram.Bot) -> telegram.User:
        return bot.bot

    me = run_with_bot(tg, body)
    assert me.id == 123456789
    assert me.is_bot
    assert me.username == "raporto_test_bot"
    call = tg.calls("getMe")[0]
    assert call.raw.path == f"/bot{DEFAULT_TOKEN}/getMe"
    assert call.http_method == "POST"


def test_send_message_with_inline_keyboard(tg: FakeTelegramAPI) -> None:
    keyboard = InlineKeyboardMarkup(
        [
            [
                InlineKeyboardButton("Po", callback_data="c:yes"),
                InlineKeyboardButton("Jo", callback_data="c:no"),
            ]
        ]
    )

    async def body(bot: telegram.Bot) -> list[telegram.Message]:
        first = await bot.send_message(CHAT, "Përshëndetje! Çfarë ndodhi?", reply_markup=keyboard)
        second = await bot.send_message(CHAT, "123")
        return [first, second]

    first, second = run_with_bot(tg, body)
    assert first.chat.id == CHAT and first.chat.type == "private"
    assert first.text == "Përshëndetje! Çfarë ndodhi?"
    assert first.reply_markup == keyboard
    assert isinstance(first.date, dtm.datetime)
    assert second.message_id == first.message_id + 1

    sent = tg.sent_messages()
    assert [m["text"] for m in sent] == ["Përshëndetje! Çfarë ndodhi?", "123"]
    assert sent[0]["chat_id"] == CHAT
    assert sent[0]["message_id"] == first.message_id
    assert sent[0]["reply_markup"] == {
        "inline_keyboard": [
            [{"text": "Po", "callback_data": "c:yes"}, {"text": "Jo", "callback_data": "c:no"}]
        ]
    }
    assert sent[1]["reply_markup"] is None
    # PTB 22 sends url-encoded forms, not JSON.
    raw = tg.calls("sendMessage")[0].raw
    assert raw.content_type == "application/x-www-form-urlencoded"


def test_callback_answer_edit_and_delete(tg: FakeTelegramAPI) -> None:
    keyboard = InlineKeyboardMarkup([[InlineKeyboardButton("OK", callback_data="ok")]])

    async def body(bot: telegram.Bot) -> tuple[Any, ...]:
        msg = await bot.send_message(CHAT, "Zgjidh", reply_markup=keyboard)
        answered = await bot.answer_callback_query("4000001", text="U ruajt")
        edited = await bot.edit_message_reply_markup(CHAT, msg.message_id, reply_markup=None)
        with pytest.raises(BadRequest, match="Message is not modified"):
            await bot.edit_message_reply_markup(CHAT, msg.message_id, reply_markup=None)
        deleted = await bot.delete_message(CHAT, msg.message_id)
        return answered, edited, deleted

    answered, edited, deleted = run_with_bot(tg, body)
    assert answered is True
    assert isinstance(edited, telegram.Message) and edited.reply_markup is None
    assert deleted is True
    assert tg.calls("answerCallbackQuery")[0].params == {
        "callback_query_id": "4000001",
        "text": "U ruajt",
    }


def test_get_file_and_download(tg: FakeTelegramAPI) -> None:
    content = bytes(range(256)) * 10 + b"\r\n--not-a-boundary\r\n"
    path = tg.add_file("AgACfile1", content)
    assert re.fullmatch(r"photos/file_\d+\.jpg", path)

    async def body(bot: telegram.Bot) -> tuple[telegram.File, bytes]:
        file = await bot.get_file("AgACfile1")
        buffer = await file.download_as_bytearray()
        return file, bytes(buffer)

    file, downloaded = run_with_bot(tg, body)
    assert file.file_path == f"{tg.base_file_url}{DEFAULT_TOKEN}/{path}"
    assert file.file_size == len(content)
    assert downloaded == content

    async def missing(bot: telegram.Bot) -> None:
        with pytest.raises(BadRequest, match="Invalid file_id"):
            await bot.get_file("nope")

    run_with_bot(tg, missing)


def test_download_to_memory(tg: FakeTelegramAPI) -> None:
    import io

    tg.add_file("AgACfile2", b"\xff\xd8jpeg")

    async def body(bot: telegram.Bot) -> bytes:
        out = io.BytesIO()
        await (await bot.get_file("AgACfile2")).download_to_memory(out)
        return out.getvalue()

    assert run_with_bot(tg, body) == b"\xff\xd8jpeg"


def test_multipart_upload_is_parsed(tg: FakeTelegramAPI) -> None:
    png = b"\x89PNG\r\n\x1a\n" + bytes(range(256))

    async def body(bot: telegram.Bot) -> bytes:
        msg = await bot.send_photo(CHAT, photo=png, caption="Kodi QR")
        file = await bot.get_file(msg.photo[-1].file_id)
        return bytes(await file.download_as_bytearray())

    assert run_with_bot(tg, body) == png
    call = tg.calls("sendPhoto")[0]
    assert call.raw.content_type == "multipart/form-data"
    assert call.params == {"chat_id": CHAT, "caption": "Kodi QR"}
    assert call.files["photo"].content == png


def test_get_updates_honours_offset(tg: FakeTelegramAPI) -> None:
    first = tg.push_update(message_update(CHAT, "/start qr_ab12"))
    second = tg.push_update(callback_query_update(CHAT, "c:yes", message_id=7))

    async def body(bot: telegram.Bot) -> tuple[tuple[Update, ...], ...]:
        all_ = await bot.get_updates()
        again = await bot.get_updates(offset=first + 1)
        done = await bot.get_updates(offset=second + 1)
        return all_, again, done

    all_, again, done = run_with_bot(tg, body)
    assert [u.update_id for u in all_] == [first, second]
    assert all_[0].message is not None and all_[0].message.text == "/start qr_ab12"
    assert all_[1].callback_query is not None and all_[1].callback_query.data == "c:yes"
    assert [u.update_id for u in again] == [second]
    assert done == ()
    assert tg.pending_updates() == []


def test_get_updates_long_poll_wakes_on_push(tg: FakeTelegramAPI) -> None:
    timer = threading.Timer(0.2, lambda: tg.push_update(message_update(CHAT, "hi")))

    async def body(bot: telegram.Bot) -> tuple[Update, ...]:
        timer.start()
        return await bot.get_updates(timeout=5)

    started = time.monotonic()
    updates = run_with_bot(tg, body)
    timer.join()
    assert len(updates) == 1
    assert time.monotonic() - started < 3


def test_webhook_configuration(tg: FakeTelegramAPI) -> None:
    async def body(bot: telegram.Bot) -> tuple[Any, ...]:
        with pytest.raises(BadRequest, match="(?i)https url must be provided"):
            await bot.set_webhook("http://insecure.example/tg")
        await bot.set_webhook(
            "https://raporto.example/tg/webhook",
            secret_token="s3cr3t_-token",
            allowed_updates=["message", "callback_query"],
            max_connections=10,
        )
        info = await bot.get_webhook_info()
        with pytest.raises(Conflict):
            await bot.get_updates()
        await bot.delete_webhook(drop_pending_updates=True)
        return info, await bot.get_webhook_info()

    tg.push_update(message_update(CHAT, "pending"))
    info, after = run_with_bot(tg, body)
    assert info.url == "https://raporto.example/tg/webhook"
    assert info.max_connections == 10
    assert info.allowed_updates == ("message", "callback_query")
    assert info.pending_update_count == 1
    assert after.url == "" and after.pending_update_count == 0
    assert tg.calls("setWebhook")[-1].params["secret_token"] == "s3cr3t_-token"


def test_retry_after(tg: FakeTelegramAPI) -> None:
    tg.fail_next("sendMessage", status=429, retry_after=7)

    async def body(bot: telegram.Bot) -> telegram.Message:
        with pytest.raises(RetryAfter) as info:
            await bot.send_message(CHAT, "a")
        assert info.value.retry_after == dtm.timedelta(seconds=7)
        return await bot.send_message(CHAT, "b")  # the fault is consumed

    assert run_with_bot(tg, body).text == "b"
    failed = tg.calls("sendMessage")[0]
    assert failed.status == 429 and not failed.ok
    assert [m["text"] for m in tg.sent_messages()] == ["b"]


def test_retry_after_without_ptb_timedelta_warns(
    tg: FakeTelegramAPI, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Documents a pitfall: under filterwarnings=error a 429 becomes a PTBDeprecationWarning.
    monkeypatch.delenv("PTB_TIMEDELTA")
    tg.fail_next("sendMessage", status=429, retry_after=3)

    async def body(bot: telegram.Bot) -> None:
        with pytest.warns(PTBDeprecationWarning), pytest.raises(RetryAfter):
            await bot.send_message(CHAT, "a")

    run_with_bot(tg, body)


@pytest.mark.parametrize(
    ("status", "description", "exc_type", "message"),
    [
        (400, "Bad Request: chat not found", BadRequest, "Chat not found"),
        (403, "Forbidden: bot was blocked by the user", Forbidden, "bot was blocked by the user"),
        (500, None, NetworkError, "Internal Server Error"),
        (502, None, NetworkError, "Bad Gateway"),
    ],
)
def test_error_statuses(
    tg: FakeTelegramAPI,
    status: int,
    description: str | None,
    exc_type: type[Exception],
    message: str,
) -> None:
    tg.fail_next("sendMessage", status=status, description=description)

    async def body(bot: telegram.Bot) -> None:
        with pytest.raises(exc_type, match=message) as info:
            await bot.send_message(CHAT, "x")
        if exc_type is NetworkError:
            assert not isinstance(info.value, (BadRequest, TimedOut))

    run_with_bot(tg, body)


def test_raw_html_error_body(tg: FakeTelegramAPI) -> None:
    tg.fail_next("sendMessage", status=502, body=b"<html>502 Bad Gateway</html>")

    async def body(bot: telegram.Bot) -> None:
        with pytest.raises(NetworkError, match="Bad Gateway"):
            await bot.send_message(CHAT, "x")

    run_with_bot(tg, body)


def test_blocked_chat_and_invalid_button(tg: FakeTelegramAPI) -> None:
    tg.block_chat(CHAT)
    long_data = "ë" * 33  # 66 bytes > 64

    async def body(bot: telegram.Bot) -> None:
        with pytest.raises(Forbidden, match="blocked"):
            await bot.send_message(CHAT, "x")
        bad = InlineKeyboardMarkup([[InlineKeyboardButton("x", callback_data=long_data)]])
        with pytest.raises(BadRequest, match="Button_data_invalid"):
            await bot.send_message(CHAT + 1, "x", reply_markup=bad)
        with pytest.raises(BadRequest, match="Message is too long"):
            await bot.send_message(CHAT + 1, "x" * 4097)

    run_with_bot(tg, body)
    assert tg.sent_messages() == []


def test_delay_next_and_timeout(tg: FakeTelegramAPI) -> None:
    tg.delay_next("sendMessage", 1.0)

    async def body(bot: telegram.Bot) -> None:
        with pytest.raises(TimedOut):
            await bot.send_message(CHAT, "slow", read_timeout=0.2)

    run_with_bot(tg, body)


def test_wrong_token_is_invalid() -> None:
    with FakeTelegramAPI(token=DEFAULT_TOKEN) as fake:

        async def body(bot: telegram.Bot) -> None:
            return None

        with pytest.raises(InvalidToken):
            run_with_bot(fake, body, token="999:wrong")


def test_wait_for_messages_sent_from_another_thread(tg: FakeTelegramAPI) -> None:
    def worker() -> None:
        async def body(bot: telegram.Bot) -> None:
            for n in range(3):
                await asyncio.sleep(0.05)
                await bot.send_message(CHAT, f"m{n}")

        run_with_bot(tg, body)

    thread = threading.Thread(target=worker)
    thread.start()
    sent = tg.wait_for(3, timeout=5)
    thread.join()
    assert [m["text"] for m in sent] == ["m0", "m1", "m2"]
    with pytest.raises(TimeoutError):
        tg.wait_for(4, timeout=0.1)


def test_update_builders_parse_without_network() -> None:
    start = Update.de_json(message_update(CHAT, "/start qr_ab12"), None)
    assert start.message is not None and start.message.text == "/start qr_ab12"
    assert start.message.entities[0].type == "bot_command"
    photo = Update.de_json(photo_message_update(CHAT, "AgACphoto", caption="foto"), None)
    assert photo.message is not None and photo.message.photo[-1].file_id == "AgACphoto"
    press = Update.de_json(callback_query_update(CHAT, "c:yes", message_id=3), None)
    assert press.callback_query is not None and press.callback_query.message is not None
    assert press.callback_query.message.message_id == 3
    assert press.effective_user is not None and press.effective_user.id == CHAT


def test_stop_does_not_hang_on_keep_alive_or_delay() -> None:
    fake = FakeTelegramAPI().start()
    fake.delay_next("getMe", 30)
    url = f"{fake.base_url}{DEFAULT_TOKEN}/getMe"
    with httpx.Client() as client:
        assert (
            client.post(
                f"{fake.base_url}{DEFAULT_TOKEN}/sendChatAction",
                data={"chat_id": "1", "action": "typing"},
            ).status_code
            == 200
        )
        thread = threading.Thread(target=lambda: _swallow(lambda: client.get(url, timeout=10)))
        thread.start()
        time.sleep(0.2)
        started = time.monotonic()
        fake.stop()
        assert time.monotonic() - started < 3
        thread.join(timeout=5)
    fake.raise_internal_errors()


def _swallow(fn: Callable[[], object]) -> None:
    try:
        fn()
    except httpx.HTTPError:
        pass


# ------------------------------------------------------------------------------------------
# Twilio
# ------------------------------------------------------------------------------------------
def test_twilio_create_message(tw: FakeTwilioAPI, twilio: Client) -> None:
    msg = twilio.messages.create(
        to=KOSOVO,
        from_=SENDER,
        body="Ankesa juaj u regjistrua. Kodi: RAP-0042",
        status_callback="https://raporto.example/sms/status",
    )
    assert msg.sid is not None and re.fullmatch(r"SM[0-9a-f]{32}", msg.sid)
    assert msg.status == "queued"
    assert msg.to == KOSOVO and msg.from_ == SENDER
    assert msg.num_segments == "1"
    assert msg.direction == "outbound-api"
    assert msg.account_sid == DEFAULT_ACCOUNT_SID
    assert msg.error_code is None and msg.price is None
    assert isinstance(msg.date_created, dtm.datetime) and msg.date_created.tzinfo is not None
    assert msg.uri == f"/2010-04-01/Accounts/{DEFAULT_ACCOUNT_SID}/Messages/{msg.sid}.json"

    (sent,) = tw.sent_messages()
    assert sent["To"] == KOSOVO
    assert sent["From"] == SENDER
    assert sent["Body"] == "Ankesa juaj u regjistrua. Kodi: RAP-0042"
    assert sent["StatusCallback"] == "https://raporto.example/sms/status"
    assert sent["Sid"] == msg.sid
    req = tw.requests()[0]
    assert req.path == tw.messages_path
    assert req.auth == (DEFAULT_ACCOUNT_SID, DEFAULT_AUTH_TOKEN)
    assert req.raw.content_type == "application/x-www-form-urlencoded"


def test_twilio_messaging_service_media_and_segments(tw: FakeTwilioAPI, twilio: Client) -> None:
    msg = twilio.messages.create(
        to=KOSOVO,
        messaging_service_sid="MG" + "1" * 32,
        body="Faleminderit që na shkruat, ë " * 3,
        media_url=["https://example.org/a.jpg", "https://example.org/b.jpg"],
    )
    assert msg.status == "accepted" and msg.from_ is None
    assert msg.num_media == "2"
    assert msg.num_segments == "2"  # "ë" forces UCS-2: 90 units > 70
    (sent,) = tw.sent_messages()
    assert sent["MessagingServiceSid"] == "MG" + "1" * 32
    assert sent["MediaUrl"] == ["https://example.org/a.jpg", "https://example.org/b.jpg"]
    assert "From" not in sent


def test_count_segments() -> None:
    assert count_segments("a" * 160) == 1
    assert count_segments("a" * 161) == 2
    assert count_segments("€" * 80) == 1
    assert count_segments("€" * 81) == 2
    assert count_segments("ë" * 70) == 1
    assert count_segments("ë" * 71) == 2


def test_twilio_fetch_after_status_change(tw: FakeTwilioAPI, twilio: Client) -> None:
    sid = twilio.messages.create(to=KOSOVO, from_=SENDER, body="x").sid
    assert sid is not None
    tw.set_status(sid, "delivered")
    fetched = twilio.messages(sid).fetch()
    assert fetched.status == "delivered"
    assert fetched.date_sent is not None
    params = tw.status_callback_params(sid, "delivered")
    assert params["MessageSid"] == sid and params["MessageStatus"] == "delivered"


def test_twilio_unsubscribed_recipient(tw: FakeTwilioAPI, twilio: Client) -> None:
    tw.fail_next(status=400, code=21610, message="Attempt to send to unsubscribed recipient")
    with pytest.raises(TwilioRestException) as info:
        twilio.messages.create(to=KOSOVO, from_=SENDER, body="x")
    assert info.value.status == 400
    assert info.value.code == 21610
    assert "unsubscribed recipient" in info.value.msg

    tw.opt_out(KOSOVO)
    with pytest.raises(TwilioRestException) as info:
        twilio.messages.create(to=KOSOVO, from_=SENDER, body="x")
    assert info.value.code == 21610
    tw.opt_in(KOSOVO)
    assert twilio.messages.create(to=KOSOVO, from_=SENDER, body="x").sid
    assert len(tw.sent_messages()) == 1


@pytest.mark.parametrize(("status", "code"), [(429, 20429), (500, 20500), (503, 20503)])
def test_twilio_server_faults(tw: FakeTwilioAPI, twilio: Client, status: int, code: int) -> None:
    tw.fail_next(status=status)
    with pytest.raises(TwilioRestException) as info:
        twilio.messages.create(to=KOSOVO, from_=SENDER, body="x")
    assert info.value.status == status and info.value.code == code


def test_twilio_validation_errors(twilio: Client) -> None:
    with pytest.raises(TwilioRestException) as info:
        twilio.messages.create(to="044123456", from_=SENDER, body="x")
    assert info.value.code == 21211
    with pytest.raises(TwilioRestException) as info:
        twilio.messages.create(to=KOSOVO, from_=SENDER, body="x" * 1601)
    assert info.value.code == 21617


def test_twilio_wrong_auth(tw: FakeTwilioAPI) -> None:
    with twilio_client(tw, password="wrong") as client:
        with pytest.raises(TwilioRestException) as info:
            client.messages.create(to=KOSOVO, from_=SENDER, body="x")
    assert info.value.status == 401
    assert info.value.code == 20003
    assert tw.sent_messages() == []


def test_twilio_api_key_auth(tw: FakeTwilioAPI) -> None:
    tw.add_api_key("SK" + "2" * 32, "key-secret")
    with twilio_client(
        tw, username="SK" + "2" * 32, password="key-secret", account_sid=tw.account_sid
    ) as client:
        assert client.messages.create(to=KOSOVO, from_=SENDER, body="x").sid


def test_twilio_edge_and_region_are_rewritten(tw: FakeTwilioAPI) -> None:
    http_client = RedirectingTwilioHttpClient(tw.base_url, timeout=5)
    try:
        client = Client(
            DEFAULT_ACCOUNT_SID,
            DEFAULT_AUTH_TOKEN,
            region="ie1",
            edge="dublin",
            http_client=http_client,
        )
        assert client.messages.create(to=KOSOVO, from_=SENDER, body="x").sid
    finally:
        http_client.close()
    assert http_client.rewrite("https://example.org/x") == "https://example.org/x"


def test_twilio_delay_and_client_timeout(tw: FakeTwilioAPI) -> None:
    tw.delay_next(1.0)
    with twilio_client(tw, timeout=0.2) as client:
        # twilio does not wrap transport errors: production code sees requests' exceptions.
        with pytest.raises(requests.exceptions.Timeout):
            client.messages.create(to=KOSOVO, from_=SENDER, body="x")


def test_twilio_wait_for(tw: FakeTwilioAPI, twilio: Client) -> None:
    timer = threading.Timer(0.1, lambda: twilio.messages.create(to=KOSOVO, from_=SENDER, body="y"))
    timer.start()
    sent = tw.wait_for(1, timeout=5)
    timer.join()
    assert sent[0]["Body"] == "y"


def test_twilio_media_download(tw: FakeTwilioAPI) -> None:
    path = f"/2010-04-01/Accounts/{DEFAULT_ACCOUNT_SID}/Messages/MM{'a' * 32}/Media/ME{'b' * 32}"
    url = tw.add_media(path, b"\xff\xd8\xff-jpeg", "image/jpeg")
    private = tw.add_media("/private.png", b"png", "image/png", require_auth=True)
    with httpx.Client() as client:
        res = client.get(url)
        assert res.status_code == 200
        assert res.headers["content-type"] == "image/jpeg"
        assert res.content == b"\xff\xd8\xff-jpeg"
        assert client.get(private).status_code == 401
        ok = client.get(private, auth=(DEFAULT_ACCOUNT_SID, DEFAULT_AUTH_TOKEN))
        assert ok.content == b"png"
        assert client.get(f"{tw.base_url}/nothing-here").status_code == 401
    assert tw.requests()[-1].path == "/nothing-here"
