"""The simulator: staff try the bot in the browser, as a complainant would, as test data.

Each staff member talks to the real engine (``IntakeService.handle(..., is_test=True)``) as a
test contact ``sim:<staff id>:<channel>``; the conversation shown is that contact's message log.
Replies are stored with status "local" and never sent; complaints are marked ``is_test`` and
so stay out of statistics and webhooks.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any

from flask import Blueprint, redirect, render_template, request, url_for
from flask.typing import ResponseReturnValue
from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from bot.app import services
from dialogs.messages import Inbound
from staff.i18n import CHANNEL_NAMES
from staff.roles import CASE_ROLES, roles_required, signed_in
from storage.models import Contact, Message
from storage.repositories import ContactRepository

bp = Blueprint("desk_simulator", __name__, url_prefix="/desk", template_folder="templates")

CHANNELS = ("sms", "telegram")
MAX_SHOWN = 200
"""The newest messages shown of a simulated conversation."""


@dataclass(frozen=True)
class Bubble:
    """One message of the simulated conversation as the page shows it."""

    mine: bool
    text: str
    buttons: list[tuple[str, str]]


def sim_sender(staff_id: int, channel: str) -> str:
    """The test contact's address of one staff member on one channel."""
    return f"sim:{staff_id}:{channel}"


def _channel(value: str | None) -> str:
    return value if value in CHANNELS else "sms"


def _buttons(markup: dict[str, Any] | None) -> list[tuple[str, str]]:
    rows = (markup or {}).get("inline_keyboard")
    found: list[tuple[str, str]] = []
    if isinstance(rows, list):
        for row in rows:
            for button in row if isinstance(row, list) else []:
                if isinstance(button, dict) and "callback_data" in button:
                    found.append((str(button.get("text", "")), str(button["callback_data"])))
    return found


def conversation(db: Session, channel: str, sender: str) -> list[Bubble]:
    """The test contact's message log, oldest first (empty before the first message)."""
    contact = ContactRepository(db).find(channel, sender)
    if contact is None or not contact.is_test:
        return []
    rows = list(
        db.scalars(
            select(Message)
            .where(Message.contact_id == contact.id, Message.kind == "text")
            .order_by(Message.id.desc())
            .limit(MAX_SHOWN)
        )
    )
    rows.reverse()
    return [
        Bubble(row.direction == "in", row.body or "", _buttons(row.reply_markup))
        for row in rows
        if row.body is not None
    ]


def start_over(db: Session, channel: str, sender: str) -> None:
    """Forget the simulated contact (conversation and its messages); test complaints stay."""
    contact = ContactRepository(db).find(channel, sender)
    if contact is None or not contact.is_test:
        return
    db.execute(delete(Message).where(Message.contact_id == contact.id))
    db.execute(delete(Contact).where(Contact.id == contact.id))


@bp.get("/simulator")
@roles_required(CASE_ROLES)
def simulator() -> ResponseReturnValue:
    """The simulated phone: the conversation so far and a box to answer in."""
    user = signed_in()
    channel = _channel(request.args.get("channel"))
    with services().uow() as db:
        bubbles = conversation(db, channel, sim_sender(user.id, channel))
    last_buttons = bubbles[-1].buttons if bubbles and not bubbles[-1].mine else []
    return render_template(
        "desk/simulator.html",
        channel=channel,
        channels=CHANNELS,
        channel_names=CHANNEL_NAMES,
        bubbles=bubbles,
        last_buttons=last_buttons,
    )


@bp.post("/simulator")
@roles_required(CASE_ROLES)
def simulator_send() -> ResponseReturnValue:
    """Hand the typed text (or the pressed button's payload) to the engine as test data."""
    user = signed_in()
    channel = _channel(request.form.get("channel"))
    choice = request.form.get("choice") or None
    text = request.form.get("text", "")
    if choice is None and not text.strip():
        text = "hi"
    inbound = Inbound(
        channel=channel,
        sender=sim_sender(user.id, channel),
        message_id="sim-" + uuid.uuid4().hex,
        text="" if choice and channel == "telegram" else text,
        choice=choice if channel == "telegram" else None,
    )
    services().intake.handle(inbound, is_test=True)
    return redirect(url_for("desk_simulator.simulator", channel=channel) + "#end")


@bp.post("/simulator/restart")
@roles_required(CASE_ROLES)
def simulator_restart() -> ResponseReturnValue:
    """Start over: an empty conversation, as if from a new phone."""
    user = signed_in()
    channel = _channel(request.form.get("channel"))
    with services().uow() as db:
        start_over(db, channel, sim_sender(user.id, channel))
    return redirect(url_for("desk_simulator.simulator", channel=channel))
