"""Sending one outbox message over a channel: Telegram's Bot API or Twilio's REST API."""

from __future__ import annotations

import asyncio
import datetime as dt
import time
import warnings
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Protocol

import httpx
from telegram import Bot, InlineKeyboardMarkup
from telegram.error import BadRequest, Forbidden, NetworkError, RetryAfter, TelegramError
from twilio.base.exceptions import TwilioException, TwilioRestException
from twilio.rest import Client


@dataclass(frozen=True)
class Outgoing:
    """An outbox row as a sender sees it."""

    id: int
    channel: str
    kind: str
    to: str
    body: str
    reply_markup: dict[str, Any] | None
    send_by: float | None = None
    """``time.monotonic()`` after which the send must not start (the worker's lease runs low)."""


@dataclass(frozen=True)
class Sent:
    """Success: the provider's id for the message, when it gives one."""

    provider_id: str | None = None
    chat_message_id: str | None = None


class RetryLater(Exception):
    """A failure worth retrying (network, 5xx, 429); ``after`` is the server's wish, if any."""

    def __init__(self, error: str, after: float | None = None) -> None:
        super().__init__(error)
        self.after = after


class PermanentFailure(Exception):
    """A failure that retrying cannot fix; ``opted_out`` when the person blocked or opted out."""

    def __init__(self, error: str, *, opted_out: bool = False) -> None:
        super().__init__(error)
        self.opted_out = opted_out


class NotSent(Exception):
    """The send did not start, as it could not before ``Outgoing.send_by``: no attempt made."""


def _too_late(message: Outgoing) -> bool:
    return message.send_by is not None and time.monotonic() > message.send_by


class Sender(Protocol):
    """Sends outbox messages of one channel."""

    async def send(self, message: Outgoing) -> Sent:
        """Send one message; raises RetryLater or PermanentFailure."""
        ...  # pragma: no cover


def _seconds(value: float | dt.timedelta | None) -> float | None:
    if value is None:
        return None
    if isinstance(value, dt.timedelta):
        return value.total_seconds()
    return float(value)


class RateLimiter:
    """Telegram's limits: about one message a second per chat and thirty a second overall.

    Telegram asks for no more than one message a second in a chat but allows short bursts: an
    answer often takes two messages (a confirmation, then the next question), and spacing them
    a second apart made people wait. So each chat may send ``per_chat_burst`` messages at once,
    then one a second (a generic cell rate algorithm: ``_next_chat`` holds each chat's
    theoretical arrival time).

    A message first waits for its chat's slot, then takes the next overall one: a chat paced a
    second ahead must not book, and so hold up, the whole bot's next slot meanwhile.
    """

    def __init__(
        self,
        per_chat_interval: float = 1.0,
        overall_per_second: float = 30.0,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        per_chat_burst: int = 3,
    ) -> None:
        self.per_chat_interval = per_chat_interval
        self.burst_tolerance = per_chat_interval * (max(1, per_chat_burst) - 1)
        self.overall_interval = 1.0 / overall_per_second
        self._clock = clock
        self._sleep = sleep
        self._next_overall = 0.0
        self._next_chat: dict[str, float] = {}
        self._lock = asyncio.Lock()

    async def wait(self, chat: str, send_by: float | None = None) -> None:
        """Wait until a message to ``chat`` may go out, and book the slot.

        Raises NotSent, booking nothing, when the chat's slot comes after ``send_by``
        (``time.monotonic()``).
        """
        async with self._lock:
            now = self._clock()
            arrival = self._next_chat.get(chat, now)
            at = max(now, arrival - self.burst_tolerance)
            if send_by is not None and time.monotonic() + (at - now) > send_by:
                raise NotSent(f"the chat's next slot is in {at - now:.1f} s")
            self._next_chat[chat] = max(arrival, at) + self.per_chat_interval
            if len(self._next_chat) > 10_000:  # forget chats whose slot has long passed
                self._next_chat = {k: v for k, v in self._next_chat.items() if v > now}
        if at > now:
            await self._sleep(at - now)
        async with self._lock:
            now = self._clock()
            at = max(now, self._next_overall)
            self._next_overall = at + self.overall_interval
            # Held up by the overall limit: the chat's next slot is a second after this one.
            booked = self._next_chat.get(chat, 0.0)
            self._next_chat[chat] = max(booked, at + self.per_chat_interval)
        if at > now:
            await self._sleep(at - now)


class TelegramSender:
    """Sends through python-telegram-bot's ``Bot`` in the worker's one long-lived event loop."""

    def __init__(self, bot: Bot, limiter: RateLimiter | None = None) -> None:
        self.bot = bot
        self.limiter = limiter or RateLimiter()

    async def send(self, message: Outgoing) -> Sent:
        """Send a text, answer a button press, or delete a message from the chat."""
        try:
            if message.kind == "callback_answer":
                query_id = str((message.reply_markup or {}).get("callback_query_id", ""))
                await self.bot.answer_callback_query(query_id)
                return Sent()
            if message.kind == "delete":
                chat_message_id = int((message.reply_markup or {}).get("message_id", 0))
                await self.bot.delete_message(int(message.to), chat_message_id)
                return Sent()
            await self.limiter.wait(message.to, message.send_by)
            markup = (
                InlineKeyboardMarkup.de_json(message.reply_markup, self.bot)
                if message.reply_markup
                else None
            )
            sent = await self.bot.send_message(int(message.to), message.body, reply_markup=markup)
            return Sent(chat_message_id=str(sent.message_id))
        except RetryAfter as exc:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # PTB's int-or-timedelta deprecation dance
                after = _seconds(exc.retry_after)
            raise RetryLater(f"telegram 429: {exc.message}", after) from exc
        except Forbidden as exc:
            raise PermanentFailure(f"telegram 403: {exc.message}", opted_out=True) from exc
        except BadRequest as exc:
            if message.kind in ("callback_answer", "delete"):
                return Sent()  # a query too old or a message already gone: nothing to redo
            raise PermanentFailure(f"telegram 400: {exc.message}") from exc
        except NetworkError as exc:  # timeouts, connection errors and 5xx answers
            raise RetryLater(f"telegram network: {exc.message}") from exc
        except TelegramError as exc:
            raise PermanentFailure(f"telegram: {exc.message}") from exc

    async def download(self, file_id: str, limit: int) -> bytes:
        """Fetch a file a person sent (photo, voice note, document) through the Bot API."""
        try:
            file = await self.bot.get_file(file_id)
            if file.file_size and file.file_size > limit:
                raise PermanentFailure("file too large")
            data = bytes(await file.download_as_bytearray())
        except RetryAfter as exc:
            raise RetryLater("telegram 429") from exc
        except BadRequest as exc:
            raise PermanentFailure(f"telegram 400: {exc.message}") from exc
        except NetworkError as exc:
            raise RetryLater(f"telegram network: {exc.message}") from exc
        except TelegramError as exc:
            # e.g. a 404 on an expired file path (PTB calls it InvalidToken): the next try asks
            # getFile for a fresh path; fetch attempts are capped by the worker.
            raise RetryLater(f"telegram: {exc.message}") from exc
        if len(data) > limit:
            raise PermanentFailure("file too large")
        return data


OPTED_OUT_CODES = frozenset({21610})
RETRY_CODES = frozenset({20429, 20500, 20503})
MAX_CONCURRENT_SMS = 8
"""SMS sends in flight at once: each holds a thread and a connection of the client's pool
(requests keeps 10 per host), so more would only open and drop connections."""


class TwilioSender:
    """Sends SMS through twilio's ``Client`` (a blocking client, so in a thread)."""

    def __init__(
        self,
        client: Client,
        *,
        from_number: str = "",
        messaging_service_sid: str = "",
        status_callback: str | None = None,
        media_base_url: str | None = None,
        max_concurrent: int = MAX_CONCURRENT_SMS,
    ) -> None:
        self.client = client
        self.from_number = from_number
        self.messaging_service_sid = messaging_service_sid
        self.status_callback = status_callback
        self.media_base_url = media_base_url
        self._slots = asyncio.Semaphore(max_concurrent)

    def _create(self, message: Outgoing) -> Sent:
        kwargs: dict[str, Any] = {"to": message.to, "body": message.body}
        if self.messaging_service_sid:
            kwargs["messaging_service_sid"] = self.messaging_service_sid
        else:
            kwargs["from_"] = self.from_number
        if self.status_callback:
            kwargs["status_callback"] = self.status_callback
        try:
            created = self.client.messages.create(**kwargs)
        except TwilioRestException as exc:
            if exc.code in OPTED_OUT_CODES:
                raise PermanentFailure(f"twilio {exc.code}: opted out", opted_out=True) from exc
            if exc.status == 429 or exc.status >= 500 or exc.code in RETRY_CODES:
                raise RetryLater(f"twilio {exc.status}/{exc.code}") from exc
            raise PermanentFailure(f"twilio {exc.status}/{exc.code}: {exc.msg}") from exc
        except TwilioException as exc:  # connection errors and timeouts
            raise RetryLater(f"twilio: {type(exc).__name__}") from exc
        except OSError as exc:
            raise RetryLater(f"twilio network: {type(exc).__name__}") from exc
        return Sent(provider_id=str(created.sid))

    async def send(self, message: Outgoing) -> Sent:
        """Send one SMS (several at once, up to ``max_concurrent``)."""
        async with self._slots:
            if _too_late(message):
                raise NotSent("waited too long for a free connection")
            return await asyncio.to_thread(self._create, message)

    async def download(self, url: str, limit: int) -> bytes:
        """Fetch MMS media from Twilio with the account's credentials."""
        username, password = self.client.username, self.client.password
        if self.media_base_url:
            parsed = httpx.URL(url)
            if parsed.host.endswith("twilio.com"):
                base = httpx.URL(self.media_base_url)
                url = str(parsed.copy_with(scheme=base.scheme, host=base.host, port=base.port))
        async with httpx.AsyncClient(timeout=30, follow_redirects=True) as http:
            try:
                response = await http.get(url, auth=(username or "", password or ""))
            except httpx.HTTPError as exc:
                raise RetryLater(f"media: {type(exc).__name__}") from exc
        if response.status_code >= 500 or response.status_code == 429:
            raise RetryLater(f"media {response.status_code}")
        if response.status_code != 200:
            raise PermanentFailure(f"media {response.status_code}")
        if len(response.content) > limit:
            raise PermanentFailure("media too large")
        return response.content
