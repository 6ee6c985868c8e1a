"""The complaint dialog: a state table on ``transitions`` that turns one message into replies.

The engine does no I/O. ``step()`` takes the stored conversation and one inbound message and
returns the new conversation, the prompts to send and the effects for the service to carry out.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any

import phonenumbers
from transitions import Machine
from transitions.core import listify

from dialogs import options as opt
from dialogs.lexicon import Lexicon
from dialogs.messages import (
    LANGUAGE_NAMES,
    LANGUAGES,
    Choice,
    ClearChat,
    Conversation,
    DeleteMyData,
    Forget,
    Inbound,
    MediaRef,
    OptIn,
    OptOut,
    Prompt,
    SetLanguage,
    SetPlainLetters,
    StatusQuery,
    StepResult,
    Submit,
    Text,
)
from dialogs.municipalities import BY_CODE, Municipality, match_municipality
from dialogs.options import N_, nN_

DRAFT_LIFETIME = timedelta(hours=72)
MAX_MISSES = 3
MAX_DESCRIPTION_CHARS = 10_000  # several long SMS, far more than anyone types on a keypad
MAX_ATTACHMENTS = 20


class State(StrEnum):
    """Every step of the dialog; the value is what is stored."""

    NEW = "new"
    LANGUAGE = "language"
    CONSENT = "consent"
    DANGER = "danger"
    AREA = "area"
    GROUND = "ground"
    GROUND_OTHER = "ground_other"
    PERPETRATOR = "perpetrator"
    MUNICIPALITY = "municipality"
    MUNICIPALITY_CONFIRM = "municipality_confirm"
    WHEN = "when"
    DESCRIPTION = "description"
    EVIDENCE = "evidence"
    STAKES = "stakes"
    CONTACT = "contact"
    CONTACT_PHONE = "contact_phone"
    LEGAL = "legal"
    SHARING = "sharing"
    REVIEW = "review"
    CHANGE = "change"
    DELETE_CONFIRM = "delete_confirm"
    CLEANUP = "cleanup"
    IDLE = "idle"


S = State

# The dialog reads like its diagram: ``advance`` leaves a step once its answer is recorded; the
# first transition whose conditions hold wins. ``editing`` sends a changed answer back to review.
TRANSITIONS: list[dict[str, Any]] = [
    {"trigger": "advance", "source": S.CONSENT, "dest": S.DANGER, "conditions": "consented"},
    {"trigger": "advance", "source": S.CONSENT, "dest": S.NEW},
    {"trigger": "advance", "source": S.DANGER, "dest": S.AREA},
    {"trigger": "advance", "source": S.AREA, "dest": S.REVIEW, "conditions": "editing"},
    {"trigger": "advance", "source": S.AREA, "dest": S.GROUND},
    {
        "trigger": "advance",
        "source": S.GROUND,
        "dest": S.GROUND_OTHER,
        "conditions": "other_ground",
    },
    {"trigger": "advance", "source": S.GROUND, "dest": S.REVIEW, "conditions": "editing"},
    {"trigger": "advance", "source": S.GROUND, "dest": S.PERPETRATOR},
    {"trigger": "advance", "source": S.GROUND_OTHER, "dest": S.REVIEW, "conditions": "editing"},
    {"trigger": "advance", "source": S.GROUND_OTHER, "dest": S.PERPETRATOR},
    {"trigger": "advance", "source": S.PERPETRATOR, "dest": S.REVIEW, "conditions": "editing"},
    {"trigger": "advance", "source": S.PERPETRATOR, "dest": S.MUNICIPALITY},
    {
        "trigger": "advance",
        "source": S.MUNICIPALITY,
        "dest": S.MUNICIPALITY_CONFIRM,
        "conditions": "has_candidate",
    },
    {"trigger": "advance", "source": S.MUNICIPALITY, "dest": S.REVIEW, "conditions": "editing"},
    {"trigger": "advance", "source": S.MUNICIPALITY, "dest": S.WHEN},
    {
        "trigger": "advance",
        "source": S.MUNICIPALITY_CONFIRM,
        "dest": S.MUNICIPALITY,
        "conditions": "candidate_refused",
    },
    {
        "trigger": "advance",
        "source": S.MUNICIPALITY_CONFIRM,
        "dest": S.REVIEW,
        "conditions": "editing",
    },
    {"trigger": "advance", "source": S.MUNICIPALITY_CONFIRM, "dest": S.WHEN},
    {"trigger": "advance", "source": S.WHEN, "dest": S.REVIEW, "conditions": "editing"},
    {"trigger": "advance", "source": S.WHEN, "dest": S.DESCRIPTION},
    {"trigger": "advance", "source": S.DESCRIPTION, "dest": S.REVIEW, "conditions": "editing"},
    {"trigger": "advance", "source": S.DESCRIPTION, "dest": S.EVIDENCE},
    {"trigger": "advance", "source": S.EVIDENCE, "dest": S.REVIEW, "conditions": "editing"},
    {"trigger": "advance", "source": S.EVIDENCE, "dest": S.STAKES},
    {"trigger": "advance", "source": S.STAKES, "dest": S.REVIEW, "conditions": "editing"},
    {"trigger": "advance", "source": S.STAKES, "dest": S.CONTACT},
    {
        "trigger": "advance",
        "source": S.CONTACT,
        "dest": S.CONTACT_PHONE,
        "conditions": "wants_other_phone",
    },
    {"trigger": "advance", "source": S.CONTACT, "dest": S.REVIEW, "conditions": "editing"},
    {"trigger": "advance", "source": S.CONTACT, "dest": S.LEGAL},
    {"trigger": "advance", "source": S.CONTACT_PHONE, "dest": S.REVIEW, "conditions": "editing"},
    {"trigger": "advance", "source": S.CONTACT_PHONE, "dest": S.LEGAL},
    {"trigger": "advance", "source": S.LEGAL, "dest": S.REVIEW, "conditions": "editing"},
    {"trigger": "advance", "source": S.LEGAL, "dest": S.SHARING},
    {"trigger": "advance", "source": S.SHARING, "dest": S.REVIEW},
    {"trigger": "advance", "source": S.REVIEW, "dest": S.CHANGE, "conditions": "wants_change"},
    {"trigger": "advance", "source": S.REVIEW, "dest": S.IDLE},
]

# Steps a person can go "back" to; follow-up questions (confirmations) are not among them.
MAIN_STEPS = frozenset(
    {
        S.DANGER,
        S.AREA,
        S.GROUND,
        S.PERPETRATOR,
        S.MUNICIPALITY,
        S.WHEN,
        S.DESCRIPTION,
        S.EVIDENCE,
        S.STAKES,
        S.CONTACT,
        S.LEGAL,
        S.SHARING,
        S.REVIEW,
    }
)
# Steps in the middle of a report: silence here lets a draft expire.
DRAFT_STEPS = frozenset(
    MAIN_STEPS | {S.GROUND_OTHER, S.MUNICIPALITY_CONFIRM, S.CONTACT_PHONE, S.CHANGE}
)

_REFERENCE = re.compile(r"\b(RAE-?[A-Z0-9]{6})\b", re.IGNORECASE)
_PIN = re.compile(r"\b(\d{4,6})\b")


@dataclass
class Context:
    """What the engine needs from outside: the time, the vocabulary, and fresh codes."""

    now: datetime
    lexicon: Lexicon
    new_reference: Callable[[], str]
    new_pin: Callable[[], str]


@dataclass(eq=False)  # identity, not field equality: the Machine keeps models in a list
class Dialog:
    """The model the state machine drives for one message; holds the replies it records."""

    conv: Conversation
    inbound: Inbound
    ctx: Context
    replies: list[Prompt] = field(default_factory=list)
    effects: list[Effect] = field(default_factory=list)
    state: State = S.NEW

    # Stubs that the Machine binds; declared so type checkers know them (model_override=True).
    def advance(self) -> bool:
        """Leave the current step (bound by the state machine)."""
        raise NotImplementedError  # pragma: no cover

    @property
    def answers(self) -> dict[str, Any]:
        """The answers recorded so far."""
        return self.conv.answers

    # Conditions used by the transition table.
    def consented(self) -> bool:
        """Whether the person agreed to record the report."""
        return bool(self.answers.get("consent"))

    def editing(self) -> bool:
        """Whether the current answer was reached from the review, to change it."""
        return self.conv.editing

    def other_ground(self) -> bool:
        """Whether the ground is 'other' and needs a few words."""
        return self.answers.get("ground") == "other"

    def has_candidate(self) -> bool:
        """Whether a typed municipality waits for confirmation."""
        return bool(self.answers.get("_candidate"))

    def has_municipality(self) -> bool:
        """Whether a municipality (or 'outside') is recorded."""
        return bool(self.answers.get("municipality"))

    def candidate_refused(self) -> bool:
        """Whether the person said no to every municipality offered and must write it again."""
        return bool(self.answers.get("_refused")) or not self.has_municipality()

    def wants_other_phone(self) -> bool:
        """Whether the person wants to be called on another phone number."""
        return self.answers.get("contact") == "other"

    def wants_change(self) -> bool:
        """Whether the person asked to change an answer at the review."""
        return self.answers.get("_review") == "change"

    # Callback: whenever the state changes through the table, ask the new step's question.
    def on_state_change(self) -> None:
        """Record the question of the step just entered."""
        if self.state in MAIN_STEPS and self.state not in self.conv.history[-1:]:
            self.conv.history.append(self.state.value)
        if self.state is S.REVIEW:
            self.conv.editing = False  # the changed answer is in; "back" now means sharing
        self.ask()

    def ask(self) -> None:
        """Record the current step's question."""
        prompt = question(self.state, self.conv, self.inbound.channel)
        if prompt is not None:
            self.replies.append(prompt)


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


class _DialogMachine(Machine):
    """A Machine whose per-message ``add_model`` binds only what ``Dialog`` declares.

    ``transitions`` would otherwise build an ``is_<state>`` helper and look for
    ``on_enter_<state>`` methods for every state, and log a warning for each helper that
    ``model_override`` skips: most of the cost of a dialog step. The dialog uses none of them.
    """

    def _checked_assignment(self, model: Any, name: str, func: Any) -> None:
        if (getattr(model, name, None) is None) ^ self.model_override:
            setattr(model, name, func)

    def _add_model_to_state(self, state: Any, model: Any) -> None:
        return None

    def add_model(self, model: Any, initial: Any = None) -> None:
        """Register dialogs: bind their triggers and set their state, as ``Machine`` does.

        The base method also binds ``trigger``/``may_trigger`` helpers and visits every state
        for each model; ``Dialog`` declares neither, so this skips that walk (about 5 µs).
        """
        state: Any = self.initial if initial is None else initial
        for mod in listify(model):
            if mod not in self.models:
                for trigger in self.events:
                    self._add_trigger_to_model(trigger, mod)
                self.set_state(state, model=mod)
                self.models.append(mod)


MACHINE = _DialogMachine(
    model=None,
    states=State,
    transitions=TRANSITIONS,
    initial=S.NEW,
    auto_transitions=False,
    after_state_change="on_state_change",
    model_override=True,
)
"""Built once at import: building a Machine per message costs hundreds of microseconds."""


def yes_no(step: str) -> tuple[Choice, ...]:
    """The Yes/No choices; option 1 is always Yes."""
    return opt.YES_NO


def question(state: State, conv: Conversation, channel: str) -> Prompt | None:
    """The prompt that asks the question of ``state``."""
    a = conv.answers
    step = state.value
    if state is S.LANGUAGE:
        choices = tuple(
            Choice(lang, Text(LANGUAGE_NAMES[lang], "language name")) for lang in LANGUAGES
        )
        return Prompt(N_("Choose your language:"), choices=choices, step=step, multilingual=True)
    if state is S.CONSENT:
        return Prompt(N_("May we record your report?"), choices=opt.YES_NO, step=step)
    if state is S.DANGER:
        return Prompt(N_("Are you in danger right now?"), choices=opt.YES_NO, step=step)
    if state is S.AREA:
        return Prompt(N_("Where did it happen?"), choices=opt.AREAS, step=step)
    if state is S.GROUND:
        return Prompt(N_("Why were you treated unfairly?"), choices=opt.GROUNDS, step=step)
    if state is S.GROUND_OTHER:
        return Prompt(N_("Please write the reason in a few words."))
    if state is S.PERPETRATOR:
        return Prompt(N_("Who did it?"), choices=opt.PERPETRATORS, step=step)
    if state is S.MUNICIPALITY_CONFIRM and a.get("_candidate") in BY_CODE:
        place = BY_CODE[a["_candidate"]]
        lang = conv.language or "en"
        return Prompt(
            N_("Did you mean %(municipality)s?"),
            {"municipality": place.name(lang)},
            choices=opt.YES_NO,
            step=step,
        )
    if state in (S.MUNICIPALITY, S.MUNICIPALITY_CONFIRM):  # no candidate left: the name again
        return Prompt(
            N_("In which municipality? Write its name, or 0 if outside Kosovo or you don't know.")
        )
    if state is S.WHEN:
        return Prompt(N_("When did it happen?"), choices=opt.WHEN, step=step)
    if state is S.DESCRIPTION:
        return Prompt(
            N_(
                "Tell us what happened, in your own words. You can send several messages. "
                "Send 0 when you are done."
            )
        )
    if state is S.EVIDENCE:
        return Prompt(
            N_(
                "Do you have photos, voice notes or documents? Send them now, then 0. "
                "Or send 0 to skip."
            )
        )
    if state is S.STAKES:
        return Prompt(
            N_("Is any of this true? Send all numbers that apply, e.g. 1 3."),
            choices=opt.STAKES,
            step=step,
            multi=True,
        )
    if state is S.CONTACT:
        choices = opt.CONTACT_TELEGRAM if channel == "telegram" else opt.CONTACT_SMS
        return Prompt(N_("May we contact you about this report?"), choices=choices, step=step)
    if state is S.CONTACT_PHONE:
        return Prompt(N_("Write the phone number, e.g. 044 123 456."))
    if state is S.LEGAL:
        return Prompt(N_("Do you want free legal support?"), choices=opt.YES_NO, step=step)
    if state is S.SHARING:
        return Prompt(
            N_("May we pass your report to the competent institution?"),
            choices=opt.SHARING,
            step=step,
        )
    if state is S.REVIEW:
        return review_prompt(conv)
    if state is S.CHANGE:
        return Prompt(N_("Which answer do you want to change?"), choices=opt.CHANGE, step=step)
    if state is S.CLEANUP:
        return Prompt(
            N_("On a shared phone? We can remove this chat from your screen. Remove it?"),
            choices=opt.YES_NO,
            step=step,
        )
    if state is S.DELETE_CONFIRM:
        return Prompt(
            N_("Delete all your data and withdraw your open reports?"),
            choices=opt.YES_NO,
            step=step,
        )
    return None


def _label(choices: tuple[Choice, ...], value: str | None) -> Text:
    for c in choices:
        if c.value == value:
            return c.label
    return opt.Cx("choice", "Other")


def review_prompt(conv: Conversation) -> Prompt:
    """The short summary shown before sending."""
    a = conv.answers
    code = a.get("municipality")
    place: Text | str
    if code and code in BY_CODE:
        place = BY_CODE[code].name(conv.language or "en")
    else:
        place = opt.OUTSIDE_KOSOVO
    return Prompt(
        N_("Your report: %(area)s; %(ground)s; %(perpetrator)s; %(municipality)s; %(when)s."),
        {
            "area": _label(opt.AREAS, a.get("area")),
            "ground": _label(opt.GROUNDS, a.get("ground")),
            "perpetrator": _label(opt.PERPETRATORS, a.get("perpetrator")),
            "municipality": place,
            "when": _label(opt.WHEN, a.get("when")),
        },
        choices=opt.REVIEW,
        step=State.REVIEW.value,
    )


def help_prompt() -> Prompt:
    """The help message: how to answer, and the words that work everywhere."""
    return Prompt(
        N_(
            "Answer with the number of your choice. You can also write: back, restart, "
            "language, stop, status and your code, delete my data."
        )
    )


# --- the step -----------------------------------------------------------------------------


def step(conversation: Conversation, inbound: Inbound, ctx: Context) -> StepResult:
    """Handle one inbound message: the new conversation, the prompts and the effects."""
    conv = conversation.copy()
    dialog = Dialog(conv=conv, inbound=inbound, ctx=ctx)
    MACHINE.add_model(dialog, initial=State(conv.state))
    try:
        _handle(dialog)
    finally:
        MACHINE.remove_model(dialog)
    conv.state = dialog.state.value
    conv.updated_at = ctx.now
    return StepResult(conv, dialog.replies, dialog.effects)


def _handle(d: Dialog) -> None:
    conv, inbound = d.conv, d.inbound
    if inbound.campaign and not conv.campaign:
        conv.campaign = inbound.campaign
    if conv.opted_out:
        conv.opted_out = False
        d.effects.append(OptIn())
    if _expired(d):
        d.replies.append(
            Prompt(N_("Your unfinished report was deleted after 72 hours without an answer."))
        )
        _reset(d, S.IDLE)
    if d.state is S.NEW or (conv.language is None and d.state is not S.LANGUAGE):
        # No language yet: the message answers the language menu (a greeting just shows it),
        # and the global commands (stop above all, which SMS carriers act on) still work.
        MACHINE.set_state(S.LANGUAGE, d)
    if _global_command(d):
        return
    handler = _HANDLERS.get(d.state)
    if handler is None:  # IDLE: any message begins a new report
        if inbound.choice is not None:
            # A button of a finished report (a second tap on Send) does not start a new one.
            d.replies.append(Prompt(N_("Send any message to start a report.")))
            return
        _welcome(d)
        return
    handler(d)


# Side questions that return to the step they interrupted (``Conversation.resume``).
DETOURS = frozenset({S.LANGUAGE, S.DELETE_CONFIRM})


def _expired(d: Dialog) -> bool:
    updated = d.conv.updated_at
    if updated is None or d.ctx.now - updated <= DRAFT_LIFETIME:
        return False
    if d.state in DRAFT_STEPS:
        return True
    resume = d.conv.resume
    return d.state in DETOURS and resume is not None and resume in DRAFT_STEPS


def _reset(d: Dialog, state: State) -> None:
    d.conv.answers.clear()
    d.conv.history.clear()
    d.conv.editing = False
    d.conv.resume = None
    d.conv.misses = 0
    MACHINE.set_state(state, d)


def _jump(d: Dialog, state: State, *, record: bool = True) -> None:
    """Go to a step outside the table's order (back, change, language) and ask its question.

    ``record=False`` leaves the history alone: changing an answer from the review, or coming
    back from a side question, is not a step backwards.
    """
    MACHINE.set_state(state, d)
    d.conv.misses = 0
    if state is S.REVIEW:
        d.conv.editing = False
    history = d.conv.history
    if record and state in MAIN_STEPS and state.value not in history[-1:]:
        if state.value in history:  # an earlier step: the steps after it are to be asked again
            del history[len(history) - history[::-1].index(state.value) :]
        else:
            history.append(state.value)
    d.ask()


def _detour(d: Dialog, state: State) -> None:
    """Ask a side question (language, deletion) and remember the step to come back to."""
    then_delete = d.state is S.DELETE_CONFIRM and state is S.LANGUAGE
    d.answers.pop("_then_delete", None)
    if then_delete:  # the deletion is asked again, in the new language
        d.answers["_then_delete"] = True
    if d.state not in DETOURS:  # from one side question to the other: keep the first step
        d.conv.resume = d.state.value
    _jump(d, state)


def _resume_step(d: Dialog) -> State | None:
    """The step a side question interrupted, if it was a step of a report; clears it."""
    resume = d.conv.resume
    d.conv.resume = None
    if resume is None or resume in (S.NEW.value, S.IDLE.value) or State(resume) in DETOURS:
        return None
    return State(resume)


def _next(d: Dialog) -> None:
    d.conv.misses = 0
    d.advance()


def _welcome(d: Dialog) -> None:
    _reset(d, S.CONSENT)
    d.replies.append(
        Prompt(
            N_(
                "Raporto sends your report of discrimination to the Technical Group for Roma, "
                "Ashkali and Egyptian communities and its partners. It is free and confidential. "
                "In danger now? Call 112 (police 192)."
            )
        )
    )
    d.ask()


def _miss(d: Dialog, hint: str | None = None) -> None:
    """A reply the step cannot use: a short hint and the question again; help after three."""
    d.conv.misses += 1
    if d.conv.misses >= MAX_MISSES:
        d.conv.misses = 0
        d.replies.append(help_prompt())
    else:
        d.replies.append(
            Prompt(hint or N_("Sorry, I did not understand. Please answer with a number."))
        )
    d.ask()


# --- global commands ----------------------------------------------------------------------


def _global_command(d: Dialog) -> bool:
    text = d.inbound.text
    if d.inbound.choice is not None or not text.strip():
        return False
    lexicon, channel = d.ctx.lexicon, d.inbound.channel
    command = lexicon.command(text, channel)
    if command is None:
        return False
    shown = question(d.state, d.conv, channel)
    if (
        shown is not None
        and lexicon.is_label(shown.choices, text)
        and not lexicon.is_carrier_stop_word(text, channel)
    ):
        # The label of an option on screen is that option ("Language" is a ground of
        # discrimination, "Cancel" ends the review), except where an SMS carrier opts out.
        return False
    state = d.state
    if command == "help":
        d.replies.append(help_prompt())
        if state in (S.NEW, S.IDLE):
            d.replies.append(Prompt(N_("Send any message to start a report.")))
        else:
            d.ask()
    elif command == "back":
        _back(d)
    elif command == "restart":
        if d.conv.language is None:
            _jump(d, S.LANGUAGE)  # the welcome can only be shown in a chosen language
        else:
            _welcome(d)
    elif command == "language":
        _detour(d, S.LANGUAGE)
    elif command == "stop":
        d.effects.append(OptOut())
        d.conv.opted_out = True
        d.replies.append(
            Prompt(N_("You will get no more messages from us. Write to us again at any time."))
        )
    elif command == "letters":
        d.conv.plain_letters = not d.conv.plain_letters
        d.effects.append(SetPlainLetters(d.conv.plain_letters))
        if d.conv.plain_letters:
            d.replies.append(
                Prompt(N_("Plain letters on: our messages will have no special letters."))
            )
        else:
            d.replies.append(Prompt(N_("Plain letters off.")))
        if state not in (S.NEW, S.IDLE):
            d.ask()
    elif command == "start":
        if state in (S.NEW, S.IDLE):
            _welcome(d)
        else:
            d.ask()
    elif command == "status":
        match = _REFERENCE.search(text)
        if match is None:
            d.replies.append(
                Prompt(N_("To check a report, send: status and its code, e.g. status RAE-7K3Q9P"))
            )
        else:
            ref = match.group(1).upper().replace("RAE", "RAE-", 1).replace("--", "-")
            rest = text[match.end() :]
            pin = _PIN.search(rest)
            d.effects.append(StatusQuery(ref, pin.group(1) if pin else None))
        if state not in (S.NEW, S.IDLE, S.LANGUAGE):
            d.ask()
    elif command == "delete":
        if d.conv.language is None:
            # Before a language is chosen nothing but these first messages is kept, and there
            # is no language to ask for a confirmation in: delete at once.
            d.effects.append(DeleteMyData())
            d.replies.append(
                Prompt(N_("Your data was deleted and your open reports were withdrawn."))
            )
            _reset(d, S.NEW)
        else:
            _detour(d, S.DELETE_CONFIRM)
    return True


def _back(d: Dialog) -> None:
    conv, state = d.conv, d.state
    if state in DETOURS and conv.language is not None:
        # Back from a side question: to the step it interrupted, nothing changed.
        _leave_detour(d, N_("Nothing was deleted.") if state is S.DELETE_CONFIRM else None)
        return
    if conv.editing:
        conv.editing = False
        _jump(d, S.REVIEW, record=False)
        return
    if state is S.GROUND_OTHER:
        _jump(d, S.GROUND)
        return
    if state is S.MUNICIPALITY_CONFIRM:
        conv.answers.pop("_candidate", None)
        conv.answers.pop("_others", None)
        _jump(d, S.MUNICIPALITY)
        return
    if state is S.CONTACT_PHONE:
        _jump(d, S.CONTACT)
        return
    if state is S.CHANGE:
        _jump(d, S.REVIEW)
        return
    if state in (S.NEW, S.IDLE):
        d.replies.append(Prompt(N_("Send any message to start a report.")))
        return
    history = conv.history
    if len(history) > 1 and history[-1] == state.value:
        history.pop()  # the first step stays: the next one must be able to come back to it
    if not history or history[-1] == state.value:
        d.replies.append(Prompt(N_("This is the first question.")))
        d.ask()
        return
    _jump(d, State(history[-1]))


def _leave_detour(d: Dialog, note: str | None = None) -> None:
    """Back to the step a side question interrupted, or to rest when there was none."""
    if note is not None:
        d.replies.append(Prompt(note))
    if d.answers.pop("_then_delete", False) and d.state is S.LANGUAGE:
        _jump(d, S.DELETE_CONFIRM)
        return
    target = _resume_step(d)
    if target is not None:
        _jump(d, target, record=False)
    else:
        MACHINE.set_state(S.IDLE, d)
        d.replies.append(Prompt(N_("Send any message to start a report.")))


# --- per-step handlers ----------------------------------------------------------------------


def _choice(d: Dialog, choices: tuple[Choice, ...]) -> str | None:
    """The option picked by button or by typing; None when the reply does not fit this step."""
    pressed = d.inbound.choice
    if pressed is not None:
        step_name, _, value = pressed.partition(":")
        if step_name == d.state.value and any(c.value == value for c in choices):
            return value
        return None
    return d.ctx.lexicon.option(d.state.value, choices, d.inbound.text)


def _on_language(d: Dialog) -> None:
    lang: str | None = None
    pressed = d.inbound.choice
    if pressed is not None and pressed.startswith("language:"):
        candidate = pressed.partition(":")[2]
        lang = candidate if candidate in LANGUAGES else None
    elif d.inbound.text:
        lang = d.ctx.lexicon.language(d.inbound.text)
    if lang is None:
        if (
            d.conv.language is None
            and d.state is S.LANGUAGE
            and d.conv.misses == 0
            and not d.conv.history
        ):
            # The first message of a new contact is a greeting, not an answer: just show the menu.
            d.conv.misses = 1
            d.ask()
            return
        _miss(d, N_("Please send the number of your language."))
        return
    d.conv.language = lang
    d.effects.append(SetLanguage(lang))
    if d.answers.pop("_then_delete", False):
        d.replies.append(Prompt(N_("Language changed.")))
        _jump(d, S.DELETE_CONFIRM)
        return
    resume = _resume_step(d)
    if resume is not None:
        d.replies.append(Prompt(N_("Language changed.")))
        _jump(d, resume, record=False)
        return
    _welcome(d)


def _on_consent(d: Dialog) -> None:
    value = _choice(d, opt.YES_NO)
    if value is None:
        _miss(d)
        return
    if value == "no":
        d.effects.append(Forget())
        d.replies.append(
            Prompt(N_("We understand. Nothing was recorded. Write to us again at any time."))
        )
        _reset(d, S.NEW)
        d.conv.language = None
        return
    d.answers["consent"] = True
    _next(d)


def _on_danger(d: Dialog) -> None:
    value = _choice(d, opt.YES_NO)
    if value is None:
        _miss(d)
        return
    d.answers["danger"] = value == "yes"
    if value == "yes":
        d.replies.append(
            Prompt(
                N_(
                    "Call 112 now (police 192), it is free. We mark your report as urgent. "
                    "Let us continue."
                )
            )
        )
    _next(d)


def _simple(key: str, choices: tuple[Choice, ...]) -> Callable[[Dialog], None]:
    def handler(d: Dialog) -> None:
        value = _choice(d, choices)
        if value is None:
            _miss(d)
            return
        d.answers[key] = value
        if key == "ground" and value != "other":
            d.answers.pop("ground_other", None)
        _next(d)

    return handler


def _on_ground_other(d: Dialog) -> None:
    text = d.inbound.text.strip()
    if not text or d.inbound.choice is not None:
        _miss(d, N_("Please write the reason in a few words."))
        return
    d.answers["ground_other"] = text[:500]
    _next(d)


def _on_municipality(d: Dialog) -> None:
    text = d.inbound.text.strip() if d.inbound.choice is None else ""  # not a stale button
    d.answers.pop("_refused", None)
    if d.ctx.lexicon.is_word("skip", text) or text == "0":
        d.answers["municipality"] = "outside"
        d.answers.pop("_candidate", None)
        d.answers.pop("_others", None)
        _next(d)
        return
    found: list[Municipality] = match_municipality(text) if text else []
    if not found:
        _miss(d, N_("We did not find that municipality. Write its name again, or 0."))
        return
    d.answers["_candidate"] = found[0].code
    d.answers["_others"] = [m.code for m in found[1:]]
    _next(d)


def _on_municipality_confirm(d: Dialog) -> None:
    value = _choice(d, opt.YES_NO)
    if value is None:
        _miss(d)
        return
    candidate = d.answers.pop("_candidate", None)
    others: list[str] = d.answers.pop("_others", [])
    if value == "yes" and candidate in BY_CODE:
        d.answers["municipality"] = candidate
        _next(d)
        return
    if value == "no" and others:  # "Mitrovica": offer the other one before asking again
        d.answers["_candidate"] = others[0]
        d.answers["_others"] = others[1:]
        d.ask()
        return
    # Ask for the name again; an answer recorded before (when changing it) is kept until then.
    d.answers["_refused"] = True
    _next(d)


def _on_description(d: Dialog) -> None:
    text = d.inbound.text.strip() if d.inbound.choice is None else ""  # not a stale button
    parts: list[str] = d.answers.setdefault("description", [])
    if d.inbound.media:
        _add_media(d, d.inbound.media)
    if d.ctx.lexicon.is_word("done", text) or text == "0":
        if not parts:
            d.replies.append(Prompt(N_("Please tell us what happened before you send 0.")))
            return
        d.answers.pop("_rewrite", None)
        _next(d)
        return
    if not text:
        if d.inbound.media:  # a photo sent while telling: kept as evidence
            d.replies.append(Prompt(N_("Got it. Send more, or 0 when you are done."), ack=True))
        else:
            _miss(d, N_("Please write what happened, in your own words."))
        return
    if d.answers.pop("_rewrite", False):
        parts.clear()  # changing "what happened" from the review tells it anew
    room = MAX_DESCRIPTION_CHARS - sum(len(p) for p in parts)
    if room > 0:
        parts.append(text[:room])
    if len(text) >= room:
        d.replies.append(Prompt(N_("That is all we can take in writing. Send 0 to go on.")))
        return
    d.replies.append(Prompt(N_("Got it. Send more, or 0 when you are done."), ack=True))


def _add_media(d: Dialog, media: tuple[MediaRef, ...]) -> None:
    stored: list[dict[str, Any]] = d.answers.setdefault("evidence", [])
    for item in media:
        if len(stored) >= MAX_ATTACHMENTS:
            break
        stored.append(
            {
                "kind": item.kind,
                "ref": item.ref,
                "content_type": item.content_type,
                "size": item.size,
            }
        )


def _on_evidence(d: Dialog) -> None:
    text = d.inbound.text.strip()
    if d.inbound.media:
        _add_media(d, d.inbound.media)
        count = len(d.answers["evidence"])
        d.replies.append(
            Prompt(
                "Received %(count)s file. Send more, or 0 when you are done.",
                {"count": count},
                plural=nN_(
                    "Received %(count)s file. Send more, or 0 when you are done.",
                    "Received %(count)s files. Send more, or 0 when you are done.",
                    count,
                ),
            )
        )
    if text == "0" or d.ctx.lexicon.is_word("skip", text) or d.ctx.lexicon.is_word("done", text):
        d.answers.setdefault("evidence", [])
        _next(d)
        return
    if d.inbound.media:
        return  # a caption: the files are acknowledged above
    _miss(d, N_("Send photos, voice notes or documents, or 0 to go on."))


def _on_stakes(d: Dialog) -> None:
    pressed = d.inbound.choice
    values: list[str]
    if pressed is not None:
        single = _choice(d, opt.STAKES)
        values = [single] if single else []
    else:
        text = d.inbound.text.strip()
        if text == "0" or d.ctx.lexicon.is_word("skip", text):
            values = ["none"]
        else:
            values = d.ctx.lexicon.options(d.state.value, opt.STAKES, text, multi=True)
    if not values:
        _miss(d, N_("Send the numbers that apply, e.g. 1 3, or 7 for none."))
        return
    if "none" in values and len(values) > 1:
        values = [v for v in values if v != "none"]
    d.answers["stakes"] = [] if values == ["none"] else values
    _next(d)


def _on_contact(d: Dialog) -> None:
    choices = opt.CONTACT_TELEGRAM if d.inbound.channel == "telegram" else opt.CONTACT_SMS
    value = _choice(d, choices)
    if value is None:
        _miss(d)
        return
    d.answers["contact"] = value
    if value != "other":
        d.answers.pop("contact_phone", None)
    _next(d)


# Before +383 (2017), Kosovo's mobiles were dialled through Monaco (Vala: +377 44, +377 45) and
# Slovenia (IPKO: +386 49); people still write them so. Those ranges are Kosovo's own today:
# +377 4x is no Monegasque mobile in use and +386 49 is no valid Slovenian number. (+386 43 to
# 45, used by some too, are valid Slovenian numbers, so they are taken as written.)
LEGACY_MOBILE_PREFIXES: dict[int, tuple[str, ...]] = {377: ("44", "45"), 386: ("49",)}


def parse_phone(text: str) -> str | None:
    """A valid phone number in E.164 form, read as a Kosovo number when it has no country code."""
    try:
        number = phonenumbers.parse(text, "XK")
    except phonenumbers.NumberParseException:
        return None
    national = str(number.national_number)
    legacy = LEGACY_MOBILE_PREFIXES.get(number.country_code or 0, ())
    if len(national) == 8 and national.startswith(legacy):
        number = phonenumbers.PhoneNumber(country_code=383, national_number=number.national_number)
    if not phonenumbers.is_valid_number(number):
        return None
    return str(phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164))


def _on_contact_phone(d: Dialog) -> None:
    phone = parse_phone(d.inbound.text.strip()[:40])
    if phone is None:
        _miss(d, N_("That number is not valid. Write it like 044 123 456."))
        return
    d.answers["contact_phone"] = phone
    _next(d)


def _on_legal(d: Dialog) -> None:
    value = _choice(d, opt.YES_NO)
    if value is None:
        _miss(d)
        return
    d.answers["legal"] = value == "yes"
    _next(d)


def _on_sharing(d: Dialog) -> None:
    value = _choice(d, opt.SHARING)
    if value is None:
        _miss(d)
        return
    d.answers["sharing"] = value
    _next(d)


def _on_review(d: Dialog) -> None:
    value = _choice(d, opt.REVIEW)
    if value is None:
        _miss(d)
        return
    d.conv.editing = False
    if value == "change":
        d.answers["_review"] = "change"
        _next(d)
        d.answers.pop("_review", None)
        return
    if value == "send":
        reference, pin = d.ctx.new_reference(), d.ctx.new_pin()
        answers = {k: v for k, v in d.answers.items() if not k.startswith("_")}
        answers["description"] = "\n".join(d.answers.get("description", []))
        answers["campaign"] = d.conv.campaign
        answers["language"] = d.conv.language
        d.effects.append(Submit(reference, pin, answers))
        d.replies.append(
            Prompt(
                N_(
                    "Thank you. Your report is sent. Code: %(reference)s, PIN: %(pin)s. "
                    "Keep them. To ask about it, send: status %(reference)s"
                ),
                {"reference": reference, "pin": pin},
            )
        )
        if d.inbound.channel == "telegram":
            # People share phones: offer to take the conversation off the screen.
            _reset(d, S.CLEANUP)
            d.ask()
            return
    else:
        d.replies.append(
            Prompt(N_("Your report was cancelled and deleted. Write to us again at any time."))
        )
    _reset(d, S.IDLE)
    _ = _next  # the table leads REVIEW to IDLE; _reset already put the dialog there


def _on_cleanup(d: Dialog) -> None:
    value = _choice(d, opt.YES_NO)
    if value is None:
        MACHINE.set_state(S.IDLE, d)
        if d.inbound.choice is not None:
            # A button of the finished report (a second tap on Send) starts nothing new.
            d.replies.append(Prompt(N_("Send any message to start a report.")))
            return
        _welcome(d)  # not an answer to the offer: the person starts something new
        return
    MACHINE.set_state(S.IDLE, d)
    if value == "yes":
        d.effects.append(ClearChat())
    # Neutral words: this message stays on the screen after the rest is removed.
    d.replies.append(Prompt(N_("Thank you. Write to us again at any time.")))


def _on_change(d: Dialog) -> None:
    value = _choice(d, opt.CHANGE)
    if value is None:
        _miss(d)
        return
    d.conv.editing = True
    if value == "description":
        d.answers["_rewrite"] = True
    _jump(d, State(value), record=False)


def _on_delete_confirm(d: Dialog) -> None:
    value = _choice(d, opt.YES_NO)
    if value is None:
        _miss(d)
        return
    if value == "yes":
        d.effects.append(DeleteMyData())
        d.replies.append(Prompt(N_("Your data was deleted and your open reports were withdrawn.")))
        _reset(d, S.NEW)
        d.conv.language = None
        return
    _leave_detour(d, N_("Nothing was deleted."))


_HANDLERS: dict[State, Callable[[Dialog], None]] = {
    S.CLEANUP: _on_cleanup,
    S.LANGUAGE: _on_language,
    S.CONSENT: _on_consent,
    S.DANGER: _on_danger,
    S.AREA: _simple("area", opt.AREAS),
    S.GROUND: _simple("ground", opt.GROUNDS),
    S.GROUND_OTHER: _on_ground_other,
    S.PERPETRATOR: _simple("perpetrator", opt.PERPETRATORS),
    S.MUNICIPALITY: _on_municipality,
    S.MUNICIPALITY_CONFIRM: _on_municipality_confirm,
    S.WHEN: _simple("when", opt.WHEN),
    S.DESCRIPTION: _on_description,
    S.EVIDENCE: _on_evidence,
    S.STAKES: _on_stakes,
    S.CONTACT: _on_contact,
    S.CONTACT_PHONE: _on_contact_phone,
    S.LEGAL: _on_legal,
    S.SHARING: _on_sharing,
    S.REVIEW: _on_review,
    S.CHANGE: _on_change,
    S.DELETE_CONFIRM: _on_delete_confirm,
}
