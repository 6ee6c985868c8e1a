"""Encryption at rest: MultiFernet for personal data, a keyed hash to look contacts up."""

from __future__ import annotations

import hashlib
import hmac
import json
from typing import Any

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from sqlalchemy import LargeBinary
from sqlalchemy.engine import Dialect
from sqlalchemy.types import TypeDecorator


class KeyRing:
    """The Fernet keys (the first encrypts, all decrypt) and the look-up hash key."""

    def __init__(self, fernet_keys: list[str], hash_key: str) -> None:
        if not fernet_keys:
            raise ValueError("RAPORTO_ENCRYPTION_KEYS needs at least one Fernet key")
        if not hash_key:
            raise ValueError("RAPORTO_HASH_KEY must not be empty")
        self._fernet = MultiFernet([Fernet(k.strip().encode()) for k in fernet_keys])
        self._hash_key = hash_key.encode()

    def encrypt(self, text: str) -> bytes:
        """Encrypt a text under the newest key."""
        return self._fernet.encrypt(text.encode("utf-8"))

    def decrypt(self, token: bytes) -> str:
        """Decrypt a token made under any of the keys."""
        return self._fernet.decrypt(bytes(token)).decode("utf-8")

    def rotate(self, token: bytes) -> bytes:
        """Re-encrypt a token under the newest key."""
        return self._fernet.rotate(bytes(token))

    def lookup_hash(self, *parts: str) -> str:
        """A keyed hash that finds a row by a secret value without storing the value."""
        message = "\x1f".join(parts).encode("utf-8")
        return hmac.new(self._hash_key, message, hashlib.sha256).hexdigest()


_ring: KeyRing | None = None


def configure(ring: KeyRing) -> None:
    """Install the key ring the encrypted columns use (done by the app factory)."""
    global _ring
    _ring = ring


def keyring() -> KeyRing:
    """The installed key ring; an error when the app did not configure one."""
    if _ring is None:
        raise RuntimeError("encryption keys are not configured")
    return _ring


def is_invalid_token(exc: BaseException) -> bool:
    """Whether an exception means a token was made under a key we no longer have."""
    return isinstance(exc, InvalidToken)


class EncryptedText(TypeDecorator[str]):
    """A text column stored as a Fernet token: the database never sees the plain text."""

    impl = LargeBinary
    cache_ok = True

    def process_bind_param(self, value: str | None, dialect: Dialect) -> bytes | None:
        """Encrypt on the way in."""
        return None if value is None else keyring().encrypt(value)

    def process_result_value(self, value: bytes | None, dialect: Dialect) -> str | None:
        """Decrypt on the way out."""
        return None if value is None else keyring().decrypt(value)


class EncryptedJSON(TypeDecorator[Any]):
    """A JSON document stored as a Fernet token (answers hold descriptions and phone numbers)."""

    impl = LargeBinary
    cache_ok = True

    def process_bind_param(self, value: Any, dialect: Dialect) -> bytes | None:
        """Serialise and encrypt on the way in."""
        if value is None:
            return None
        return keyring().encrypt(json.dumps(value, ensure_ascii=False, separators=(",", ":")))

    def process_result_value(self, value: bytes | None, dialect: Dialect) -> Any:
        """Decrypt and parse on the way out."""
        return None if value is None else json.loads(keyring().decrypt(value))
