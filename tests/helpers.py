"""Helpers for driving the intake as a person would."""

from __future__ import annotations

import itertools
from collections.abc import Iterable

from bot.app import Services
from bot.intake import HandleResult
from dialogs.messages import Inbound

_ids = itertools.count(1)

# Answers by number from the first message to the review, on SMS.
FULL_REPORT = [
    "hello",  # first contact: the language menu
    "7",  # English
    "1",  # consent
    "2",  # not in danger
    "2",  # education
    "1",  # ethnicity
    "3",  # school
    "Gjakova",
    "1",  # yes, Gjakovë
    "3",  # this month
    "The teacher put my son at the back of the class with the other Roma children.",
    "0",
    "0",  # no evidence
    "1 3",  # child, job
    "1",  # contact on this number
    "1",  # legal support
    "2",  # share after talking
]


def say(
    services: Services,
    text: str = "",
    *,
    sender: str = "+38344123456",
    channel: str = "sms",
    choice: str | None = None,
    message_id: str | None = None,
    is_test: bool = False,
    **extra: object,
) -> HandleResult:
    """Send one message to the intake service and return what it did."""
    inbound = Inbound(
        channel=channel,
        sender=sender,
        message_id=message_id or f"m{next(_ids)}",
        text=text,
        choice=choice,
        **extra,  # type: ignore[arg-type]
    )
    return services.intake.handle(inbound, is_test=is_test)


def conversation(services: Services, texts: Iterable[str], **kwargs: object) -> list[HandleResult]:
    """Send several messages in order."""
    return [say(services, t, **kwargs) for t in texts]  # type: ignore[arg-type]


def texts(result: HandleResult) -> list[str]:
    """The rendered texts of the replies."""
    return [r.rendered.text for r in result.replies]
