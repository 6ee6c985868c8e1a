"""Sessions, CSRF and response headers of the desk."""

from __future__ import annotations

from flask import Flask, Response, request
from flask_login import LoginManager
from flask_wtf.csrf import CSRFProtect

from bot.app import services
from dialogs.options import N_
from staff import accounts
from staff.roles import DeskUser
from storage.models import utcnow

csrf = CSRFProtect()
"""CSRF tokens on every form (initialised in the app factory; webhooks are exempt)."""

login_manager = LoginManager()
login_manager.login_view = "staff_auth.login"
login_manager.login_message = N_("Please sign in to see this page.")
login_manager.login_message_category = "info"

CONTENT_SECURITY_POLICY = (
    "default-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'; "
    "object-src 'none'"
)
FILE_SECURITY_POLICY = "default-src 'none'; sandbox; frame-ancestors 'none'"
"""For evidence files: nothing in them may run, even when opened on their own."""


def _load_user(token: str) -> DeskUser | None:
    with services().uow() as session:
        return accounts.load_session(session, token, utcnow())


def _localize(message: str) -> str:
    from staff.i18n import gettext

    return gettext(message)


login_manager.localize_callback = _localize


def security_headers(response: Response) -> Response:
    """Headers on every desk response: CSP, no framing, no referrer, no caching of pages."""
    if not request.path.startswith("/desk"):
        return response
    headers = response.headers
    headers.setdefault("Content-Security-Policy", CONTENT_SECURITY_POLICY)
    headers["X-Content-Type-Options"] = "nosniff"
    headers["Referrer-Policy"] = "no-referrer"
    headers["X-Frame-Options"] = "DENY"
    headers["Permissions-Policy"] = "camera=(), microphone=(), geolocation=()"
    if not (request.endpoint or "").endswith(".static"):
        # Pages and files hold personal data: never kept by the browser or a proxy.
        headers["Cache-Control"] = "no-store"
        headers["Pragma"] = "no-cache"
    return response


def init_app(app: Flask) -> None:
    """Attach Flask-Login and the response headers (CSRF is attached by the app factory)."""
    login_manager.user_loader(_load_user)
    login_manager.init_app(app)
    app.after_request(security_headers)
