"""Encryption at rest: MultiFernet for personal data, a keyed hash to look contacts up."""

from __future__ import annotations

import hashlib
import hmac
import json
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
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
        self._recent = _RecentTokens(RECENT_TOKENS, RECENT_SECONDS)

    def encrypt(self, text: str) -> bytes:
        """Encrypt a text under the newest key."""
        return self._fernet.encrypt(text.encode("utf-8"))

    def decrypt(self, token: bytes) -> str:
        """Decrypt a token made under any of the keys."""
        return self._fernet.decrypt(bytes(token)).decode("utf-8")

    def encrypt_remembered(self, text: str) -> bytes:
        """Encrypt a text, and remember it so that :meth:`decrypt_remembered` can skip the work."""
        token = self.encrypt(text)
        self._recent.put(token, text)
        return token

    def decrypt_remembered(self, token: bytes) -> str:
        """Decrypt a token, or recall its text when this process made it recently."""
        key = bytes(token)
        text = self._recent.get(key)
        return self.decrypt(key) if text is None else text

    def rotate(self, token: bytes) -> bytes:
        """Re-encrypt a token under the newest key."""
        return self._fernet.rotate(bytes(token))

    def lookup_hash(self, *parts: str) -> str:
        """A keyed hash that finds a row by a secret value without storing the value."""
        message = "\x1f".join(parts).encode("utf-8")
        return hmac.new(self._hash_key, message, hashlib.sha256).hexdigest()


# A conversation's answers are decrypted on every message and encrypted again after it: the
# process that wrote a token can recall its text instead (a decryption costs 10-20 µs). A token
# is made with a fresh random IV, so it names exactly one text: nothing can go stale. Only the
# answers of the last few hundred conversations are kept, each until the person's next message
# or for RECENT_SECONDS at most: plain text is not kept in memory longer than a reply takes.
RECENT_TOKENS = 512
RECENT_SECONDS = 30 * 60


class _RecentTokens:
    """The plain texts of the last tokens this process made, the oldest dropped first."""

    def __init__(self, size: int, seconds: float, clock: Callable[[], float] = time.monotonic):
        self._size = size
        self._seconds = seconds
        self._clock = clock
        self._texts: OrderedDict[bytes, tuple[str, float]] = OrderedDict()
        self._lock = threading.Lock()  # web threads and the worker may share the key ring

    def put(self, token: bytes, text: str) -> None:
        """Remember the text of a token just made; forget those too many or too old."""
        now = self._clock()
        with self._lock:
            self._texts[token] = (text, now)
            texts = self._texts
            while texts and (
                len(texts) > self._size or next(iter(texts.values()))[1] < now - self._seconds
            ):
                texts.popitem(last=False)

    def get(self, token: bytes) -> str | None:
        """The text of a remembered token (which is then forgotten: it is read once)."""
        with self._lock:
            found = self._texts.pop(token, None)
        if found is None or found[1] < self._clock() - self._seconds:
            return None
        return found[0]


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
    """A JSON document stored as a Fernet token (answers hold descriptions and phone numbers).

    ``remember=True`` is for a document read back soon after it is written, as a conversation's
    answers are by the person's next message: the process recalls its own tokens' texts.
    """

    impl = LargeBinary
    cache_ok = True

    def __init__(self, remember: bool = False) -> None:
        super().__init__()
        self.remember = remember

    def process_bind_param(self, value: Any, dialect: Dialect) -> bytes | None:
        """Serialise and encrypt on the way in."""
        if value is None:
            return None
        text = json.dumps(value, ensure_ascii=False, separators=(",", ":"))
        ring = keyring()
        return ring.encrypt_remembered(text) if self.remember else ring.encrypt(text)

    def process_result_value(self, value: bytes | None, dialect: Dialect) -> Any:
        """Decrypt and parse on the way out."""
        if value is None:
            return None
        ring = keyring()
        return json.loads(ring.decrypt_remembered(value) if self.remember else ring.decrypt(value))
