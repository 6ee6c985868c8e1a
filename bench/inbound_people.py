"""Simulated people for the inbound load benchmark: their scripts as signed webhook requests.

Each person is a new sender following one script of ``bench/conversations.py`` (the FULL_REPORT
of tests/helpers.py and the others, plus FULL_REPORT typed on Telegram), as the real
providers would deliver it:

- Telegram: a JSON ``Update`` (a private text message, or a ``callback_query`` for a pressed
  button) with a unique ``update_id`` and the ``X-Telegram-Bot-Api-Secret-Token`` header;
- Twilio: the form Twilio posts for an inbound SMS, with a unique ``MessageSid`` and an
  ``X-Twilio-Signature`` from ``RequestValidator.compute_signature`` over the public URL.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, replace
from urllib.parse import urlencode

from twilio.request_validator import RequestValidator

from bench.conversations import FULL_REPORT_SMS, SCRIPTS, Say, Script
from tests.fakes.telegram_api import callback_query_update, message_update

TELEGRAM_PATH = "/webhooks/telegram"
TWILIO_PATH = "/webhooks/twilio/sms"

FULL_REPORT_TELEGRAM = replace(
    FULL_REPORT_SMS,
    name="full_report_telegram",
    channel="telegram",
    description="FULL_REPORT typed on Telegram (no buttons pressed)",
)

LOAD_SCRIPTS: tuple[Script, ...] = (*SCRIPTS, FULL_REPORT_TELEGRAM)
"""The scripts people follow, in turn (three on SMS, two on Telegram)."""


@dataclass(frozen=True)
class Secrets:
    """What the requests are signed with, and the public URL Twilio signs."""

    public_base_url: str
    telegram_webhook_secret: str
    twilio_account_sid: str
    twilio_auth_token: str
    twilio_to_number: str


@dataclass(frozen=True)
class Request:
    """One webhook request, ready to send."""

    channel: str
    sender: str
    message_id: str  # update_id or MessageSid: how the stored inbound row is found again
    path: str  # the real endpoint's path (the ceilings are sent the same body elsewhere)
    headers: tuple[tuple[str, str], ...]
    body: bytes


def sender_of(script: Script, person: int) -> str:
    """A person's address: an E.164 number for SMS, a private chat id for Telegram."""
    if script.channel == "sms":
        return f"+3834{person:010d}"
    return str(1_000_000_000 + person)


def _telegram(person: int, seq: int, say: Say, secrets: Secrets, chat_id: int) -> Request:
    update_id = person * 100 + seq
    if say.choice is not None:
        data = callback_query_update(
            chat_id,
            say.choice,
            message_id=seq,  # the bot's message carrying the button
            callback_id=f"{chat_id}{seq:03d}",
            update_id=update_id,
            language_code="sr",
            first_name="Person",
        )
    else:
        data = message_update(
            chat_id,
            say.text,
            update_id=update_id,
            message_id=seq + 1,
            language_code="sq",
            first_name="Person",
            date=int(time.time()),
        )
    body = json.dumps(data, ensure_ascii=False, separators=(",", ":")).encode("utf-8")
    headers = (
        ("Content-Type", "application/json"),
        ("X-Telegram-Bot-Api-Secret-Token", secrets.telegram_webhook_secret),
    )
    return Request("telegram", str(chat_id), str(update_id), TELEGRAM_PATH, headers, body)


def _twilio(person: int, seq: int, say: Say, secrets: Secrets, sender: str) -> Request:
    sid = f"SM{person:024x}{seq:08x}"
    params = {
        "ToCountry": "XK",
        "ToState": "",
        "SmsMessageSid": sid,
        "NumMedia": "0",
        "ToCity": "",
        "FromZip": "",
        "SmsSid": sid,
        "FromState": "",
        "SmsStatus": "received",
        "FromCity": "",
        "Body": say.text,
        "FromCountry": "XK",
        "To": secrets.twilio_to_number,
        "ToZip": "",
        "NumSegments": "1",
        "MessageSid": sid,
        "AccountSid": secrets.twilio_account_sid,
        "From": sender,
        "ApiVersion": "2010-04-01",
    }
    url = secrets.public_base_url + TWILIO_PATH
    signature = RequestValidator(secrets.twilio_auth_token).compute_signature(url, params)
    headers = (
        ("Content-Type", "application/x-www-form-urlencoded"),
        ("X-Twilio-Signature", signature),
        ("I-Twilio-Idempotency-Token", sid),
        ("User-Agent", "TwilioProxy/1.1"),
        ("Accept", "*/*"),
    )
    body = urlencode(params).encode("utf-8")
    return Request("sms", sender, sid, TWILIO_PATH, headers, body)


def conversation(person: int, script: Script, secrets: Secrets) -> list[Request]:
    """Person ``person``'s whole report as webhook requests, first message to "send"."""
    sender = sender_of(script, person)
    if script.channel == "sms":
        return [_twilio(person, i, say, secrets, sender) for i, say in enumerate(script.messages)]
    chat_id = int(sender)
    return [_telegram(person, i, say, secrets, chat_id) for i, say in enumerate(script.messages)]
