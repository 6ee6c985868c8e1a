"""The staff desk: Flask blueprints under /desk, server-rendered, no JavaScript."""

from __future__ import annotations

from flask import Flask

STAFF_BLUEPRINTS: tuple[str, ...] = (
    "staff_auth",
    "desk",
    "desk_case",
    "desk_export",
    "desk_admin",
    "desk_simulator",
    "desk_campaigns",
    "desk_stats",
)
"""The desk's blueprints: every view in them declares its roles."""


def check_views_declare_roles(app: Flask) -> None:
    """Refuse to start when a desk view has neither ``roles_required`` nor ``public``."""
    for endpoint, view in app.view_functions.items():
        blueprint, _, name = endpoint.rpartition(".")
        if blueprint in STAFF_BLUEPRINTS and name != "static" and not hasattr(view, "desk_roles"):
            raise RuntimeError(f"desk view {endpoint} declares no roles (use roles_required)")


def init_app(app: Flask) -> None:
    """Register the desk: sessions, headers, per-request language, and its blueprints."""
    from staff import admin, auth, campaigns, case, export, i18n, inbox, security, simulator, stats

    security.init_app(app)
    i18n.init_app(app)
    for blueprint in (auth.bp, inbox.bp, case.bp, export.bp, admin.bp, simulator.bp):
        app.register_blueprint(blueprint)
    for blueprint in (campaigns.bp, stats.bp):
        app.register_blueprint(blueprint)
    check_views_declare_roles(app)
