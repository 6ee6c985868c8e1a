"""The ``complaint.updated`` port: the desk and the check-ins announce changes to a case here.

Listeners run inside the caller's transaction, so an event (e.g. a row in an events table) is
stored if and only if the change is. The routing and notification code subscribes its own
function (``bot.notify``) once, in the app factory; tests subscribe a recorder.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from sqlalchemy.orm import Session

from storage.models import Complaint

Listener = Callable[[Session, Complaint, Mapping[str, Any]], None]

_listeners: list[Listener] = []


def subscribe(listener: Listener) -> Callable[[], None]:
    """Call ``listener`` on every complaint.updated; returns a function that unsubscribes it."""
    if listener not in _listeners:
        _listeners.append(listener)

    def unsubscribe() -> None:
        if listener in _listeners:
            _listeners.remove(listener)

    return unsubscribe


def complaint_updated(session: Session, complaint: Complaint, changes: Mapping[str, Any]) -> None:
    """Announce a change to a complaint (``changes``: field → new value, or an action name)."""
    for listener in list(_listeners):
        listener(session, complaint, changes)
