"""Signing in and out, and each staff member's own account (language, password)."""

from __future__ import annotations

from urllib.parse import urlsplit

from flask import Blueprint, flash, redirect, render_template, request, session, url_for
from flask.typing import ResponseReturnValue
from flask_login import login_user, logout_user

from bot.app import services
from staff import accounts, audit
from staff.i18n import _
from staff.roles import ALL_ROLES, DeskUser, Role, public, roles_required, signed_in
from storage.models import utcnow
from storage.staff_models import StaffUser

bp = Blueprint(
    "staff_auth",
    __name__,
    url_prefix="/desk",
    template_folder="templates",
    static_folder="static",
    static_url_path="/static",
)


def landing(user: DeskUser) -> str:
    """Where a staff member starts: the inbox, or statistics for viewers."""
    return url_for("desk_stats.index") if user.role is Role.VIEWER else url_for("desk.inbox")


def _safe_next(target: str | None) -> str | None:
    """A same-site desk path to return to after signing in; None for anything else."""
    if not target:
        return None
    parts = urlsplit(target)
    if parts.scheme or parts.netloc or "\\" in target or not parts.path.startswith("/desk"):
        return None
    return parts.path + (f"?{parts.query}" if parts.query else "")


def _sign_in(user: StaffUser) -> DeskUser:
    """A new session for the user: the old session (and its CSRF token) is thrown away."""
    with services().uow() as db:
        desk = accounts.start_session(db, user, utcnow())
    session.clear()  # no value set before signing in survives it (session fixation)
    login_user(desk)
    return desk


@bp.route("/login", methods=["GET", "POST"])
@public
def login() -> ResponseReturnValue:
    """The sign-in form; a new session on success, a generic message on failure."""
    next_url = _safe_next(request.values.get("next"))
    if request.method == "GET":
        return render_template("desk/login.html", next_url=next_url, email="")
    email = request.form.get("email", "")[:254]
    password = request.form.get("password", "")
    now = utcnow()
    with services().uow() as db:
        outcome = accounts.authenticate(db, email, password, audit.client_ip(), now)
        user = outcome.user
        if outcome.ok and user is not None:
            audit.record(db, "login.success", actor_id=user.id, email=user.email, at=now)
        else:
            audit.record(
                db,
                "login.failure",
                actor_id=user.id if user else None,
                email=user.email if user else None,
                detail={"reason": outcome.reason, "locked": outcome.locked_now},
                at=now,
            )
    if outcome.ok and outcome.user is not None:
        desk = _sign_in(outcome.user)
        return redirect(next_url or landing(desk))
    if outcome.reason == "throttled":
        message = _("Too many failed sign-ins from this network. Wait 15 minutes and try again.")
        status = 429
    else:
        message = _(
            "The e-mail address or the password is wrong, or the account is locked for a "
            "while. Try again later, or ask an administrator."
        )
        status = 200
    return render_template(
        "desk/login.html", next_url=next_url, email=email, error=message
    ), status


@bp.post("/logout")
@roles_required(ALL_ROLES)
def logout() -> ResponseReturnValue:
    """End the session here and on the server."""
    user = signed_in()
    with services().uow() as db:
        accounts.revoke_session(db, user.session_token, utcnow())
        audit.record(db, "logout", user=user)
    logout_user()
    session.clear()
    flash(_("You are signed out."), "info")
    return redirect(url_for("staff_auth.login"))


@bp.get("/account")
@roles_required(ALL_ROLES)
def account() -> ResponseReturnValue:
    """The staff member's own settings: desk language and password."""
    return render_template("desk/account.html")


@bp.post("/account/language")
@roles_required(ALL_ROLES)
def account_language() -> ResponseReturnValue:
    """Change the desk language."""
    user = signed_in()
    language = request.form.get("language", "")
    if language not in accounts.DESK_LANGUAGES:
        flash(_("Choose one of the languages offered."), "error")
        return redirect(url_for("staff_auth.account"))
    with services().uow() as db:
        row = db.get(StaffUser, user.id)
        if row is not None:
            row.language = language
    return redirect(url_for("staff_auth.account"))


@bp.post("/account/password")
@roles_required(ALL_ROLES)
def account_password() -> ResponseReturnValue:
    """Change one's own password; every other session of the account ends."""
    user = signed_in()
    current = request.form.get("current_password", "")
    new = request.form.get("new_password", "")
    if new != request.form.get("confirm_password", ""):
        flash(_("The two new passwords are not the same."), "error")
        return redirect(url_for("staff_auth.account"))
    if accounts.password_problem(new):
        flash(
            _(
                "The new password must have at least %(n)s characters.",
                n=accounts.MIN_PASSWORD_LENGTH,
            ),
            "error",
        )
        return redirect(url_for("staff_auth.account"))
    now = utcnow()
    with services().uow() as db:
        row = db.get(StaffUser, user.id)
        if row is None or not accounts.verify_password(row.password_hash, current):
            flash(_("The current password is wrong."), "error")
            return redirect(url_for("staff_auth.account"))
        accounts.set_password(db, row, new, now)
        audit.record(db, "account.password", user=user, at=now)
    _sign_in(row)
    flash(_("Your password is changed. Other devices are signed out."), "info")
    return redirect(url_for("staff_auth.account"))
