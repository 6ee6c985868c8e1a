"""The composition root: the Flask app factory and the services it wires together."""

from __future__ import annotations

import logging
from dataclasses import dataclass

from flask import Flask, current_app
from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

from bot.delivery import notify_outbox
from bot.i18n import Catalogs
from bot.intake import IntakeService
from bot.rendering import Renderer
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


def build_services(settings: Settings) -> Services:
    """Wire the database, keys, catalogs and the intake service from settings."""
    crypto.configure(crypto.KeyRing(list(settings.encryption_keys), settings.hash_key))
    engine = make_engine(settings.database_url)
    sessions = make_session_factory(engine)
    uow = UnitOfWork(sessions)
    catalogs = Catalogs()
    lexicon = Lexicon(lambda lang, text: catalogs.text(lang, text))
    renderer = Renderer(catalogs)
    intake = IntakeService(uow, renderer, lexicon, on_queued=notify_outbox)
    return Services(settings, engine, sessions, uow, catalogs, renderer, lexicon, intake)


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
    services = build_services(settings)
    app.extensions["raporto"] = services

    from webhooks.health import bp as health_bp
    from webhooks.telegram import bp as telegram_bp
    from webhooks.twilio import bp as twilio_bp

    app.register_blueprint(health_bp)
    app.register_blueprint(telegram_bp)
    app.register_blueprint(twilio_bp)
    return app


def services() -> Services:
    """The services of the current app."""
    found: Services = current_app.extensions["raporto"]
    return found
