"""Staff accounts: argon2id passwords, sign-in with lock-out and throttling, server sessions."""

from __future__ import annotations

import functools
import hashlib
import secrets
import string
from dataclasses import dataclass
from datetime import datetime, timedelta

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from staff.roles import DeskUser, Role
from storage.crypto import keyring
from storage.db import is_postgres
from storage.staff_models import LoginThrottle, StaffSession, StaffUser

DESK_LANGUAGES: tuple[str, ...] = ("sq", "sr_Latn", "sr_Cyrl", "en")
"""The languages the desk is offered in."""

MIN_PASSWORD_LENGTH = 12
MAX_PASSWORD_LENGTH = 1024  # hashing a megabyte on every try would be a cheap denial of service
MAX_FAILED_LOGINS = 5
LOCK_DURATION = timedelta(minutes=15)
IP_WINDOW = timedelta(minutes=15)
IP_MAX_FAILURES = 20
SESSION_LIFETIME = timedelta(hours=12)
SESSION_IDLE = timedelta(hours=2)
_TOUCH_EVERY = timedelta(minutes=1)

hasher = PasswordHasher()
"""argon2id with argon2-cffi's defaults (RFC 9106 low-memory profile); tests swap in a cheap one."""


class AccountError(ValueError):
    """An account cannot be created or changed; the message says why (in English, for the CLI)."""


def normalize_email(email: str) -> str:
    """E-mail addresses compare case-insensitively."""
    return email.strip().lower()


def password_problem(password: str) -> str | None:
    """Why a new password is not acceptable, or None."""
    if len(password) < MIN_PASSWORD_LENGTH:
        return f"at least {MIN_PASSWORD_LENGTH} characters"
    if len(password) > MAX_PASSWORD_LENGTH:
        return f"at most {MAX_PASSWORD_LENGTH} characters"
    return None


def generate_password() -> str:
    """A random password to hand over once (16 letters and digits, grouped for reading)."""
    alphabet = string.ascii_letters + string.digits
    raw = "".join(secrets.choice(alphabet) for _ in range(16))
    return "-".join(raw[i : i + 4] for i in range(0, 16, 4))


@functools.cache
def _dummy_hash() -> str:
    return hasher.hash(secrets.token_urlsafe(16))


def verify_password(stored: str, password: str) -> bool:
    """Whether a password matches its stored hash (False for a malformed hash)."""
    try:
        return hasher.verify(stored, password)
    except (VerificationError, InvalidHashError):
        return False


def create_user(
    session: Session, *, email: str, name: str, role: str, password: str, language: str = "sq"
) -> StaffUser:
    """Create a staff account; AccountError when the e-mail is taken or the input is invalid."""
    email = normalize_email(email)
    if "@" not in email or len(email) > 254:
        raise AccountError("not an e-mail address")
    if not name.strip():
        raise AccountError("a name is required")
    if role not in {r.value for r in Role}:
        raise AccountError(f"role must be one of {', '.join(r.value for r in Role)}")
    if language not in DESK_LANGUAGES:
        raise AccountError(f"language must be one of {', '.join(DESK_LANGUAGES)}")
    problem = password_problem(password)
    if problem:
        raise AccountError(f"the password needs {problem}")
    user = StaffUser(
        email=email,
        name=name.strip()[:200],
        role=role,
        password_hash=hasher.hash(password),
        language=language,
        active=True,
        failed_logins=0,
    )
    try:
        with session.begin_nested():
            session.add(user)
    except IntegrityError as exc:
        raise AccountError(f"{email} already has an account") from exc
    return user


def by_email(session: Session, email: str) -> StaffUser | None:
    """The account with this e-mail address."""
    return session.scalars(
        select(StaffUser).where(StaffUser.email == normalize_email(email))
    ).one_or_none()


def set_password(session: Session, user: StaffUser, password: str, now: datetime) -> None:
    """Set a new password, unlock the account and sign it out everywhere."""
    problem = password_problem(password)
    if problem:
        raise AccountError(f"the password needs {problem}")
    user.password_hash = hasher.hash(password)
    user.password_changed_at = now
    user.failed_logins = 0
    user.locked_until = None
    revoke_all_sessions(session, user.id, now)


def set_active(session: Session, user: StaffUser, active: bool, now: datetime) -> None:
    """Activate or deactivate an account; deactivating signs it out everywhere."""
    user.active = active
    if not active:
        revoke_all_sessions(session, user.id, now)


# --- signing in -----------------------------------------------------------------------------


@dataclass(frozen=True)
class SignIn:
    """The outcome of a sign-in attempt; ``reason`` is for the audit log, never the screen."""

    user: StaffUser | None
    reason: str  # ok, unknown, password, locked, inactive, throttled
    locked_now: bool = False

    @property
    def ok(self) -> bool:
        """Whether the person is signed in."""
        return self.reason == "ok"


def authenticate(
    session: Session, email: str, password: str, ip: str | None, now: datetime
) -> SignIn:
    """Check a sign-in: per-address throttle, per-account lock after repeated failures."""
    throttle = _throttle(session, ip, now)
    if throttle is not None and throttle.failures >= IP_MAX_FAILURES:
        return SignIn(None, "throttled")
    query = select(StaffUser).where(StaffUser.email == normalize_email(email))
    if is_postgres(session):
        query = query.with_for_update()  # concurrent failures must all count
    user = session.scalars(query).one_or_none()
    password = password[:MAX_PASSWORD_LENGTH]
    if user is None:
        verify_password(_dummy_hash(), password)  # the same work whether or not the account exists
        return _failed(throttle, SignIn(None, "unknown"))
    correct = verify_password(user.password_hash, password)
    if not user.active:
        return _failed(throttle, SignIn(user, "inactive"))
    if user.locked_until is not None and user.locked_until > now:
        return _failed(throttle, SignIn(user, "locked"))
    if not correct:
        user.failed_logins += 1
        locked_now = user.failed_logins >= MAX_FAILED_LOGINS
        if locked_now:
            user.locked_until = now + LOCK_DURATION
            user.failed_logins = 0
        return _failed(throttle, SignIn(user, "password", locked_now))
    user.failed_logins = 0
    user.locked_until = None
    user.last_login_at = now
    if hasher.check_needs_rehash(user.password_hash):
        user.password_hash = hasher.hash(password)
    return SignIn(user, "ok")


def _failed(throttle: LoginThrottle | None, outcome: SignIn) -> SignIn:
    if throttle is not None:
        throttle.failures += 1
    return outcome


def _throttle(session: Session, ip: str | None, now: datetime) -> LoginThrottle | None:
    """The failure counter of this address (a keyed hash of it), in a fresh window if due."""
    if not ip:
        return None
    key = keyring().lookup_hash("desk-login-ip", ip)
    query = select(LoginThrottle).where(LoginThrottle.key == key)
    if is_postgres(session):
        query = query.with_for_update()
    row = session.scalars(query).one_or_none()
    if row is None:
        row = LoginThrottle(key=key, failures=0, window_start=now)
        try:
            with session.begin_nested():
                session.add(row)
        except IntegrityError:
            row = session.scalars(query).one()
    if now - row.window_start > IP_WINDOW:
        row.failures = 0
        row.window_start = now
    return row


# --- sessions -------------------------------------------------------------------------------


def _token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def start_session(session: Session, user: StaffUser, now: datetime) -> DeskUser:
    """A new session (a new random token) for a user who just signed in."""
    token = secrets.token_urlsafe(32)
    session.add(
        StaffSession(
            token_hash=_token_hash(token),
            user_id=user.id,
            created_at=now,
            last_seen_at=now,
            expires_at=now + SESSION_LIFETIME,
        )
    )
    return _desk_user(user, token)


def load_session(session: Session, token: str, now: datetime) -> DeskUser | None:
    """The user of a live session token; None when unknown, revoked, expired or idle."""
    row = session.execute(
        select(StaffSession, StaffUser)
        .join(StaffUser, StaffUser.id == StaffSession.user_id)
        .where(StaffSession.token_hash == _token_hash(token))
    ).one_or_none()
    if row is None:
        return None
    live, user = row
    if (
        live.revoked_at is not None
        or live.expires_at <= now
        or now - live.last_seen_at > SESSION_IDLE
        or not user.active
    ):
        return None
    if now - live.last_seen_at > _TOUCH_EVERY:
        live.last_seen_at = now
    return _desk_user(user, token)


def revoke_session(session: Session, token: str, now: datetime) -> None:
    """End one session (sign-out)."""
    session.execute(
        update(StaffSession)
        .where(StaffSession.token_hash == _token_hash(token), StaffSession.revoked_at.is_(None))
        .values(revoked_at=now)
    )


def revoke_all_sessions(session: Session, user_id: int, now: datetime) -> None:
    """End every session of a user (password reset, deactivation)."""
    session.execute(
        update(StaffSession)
        .where(StaffSession.user_id == user_id, StaffSession.revoked_at.is_(None))
        .values(revoked_at=now)
    )


def _desk_user(user: StaffUser, token: str) -> DeskUser:
    return DeskUser(
        id=user.id,
        email=user.email,
        name=user.name,
        role=Role(user.role),
        language=user.language,
        session_token=token,
    )
