"""Follow-up messages staff send to a complainant: ready sentences in every language, or free text.

The ready sentences are message ids of the bot's catalogs, so each is sent in the language the
person chose, whatever the desk language of the staff member.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy.orm import Session

from bot import outreach
from bot.i18n import Catalogs
from dialogs.options import N_
from storage.models import Complaint, Message

MAX_FREE_TEXT = 1000

TEMPLATES: dict[str, str] = {
    # TRANSLATORS: SMS to the person who reported; keep it under 160 characters if you can.
    "received": N_("We have received your report %(reference)s and are looking at it."),
    # TRANSLATORS: SMS; %(phone)s is the organisation's phone number.
    "call_back": N_("About your report %(reference)s: could you call us back at %(phone)s?"),
    # TRANSLATORS: SMS to the person who reported.
    "more_info": N_(
        "About your report %(reference)s: we need a few more details. Please reply to this "
        "message."
    ),
    # TRANSLATORS: SMS to the person who reported.
    "referred": N_(
        "We have passed your report %(reference)s to the institution that can act on it. We "
        "will write to you again."
    ),
    # TRANSLATORS: SMS to the person who reported.
    "closed": N_(
        "We have closed your report %(reference)s. Thank you for telling us. You can write to "
        "us again at any time."
    ),
}
"""Ready follow-up sentences by key; every one names the report."""


@dataclass(frozen=True)
class FollowUp:
    """A follow-up as the staff member asked for it."""

    template: str  # a key of TEMPLATES, or "free"
    phone: str = ""
    free_text: str = ""


class FollowUpRefused(Exception):
    """The follow-up cannot be sent; ``reason`` is a code the desk explains."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def compose(catalogs: Catalogs, complaint: Complaint, follow_up: FollowUp) -> str:
    """The text to send, in the complainant's language."""
    if follow_up.template == "free":
        text = follow_up.free_text.strip()
        if not text:
            raise FollowUpRefused("empty")
        if len(text) > MAX_FREE_TEXT:
            raise FollowUpRefused("too_long")
        return text
    msgid = TEMPLATES.get(follow_up.template)
    if msgid is None:
        raise FollowUpRefused("unknown_template")
    params = {"reference": complaint.reference, "phone": follow_up.phone.strip()[:32]}
    if "%(phone)s" in msgid and not params["phone"]:
        raise FollowUpRefused("phone_missing")
    return catalogs.gettext(complaint.language, msgid) % params


def send(
    session: Session,
    catalogs: Catalogs,
    complaint: Complaint,
    follow_up: FollowUp,
    *,
    sms_enabled: bool,
    now: datetime,
) -> Message:
    """Queue a follow-up in the outbox on the person's channel; FollowUpRefused when not allowed."""
    text = compose(catalogs, complaint, follow_up)
    route = outreach.route_to_complainant(session, complaint, sms_enabled=sms_enabled)
    if not isinstance(route, outreach.Route):
        raise FollowUpRefused(route)
    return outreach.queue_to_complainant(session, complaint, route, text, now=now)
