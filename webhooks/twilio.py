"""POST /webhooks/twilio/sms and /webhooks/twilio/status: Twilio's signed webhooks."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from urllib.parse import parse_qsl

from flask import Blueprint, Response, abort, current_app, request
from flask.typing import ResponseReturnValue
from werkzeug.exceptions import HTTPException

from bot.app import services
from bot.channels.twilio_sms import InvalidRequest, parse_inbound, signature_valid
from bot.delivery import record_status
from storage.db import UnitOfWork
from storage.repositories import CampaignRepository
from webhooks.guards import json_error, raw_body, utf8

log = logging.getLogger(__name__)
bp = Blueprint("twilio_webhook", __name__)
bp.register_error_handler(HTTPException, json_error)

EMPTY_TWIML = '<?xml version="1.0" encoding="UTF-8"?><Response/>'
KEYWORDS_TTL = 5.0
"""Seconds the campaign keywords are kept in the process: a keyword created on the desk works
within this long, and an SMS costs no transaction of its own to look them up."""
KEYWORDS_EXTENSION = "raporto.campaign_keywords"


class CampaignKeywords:
    """The SMS campaign keywords, read from the database at most once per ``ttl`` seconds."""

    def __init__(
        self, ttl: float = KEYWORDS_TTL, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.ttl = ttl
        self._clock = clock
        self._lock = threading.Lock()  # gthread workers: one reload at a time
        self._keywords: dict[str, str] = {}
        self._expires = float("-inf")

    def get(self, uow: UnitOfWork) -> dict[str, str]:
        """Keyword (case-folded) → campaign code, fresh within ``ttl`` seconds."""
        if self._clock() < self._expires:
            return self._keywords
        with self._lock:
            if self._clock() >= self._expires:
                with uow() as session:
                    self._keywords = CampaignRepository(session).keywords()
                self._expires = self._clock() + self.ttl
            return self._keywords


def campaign_keywords() -> CampaignKeywords:
    """This app's keyword cache (made on first use, so each app and test has its own)."""
    cache: CampaignKeywords | None = current_app.extensions.get(KEYWORDS_EXTENSION)
    if cache is None:  # setdefault: two threads of a fresh worker end up with the same one
        cache = current_app.extensions.setdefault(KEYWORDS_EXTENSION, CampaignKeywords())
    return cache


def _signed_form() -> dict[str, str]:
    """The form, once the body is within limits, valid UTF-8 and signed for our public URL."""
    settings = services().settings
    if not settings.twilio_enabled:
        abort(404)
    text = utf8(raw_body(settings.max_request_bytes))
    content_type = request.mimetype
    if content_type != "application/x-www-form-urlencoded":
        abort(400, description="expected a form")
    try:
        pairs = parse_qsl(text, keep_blank_values=True, strict_parsing=bool(text), errors="strict")
    except (ValueError, UnicodeDecodeError):
        abort(400, description="malformed form")
    form = dict(pairs)
    # Twilio signs the URL it was given; behind a proxy request.url would be the inner one.
    public_url = settings.public_base_url + request.path
    if not signature_valid(
        settings.twilio_auth_token, public_url, form, request.headers.get("X-Twilio-Signature")
    ):
        abort(403)
    if len(pairs) != len(form):
        abort(400, description="repeated form fields")
    # The signature proves the auth token; the account must be ours too (a misrouted webhook
    # of another account or subaccount is refused on both endpoints).
    if form.get("AccountSid") != settings.twilio_account_sid:
        abort(403)
    return form


@bp.post("/webhooks/twilio/sms")
def twilio_sms() -> ResponseReturnValue:
    """Handle an inbound SMS; replies go out through the outbox, so the TwiML is empty."""
    form = _signed_form()
    svc = services()
    keywords = campaign_keywords().get(svc.uow)
    try:
        parsed = parse_inbound(form, keywords)
    except InvalidRequest as exc:
        abort(400, description=str(exc))
    svc.intake.handle(parsed.inbound, opt_out_type=parsed.opt_out_type)
    return Response(EMPTY_TWIML, mimetype="text/xml")


@bp.post("/webhooks/twilio/status")
def twilio_status() -> ResponseReturnValue:
    """Record a delivery status callback on the outgoing message it is about."""
    form = _signed_form()
    sid = form.get("MessageSid", "")
    status = form.get("MessageStatus", "")
    if not sid or not status or len(sid) > 64 or len(status) > 32:
        abort(400, description="MessageSid and MessageStatus are required")
    svc = services()
    with svc.uow() as session:
        record_status(session, sid, status, form.get("ErrorCode"))
    return Response(EMPTY_TWIML, mimetype="text/xml")
