"""The neutral types that cross the boundary between channels and the dialog engine."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal

Channel = Literal["telegram", "sms"]

LANGUAGES: tuple[str, ...] = ("sq", "rom", "sr_Latn", "sr_Cyrl", "tr", "bs", "en")
"""Supported languages, in the order of the language menu."""

LANGUAGE_NAMES: dict[str, str] = {
    "sq": "Shqip",
    "rom": "Romani",
    "sr_Latn": "Srpski",
    "sr_Cyrl": "Српски",
    "tr": "Türkçe",
    "bs": "Bosanski",
    "en": "English",
}
"""Each language named in itself: a person who cannot read the others still finds theirs."""


@dataclass(frozen=True)
class MediaRef:
    """A reference to a photo, voice note or document held by a channel."""

    kind: str  # "photo", "voice", "audio", "video", "document"
    ref: str  # Telegram file_id or Twilio media URL
    content_type: str | None = None
    size: int | None = None


@dataclass(frozen=True)
class Inbound:
    """One message from a person, whatever channel it came over."""

    channel: str
    sender: str
    message_id: str
    text: str = ""
    choice: str | None = None  # button payload ("<step>:<value>") when a button was pressed
    media: tuple[MediaRef, ...] = ()
    campaign: str | None = None


@dataclass(frozen=True)
class Text:
    """A translatable piece of text used as a prompt parameter."""

    msgid: str
    context: str | None = None


ParamValue = str | int | Text


@dataclass(frozen=True)
class Choice:
    """One numbered option of a question."""

    value: str
    label: Text


@dataclass(frozen=True)
class Prompt:
    """A message to send: a message id, its parameters and the choices that go with it."""

    msgid: str
    params: dict[str, ParamValue] = field(default_factory=dict)
    choices: tuple[Choice, ...] = ()
    step: str | None = None  # the question the choices answer, for button payloads
    multi: bool = False  # several choices may be picked ("1 3")
    plural: tuple[str, str, int] | None = None  # (singular, plural, n) for counted messages
    multilingual: bool = False  # rendered in every language at once (the language menu)
    ack: bool = False  # an acknowledgement that the person's next message makes moot


@dataclass(frozen=True)
class Submit:
    """Effect: store the complaint built from the answers."""

    reference: str
    pin: str
    answers: dict[str, Any]


@dataclass(frozen=True)
class Forget:
    """Effect: keep nothing about this person (consent refused or data deletion)."""


@dataclass(frozen=True)
class DeleteMyData:
    """Effect: erase the person's data and withdraw their open complaints."""


@dataclass(frozen=True)
class OptOut:
    """Effect: send nothing more until the person writes again."""


@dataclass(frozen=True)
class OptIn:
    """Effect: the person wrote again after opting out."""


@dataclass(frozen=True)
class StatusQuery:
    """Effect: answer with the status of a complaint, found by reference (and PIN)."""

    reference: str
    pin: str | None


@dataclass(frozen=True)
class SetLanguage:
    """Effect: remember the language on the contact."""

    language: str


@dataclass(frozen=True)
class ClearChat:
    """Effect: delete this conversation's messages from the person's Telegram chat."""


@dataclass(frozen=True)
class SetPlainLetters:
    """Effect: send this person plain letters only (GSM-7: cheaper, readable on old phones)."""

    on: bool


Effect = (
    Submit
    | Forget
    | DeleteMyData
    | OptOut
    | OptIn
    | StatusQuery
    | SetLanguage
    | ClearChat
    | SetPlainLetters
)


@dataclass
class Conversation:
    """The stored state of one person's dialog, as the engine sees it."""

    state: str = "new"
    language: str | None = None
    answers: dict[str, Any] = field(default_factory=dict)
    history: list[str] = field(default_factory=list)
    misses: int = 0
    editing: bool = False
    resume: str | None = None  # the step to go back to after a language change or confirmation
    campaign: str | None = None
    opted_out: bool = False
    plain_letters: bool = False
    updated_at: datetime | None = None

    def copy(self) -> Conversation:
        """A copy whose answers and history can change without touching this one."""
        # Field by field: dataclasses.replace() inspects the fields on every call (about 4 µs).
        return Conversation(
            self.state,
            self.language,
            dict(self.answers),
            list(self.history),
            self.misses,
            self.editing,
            self.resume,
            self.campaign,
            self.opted_out,
            self.plain_letters,
            self.updated_at,
        )

    def to_json(self) -> dict[str, Any]:
        """The parts of the state that are stored as JSON (answers are stored encrypted)."""
        return {
            "history": list(self.history),
            "misses": self.misses,
            "editing": self.editing,
            "resume": self.resume,
        }


@dataclass
class StepResult:
    """What one engine step produced: the new state, the replies and the effects."""

    conversation: Conversation
    replies: list[Prompt] = field(default_factory=list)
    effects: list[Effect] = field(default_factory=list)
