"""Twilio SMS: reading inbound webhooks, checking signatures, sending through the REST API."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from twilio.http.http_client import TwilioHttpClient
from twilio.http.response import Response
from twilio.request_validator import RequestValidator
from twilio.rest import Client

from dialogs.messages import Inbound, MediaRef

CHANNEL = "sms"
TWILIO_API = "https://api.twilio.com"
MAX_MEDIA = 10
_SID = re.compile(r"^(SM|MM)[0-9a-fA-F]{32}$")
_ADDRESS = re.compile(r"^\+?[0-9]{3,20}$")


class InvalidRequest(ValueError):
    """The request is not a well-formed Twilio webhook."""


def signature_valid(
    auth_token: str, public_url: str, params: Mapping[str, str], signature: str | None
) -> bool:
    """Whether ``X-Twilio-Signature`` is valid for the public URL Twilio was given."""
    if not signature or not auth_token:
        return False
    return bool(RequestValidator(auth_token).validate(public_url, dict(params), signature))


@dataclass(frozen=True)
class SmsInbound:
    """An inbound SMS/MMS reduced to what the service needs."""

    inbound: Inbound
    opt_out_type: str | None = None


def parse_inbound(form: Mapping[str, str], campaign_for: Mapping[str, str]) -> SmsInbound:
    """The inbound message in a Twilio webhook form; ``campaign_for`` maps keywords to codes."""
    sid = form.get("MessageSid") or form.get("SmsSid") or ""
    sender = form.get("From", "")
    if not _SID.match(sid):
        raise InvalidRequest("MessageSid missing or malformed")
    if not _ADDRESS.match(sender):
        raise InvalidRequest("From missing or malformed")
    body = form.get("Body", "")
    try:
        num_media = min(int(form.get("NumMedia", "0") or 0), MAX_MEDIA)
    except ValueError as exc:
        raise InvalidRequest("NumMedia is not a number") from exc
    media = []
    for i in range(num_media):
        url = form.get(f"MediaUrl{i}")
        if not url or not url.startswith(("https://", "http://")):
            continue
        content_type = form.get(f"MediaContentType{i}")
        media.append(MediaRef(_kind(content_type), url, content_type))
    words = body.strip().split(maxsplit=1)
    campaign = campaign_for.get(words[0].casefold()) if words else None
    inbound = Inbound(CHANNEL, sender, sid, text=body, media=tuple(media), campaign=campaign)
    return SmsInbound(inbound, form.get("OptOutType") or None)


def _kind(content_type: str | None) -> str:
    if content_type is None:
        return "document"
    if content_type.startswith("image/"):
        return "photo"
    if content_type.startswith("audio/"):
        return "voice"
    if content_type.startswith("video/"):
        return "video"
    return "document"


class RedirectingHttpClient(TwilioHttpClient):  # type: ignore[misc]
    """Sends the Twilio client's requests to another base URL (a local fake, a proxy)."""

    def __init__(self, base_url: str, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        target = urlsplit(base_url)
        self._scheme, self._netloc = target.scheme, target.netloc

    def request(self, method: str, url: str, *args: Any, **kwargs: Any) -> Response:
        """Rewrite the scheme and host of every Twilio URL, then send as usual."""
        parts = urlsplit(url)
        if parts.netloc.endswith("twilio.com"):
            url = urlunsplit((self._scheme, self._netloc, parts.path, parts.query, ""))
        return super().request(method, url, *args, **kwargs)


def make_client(account_sid: str, auth_token: str, base_url: str = TWILIO_API) -> Client:
    """A twilio ``Client``; pointed elsewhere when ``base_url`` is not Twilio's."""
    if base_url.rstrip("/") == TWILIO_API:
        return Client(account_sid, auth_token, http_client=TwilioHttpClient(timeout=15))
    return Client(account_sid, auth_token, http_client=RedirectingHttpClient(base_url, timeout=15))
