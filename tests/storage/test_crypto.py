"""Encryption at rest: the key ring, remembered tokens, the encrypted column types."""

from __future__ import annotations

import pytest
from cryptography.fernet import Fernet, InvalidToken, MultiFernet

from storage import crypto
from storage.crypto import KeyRing


def ring() -> KeyRing:
    return KeyRing([Fernet.generate_key().decode()], "hash-key")


def test_a_remembered_token_is_recalled_without_decrypting() -> None:
    keys = ring()
    token = keys.encrypt_remembered('{"description":"The teacher..."}')
    # With other keys, only a recall can give the text back: decrypting would fail.
    keys._fernet = MultiFernet([Fernet(Fernet.generate_key())])
    assert keys.decrypt_remembered(token) == '{"description":"The teacher..."}'
    with pytest.raises(InvalidToken):
        keys.decrypt(token)


def test_a_token_is_recalled_once_then_decrypted() -> None:
    keys = ring()
    token = keys.encrypt_remembered("answers")
    assert keys.decrypt_remembered(token) == "answers"
    keys._fernet = MultiFernet([Fernet(Fernet.generate_key())])
    with pytest.raises(InvalidToken):  # not remembered any more: decrypted, with keys that fail
        keys.decrypt_remembered(token)


def test_tokens_made_elsewhere_and_old_tokens_are_decrypted() -> None:
    keys = ring()
    foreign = keys.encrypt("made by another process")
    assert keys.decrypt_remembered(foreign) == "made by another process"
    first = keys.encrypt_remembered("first")
    for n in range(crypto.RECENT_TOKENS):
        keys.encrypt_remembered(f"later {n}")
    assert keys._recent.get(first) is None  # the least recently made is forgotten
    assert keys.decrypt_remembered(first) == "first"  # and still read, by decrypting


def test_the_encrypted_column_stores_no_plain_text(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(crypto, "_ring", ring())  # put back after the test
    column = crypto.EncryptedJSON(remember=True)
    stored = column.process_bind_param({"phone": "+38344123456"}, None)  # type: ignore[arg-type]
    assert stored is not None and b"38344123456" not in stored
    assert column.process_result_value(stored, None) == {"phone": "+38344123456"}  # type: ignore[arg-type]


def test_a_remembered_text_is_kept_for_a_limited_time() -> None:
    now = [1000.0]
    recent = crypto._RecentTokens(10, seconds=60, clock=lambda: now[0])
    recent.put(b"old", "answers of a person who went quiet")
    now[0] += 61
    assert recent.get(b"old") is None  # too old to be recalled: decrypted instead
    recent.put(b"first", "one")
    now[0] += 61
    recent.put(b"second", "two")  # making a token forgets the expired ones
    assert list(recent._texts) == [b"second"]
    assert recent.get(b"second") == "two"
