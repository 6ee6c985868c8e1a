"""Telegram: turning Bot API updates into inbound messages, and sending through the Bot API."""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from typing import Any

from telegram import Bot, Message, Update
from telegram.request import HTTPXRequest

from dialogs.messages import Inbound, MediaRef

# PTB 22.2+ warns on every 429 unless durations are timedeltas; opt in to the future behaviour.
os.environ.setdefault("PTB_TIMEDELTA", "true")

CHANNEL = "telegram"
ALLOWED_UPDATES = ("message", "callback_query")
"""The only update types the bot uses; set-webhook asks Telegram for nothing else."""

_START = re.compile(r"^/start(?:@\w+)?(?:\s+([A-Za-z0-9_-]{1,64}))?\s*$")


@dataclass(frozen=True)
class TelegramInbound:
    """An update reduced to what the service needs; callback_query_id must be answered."""

    inbound: Inbound
    callback_query_id: str | None = None
    chat_message_id: str | None = None


def _media(message: Message) -> tuple[MediaRef, ...]:
    items: list[MediaRef] = []
    if message.photo:
        largest = max(message.photo, key=lambda p: (p.file_size or 0, p.width * p.height))
        items.append(MediaRef("photo", largest.file_id, "image/jpeg", largest.file_size))
    if message.voice:
        v = message.voice
        items.append(MediaRef("voice", v.file_id, v.mime_type or "audio/ogg", v.file_size))
    if message.audio:
        a = message.audio
        items.append(MediaRef("audio", a.file_id, a.mime_type, a.file_size))
    if message.video:
        vid = message.video
        items.append(MediaRef("video", vid.file_id, vid.mime_type, vid.file_size))
    if message.video_note:
        vn = message.video_note
        items.append(MediaRef("video", vn.file_id, "video/mp4", vn.file_size))
    if message.document:
        d = message.document
        items.append(MediaRef("document", d.file_id, d.mime_type, d.file_size))
    return tuple(items)


def parse_update(data: dict[str, Any]) -> TelegramInbound | None:
    """The inbound message in an update; None for update types the bot does not use."""
    update = Update.de_json(data, bot=None)
    if update is None:
        return None
    update_id = str(update.update_id)
    if update.callback_query is not None:
        query = update.callback_query
        if query.message is None or query.data is None:
            user_id = _chat_id(query.from_user.id)
            return TelegramInbound(Inbound(CHANNEL, user_id, update_id), query.id)
        chat_id = _chat_id(query.message.chat.id)
        return TelegramInbound(Inbound(CHANNEL, chat_id, update_id, choice=query.data), query.id)
    message = update.message
    if message is None or message.chat.type != "private":
        return None  # edited messages, channel posts, group chats, member changes: ignored
    text = message.text or message.caption or ""
    campaign = None
    match = _START.match(text)
    if match:
        campaign = match.group(1)
        text = "start"
    inbound = Inbound(
        CHANNEL,
        _chat_id(message.chat.id),
        update_id,
        text=text,
        media=_media(message),
        campaign=campaign,
    )
    return TelegramInbound(inbound, chat_message_id=str(message.message_id))


def _chat_id(value: object) -> str:
    """A chat id as text; ValueError unless it is a number (the sender sends to ``int(id)``)."""
    if not isinstance(value, int) or isinstance(value, bool):
        raise ValueError("chat id is not a number")
    return str(value)


def make_bot(token: str, base_url: str, *, connection_pool_size: int = 32) -> Bot:
    """A python-telegram-bot ``Bot`` pointed at ``base_url`` (Telegram's, or a local fake)."""
    base = base_url.rstrip("/")
    file_base = base[: -len("/bot")] + "/file/bot" if base.endswith("/bot") else base + "/file/bot"
    request = HTTPXRequest(connection_pool_size=connection_pool_size, read_timeout=15)
    return Bot(token, base_url=base, base_file_url=file_base, request=request)
