"""The engine's neutral types."""

from __future__ import annotations

from dataclasses import fields
from datetime import UTC, datetime

from dialogs.messages import Conversation


def test_conversation_copy_keeps_every_field_and_shares_no_list() -> None:
    original = Conversation(
        state="area",
        language="rom",
        answers={"consent": True, "description": ["one"]},
        history=["consent", "danger"],
        misses=2,
        editing=True,
        resume="when",
        campaign="school-2026",
        opted_out=True,
        plain_letters=True,
        updated_at=datetime(2026, 12, 5, tzinfo=UTC),
    )
    # Every field set to something other than its default, so a field copy() forgets shows.
    blank = Conversation()
    assert all(getattr(original, f.name) != getattr(blank, f.name) for f in fields(original))
    copied = original.copy()
    assert copied == original
    copied.answers["area"] = "health"
    copied.history.append("area")
    assert "area" not in original.answers
    assert original.history == ["consent", "danger"]
