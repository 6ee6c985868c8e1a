"""The answer options of every question, as stable values with English labels.

Labels are message ids in the ``choice`` context; the markers below only tag strings for
extraction (``raporto i18n extract``): translation happens when a channel renders a prompt, in
the person's language.
"""

from __future__ import annotations

from dialogs.messages import Choice as Choice  # re-exported: options are built of these
from dialogs.messages import Text as Text


def N_(msgid: str) -> str:
    """Mark a message id for extraction; it is translated later, when rendered."""
    return msgid


def nN_(singular: str, plural: str, n: int) -> tuple[str, str, int]:
    """Mark a counted message (singular, plural) for extraction; rendered with ngettext."""
    return (singular, plural, n)


def Cx(context: str, msgid: str) -> Text:
    """A translatable text in a message context (extracted as pgettext)."""
    return Text(msgid, context)


def Kw(context: str, words: str) -> Text:
    """A ``|``-separated list of words a person may type for an option or a command."""
    return Text(words, context)


def _choices(*pairs: tuple[str, Text]) -> tuple[Choice, ...]:
    return tuple(Choice(value, label) for value, label in pairs)


YES_NO = _choices(("yes", Cx("choice", "Yes")), ("no", Cx("choice", "No")))

AREAS = _choices(
    ("employment", Cx("choice", "Work")),
    ("education", Cx("choice", "School or education")),
    ("health", Cx("choice", "Health care")),
    ("housing", Cx("choice", "Housing")),
    ("social", Cx("choice", "Social aid or documents")),
    ("police_justice", Cx("choice", "Police or justice")),
    ("services", Cx("choice", "Shops and services")),
    ("public_space", Cx("choice", "Public space, media, online")),
    ("other", Cx("choice", "Other")),
)

GROUNDS = _choices(
    ("ethnicity", Cx("choice", "Ethnicity or community")),
    ("language", Cx("choice", "Language")),
    ("religion", Cx("choice", "Religion")),
    ("gender", Cx("choice", "Gender")),
    ("disability", Cx("choice", "Disability")),
    ("age", Cx("choice", "Age")),
    ("other", Cx("choice", "Other reason")),
)

PERPETRATORS = _choices(
    ("public_institution", Cx("choice", "Public institution")),
    ("police", Cx("choice", "Police")),
    ("school", Cx("choice", "School")),
    ("health_facility", Cx("choice", "Hospital or clinic")),
    ("employer", Cx("choice", "Employer")),
    ("business", Cx("choice", "Business or shop")),
    ("individual", Cx("choice", "A person")),
    ("online_media", Cx("choice", "Online or media")),
    ("unknown", Cx("choice", "Don't know")),
)

WHEN = _choices(
    ("today", Cx("choice", "Today")),
    ("this_week", Cx("choice", "This week")),
    ("this_month", Cx("choice", "This month")),
    ("earlier", Cx("choice", "Earlier")),
    ("ongoing", Cx("choice", "Still going on")),
)

STAKES = _choices(
    ("child", Cx("choice", "A child is affected")),
    ("home", Cx("choice", "May lose home soon")),
    ("job", Cx("choice", "May lose job soon")),
    ("health_care", Cx("choice", "May lose health care soon")),
    ("documents", Cx("choice", "May lose documents soon")),
    ("deadline", Cx("choice", "A legal deadline")),
    ("none", Cx("choice", "None of these")),
)

CONTACT_SMS = _choices(
    ("this", Cx("choice", "Yes, on this number")),
    ("other", Cx("choice", "Yes, on another number")),
    ("none", Cx("choice", "No, stay anonymous")),
)

CONTACT_TELEGRAM = _choices(
    ("this", Cx("choice", "Yes, in this chat")),
    ("other", Cx("choice", "Yes, on a phone number")),
    ("none", Cx("choice", "No, stay anonymous")),
)

SHARING = _choices(
    ("yes", Cx("choice", "Yes")),
    ("after_talk", Cx("choice", "Only after talking to me")),
    ("no", Cx("choice", "No")),
)

REVIEW = _choices(
    ("send", Cx("choice", "Send")),
    ("change", Cx("choice", "Change an answer")),
    ("cancel", Cx("choice", "Cancel")),
)

# Which answer to change from the review; the values are the steps that ask them.
CHANGE = _choices(
    ("area", Cx("choice", "Area")),
    ("ground", Cx("choice", "Reason")),
    ("perpetrator", Cx("choice", "Who did it")),
    ("municipality", Cx("choice", "Where")),
    ("when", Cx("choice", "When")),
    ("description", Cx("choice", "What happened")),
    ("evidence", Cx("choice", "Evidence")),
    ("stakes", Cx("choice", "What is at stake")),
    ("contact", Cx("choice", "Contact")),
    ("legal", Cx("choice", "Legal support")),
    ("sharing", Cx("choice", "Sharing")),
)

STATUS_LABELS: dict[str, Text] = {
    "new": Cx("status", "received, waiting for review"),
    "in_review": Cx("status", "being reviewed"),
    "referred": Cx("status", "referred to the competent institution"),
    "legal_support": Cx("status", "with legal support"),
    "resolved": Cx("status", "resolved"),
    "closed": Cx("status", "closed"),
    "withdrawn": Cx("status", "withdrawn"),
}

OUTSIDE_KOSOVO = Cx("choice", "Outside Kosovo or don't know")

# Extra words people type for an option, per language (translators add their own words).
OPTION_KEYWORDS: dict[tuple[str, str], Text] = {
    ("yes", "yes"): Kw("keywords", "yes|y|ok|okay|sure"),
    ("yes", "no"): Kw("keywords", "no|n|nope"),
    ("area", "employment"): Kw("keywords", "work|job|employment|employer"),
    ("area", "education"): Kw("keywords", "school|education|teacher|kindergarten"),
    ("area", "health"): Kw("keywords", "health|hospital|doctor|clinic"),
    ("area", "housing"): Kw("keywords", "housing|house|home|eviction|rent"),
    ("area", "social"): Kw("keywords", "social|assistance|documents|papers|registration"),
    ("area", "police_justice"): Kw("keywords", "police|court|justice"),
    ("area", "services"): Kw("keywords", "shop|store|cafe|restaurant|service"),
    ("area", "public_space"): Kw("keywords", "street|media|internet|facebook|online"),
    ("perpetrator", "police"): Kw("keywords", "police|policeman|officer"),
    ("perpetrator", "school"): Kw("keywords", "school|teacher|director"),
    ("perpetrator", "health_facility"): Kw("keywords", "hospital|clinic|doctor|nurse"),
    ("perpetrator", "employer"): Kw("keywords", "employer|boss|company"),
    ("perpetrator", "unknown"): Kw("keywords", "unknown|dont know"),
}

COMMAND_WORDS: dict[str, Text] = {
    "help": Kw("command", "help|info|?"),
    "back": Kw("command", "back|previous"),
    "restart": Kw("command", "restart|start again|new"),
    "language": Kw("command", "language|lang"),
    "stop": Kw("command", "stop|unsubscribe|end|quit|stopall|revoke|optout|cancel"),
    "start": Kw("command", "start|unstop"),
    "status": Kw("command", "status"),
    "delete": Kw("command", "delete my data|delete|erase my data"),
    "letters": Kw("command", "abc|plain letters|simple letters"),
    "done": Kw("command", "done|finished|ready|0"),
    "skip": Kw("command", "skip|no|none|0"),
}
"""Words for the commands that work at every step; English words always work too."""
