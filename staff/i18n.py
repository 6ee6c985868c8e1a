"""The desk in each staff member's language, from the same Babel catalogs as the bot.

The translations object is chosen per request (the signed-in user's language, or the one picked
on the sign-in page) and kept on ``flask.g``; templates reach it through gettext callables that
look it up at call time. Nothing is installed globally for one language.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

from babel.support import Translations
from flask import Flask, g, request, session

from bot.app import services
from dialogs import options as opt
from dialogs.messages import LANGUAGE_NAMES, Choice, Text
from dialogs.municipalities import BY_CODE
from staff.accounts import DESK_LANGUAGES
from staff.roles import desk_user

DEFAULT_LANGUAGE = "sq"
SESSION_LANGUAGE_KEY = "desk_lang"

STATUSES: tuple[str, ...] = (
    "new",
    "in_review",
    "referred",
    "legal_support",
    "resolved",
    "closed",
    "withdrawn",
)
"""Every complaint status, in the order of the work (withdrawn is set by the person only)."""

STATUS_LABELS: dict[str, Text] = {
    "new": opt.Cx("desk status", "New"),
    "in_review": opt.Cx("desk status", "In review"),
    "referred": opt.Cx("desk status", "Referred"),
    "legal_support": opt.Cx("desk status", "Legal support"),
    "resolved": opt.Cx("desk status", "Resolved"),
    "closed": opt.Cx("desk status", "Closed"),
    "withdrawn": opt.Cx("desk status", "Withdrawn"),
}

ROLE_LABELS: dict[str, Text] = {
    "admin": opt.Cx("role", "Administrator"),
    "triage": opt.Cx("role", "Triage"),
    "legal": opt.Cx("role", "Legal support"),
    "viewer": opt.Cx("role", "Viewer"),
}

DELIVERY_LABELS: dict[str, Text] = {
    "queued": opt.Cx("delivery", "Waiting to be sent"),
    "sent": opt.Cx("delivery", "Sent"),
    "delivered": opt.Cx("delivery", "Delivered"),
    "read": opt.Cx("delivery", "Read"),
    "failed": opt.Cx("delivery", "Failed"),
    "undelivered": opt.Cx("delivery", "Not delivered"),
    "local": opt.Cx("delivery", "Test data, not sent"),
    "suppressed": opt.Cx("delivery", "Not sent (opted out)"),
}

CHECKIN_LABELS: dict[str, Text] = {
    "scheduled": opt.Cx("check-in", "Scheduled"),
    "sent": opt.Cx("check-in", "Sent, waiting for an answer"),
    "answered": opt.Cx("check-in", "Answered"),
    "cancelled": opt.Cx("check-in", "Cancelled: the person cannot be reached"),
    "expired": opt.Cx("check-in", "No answer"),
    "resolved": opt.Cx("check-in", "The situation is resolved"),
    "not_resolved": opt.Cx("check-in", "The situation is not resolved"),
    "talk": opt.Cx("check-in", "Wants to talk to someone"),
}

FIELD_CHOICES: dict[str, tuple[Choice, ...]] = {
    "area": opt.AREAS,
    "ground": opt.GROUNDS,
    "perpetrator": opt.PERPETRATORS,
    "occurred": opt.WHEN,
    "stakes": opt.STAKES,
    "sharing": opt.SHARING,
    "contact_preference": opt.CONTACT_SMS,
}
"""The answer options of each complaint field, whose labels the desk shows."""

CHANNEL_NAMES: dict[str, str] = {"sms": "SMS", "telegram": "Telegram"}


def current_language() -> str:
    """The desk language of this request."""
    language: str = g.get("desk_language", DEFAULT_LANGUAGE)
    return language


def translations() -> Translations:
    """The translations of this request's desk language."""
    return services().catalogs.translations(current_language())


def gettext(msgid: str, **params: Any) -> str:
    """A desk message in the request's language, with its placeholders filled in."""
    text = translations().gettext(msgid)
    return text % params if params else text


_ = gettext


def ngettext(singular: str, plural: str, n: int, **params: Any) -> str:
    """A counted desk message; ``num`` is filled in as in Jinja."""
    text = translations().ngettext(singular, plural, n)
    return text % {"num": n, **params}


def pgettext(context: str, msgid: str, **params: Any) -> str:
    """A desk message with a context."""
    text = str(translations().pgettext(context, msgid))
    return text % params if params else text


def text(value: Text) -> str:
    """A translatable text (an option label) in the request's language."""
    return services().catalogs.text(current_language(), value)


def choice_label(field: str, value: str | None, channel: str | None = None) -> str:
    """The label of a stored answer, as the person was offered it."""
    if value is None:
        return "—"
    choices = FIELD_CHOICES.get(field, ())
    if field == "contact_preference" and channel == "telegram":
        choices = opt.CONTACT_TELEGRAM
    for choice in choices:
        if choice.value == value:
            return text(choice.label)
    return value


def municipality_name(code: str | None) -> str:
    """A municipality in the request's language (Albanian, or Serbian in its script)."""
    if code is None:
        return "—"
    if code == "outside":
        return text(opt.OUTSIDE_KOSOVO)
    found = BY_CODE.get(code)
    return found.name(current_language()) if found else code


def value_label(field: str, value: str | None) -> str:
    """The label of any stored complaint value, by field name."""
    if field == "status":
        return label(STATUS_LABELS, value)
    if field == "municipality":
        return municipality_name(value)
    if field == "priority":
        return value or "—"
    if field == "channel":
        return CHANNEL_NAMES.get(value or "", value or "—")
    if field == "language":
        return LANGUAGE_NAMES.get(value or "", value or "—")
    return choice_label(field, value)


def describe(item: object) -> str:
    """A priority reason or a suggested institution (a dict from bot.priority / bot.routing)."""
    if isinstance(item, dict):
        for key in ("text", "name", "label", "code"):
            if item.get(key):
                return str(item[key])
        return ""
    return str(item)


def label(table: Mapping[str, Text], value: str | None) -> str:
    """A value's label from one of the tables above, or the value itself."""
    if value is None:
        return "—"
    found = table.get(value)
    return text(found) if found else value


def format_datetime(value: datetime | None) -> str:
    """A timestamp in Kosovo time, as the desk language writes it."""
    if value is None:
        return "—"
    return services().catalogs.format_datetime(current_language(), value)


def html_lang(language: str) -> str:
    """The BCP 47 tag for the ``lang`` attribute."""
    return {"sr_Latn": "sr-Latn", "sr_Cyrl": "sr-Cyrl"}.get(language, language)


def _choose_language() -> None:
    if not request.path.startswith("/desk") or (request.endpoint or "").endswith(".static"):
        return
    user = desk_user()
    picked = request.args.get("lang")
    if user is not None:
        language = user.language
    elif picked in DESK_LANGUAGES:
        session[SESSION_LANGUAGE_KEY] = picked
        language = picked
    else:
        stored = session.get(SESSION_LANGUAGE_KEY)
        if stored in DESK_LANGUAGES:
            language = stored
        else:
            best = request.accept_languages.best_match(["sq", "sr", "en"], DEFAULT_LANGUAGE)
            language = "sr_Latn" if best == "sr" else best
    g.desk_language = language if language in DESK_LANGUAGES else DEFAULT_LANGUAGE


def _template_globals() -> dict[str, Any]:
    language = current_language()
    return {
        "desk_language": language,
        "desk_html_lang": html_lang(language),
        "desk_languages": [(code, LANGUAGE_NAMES[code]) for code in DESK_LANGUAGES],
        "choice_label": choice_label,
        "value_label": value_label,
        "describe": describe,
        "municipality_name": municipality_name,
        "status_label": lambda value: label(STATUS_LABELS, value),
        "role_label": lambda value: label(ROLE_LABELS, value),
        "delivery_label": lambda value: label(DELIVERY_LABELS, value),
        "checkin_label": lambda value: label(CHECKIN_LABELS, value),
        "language_name": lambda code: LANGUAGE_NAMES.get(code or "", code or "—"),
        "channel_name": lambda code: CHANNEL_NAMES.get(code, code),
        "fmt_dt": format_datetime,
        "desk_user": desk_user(),
    }


def _jinja_gettext(msgid: str) -> str:
    return translations().gettext(msgid)


def _jinja_ngettext(singular: str, plural: str, n: int) -> str:
    return translations().ngettext(singular, plural, n)


def _jinja_pgettext(context: str, msgid: str) -> str:
    return str(translations().pgettext(context, msgid))


def _jinja_npgettext(context: str, singular: str, plural: str, n: int) -> str:
    return str(translations().npgettext(context, singular, plural, n))


def init_app(app: Flask) -> None:
    """Choose the language per request and give templates ``_``, ``ngettext``, ``pgettext``."""
    app.before_request(_choose_language)
    app.context_processor(_template_globals)
    env = app.jinja_env
    env.add_extension("jinja2.ext.i18n")
    # newstyle: placeholders are filled by the call (``_("%(n)s cases", n=3)``) and escaped.
    env.install_gettext_callables(  # type: ignore[attr-defined]
        gettext=_jinja_gettext,
        ngettext=_jinja_ngettext,
        pgettext=_jinja_pgettext,
        npgettext=_jinja_npgettext,
        newstyle=True,
    )
