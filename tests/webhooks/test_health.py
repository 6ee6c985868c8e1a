"""GET /healthz: the database answers, and when a delivery worker last beat."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

from flask import Flask

from bot.app import Services, create_app
from bot.worker import make_worker
from storage.models import utcnow
from tests.conftest import make_settings


def test_healthy_without_a_worker(app: Flask) -> None:
    response = app.test_client().get("/healthz")
    assert response.status_code == 200
    assert response.get_json() == {
        "status": "ok",
        "database": "ok",
        "worker_heartbeat_age_seconds": None,
    }


def test_worker_heartbeat_shows(app: Flask) -> None:
    services: Services = app.extensions["raporto"]
    beat_at = utcnow() - timedelta(minutes=5)
    make_worker(services, {}, clock=lambda: beat_at).heartbeat()
    body = app.test_client().get("/healthz").get_json()
    assert body["worker_heartbeat_age_seconds"] >= 300  # five minutes old, not newer

    fresh = make_worker(services, {})
    fresh.heartbeat()
    again = app.test_client().get("/healthz").get_json()
    assert 0 <= again["worker_heartbeat_age_seconds"] < body["worker_heartbeat_age_seconds"]


def test_unreachable_database_is_503(sqlite_only_url: str, tmp_path: Path) -> None:
    flask_app = create_app(make_settings(sqlite_only_url, tmp_path))
    services: Services = flask_app.extensions["raporto"]
    try:
        assert flask_app.test_client().get("/healthz").status_code == 200
        # The database goes away under the running app: its file can no longer be opened.
        services.engine.dispose()
        database = Path(sqlite_only_url.removeprefix("sqlite:///"))
        database.rename(database.with_suffix(".gone"))
        database.mkdir()
        response = flask_app.test_client().get("/healthz")
    finally:
        services.engine.dispose()
    assert response.status_code == 503
    assert response.get_json() == {"status": "error", "database": "unreachable"}
