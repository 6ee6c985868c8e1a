"""Administration: staff accounts (create, reset a password, deactivate) and the audit log."""

from __future__ import annotations

from flask import Blueprint, abort, flash, redirect, render_template, request, url_for
from flask.typing import ResponseReturnValue
from sqlalchemy import select

from bot.app import services
from staff import accounts, audit
from staff.i18n import _
from staff.queries import normalize_reference
from staff.roles import ADMIN_ROLES, Role, roles_required, signed_in
from storage.models import utcnow
from storage.staff_models import AuditEvent, StaffUser

bp = Blueprint("desk_admin", __name__, url_prefix="/desk", template_folder="templates")

AUDIT_PAGE = 100


@bp.get("/admin/users")
@roles_required(ADMIN_ROLES)
def users() -> ResponseReturnValue:
    """Every staff account, with the forms to manage them."""
    with services().uow() as db:
        people = list(
            db.scalars(select(StaffUser).order_by(StaffUser.active.desc(), StaffUser.name))
        )
    return render_template(
        "desk/users.html", people=people, roles=[r.value for r in Role], now=utcnow()
    )


@bp.post("/admin/users")
@roles_required(ADMIN_ROLES)
def create_user() -> ResponseReturnValue:
    """Create an account with a random first password, shown once."""
    admin = signed_in()
    password = accounts.generate_password()
    with services().uow() as db:
        try:
            user = accounts.create_user(
                db,
                email=request.form.get("email", ""),
                name=request.form.get("name", ""),
                role=request.form.get("role", ""),
                language=request.form.get("language", "sq"),
                password=password,
            )
        except accounts.AccountError:
            db.rollback()
            flash(
                _("The account was not created: check the e-mail address, name and role."),
                "error",
            )
            return redirect(url_for("desk_admin.users"))
        db.flush()
        audit.record(
            db, "user.create", user=admin, detail={"user": user.id, "role": user.role}
        )
    return render_template("desk/password_once.html", person=user, password=password)


@bp.post("/admin/users/<int:user_id>/password")
@roles_required(ADMIN_ROLES)
def reset_password(user_id: int) -> ResponseReturnValue:
    """Give an account a new random password, shown once; its sessions end."""
    admin = signed_in()
    password = accounts.generate_password()
    with services().uow() as db:
        user = db.get(StaffUser, user_id)
        if user is None:
            abort(404)
        accounts.set_password(db, user, password, utcnow())
        audit.record(db, "user.password_reset", user=admin, detail={"user": user.id})
    return render_template("desk/password_once.html", person=user, password=password)


@bp.post("/admin/users/<int:user_id>/active")
@roles_required(ADMIN_ROLES)
def set_active(user_id: int) -> ResponseReturnValue:
    """Deactivate (signing out everywhere) or reactivate an account."""
    admin = signed_in()
    active = request.form.get("active") == "1"
    if user_id == admin.id and not active:
        flash(_("You cannot deactivate your own account."), "error")
        return redirect(url_for("desk_admin.users"))
    with services().uow() as db:
        user = db.get(StaffUser, user_id)
        if user is None:
            abort(404)
        accounts.set_active(db, user, active, utcnow())
        audit.record(
            db,
            "user.activate" if active else "user.deactivate",
            user=admin,
            detail={"user": user.id},
        )
    flash(_("The account is changed."), "info")
    return redirect(url_for("desk_admin.users"))


@bp.get("/audit", endpoint="audit")
@roles_required(ADMIN_ROLES)
def audit_log() -> ResponseReturnValue:
    """The audit log, newest first, by action and reference; read-only."""
    action = request.args.get("action") or None
    if action not in audit.ACTIONS:
        action = None
    reference = normalize_reference(request.args.get("q", ""))
    before = request.args.get("before", "")
    query = select(AuditEvent).order_by(AuditEvent.id.desc()).limit(AUDIT_PAGE + 1)
    if action:
        query = query.where(AuditEvent.action == action)
    if reference:
        query = query.where(AuditEvent.reference == reference)
    if before.isdigit():
        query = query.where(AuditEvent.id < int(before))
    with services().uow() as db:
        events = list(db.scalars(query))
    more = len(events) > AUDIT_PAGE
    events = events[:AUDIT_PAGE]
    return render_template(
        "desk/audit.html",
        events=events,
        actions=audit.ACTIONS,
        action=action,
        reference=reference,
        next_before=events[-1].id if more else None,
    )
