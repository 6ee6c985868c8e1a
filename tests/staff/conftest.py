"""Fixtures of the desk tests: a cheap password hash, staff of every role, a signed-in client."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from argon2 import PasswordHasher
from flask import Flask

from bot.app import Services
from staff import accounts
from tests.staff.desk_support import PASSWORD, make_staff


@pytest.fixture(autouse=True)
def _cheap_hashes(monkeypatch: pytest.MonkeyPatch) -> None:
    """argon2id with tiny costs: the real parameters take 50 ms a hash."""
    monkeypatch.setattr(
        accounts, "hasher", PasswordHasher(time_cost=1, memory_cost=8, parallelism=1)
    )


@pytest.fixture
def desk(app: Flask) -> Services:
    """The app's services, with one active account of each role (password PASSWORD)."""
    services: Services = app.extensions["raporto"]
    for role in ("admin", "triage", "legal", "viewer"):
        make_staff(services, role)
    return services


@pytest.fixture
def events() -> Iterator[list[dict[str, object]]]:
    """Every complaint.updated emitted during the test."""
    from bot import case_events

    seen: list[dict[str, object]] = []
    unsubscribe = case_events.subscribe(
        lambda _session, complaint, changes: seen.append(
            {"reference": complaint.reference, **changes}
        )
    )
    yield seen
    unsubscribe()


__all__ = ["PASSWORD"]
