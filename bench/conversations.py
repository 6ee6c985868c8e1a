"""Scripted conversations: full reports as people send them, for every benchmark to replay."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

from dialogs import complaint_dialog
from dialogs.complaint_dialog import Context
from dialogs.lexicon import Lexicon
from dialogs.messages import Conversation, Inbound, Submit


@dataclass(frozen=True)
class Say:
    """One message of a script: typed text, or a pressed Telegram button (``step:value``)."""

    text: str = ""
    choice: str | None = None


@dataclass(frozen=True)
class Script:
    """A whole report, first message to reference code, on one channel."""

    name: str
    channel: str
    description: str
    messages: tuple[Say, ...]

    def inbounds(self, sender: str, prefix: str) -> list[Inbound]:
        """The script as inbound messages from one sender, with unique message ids."""
        return [
            Inbound(
                channel=self.channel,
                sender=sender,
                message_id=f"{prefix}-{i}",
                text=m.text,
                choice=m.choice,
            )
            for i, m in enumerate(self.messages)
        ]


def _typed(*texts: str) -> tuple[Say, ...]:
    """Typed messages, one per text."""
    return tuple(Say(t) for t in texts)


# The FULL_REPORT of tests/helpers.py, then "1" to send it.
FULL_REPORT_SMS = Script(
    "full_report_sms",
    "sms",
    "English, every answer a number (tests/helpers.py FULL_REPORT), then send",
    _typed(
        "hello",
        "7",
        "1",
        "2",
        "2",
        "1",
        "3",
        "Gjakova",
        "1",
        "3",
        "The teacher put my son at the back of the class with the other Roma children.",
        "0",
        "0",
        "1 3",
        "1",
        "1",
        "2",
        "1",
    ),
)

# Option words instead of digits, with typos; the language picked by its name.
WORDS_WITH_TYPOS_SMS = Script(
    "words_typos_sms",
    "sms",
    "Albanian picked by name; option words with typos (scool, teachr, Gjakov, this mnth)",
    _typed(
        "Tungjatjeta",
        "Shqip",
        "okay",
        "nope",
        "scool",
        "1",
        "teachr",
        "Gjakov",
        "yes",
        "this mnth",
        "Mesuesja e vendosi djalin tim ne fund te klases.",
        "Na tha qe jemi te ndryshem nga femijet e tjere.",
        "done",
        "skip",
        "1 3",
        "yes, on this nmber",
        "yes",
        "only after talking to me",
        "send",
    ),
)

# Telegram buttons, Serbian, the municipality typed in Cyrillic.
CYRILLIC_TELEGRAM = Script(
    "cyrillic_telegram",
    "telegram",
    "Serbian on Telegram: buttons pressed, municipality typed in Cyrillic (Приштина); "
    "after sending, keeps the chat on the screen",
    (
        Say("Здраво"),
        Say("Српски"),
        Say(choice="consent:yes"),
        Say(choice="danger:no"),
        Say(choice="area:health"),
        Say(choice="ground:ethnicity"),
        Say(choice="perpetrator:health_facility"),
        Say("Приштина"),
        Say(choice="municipality_confirm:yes"),
        Say(choice="when:this_week"),
        Say("Медицинска сестра није хтела да прими моју мајку јер смо Роми."),
        Say("0"),
        Say("0"),
        Say("4"),
        Say(choice="contact:this"),
        Say(choice="legal:no"),
        Say(choice="sharing:yes"),
        Say(choice="review:send"),
        Say(choice="cleanup:no"),
    ),
)

# Turkish by number; "back" in the middle, then "change" at the review.
BACK_AND_CHANGE_SMS = Script(
    "back_change_sms",
    "sms",
    "Turkish by number; 'back' mid-way, then 'change an answer' at the review, then send",
    _typed(
        "merhaba",
        "5",
        "1",
        "2",
        "1",
        "1",
        "back",
        "1",
        "5",
        "Prizren",
        "1",
        "2",
        "Isveren bana Rom oldugum icin is vermedi.",
        "0",
        "0",
        "3",
        "3",
        "1",
        "1",
        "2",
        "2",
        "5",
        "1",
    ),
)

SCRIPTS: tuple[Script, ...] = (
    FULL_REPORT_SMS,
    WORDS_WITH_TYPOS_SMS,
    CYRILLIC_TELEGRAM,
    BACK_AND_CHANGE_SMS,
)
"""Every script; each sends its report and ends with the dialog idle."""

FIXED_NOW = datetime(2025, 3, 3, 10, 0, tzinfo=UTC)


def engine_context(lexicon: Lexicon) -> Context:
    """An engine context with a fixed clock and fixed codes."""
    return Context(
        now=FIXED_NOW,
        lexicon=lexicon,
        new_reference=lambda: "RAE-7K3Q9P",
        new_pin=lambda: "1234",
    )


def new_conversation() -> Conversation:
    """A first-contact conversation, as the intake service gives it to the engine."""
    return Conversation(state=complaint_dialog.State.LANGUAGE.value)


def check_scripts(lexicon: Lexicon) -> dict[str, list[str]]:
    """Replay every script on the engine: each must send its report and end idle."""
    ctx = engine_context(lexicon)
    paths: dict[str, list[str]] = {}
    for script in SCRIPTS:
        conv = new_conversation()
        states: list[str] = []
        submitted = False
        for inbound in script.inbounds("+38344000000", script.name):
            result = complaint_dialog.step(conv, inbound, ctx)
            conv = result.conversation
            states.append(conv.state)
            submitted = submitted or any(isinstance(e, Submit) for e in result.effects)
        if not submitted or conv.state != complaint_dialog.State.IDLE.value:
            raise RuntimeError(
                f"script {script.name} no longer ends with the report sent (states: {states}); "
                "update bench/conversations.py to the current dialog"
            )
        paths[script.name] = states
    return paths
