"""Who may do what on the desk: the roles, the one decorator and the one complaint filter.

Every desk view declares its roles with :func:`roles_required` (or :func:`public`); the app
refuses to start when a desk view declares neither (see ``staff.check_views_declare_roles``).
Every complaint query on the desk starts from :func:`visible_complaints`.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, TypeVar, cast

from flask import abort
from flask_login import current_user
from sqlalchemy import Select, false

from storage.models import Complaint


class Role(StrEnum):
    """A desk role; the value is what is stored."""

    ADMIN = "admin"  # users, campaigns, routing table, settings, and all triage sees
    TRIAGE = "triage"  # every complaint
    LEGAL = "legal"  # only complaints where the person asked for legal support
    VIEWER = "viewer"  # statistics only, never personal data


ALL_ROLES = frozenset(Role)
CASE_ROLES = frozenset({Role.ADMIN, Role.TRIAGE, Role.LEGAL})
"""Roles that see complaints and the personal data in them."""
ADMIN_ROLES = frozenset({Role.ADMIN})


@dataclass(frozen=True)
class DeskUser:
    """The signed-in staff member, as Flask-Login holds them for one request."""

    id: int
    email: str
    name: str
    role: Role
    language: str
    session_token: str

    is_authenticated = True
    is_active = True
    is_anonymous = False

    def get_id(self) -> str:
        """The session token: Flask-Login keeps it in the signed session cookie."""
        return self.session_token

    def may(self, roles: frozenset[Role]) -> bool:
        """Whether this user has one of these roles."""
        return self.role in roles


def desk_user() -> DeskUser | None:
    """The signed-in staff member of this request, or None."""
    user = current_user
    if user is None or not getattr(user, "is_authenticated", False):
        return None
    return cast(DeskUser, user._get_current_object())


def signed_in() -> DeskUser:
    """The signed-in staff member (only called from views guarded by roles_required)."""
    user = desk_user()
    if user is None:  # pragma: no cover - the decorator let an anonymous request through
        abort(401)
    return user


F = TypeVar("F", bound=Callable[..., Any])


def roles_required(roles: frozenset[Role]) -> Callable[[F], F]:
    """Let only signed-in staff with one of ``roles`` in: the sign-in page otherwise, or 403."""

    def decorate(view: F) -> F:
        @functools.wraps(view)
        def guarded(*args: Any, **kwargs: Any) -> Any:
            from staff.security import login_manager

            user = desk_user()
            if user is None:
                return login_manager.unauthorized()
            if user.role not in roles:
                abort(403)
            return view(*args, **kwargs)

        guarded.desk_roles = roles  # type: ignore[attr-defined]
        return cast(F, guarded)

    return decorate


def public(view: F) -> F:
    """Mark a desk view that anyone may reach (the sign-in page)."""
    view.desk_roles = None  # type: ignore[attr-defined]
    return view


T = TypeVar("T", bound=tuple[Any, ...])


def visible_complaints(query: Select[T], user: DeskUser) -> Select[T]:
    """Narrow a complaint query to what this user may see: the only such filter on the desk."""
    if user.role in (Role.ADMIN, Role.TRIAGE):
        return query
    if user.role is Role.LEGAL:
        return query.where(Complaint.legal_support.is_(True))
    return query.where(false())
