"""POST /webhooks/telegram: updates from the Telegram Bot API."""

from __future__ import annotations

import hmac
import json
import logging
from typing import Any

from flask import Blueprint, abort, jsonify, request
from flask.typing import ResponseReturnValue
from werkzeug.exceptions import HTTPException

from bot.app import services
from bot.channels.telegram import parse_update
from webhooks.guards import json_error, raw_body, utf8

log = logging.getLogger(__name__)
bp = Blueprint("telegram_webhook", __name__)
bp.register_error_handler(HTTPException, json_error)


@bp.post("/webhooks/telegram")
def telegram_update() -> ResponseReturnValue:
    """Store the update, the new dialog state and the replies in one transaction; then 200."""
    svc = services()
    settings = svc.settings
    if not settings.telegram_enabled:
        abort(404)
    given = request.headers.get("X-Telegram-Bot-Api-Secret-Token", "")
    if not hmac.compare_digest(given.encode(), settings.telegram_webhook_secret.encode()):
        abort(403)
    text = utf8(raw_body(settings.max_request_bytes))
    try:
        data: Any = json.loads(text)
    except (ValueError, RecursionError):  # RecursionError: "[[[[…" nested past the stack
        abort(400, description="body is not JSON")
    update_id = data.get("update_id") if isinstance(data, dict) else None
    if not isinstance(update_id, int) or isinstance(update_id, bool):
        abort(400, description="not a Telegram update")
    try:
        parsed = parse_update(data)
    except (KeyError, TypeError, ValueError, AttributeError, OverflowError, RecursionError):
        # OverflowError: a date past time_t; RecursionError: reply_to_message nested deep.
        abort(400, description="malformed Telegram update")
    if parsed is None:
        return jsonify(ok=True, ignored=True)
    result = svc.intake.handle(
        parsed.inbound,
        callback_query_id=parsed.callback_query_id,
        chat_message_id=parsed.chat_message_id,
    )
    return jsonify(ok=True, duplicate=result.duplicate)
