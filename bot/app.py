"""The composition root: the Flask app factory and the services it wires together."""

from __future__ import annotations

import logging
from dataclasses import dataclass

from flask import Flask, current_app
from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

from bot import case_events
from bot.delivery import NOTIFY_CHANNEL
from bot.i18n import Catalogs
from bot.intake import IntakeService
from bot.notify import (
    ComplaintEvents,
    endpoint_tables_exist,
    on_case_change,
    sync_configured_endpoints,
)
from bot.rendering import Renderer
from bot.routing import load_routing
from bot.settings import Settings, load_settings
from dialogs.lexicon import Lexicon
from storage import crypto
from storage.db import UnitOfWork, make_engine, make_session_factory

log = logging.getLogger(__name__)


@dataclass
class Services:
    """Everything built once per app: database, catalogs, the intake service."""

    settings: Settings
    engine: Engine
    sessions: sessionmaker[Session]
    uow: UnitOfWork
    catalogs: Catalogs
    renderer: Renderer
    lexicon: Lexicon
    intake: IntakeService
    complaints: ComplaintEvents | None = None


def build_services(settings: Settings) -> Services:
    """Wire the database, keys, catalogs and the intake service from settings."""
    crypto.configure(crypto.KeyRing(list(settings.encryption_keys), settings.hash_key))
    engine = make_engine(settings.database_url)
    sessions = make_session_factory(engine)
    uow = UnitOfWork(sessions)
    catalogs = Catalogs()
    lexicon = Lexicon(lambda lang, text: catalogs.text(lang, text))
    renderer = Renderer(catalogs)
    # The routing table is checked here, so a mistake in it stops the app and the worker.
    complaints = ComplaintEvents(load_routing(settings.routing_file))
    intake = IntakeService(
        uow, renderer, lexicon, notify_channel=NOTIFY_CHANNEL, complaints=complaints
    )
    case_events.subscribe(on_case_change)  # status/priority changes become webhook events
    if endpoint_tables_exist(uow):  # not yet during the first `raporto db upgrade`
        for line in sync_configured_endpoints(uow, settings):
            log.info("webhook endpoint %s", line)
    return Services(
        settings, engine, sessions, uow, catalogs, renderer, lexicon, intake, complaints
    )


def create_app(settings: Settings | None = None) -> Flask:
    """Create the web app; tests pass their own settings."""
    settings = settings or load_settings()
    app = Flask(__name__, instance_path=str(settings.instance_dir))
    app.config.update(
        SECRET_KEY=settings.secret_key,
        MAX_CONTENT_LENGTH=settings.max_request_bytes,
        SESSION_COOKIE_HTTPONLY=True,
        SESSION_COOKIE_SAMESITE="Lax",
        SESSION_COOKIE_SECURE=settings.public_base_url.startswith("https://"),
    )
    # CSRF tokens on every form; Referrer-Policy no-referrer leaves no Referer to check on
    # HTTPS, so the token (bound to the session) and SameSite=Lax cookies do that work.
    app.config.update(WTF_CSRF_SSL_STRICT=False, WTF_CSRF_TIME_LIMIT=None)
    services = build_services(settings)
    app.extensions["raporto"] = services

    import staff
    from staff.security import csrf
    from webhooks.health import bp as health_bp
    from webhooks.telegram import bp as telegram_bp
    from webhooks.twilio import bp as twilio_bp

    csrf.init_app(app)
    for webhook in (telegram_bp, twilio_bp):
        csrf.exempt(webhook)  # authenticated by their own signatures, not by a session
    app.register_blueprint(health_bp)
    app.register_blueprint(telegram_bp)
    app.register_blueprint(twilio_bp)
    staff.init_app(app)
    return app


def services() -> Services:
    """The services of the current app."""
    found: Services = current_app.extensions["raporto"]
    return found
