"""GET /healthz: is the database reachable, and when did a delivery worker last beat."""

from __future__ import annotations

from flask import Blueprint, jsonify
from flask.typing import ResponseReturnValue
from sqlalchemy import func, select, text
from sqlalchemy.exc import SQLAlchemyError

from bot.app import services
from storage.models import WorkerHeartbeat, utcnow

bp = Blueprint("health", __name__)


@bp.get("/healthz")
def healthz() -> ResponseReturnValue:
    """200 with the worker heartbeat age when the database answers; 503 when it does not."""
    try:
        with services().uow() as session:
            session.execute(text("SELECT 1"))
            last = session.scalar(select(func.max(WorkerHeartbeat.beat_at)))
    except SQLAlchemyError:
        return jsonify(status="error", database="unreachable"), 503
    age = None if last is None else round((utcnow() - last).total_seconds(), 1)
    return jsonify(status="ok", database="ok", worker_heartbeat_age_seconds=age)
