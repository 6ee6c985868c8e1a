"""Telegram updates reduced to inbound messages, and the Bot pointed at another server."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from bot.channels.telegram import ALLOWED_UPDATES, make_bot, parse_update
from dialogs.messages import Inbound, MediaRef
from tests.fakes.telegram_api import (
    DEFAULT_TOKEN,
    FakeTelegramAPI,
    callback_query_update,
    message_update,
    photo_message_update,
)

CHAT = 5550001


def test_text_message() -> None:
    parsed = parse_update(message_update(CHAT, "Mirëdita", update_id=41, message_id=7))
    assert parsed is not None
    assert parsed.inbound == Inbound("telegram", str(CHAT), "41", text="Mirëdita")
    assert parsed.callback_query_id is None
    assert parsed.chat_message_id == "7"


@pytest.mark.parametrize(
    ("text", "campaign", "inbound_text"),
    [
        ("/start", None, "start"),
        ("/start tv_nov26", "tv_nov26", "start"),
        ("/start@raporto_test_bot qr-Prizren_01", "qr-Prizren_01", "start"),
        ("/start " + "a" * 64, "a" * 64, "start"),
        ("/start " + "a" * 65, None, "/start " + "a" * 65),  # deep-link payloads are ≤ 64
        ("/start bad payload!", None, "/start bad payload!"),
    ],
)
def test_start_deep_link(text: str, campaign: str | None, inbound_text: str) -> None:
    parsed = parse_update(message_update(CHAT, text))
    assert parsed is not None
    assert (parsed.inbound.campaign, parsed.inbound.text) == (campaign, inbound_text)


def test_button_press() -> None:
    update = callback_query_update(CHAT, "area:education", message_id=3, callback_id="c77")
    parsed = parse_update(update)
    assert parsed is not None
    assert parsed.inbound.choice == "area:education"
    assert parsed.inbound.sender == str(CHAT)
    assert parsed.inbound.message_id == str(update["update_id"])
    assert parsed.callback_query_id == "c77"


def test_button_press_on_an_inaccessible_message_is_still_answered() -> None:
    update = callback_query_update(CHAT, "x", message_id=3, callback_id="c78")
    del update["callback_query"]["message"]
    parsed = parse_update(update)
    assert parsed is not None
    assert parsed.callback_query_id == "c78"
    assert parsed.inbound.choice is None and parsed.inbound.text == ""


def test_photo_takes_the_largest_size_and_the_caption() -> None:
    update = photo_message_update(CHAT, "AgACbig", caption="the letter", file_size=90_000)
    parsed = parse_update(update)
    assert parsed is not None
    assert parsed.inbound.text == "the letter"
    assert parsed.inbound.media == (MediaRef("photo", "AgACbig", "image/jpeg", 90_000),)


def _with(**content: Any) -> dict[str, Any]:
    update = message_update(CHAT, "")
    del update["message"]["text"]
    update["message"].update(content)
    return update


@pytest.mark.parametrize(
    ("content", "media"),
    [
        (
            {"voice": {"file_id": "v1", "file_unique_id": "u", "duration": 3}},
            MediaRef("voice", "v1", "audio/ogg", None),
        ),
        (
            {
                "document": {
                    "file_id": "d1",
                    "file_unique_id": "u",
                    "mime_type": "application/pdf",
                    "file_size": 10,
                }
            },
            MediaRef("document", "d1", "application/pdf", 10),
        ),
        (
            {
                "video_note": {
                    "file_id": "n1",
                    "file_unique_id": "u",
                    "length": 240,
                    "duration": 5,
                }
            },
            MediaRef("video", "n1", "video/mp4", None),
        ),
    ],
)
def test_other_media(content: dict[str, Any], media: MediaRef) -> None:
    parsed = parse_update(_with(**content))
    assert parsed is not None
    assert parsed.inbound.media == (media,)


def test_group_and_edited_messages_are_not_for_the_bot() -> None:
    group = message_update(-100123, "hi")
    group["message"]["chat"] = {"id": -100123, "type": "supergroup", "title": "g"}
    edited = message_update(CHAT, "hi")
    edited["edited_message"] = edited.pop("message")
    assert parse_update(group) is None
    assert parse_update(edited) is None


@pytest.mark.parametrize("chat_id", ["5550001", "abc", 1.5, True])
def test_chat_id_must_be_a_number(chat_id: object) -> None:
    update = message_update(CHAT, "hi")
    update["message"]["chat"]["id"] = chat_id
    with pytest.raises((ValueError, TypeError)):
        parse_update(update)


def test_allowed_updates_are_what_the_parser_uses() -> None:
    assert set(ALLOWED_UPDATES) == {"message", "callback_query"}


def test_make_bot_points_api_and_files_at_the_given_server() -> None:
    with FakeTelegramAPI() as tg:
        tg.add_file("AgACfile", b"bytes")

        async def main() -> bytes:
            async with make_bot(DEFAULT_TOKEN, tg.base_url + "/") as bot:
                file = await bot.get_file("AgACfile")
                assert file.file_path is not None
                assert file.file_path.startswith(tg.base_file_url)
                return bytes(await file.download_as_bytearray())

        assert asyncio.run(main()) == b"bytes"
        assert tg.calls("getMe")[0].raw.path == f"/bot{DEFAULT_TOKEN}/getMe"
