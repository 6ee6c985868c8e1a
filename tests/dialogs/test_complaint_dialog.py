"""The pure dialog engine: one step at a time, no storage, no rendering.

Most tests use an identity translator (English words only), so they do not depend on the
catalogs; the tests of other languages' command words build the lexicon over ``Catalogs``.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import phonenumbers
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bot.i18n import Catalogs
from bot.rendering import Renderer
from dialogs import options as opt
from dialogs.complaint_dialog import (
    DETOURS,
    DRAFT_LIFETIME,
    DRAFT_STEPS,
    MAIN_STEPS,
    MAX_DESCRIPTION_CHARS,
    Context,
    State,
    parse_phone,
    question,
    step,
)
from dialogs.lexicon import Lexicon
from dialogs.messages import (
    LANGUAGES,
    Conversation,
    DeleteMyData,
    Forget,
    Inbound,
    MediaRef,
    OptIn,
    OptOut,
    Prompt,
    SetLanguage,
    StatusQuery,
    StepResult,
    Submit,
    Text,
)
from dialogs.municipalities import BY_CODE

NOW = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
REFERENCE = "RAE-ACDEFH"
PIN = "4321"
HELP = (
    "Answer with the number of your choice. You can also write: back, restart, "
    "language, stop, status and your code, delete my data."
)


def identity(language: str, text: Text) -> str:
    """Every language reads English: the message id itself."""
    return text.msgid


LEXICON = Lexicon(identity)
_ids = itertools.count(1)


@dataclass
class Talk:
    """One person talking to the pure engine; keeps the conversation between messages."""

    channel: str = "sms"
    lexicon: Lexicon = LEXICON
    now: datetime = NOW
    conv: Conversation = field(default_factory=Conversation)
    results: list[StepResult] = field(default_factory=list)

    def say(
        self,
        text: str = "",
        *,
        choice: str | None = None,
        media: tuple[MediaRef, ...] = (),
    ) -> StepResult:
        ctx = Context(
            now=self.now,
            lexicon=self.lexicon,
            new_reference=lambda: REFERENCE,
            new_pin=lambda: PIN,
        )
        inbound = Inbound(
            channel=self.channel,
            sender="+38344123456",
            message_id=f"m{next(_ids)}",
            text=text,
            choice=choice,
            media=media,
        )
        result = step(self.conv, inbound, ctx)
        self.conv = result.conversation
        self.results.append(result)
        return result

    def script(self, texts: Iterable[str]) -> StepResult | None:
        last = None
        for text in texts:
            last = self.say(text)
        return last

    @property
    def state(self) -> State:
        return State(self.conv.state)

    @property
    def answers(self) -> dict[str, Any]:
        return self.conv.answers


def msgids(result: StepResult) -> list[str]:
    return [p.msgid for p in result.replies]


def last_question(result: StepResult) -> str:
    return result.replies[-1].msgid


def q(state: State, talk: Talk) -> str:
    """The message id of the question ``state`` asks in this conversation."""
    prompt = question(state, talk.conv, talk.channel)
    assert prompt is not None
    return prompt.msgid


def submitted(result: StepResult) -> Submit:
    found = [e for e in result.effects if isinstance(e, Submit)]
    assert len(found) == 1, result.effects
    return found[0]


# The messages that lead from a first "hi" to each step, on SMS, in English.
TO_REVIEW = [
    "hi",  # language menu
    "7",  # English → consent
    "1",  # consent → danger
    "2",  # not in danger → area
    "2",  # education → ground
    "1",  # ethnicity → perpetrator
    "3",  # school → municipality
    "Gjakova",  # → municipality_confirm
    "1",  # yes → when
    "3",  # this month → description
    "The teacher sent my son out of the class.",
    "0",  # → evidence
    "0",  # no evidence → stakes
    "1 3",  # child, job → contact
    "1",  # this number → legal
    "1",  # legal support → sharing
    "2",  # after talking → review
]
AT: dict[State, list[str]] = {
    State.LANGUAGE: TO_REVIEW[:1],
    State.CONSENT: TO_REVIEW[:2],
    State.DANGER: TO_REVIEW[:3],
    State.AREA: TO_REVIEW[:4],
    State.GROUND: TO_REVIEW[:5],
    State.GROUND_OTHER: [*TO_REVIEW[:5], "7"],
    State.PERPETRATOR: TO_REVIEW[:6],
    State.MUNICIPALITY: TO_REVIEW[:7],
    State.MUNICIPALITY_CONFIRM: TO_REVIEW[:8],
    State.WHEN: TO_REVIEW[:9],
    State.DESCRIPTION: TO_REVIEW[:11],  # one message of the description already in
    State.EVIDENCE: TO_REVIEW[:12],
    State.STAKES: TO_REVIEW[:13],
    State.CONTACT: TO_REVIEW[:14],
    State.CONTACT_PHONE: [*TO_REVIEW[:14], "2"],
    State.LEGAL: TO_REVIEW[:15],
    State.SHARING: TO_REVIEW[:16],
    State.REVIEW: TO_REVIEW,
    State.CHANGE: [*TO_REVIEW, "2"],
    State.DELETE_CONFIRM: [*TO_REVIEW[:6], "delete my data"],
    State.IDLE: [*TO_REVIEW, "1"],
    State.CLEANUP: [*TO_REVIEW, "1"],  # Telegram only: the offer to clear the chat
}


def reach(state: State, **kwargs: Any) -> Talk:
    if state is State.CLEANUP:
        kwargs["channel"] = "telegram"  # the chat clean-up is offered on Telegram only
    talk = Talk(**kwargs)
    script = AT[state]
    if state is State.IDLE and talk.channel == "telegram":
        script = [*script, "2"]  # decline the chat clean-up
    talk.script(script)
    assert talk.state is state, (state, talk.state)
    return talk


def test_every_step_is_reachable_by_the_scripts() -> None:
    assert set(AT) == set(State) - {State.NEW}
    for state in AT:
        reach(state)


# --- a whole report -----------------------------------------------------------------------


def test_sms_report_ends_idle_without_a_clean_up_offer() -> None:
    talk = Talk()
    talk.script([*TO_REVIEW, "1"])
    assert talk.state is State.IDLE


def test_telegram_offers_to_clear_the_chat_after_sending() -> None:
    talk = reach(State.CLEANUP)
    assert talk.results[-1].replies[-1].step == "cleanup"
    result = talk.say(choice="cleanup:yes")
    assert talk.state is State.IDLE
    assert any(type(e).__name__ == "ClearChat" for e in result.effects)
    assert result.replies[-1].msgid == "Thank you. Write to us again at any time."


def test_declining_the_clean_up_clears_nothing() -> None:
    talk = reach(State.CLEANUP)
    result = talk.say("2")
    assert talk.state is State.IDLE
    assert not any(type(e).__name__ == "ClearChat" for e in result.effects)


def test_a_new_message_after_the_offer_starts_a_report() -> None:
    talk = reach(State.CLEANUP)
    talk.say("hello again")
    assert talk.state is State.CONSENT


def test_plain_letters_command_toggles_and_reasks() -> None:
    talk = reach(State.AREA)
    result = talk.say("abc")
    assert talk.conv.plain_letters is True
    assert [type(e).__name__ for e in result.effects] == ["SetPlainLetters"]
    assert result.replies[-1].msgid == q(State.AREA, talk)
    talk.say("ABC")
    assert talk.conv.plain_letters is False


def test_full_report_submits_every_answer() -> None:
    talk = reach(State.REVIEW)
    review = talk.results[-1].replies[-1]
    assert review.msgid.startswith("Your report:")
    assert review.params["municipality"] == "Gjakovë"
    result = talk.say("1")
    sub = submitted(result)
    assert (sub.reference, sub.pin) == (REFERENCE, PIN)
    assert sub.answers == {
        "consent": True,
        "danger": False,
        "area": "education",
        "ground": "ethnicity",
        "perpetrator": "school",
        "municipality": "gjakove",
        "when": "this_month",
        "description": "The teacher sent my son out of the class.",
        "evidence": [],
        "stakes": ["child", "job"],
        "contact": "this",
        "legal": True,
        "sharing": "after_talk",
        "campaign": None,
        "language": "en",
    }
    assert REFERENCE in str(result.replies[0].params)
    assert talk.state is State.IDLE
    assert talk.answers == {}


def test_first_message_shows_the_language_menu_then_a_number_picks_one() -> None:
    talk = Talk()
    first = talk.say("Përshëndetje")
    assert talk.state is State.LANGUAGE
    assert first.replies[0].multilingual
    assert [c.value for c in first.replies[0].choices] == list(LANGUAGES)
    picked = talk.say("4")
    assert SetLanguage("sr_Cyrl") in picked.effects
    assert talk.state is State.CONSENT
    assert last_question(picked) == "May we record your report?"


def test_language_by_name_and_script() -> None:
    for typed, language in [("Shqip", "sq"), ("Српски", "sr_Cyrl"), ("srpski", "sr_Latn")]:
        talk = Talk()
        talk.say("hi")
        assert SetLanguage(language) in talk.say(typed).effects


def test_consent_refusal_emits_forget_and_keeps_nothing() -> None:
    talk = reach(State.CONSENT)
    result = talk.say("2")
    assert Forget() in result.effects
    assert msgids(result) == ["We understand. Nothing was recorded. Write to us again at any time."]
    assert talk.state is State.NEW
    assert talk.conv.language is None
    assert talk.answers == {}
    assert talk.conv.history == []


def test_danger_yes_gives_the_emergency_numbers_and_marks_urgent() -> None:
    talk = reach(State.DANGER)
    result = talk.say("1")
    assert "112" in result.replies[0].msgid
    assert "192" in result.replies[0].msgid
    assert last_question(result) == "Where did it happen?"
    talk.script(TO_REVIEW[4:])
    assert submitted(talk.say("1")).answers["danger"] is True


def test_other_ground_asks_for_the_reason() -> None:
    talk = reach(State.GROUND_OTHER)
    assert last_question(talk.results[-1]) == "Please write the reason in a few words."
    talk.say("Because I live in the mahala")
    assert talk.state is State.PERPETRATOR
    assert talk.answers["ground"] == "other"
    assert talk.answers["ground_other"] == "Because I live in the mahala"


# --- municipality ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("typed", "code", "shown"),
    [
        ("Gjakova", "gjakove", "Gjakovë"),  # Albanian, definite form
        ("Ђаковица", "gjakove", "Gjakovë"),  # Serbian Cyrillic
        ("gjakove", "gjakove", "Gjakovë"),  # no diacritics
        ("Pristina", "prishtine", "Prishtinë"),
        ("UROSEVAC", "ferizaj", "Ferizaj"),  # Serbian Latin without diacritics, upper case
    ],
)
def test_municipality_typed_freely_is_confirmed(typed: str, code: str, shown: str) -> None:
    talk = reach(State.MUNICIPALITY)
    result = talk.say(typed)
    assert talk.state is State.MUNICIPALITY_CONFIRM
    prompt = result.replies[-1]
    assert prompt.msgid == "Did you mean %(municipality)s?"
    assert prompt.params == {"municipality": shown}
    assert [c.value for c in prompt.choices] == ["yes", "no"]
    talk.say("yes")
    assert talk.state is State.WHEN
    assert talk.answers["municipality"] == code


def test_municipality_name_is_shown_in_the_persons_script() -> None:
    talk = Talk()
    talk.script(["hi", "4", "1", "2", "1", "1", "1"])  # Serbian Cyrillic
    result = talk.say("Gjakova")
    assert result.replies[-1].params == {"municipality": "Ђаковица"}


def test_municipality_refused_is_asked_again() -> None:
    talk = reach(State.MUNICIPALITY_CONFIRM)
    result = talk.say("2")
    assert talk.state is State.MUNICIPALITY
    assert last_question(result) == q(State.MUNICIPALITY, talk)
    assert "municipality" not in talk.answers
    talk.say("Peja")
    talk.say("1")
    assert talk.answers["municipality"] == "peje"
    assert talk.state is State.WHEN


def test_mitrovica_offers_both_municipalities() -> None:
    talk = reach(State.MUNICIPALITY)
    first = talk.say("Mitrovica")
    assert first.replies[-1].params == {"municipality": "Mitrovicë e Jugut"}
    second = talk.say("no")
    assert talk.state is State.MUNICIPALITY_CONFIRM
    assert second.replies[-1].params == {"municipality": "Mitrovicë e Veriut"}
    talk.say("1")
    assert talk.answers["municipality"] == "mitrovice-veriut"
    assert talk.state is State.WHEN


def test_mitrovica_refused_twice_asks_for_the_name_again() -> None:
    talk = reach(State.MUNICIPALITY)
    talk.script(["Mitrovica", "2", "2"])
    assert talk.state is State.MUNICIPALITY
    assert "municipality" not in talk.answers


@pytest.mark.parametrize("typed", ["0", "skip", " 0 "])
def test_municipality_zero_is_outside_kosovo(typed: str) -> None:
    talk = reach(State.MUNICIPALITY)
    talk.say(typed)
    assert talk.state is State.WHEN
    assert talk.answers["municipality"] == "outside"
    talk.script(TO_REVIEW[9:])
    review = talk.results[-1].replies[-1]
    assert review.params["municipality"] == opt.OUTSIDE_KOSOVO
    assert submitted(talk.say("1")).answers["municipality"] == "outside"


def test_unknown_municipality_is_a_miss() -> None:
    talk = reach(State.MUNICIPALITY)
    result = talk.say("Atlantis")
    assert talk.state is State.MUNICIPALITY
    assert msgids(result) == [
        "We did not find that municipality. Write its name again, or 0.",
        q(State.MUNICIPALITY, talk),
    ]


# --- description and evidence -------------------------------------------------------------


def test_description_is_joined_from_several_messages() -> None:
    talk = reach(State.WHEN)
    talk.say("1")
    first = talk.say("They did not let us in.")
    assert msgids(first) == ["Got it. Send more, or 0 when you are done."]
    talk.say("  The guard said no Roma.  ")
    talk.say("0")
    assert talk.state is State.EVIDENCE
    talk.script(TO_REVIEW[12:])
    answers = submitted(talk.say("1")).answers
    assert answers["description"] == "They did not let us in.\nThe guard said no Roma."


@pytest.mark.parametrize("finish", ["0", "done", "DONE"])
def test_description_finishes_with_zero_or_done(finish: str) -> None:
    talk = reach(State.DESCRIPTION)
    talk.say(finish)
    assert talk.state is State.EVIDENCE


def test_empty_description_is_refused() -> None:
    talk = reach(State.WHEN)
    talk.say("1")
    refused = talk.say("0")
    assert talk.state is State.DESCRIPTION
    assert msgids(refused) == ["Please tell us what happened before you send 0."]
    blank = talk.say("   ")
    assert talk.state is State.DESCRIPTION
    assert blank.replies[0].msgid == "Please write what happened, in your own words."
    assert talk.answers["description"] == []


def test_description_longer_than_the_limit_is_cut_and_said_so() -> None:
    talk = reach(State.WHEN)
    talk.say("1")
    result = talk.say("x" * (MAX_DESCRIPTION_CHARS + 500))
    assert msgids(result) == ["That is all we can take in writing. Send 0 to go on."]
    assert sum(len(p) for p in talk.answers["description"]) == MAX_DESCRIPTION_CHARS
    more = talk.say("and more")
    assert msgids(more) == ["That is all we can take in writing. Send 0 to go on."]
    talk.say("0")
    assert talk.state is State.EVIDENCE


def test_evidence_with_media_then_zero() -> None:
    talk = reach(State.EVIDENCE)
    photo = MediaRef("photo", "file-1", "image/jpeg", 1000)
    voice = MediaRef("voice", "file-2", "audio/ogg", 2000)
    one = talk.say(media=(photo,))
    assert one.replies[0].plural == (
        "Received %(count)s file. Send more, or 0 when you are done.",
        "Received %(count)s files. Send more, or 0 when you are done.",
        1,
    )
    assert talk.state is State.EVIDENCE
    two = talk.say("here is the voice note", media=(voice,))  # a caption is no miss
    assert len(two.replies) == 1
    assert two.replies[0].params == {"count": 2}
    talk.say("0")
    assert talk.state is State.STAKES
    talk.script(TO_REVIEW[13:])
    evidence = submitted(talk.say("1")).answers["evidence"]
    assert evidence == [
        {"kind": "photo", "ref": "file-1", "content_type": "image/jpeg", "size": 1000},
        {"kind": "voice", "ref": "file-2", "content_type": "audio/ogg", "size": 2000},
    ]


def test_media_sent_with_the_description_is_kept_and_acknowledged() -> None:
    talk = reach(State.DESCRIPTION)
    result = talk.say(media=(MediaRef("photo", "p1"),))
    assert msgids(result) == ["Got it. Send more, or 0 when you are done."]
    assert talk.answers["evidence"][0]["ref"] == "p1"


@pytest.mark.parametrize("skip", ["0", "skip", "no", "none"])
def test_evidence_can_be_skipped(skip: str) -> None:
    talk = reach(State.EVIDENCE)
    talk.say(skip)
    assert talk.state is State.STAKES
    assert talk.answers["evidence"] == []


def test_evidence_text_and_empty_message_are_misses() -> None:
    talk = reach(State.EVIDENCE)
    for text in ["a photo of the letter", ""]:
        result = talk.say(text)
        assert result.replies[0].msgid == "Send photos, voice notes or documents, or 0 to go on."
        assert last_question(result) == q(State.EVIDENCE, talk)
    assert talk.state is State.EVIDENCE


# --- stakes ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("typed", "stakes"),
    [
        ("1 3", ["child", "job"]),
        ("1,3", ["child", "job"]),
        ("13", ["child", "job"]),  # a keypad has no space key handy
        ("3 1 3", ["job", "child"]),
        ("6", ["deadline"]),
        ("7", []),  # none of these
        ("0", []),
        ("1 7", ["child"]),  # "none" with others means the others
        ("A child is affected", ["child"]),
    ],
)
def test_stakes_take_several_numbers(typed: str, stakes: list[str]) -> None:
    talk = reach(State.STAKES)
    talk.say(typed)
    assert talk.state is State.CONTACT
    assert talk.answers["stakes"] == stakes


@pytest.mark.parametrize("typed", ["8", "1 9", "maybe", ""])
def test_stakes_out_of_range_are_misses(typed: str) -> None:
    talk = reach(State.STAKES)
    result = talk.say(typed)
    assert talk.state is State.STAKES
    assert result.replies[0].msgid == "Send the numbers that apply, e.g. 1 3, or 7 for none."


# --- contact ---------------------------------------------------------------------------------


# What phonenumbers (region XK) makes of the forms people write, before our own reading:
# - national "044 123 456", "+383 44 123 456" and "00383 44 123 456" are valid Kosovo numbers;
# - the pre-2017 Vala form "+377 44 123 456" is a *valid Monaco* number to phonenumbers, and
#   the old IPKO form "+386 49 123 456" is an *invalid* Slovenian one. parse_phone rewrites
#   both to +383 (LEGACY_MOBILE_PREFIXES); "+386 43 ..." is a valid Slovenian mobile and is
#   kept as written.
def test_what_phonenumbers_makes_of_kosovo_numbers() -> None:
    def raw(text: str) -> tuple[bool, str | None]:
        number = phonenumbers.parse(text, "XK")
        return phonenumbers.is_valid_number(number), phonenumbers.region_code_for_number(number)

    assert raw("044 123 456") == (True, "XK")
    assert raw("+383 44 123 456") == (True, "XK")
    assert raw("00383 44 123 456") == (True, "XK")
    assert raw("+377 44 123 456") == (True, "MC")
    assert raw("+386 49 123 456") == (False, "SI")
    assert raw("+386 43 123 456") == (True, "SI")
    assert raw("12") == (False, "XK")


@pytest.mark.parametrize(
    ("typed", "stored"),
    [
        ("044 123 456", "+38344123456"),
        ("044123456", "+38344123456"),
        ("049-555-111", "+38349555111"),
        ("+383 44 123 456", "+38344123456"),
        ("00383 44 123 456", "+38344123456"),
        ("+377 44 123 456", "+38344123456"),  # the old Vala prefix
        ("+377 45 123 456", "+38345123456"),
        ("+386 49 123 456", "+38349123456"),  # the old IPKO prefix
        ("+386 43 123 456", "+38643123456"),  # a real Slovenian mobile
        ("+49 30 901820", "+4930901820"),  # a relative abroad
    ],
)
def test_parse_phone(typed: str, stored: str) -> None:
    assert parse_phone(typed) == stored


@pytest.mark.parametrize("typed", ["12", "", "044 123", "phone", "+383 44 123 4567", "9" * 60])
def test_parse_phone_rejects(typed: str) -> None:
    assert parse_phone(typed) is None


def test_contact_on_another_number() -> None:
    talk = reach(State.CONTACT_PHONE)
    assert last_question(talk.results[-1]) == "Write the phone number, e.g. 044 123 456."
    bad = talk.say("12")
    assert bad.replies[0].msgid == "That number is not valid. Write it like 044 123 456."
    assert talk.state is State.CONTACT_PHONE
    talk.say("044 123 456")
    assert talk.state is State.LEGAL
    talk.script(TO_REVIEW[15:])
    answers = submitted(talk.say("1")).answers
    assert answers["contact"] == "other"
    assert answers["contact_phone"] == "+38344123456"


def test_anonymous_report_stores_no_phone() -> None:
    talk = reach(State.CONTACT)
    talk.say("3")
    assert talk.answers["contact"] == "none"
    talk.script(TO_REVIEW[15:])
    answers = submitted(talk.say("1")).answers
    assert answers["contact"] == "none"
    assert "contact_phone" not in answers


def test_changing_to_anonymous_drops_the_other_number() -> None:
    talk = reach(State.CONTACT_PHONE)
    talk.say("044 123 456")
    talk.script(TO_REVIEW[15:])
    talk.script(["2", "9", "3"])  # change → contact → anonymous
    assert talk.state is State.REVIEW
    answers = submitted(talk.say("1")).answers
    assert answers["contact"] == "none"
    assert "contact_phone" not in answers


def test_telegram_contact_choices() -> None:
    talk = reach(State.STAKES, channel="telegram")
    result = talk.say("7")
    prompt = result.replies[-1]
    assert prompt.choices == opt.CONTACT_TELEGRAM
    talk.say(choice="contact:this")
    assert talk.answers["contact"] == "this"


# --- review ------------------------------------------------------------------------------


def test_review_change_an_answer_returns_to_the_review_with_the_new_value() -> None:
    talk = reach(State.REVIEW)
    change = talk.say("2")
    assert talk.state is State.CHANGE
    assert [c.value for c in change.replies[-1].choices] == [c.value for c in opt.CHANGE]
    area = talk.say("1")
    assert last_question(area) == "Where did it happen?"
    back = talk.say("3")  # health
    assert talk.state is State.REVIEW
    assert back.replies[-1].params["area"] == opt.Cx("choice", "Health care")
    assert submitted(talk.say("1")).answers["area"] == "health"


@pytest.mark.parametrize(
    ("change", "answer", "key", "value"),
    [
        ("2", ["7", "Because of my name"], "ground_other", "Because of my name"),
        ("3", ["2"], "perpetrator", "police"),
        ("4", ["Prizren", "1"], "municipality", "prizren"),
        ("5", ["1"], "when", "today"),
        ("6", ["It was on the bus.", "0"], "description", "It was on the bus."),
        ("8", ["2"], "stakes", ["home"]),
        ("9", ["2", "049 555 111"], "contact_phone", "+38349555111"),
        ("10", ["2"], "legal", False),
        ("11", ["3"], "sharing", "no"),
    ],
)
def test_every_answer_can_be_changed_from_the_review(
    change: str, answer: list[str], key: str, value: object
) -> None:
    talk = reach(State.REVIEW)
    talk.script(["2", change, *answer])
    assert talk.state is State.REVIEW
    assert not talk.conv.editing
    assert submitted(talk.say("1")).answers[key] == value


def test_changing_the_description_keeps_it_when_zero_is_sent_at_once() -> None:
    talk = reach(State.REVIEW)
    talk.script(["2", "6", "0"])
    assert talk.state is State.REVIEW
    assert submitted(talk.say("1")).answers["description"] == TO_REVIEW[10]


def test_refusing_a_changed_municipality_keeps_the_old_one_until_a_new_one() -> None:
    talk = reach(State.REVIEW)
    talk.script(["2", "4", "Prizren", "2"])
    assert talk.state is State.MUNICIPALITY
    assert talk.answers["municipality"] == "gjakove"
    back = talk.say("back")
    assert talk.state is State.REVIEW
    assert back.replies[-1].params["municipality"] == "Gjakovë"


def test_back_after_changing_an_answer_goes_to_the_question_before_the_review() -> None:
    talk = reach(State.REVIEW)
    talk.script(["2", "1", "3"])  # area changed
    talk.say("back")
    assert talk.state is State.SHARING


def test_review_cancel_deletes_the_draft() -> None:
    talk = reach(State.REVIEW)
    result = talk.say("3")
    assert msgids(result) == [
        "Your report was cancelled and deleted. Write to us again at any time."
    ]
    assert not any(isinstance(e, Submit) for e in result.effects)
    assert talk.state is State.IDLE
    assert talk.answers == {}


def test_cancel_is_the_review_option_on_telegram_but_stop_on_sms() -> None:
    telegram = reach(State.REVIEW, channel="telegram")
    telegram.say("Cancel")
    assert telegram.state is State.IDLE
    assert not telegram.conv.opted_out
    sms = reach(State.REVIEW)
    result = sms.say("CANCEL")  # the carrier opts the number out whatever we answer
    assert OptOut() in result.effects
    assert sms.state is State.REVIEW


def test_after_sending_any_message_starts_a_new_report() -> None:
    talk = reach(State.IDLE)
    result = talk.say("hello again")
    assert talk.state is State.CONSENT
    assert last_question(result) == "May we record your report?"


def test_a_second_tap_on_send_does_not_start_a_new_report() -> None:
    talk = reach(State.REVIEW, channel="telegram")
    talk.say(choice="review:send")
    again = talk.say(choice="review:send")
    assert msgids(again) == ["Send any message to start a report."]
    assert not any(isinstance(e, Submit) for e in again.effects)
    assert talk.state is State.IDLE


# --- misses, buttons, expiry --------------------------------------------------------------


def test_three_misses_bring_the_help_message() -> None:
    talk = reach(State.AREA)
    first = talk.say("banana")
    assert msgids(first) == [
        "Sorry, I did not understand. Please answer with a number.",
        "Where did it happen?",
    ]
    talk.say("42")
    third = talk.say("🙂")
    assert msgids(third) == [HELP, "Where did it happen?"]
    fourth = talk.say("banana")
    assert fourth.replies[0].msgid != HELP  # counting starts again
    talk.say("1")
    assert talk.state is State.GROUND
    assert talk.conv.misses == 0


def test_button_for_the_current_step_is_accepted() -> None:
    talk = reach(State.AREA, channel="telegram")
    talk.say(choice="area:health")
    assert talk.answers["area"] == "health"
    assert talk.state is State.GROUND


def test_stale_button_for_an_earlier_step_is_refused_with_the_question_again() -> None:
    talk = reach(State.GROUND, channel="telegram")
    result = talk.say(choice="area:housing")
    assert talk.state is State.GROUND
    assert talk.answers["area"] == "education"
    assert msgids(result) == [
        "Sorry, I did not understand. Please answer with a number.",
        "Why were you treated unfairly?",
    ]


@pytest.mark.parametrize(
    "state",
    [State.MUNICIPALITY, State.DESCRIPTION, State.EVIDENCE, State.CONTACT_PHONE, State.STAKES],
)
def test_stale_button_at_a_typed_step_is_a_miss(state: State) -> None:
    talk = reach(state, channel="telegram")
    before = dict(talk.answers)
    result = talk.say(choice="danger:yes")
    assert talk.state is state
    assert talk.answers == before
    assert result.replies
    assert result.replies[-1].msgid == q(state, talk)


def test_button_with_an_unknown_value_is_refused() -> None:
    talk = reach(State.AREA, channel="telegram")
    talk.say(choice="area:moon")
    assert talk.state is State.AREA
    assert "area" not in talk.answers


def test_language_button() -> None:
    talk = Talk(channel="telegram")
    talk.say("/start")
    talk.say(choice="language:tr")
    assert talk.conv.language == "tr"
    assert talk.state is State.CONSENT


def test_draft_expires_after_72_hours() -> None:
    talk = reach(State.GROUND)
    talk.now = NOW + DRAFT_LIFETIME + timedelta(minutes=1)
    result = talk.say("1")
    assert msgids(result) == [
        "Your unfinished report was deleted after 72 hours without an answer.",
        "Raporto sends your report of discrimination to the Technical Group for Roma, "
        "Ashkali and Egyptian communities and its partners. It is free and confidential. "
        "In danger now? Call 112 (police 192).",
        "May we record your report?",
    ]
    assert talk.state is State.CONSENT
    assert talk.answers == {}
    assert talk.conv.language == "en"


def test_draft_lives_up_to_72_hours() -> None:
    talk = reach(State.GROUND)
    talk.now = NOW + DRAFT_LIFETIME
    talk.say("1")
    assert talk.state is State.PERPETRATOR


@pytest.mark.parametrize("detour", [[], ["language"], ["delete my data"]])
def test_draft_expires_at_the_change_question_and_side_questions_too(detour: list[str]) -> None:
    talk = reach(State.CHANGE)
    talk.script(detour)
    talk.now = NOW + timedelta(hours=80)
    result = talk.say("1")
    assert result.replies[0].msgid.startswith("Your unfinished report was deleted")
    assert talk.state is State.CONSENT


def test_a_finished_report_does_not_expire() -> None:
    talk = reach(State.IDLE)
    talk.now = NOW + timedelta(days=30)
    result = talk.say("hi")
    assert not result.replies[0].msgid.startswith("Your unfinished report")


# --- global commands at every step ----------------------------------------------------------

# Where "back" leads from each step (DELETE_CONFIRM was reached from PERPETRATOR).
BACK_TO: dict[State, State] = {
    State.LANGUAGE: State.LANGUAGE,
    State.CONSENT: State.CONSENT,
    State.DANGER: State.DANGER,
    State.AREA: State.DANGER,
    State.GROUND: State.AREA,
    State.GROUND_OTHER: State.GROUND,
    State.PERPETRATOR: State.GROUND,
    State.MUNICIPALITY: State.PERPETRATOR,
    State.MUNICIPALITY_CONFIRM: State.MUNICIPALITY,
    State.WHEN: State.MUNICIPALITY,
    State.DESCRIPTION: State.WHEN,
    State.EVIDENCE: State.DESCRIPTION,
    State.STAKES: State.EVIDENCE,
    State.CONTACT: State.STAKES,
    State.CONTACT_PHONE: State.CONTACT,
    State.LEGAL: State.CONTACT,
    State.SHARING: State.LEGAL,
    State.REVIEW: State.SHARING,
    State.CHANGE: State.REVIEW,
    State.DELETE_CONFIRM: State.PERPETRATOR,  # "back" from a side question: nothing deleted
    State.IDLE: State.IDLE,
    State.CLEANUP: State.CLEANUP,
}
STEPS = list(AT)


def _public(answers: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in answers.items() if not k.startswith("_")}


def _asks(result: StepResult, state: State, talk: Talk) -> bool:
    prompt = question(state, talk.conv, talk.channel)
    return prompt is None or result.replies[-1] == prompt


@dataclass(frozen=True)
class Words:
    """The command words of one language (the first of each list in its catalog)."""

    language: str
    help: str
    back: str
    restart: str
    language_cmd: str
    stop: str
    status: str
    delete: str
    language_words: tuple[str, ...] = ()


ENGLISH = Words(
    "en", "help", "back", "restart", "language", "stop", "status", "delete my data", ("lang",)
)


def check_help(talk: Talk, state: State, w: Words) -> None:
    before = _public(talk.answers)
    result = talk.say(w.help.upper())
    assert result.replies[0].msgid == HELP
    assert talk.state is state
    assert _public(talk.answers) == before
    if state is State.IDLE:
        assert msgids(result)[-1] == "Send any message to start a report."
    else:
        assert _asks(result, state, talk)


def check_back(talk: Talk, state: State, w: Words) -> None:
    before = _public(talk.answers)
    result = talk.say(w.back)
    assert result.replies
    assert talk.state is BACK_TO[state], (state, talk.state)
    if state is not State.MUNICIPALITY_CONFIRM:  # the candidate is dropped, nothing else
        assert _public(talk.answers) == before
    if BACK_TO[state] is state and state is not State.IDLE:
        assert msgids(result)[0] == "This is the first question."
    assert _asks(result, talk.state, talk)


def check_restart(talk: Talk, state: State, w: Words) -> None:
    result = talk.say(w.restart)
    if state is State.LANGUAGE:  # no language yet: the menu again
        assert talk.state is State.LANGUAGE
        assert result.replies[-1].multilingual
        return
    assert talk.state is State.CONSENT
    assert talk.answers == {}
    assert talk.conv.history == []
    assert last_question(result) == "May we record your report?"


def check_language(talk: Talk, state: State, w: Words) -> None:
    before = _public(talk.answers)
    language = talk.conv.language
    word = w.language_cmd
    shown = question(state, talk.conv, talk.channel)
    if shown is not None and talk.lexicon.is_label(shown.choices, word):
        # "Language" is also a ground of discrimination: on that question the option wins,
        # and the other words for the command still open the menu.
        word = next(
            x for x in w.language_words if x and not talk.lexicon.is_label(shown.choices, x)
        )
    menu = talk.say(word)
    assert talk.state is State.LANGUAGE
    assert menu.replies[-1].multilingual
    chosen = talk.say("3")  # Srpski (latinica)
    assert SetLanguage("sr_Latn") in chosen.effects
    assert talk.conv.language == "sr_Latn"
    if state is State.LANGUAGE and language is None:
        assert talk.state is State.CONSENT
        return
    if state is State.IDLE:  # nothing to come back to: a new report
        assert talk.state is State.CONSENT
        return
    assert talk.state is state
    assert chosen.replies[0].msgid == "Language changed."
    assert _asks(chosen, state, talk)
    assert _public(talk.answers) == before


def check_stop(talk: Talk, state: State, w: Words) -> None:
    before = _public(talk.answers)
    result = talk.say(w.stop)
    assert OptOut() in result.effects
    assert msgids(result) == [
        "You will get no more messages from us. Write to us again at any time."
    ]
    assert talk.conv.opted_out
    assert talk.state is state
    assert _public(talk.answers) == before
    again = talk.say(w.help)
    assert OptIn() in again.effects
    assert not talk.conv.opted_out
    assert again.replies[0].msgid == HELP


def check_status(talk: Talk, state: State, w: Words) -> None:
    before = _public(talk.answers)
    result = talk.say(f"{w.status} rae-7k3q9p 1234")
    assert StatusQuery("RAE-7K3Q9P", "1234") in result.effects
    assert talk.state is state
    assert _public(talk.answers) == before
    if state not in (State.LANGUAGE, State.IDLE):
        assert _asks(result, state, talk)
    bare = talk.say(w.status)
    assert bare.replies[0].msgid.startswith("To check a report, send: status")
    assert talk.state is state


def check_delete(talk: Talk, state: State, w: Words) -> None:
    before = _public(talk.answers)
    language = talk.conv.language
    result = talk.say(w.delete)
    if language is None:  # nothing chosen, nothing to confirm in: deleted at once
        assert DeleteMyData() in result.effects
        assert talk.state is State.NEW
        return
    assert talk.state is State.DELETE_CONFIRM
    assert last_question(result) == "Delete all your data and withdraw your open reports?"
    kept = talk.say("2")
    assert not any(isinstance(e, DeleteMyData) for e in kept.effects)
    assert kept.replies[0].msgid == "Nothing was deleted."
    assert _public(talk.answers) == before
    expected = state if state is not State.DELETE_CONFIRM else State.PERPETRATOR
    assert talk.state is expected
    if expected is not State.IDLE:
        assert _asks(kept, expected, talk)
    talk.say(w.delete)
    gone = talk.say("1")
    assert DeleteMyData() in gone.effects
    assert talk.state is State.NEW
    assert talk.conv.language is None
    assert talk.answers == {}


CHECKS = {
    "help": check_help,
    "back": check_back,
    "restart": check_restart,
    "language": check_language,
    "stop": check_stop,
    "status": check_status,
    "delete": check_delete,
}


@pytest.mark.parametrize("command", list(CHECKS))
@pytest.mark.parametrize("state", STEPS, ids=[s.value for s in STEPS])
@pytest.mark.parametrize("channel", ["sms", "telegram"])
def test_global_command_at_every_step(command: str, state: State, channel: str) -> None:
    CHECKS[command](reach(state, channel=channel), state, ENGLISH)


@pytest.mark.parametrize("command", list(CHECKS))
@pytest.mark.parametrize("state", [State.AREA, State.GROUND_OTHER, State.REVIEW])
def test_global_command_while_changing_an_answer(command: str, state: State) -> None:
    talk = reach(State.REVIEW)
    change = {State.AREA: "1", State.GROUND_OTHER: "2", State.REVIEW: None}[state]
    if change is not None:
        talk.script(["2", change] + (["7"] if state is State.GROUND_OTHER else []))
    assert talk.state is state
    before = _public(talk.answers)
    result = talk.say(
        {"delete": "delete my data", "status": "status RAE-7K3Q9P"}.get(command, command)
    )
    assert result.replies or result.effects
    if command == "back":
        assert talk.state is (State.SHARING if state is State.REVIEW else State.REVIEW)
        assert not talk.conv.editing
        assert _public(talk.answers) == before
    if command == "help":
        assert talk.state is state
        assert talk.conv.editing is (state is not State.REVIEW)


def test_back_keeps_later_answers_and_asks_them_again() -> None:
    talk = reach(State.LEGAL)
    talk.say("back")
    talk.say("back")
    assert talk.state is State.STAKES
    assert talk.answers["contact"] == "this"
    assert talk.answers["stakes"] == ["child", "job"]
    talk.say("2")
    assert talk.state is State.CONTACT
    talk.say("1")
    assert talk.state is State.LEGAL


def test_back_from_the_first_question_then_forward_then_back_again() -> None:
    talk = reach(State.DANGER)
    first = talk.say("back")
    assert msgids(first)[0] == "This is the first question."
    talk.say("2")
    assert talk.state is State.AREA
    talk.say("back")
    assert talk.state is State.DANGER


def test_language_then_delete_then_keep_returns_to_the_step() -> None:
    talk = reach(State.WHEN)
    talk.script(["language", "delete my data", "2"])
    assert talk.state is State.WHEN
    talk.script(["delete my data", "language", "7", "2"])
    assert talk.state is State.WHEN
    assert talk.answers["municipality"] == "gjakove"


def test_back_from_a_side_question_returns_to_the_step() -> None:
    talk = reach(State.WHEN)
    talk.say("language")
    talk.say("back")
    assert talk.state is State.WHEN
    assert talk.conv.language == "en"
    talk.say("delete my data")
    result = talk.say("back")
    assert talk.state is State.WHEN
    assert result.replies[0].msgid == "Nothing was deleted."


def test_an_option_label_is_not_taken_for_a_command() -> None:
    talk = reach(State.GROUND)
    talk.say("Language")  # a ground of discrimination
    assert talk.state is State.PERPETRATOR
    assert talk.answers["ground"] == "language"
    assert talk.conv.language == "en"


def test_commands_work_before_a_language_is_chosen() -> None:
    for text, effect in [
        ("STOP", OptOut()),
        ("status RAE-7K3Q9P", StatusQuery("RAE-7K3Q9P", None)),
    ]:
        talk = Talk()
        result = talk.say(text)
        assert effect in result.effects
    talk = Talk()
    talk.say("hi")
    helped = talk.say("help")
    assert helped.replies[0].msgid == HELP
    assert helped.replies[-1].multilingual


# --- the same commands in every language (words from the catalogs) ----------------------------


@pytest.fixture(scope="module")
def catalogs() -> Catalogs:
    return Catalogs()


@pytest.fixture(scope="module")
def catalog_lexicon(catalogs: Catalogs) -> Lexicon:
    return Lexicon(lambda lang, text: catalogs.text(lang, text))


def words_of(catalogs: Catalogs, language: str) -> Words:
    def first(name: str) -> str:
        return catalogs.text(language, opt.COMMAND_WORDS[name]).split("|")[0].strip()

    return Words(
        language,
        first("help"),
        first("back"),
        first("restart"),
        first("language"),
        first("stop"),
        first("status"),
        first("delete"),
        tuple(catalogs.text(language, opt.COMMAND_WORDS["language"]).split("|")) + ("lang",),
    )


@pytest.mark.parametrize("language", LANGUAGES)
@pytest.mark.parametrize("command", list(CHECKS))
def test_global_commands_in_every_language_at_every_step(
    language: str, command: str, catalogs: Catalogs, catalog_lexicon: Lexicon
) -> None:
    w = words_of(catalogs, language)
    number = str(LANGUAGES.index(language) + 1)
    for state in STEPS:
        talk = Talk(
            lexicon=catalog_lexicon, channel="telegram" if state is State.CLEANUP else "sms"
        )
        script = AT[state]
        talk.script([script[0], number, *script[2:]] if len(script) > 1 else script)
        assert talk.state is state, (language, state)
        CHECKS[command](talk, state, w)


def test_scripts_by_digits_reach_every_step_in_every_language(
    catalog_lexicon: Lexicon,
) -> None:
    for language in LANGUAGES:
        number = str(LANGUAGES.index(language) + 1)
        for state in STEPS:
            talk = Talk(
                lexicon=catalog_lexicon, channel="telegram" if state is State.CLEANUP else "sms"
            )
            script = AT[state]
            talk.script([script[0], number, *script[2:]] if len(script) > 1 else script)
            assert talk.state is state, (language, state)


def test_prompts_are_plain_prompts() -> None:
    for state in State:
        prompt = question(state, Conversation(language="en", answers={"_candidate": "peje"}), "sms")
        assert prompt is None or isinstance(prompt, Prompt)


# --- random conversations ------------------------------------------------------------------

REQUIRED = ("area", "ground", "perpetrator", "municipality", "when", "description")
REQUIRED += ("contact", "legal", "sharing", "consent")


def check_submit(sub: Submit) -> None:
    """A submitted report has every answer the complaint table needs, with valid values."""
    a = sub.answers
    for key in REQUIRED:
        assert key in a, key
    assert a["consent"] is True
    assert a["area"] in {c.value for c in opt.AREAS}
    assert a["ground"] in {c.value for c in opt.GROUNDS}
    assert a["perpetrator"] in {c.value for c in opt.PERPETRATORS}
    assert a["municipality"] == "outside" or a["municipality"] in BY_CODE
    assert a["when"] in {c.value for c in opt.WHEN}
    assert isinstance(a["description"], str)
    assert a["description"].strip()
    assert len(a["description"]) <= MAX_DESCRIPTION_CHARS + 100
    assert a["contact"] in {"this", "other", "none"}
    if a["contact"] == "other":
        assert a["contact_phone"].startswith("+")
    else:
        assert "contact_phone" not in a
    assert isinstance(a["legal"], bool)
    assert isinstance(a.get("danger", False), bool)
    assert a["sharing"] in {c.value for c in opt.SHARING}
    assert set(a.get("stakes", [])) <= {c.value for c in opt.STAKES} - {"none"}
    assert a["language"] in LANGUAGES
    assert not any(key.startswith("_") for key in a)
    if a["ground"] != "other":
        assert "ground_other" not in a


def check_step(before: Conversation, result: StepResult) -> None:
    conv = result.conversation
    state = State(conv.state)  # a valid state, or ValueError
    assert all(State(h) in MAIN_STEPS for h in conv.history)
    assert conv.resume is None or State(conv.resume) not in DETOURS
    if state not in (State.NEW, State.LANGUAGE):
        assert conv.language in LANGUAGES
    if state is State.MUNICIPALITY_CONFIRM:
        assert conv.answers["_candidate"] in BY_CODE
    if state in DRAFT_STEPS - {State.CONSENT}:
        assert conv.answers.get("consent") is True
    # The person always gets an answer; a status query is answered by the service.
    assert result.replies or any(isinstance(e, StatusQuery) for e in result.effects)
    for prompt in result.replies:
        assert prompt.msgid
        assert not prompt.choices or prompt.step is not None
    for effect in result.effects:
        if isinstance(effect, Submit):
            check_submit(effect)
    assert before.state  # the input was not changed in place
    assert conv is not before


VALID_ANSWER: dict[State, list[str]] = {
    State.NEW: ["hi"],
    State.LANGUAGE: [str(i) for i in range(1, 8)],
    State.CONSENT: ["1"],
    State.DANGER: ["1", "2"],
    State.AREA: ["1", "9"],
    State.GROUND: ["1", "7"],
    State.GROUND_OTHER: ["my name"],
    State.PERPETRATOR: ["2"],
    State.MUNICIPALITY: ["Gjakova", "Mitrovica", "0"],
    State.MUNICIPALITY_CONFIRM: ["1", "1", "2"],
    State.WHEN: ["5"],
    State.DESCRIPTION: ["It happened at the door.", "0"],
    State.EVIDENCE: ["0"],
    State.STAKES: ["1 3", "7"],
    State.CONTACT: ["1", "2", "3"],
    State.CONTACT_PHONE: ["044 123 456", "+377 45 123 456"],
    State.LEGAL: ["1", "2"],
    State.SHARING: ["1", "2", "3"],
    State.REVIEW: ["1", "1", "2", "3"],
    State.CHANGE: [str(i) for i in range(1, 12)],
    State.DELETE_CONFIRM: ["2", "2", "1"],
    State.IDLE: ["hi"],
    State.CLEANUP: ["1", "2"],
}


def _pool(catalogs: Catalogs) -> tuple[list[str], list[str]]:
    words: set[str] = set()
    for choices in (
        opt.YES_NO,
        opt.AREAS,
        opt.GROUNDS,
        opt.PERPETRATORS,
        opt.WHEN,
        opt.STAKES,
        opt.CONTACT_SMS,
        opt.CONTACT_TELEGRAM,
        opt.SHARING,
        opt.REVIEW,
        opt.CHANGE,
    ):
        for choice in choices:
            words.update(catalogs.text(lang, choice.label) for lang in LANGUAGES)
    commands: set[str] = {"status RAE-7K3Q9P", "status rae7k3q9p 1234", "STATUS"}
    for text in opt.COMMAND_WORDS.values():
        for lang in LANGUAGES:
            commands.update(w for w in catalogs.text(lang, text).split("|") if w)
    return sorted(words), sorted(commands)


_CATALOGS = Catalogs()
OPTION_WORDS, COMMAND_TEXTS = _pool(_CATALOGS)
CATALOG_LEXICON = Lexicon(lambda lang, text: _CATALOGS.text(lang, text))
RENDERER = Renderer(_CATALOGS)
BUTTONS = [
    f"{state.value}:{choice.value}"
    for state in State
    for choice in (*opt.YES_NO, *opt.AREAS, *opt.GROUNDS, *opt.CHANGE, *opt.SHARING)
] + ["language:sq", "language:xx", ":", "review:send", "contact:this", "nonsense", ""]

ODD_TEXTS = [
    "",
    " ",
    "\t\n ",
    "\u200b",
    "🙂",
    "👍🏽👍🏽",
    "🇽🇰",
    "مرحبا، تعرضت للتمييز",  # Arabic
    "שלום",  # Hebrew
    "\u202eevil\u202c",
    "Ђаковица",
    "Помоћ",
    "\x00",
    "\x1b[31mred",
    "\r\n",
    "²",
    "١ ٣",
    "x" * 10_000,
    "ё" * 10_001,
    "0" * 500,
    "1" * 40,
    "%(area)s %s %%",
    "{0}",
    "Mitrovica",
    "Gjakova",
    "+386 49 123 456",
]

_texts = st.one_of(
    st.sampled_from(["0", "1", "2", "3", "7", "9", "1 3", "1,3", "13", "99", "-1", "1.5"]),
    st.sampled_from(OPTION_WORDS),
    st.sampled_from(COMMAND_TEXTS),
    st.sampled_from(ODD_TEXTS),
    st.text(max_size=40),
)
_media = st.lists(
    st.builds(
        MediaRef,
        st.sampled_from(["photo", "voice", "document", "video"]),
        st.text(min_size=1, max_size=20),
        st.none() | st.just("image/jpeg"),
        st.none() | st.integers(0, 10**9),
    ),
    min_size=1,
    max_size=3,
).map(tuple)
_message = st.one_of(
    st.tuples(st.just("valid"), st.integers(0, 99)),
    # A stretch of fitting answers: a person who mostly answers the question asked.
    st.tuples(st.just("run"), st.lists(st.integers(0, 99), min_size=5, max_size=25)),
    st.tuples(st.just("text"), _texts),
    st.tuples(st.just("button"), st.sampled_from(BUTTONS)),
    st.tuples(st.just("media"), _media),
    st.tuples(st.just("wait"), st.sampled_from([1, 71, 73, 200])),
)


def play(
    messages: list[tuple[str, Any]], channel: str, start: Conversation
) -> tuple[Talk, list[Submit]]:
    talk = Talk(channel=channel, lexicon=CATALOG_LEXICON, conv=start)
    submits: list[Submit] = []
    flat: list[tuple[str, Any]] = []
    for kind, value in messages:
        flat.extend([("valid", v) for v in value] if kind == "run" else [(kind, value)])
    for kind, value in flat:
        if kind == "wait":
            talk.now += timedelta(hours=value)
            continue
        before = talk.conv
        if kind == "valid":
            answers = VALID_ANSWER[talk.state]
            result = talk.say(answers[value % len(answers)])
        elif kind == "text":
            result = talk.say(value)
        elif kind == "button":
            result = talk.say(choice=value)
        else:
            result = talk.say(media=value)
        check_step(before, result)
        language = talk.conv.language or "en"
        for prompt in result.replies:  # every prompt renders on both channels
            RENDERER.render(prompt, language, "sms")
            RENDERER.render(prompt, language, "telegram")
        submits.extend(e for e in result.effects if isinstance(e, Submit))
    return talk, submits


def test_random_conversations_never_break_the_engine() -> None:
    seen = {"submits": 0, "states": set()}

    @settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
    @given(
        messages=st.lists(_message, max_size=40),
        channel=st.sampled_from(["sms", "telegram"]),
        start=st.sampled_from(["new", "language"]),
    )
    def run(messages: list[tuple[str, Any]], channel: str, start: str) -> None:
        talk, submits = play(messages, channel, Conversation(state=start))
        seen["submits"] += len(submits)  # type: ignore[operator]
        seen["states"].add(talk.state)  # type: ignore[union-attr]

    run()
    assert seen["submits"], "no random conversation reached a submitted report"


def test_valid_answers_alone_always_reach_a_report() -> None:
    for seed in range(12):
        choices = [(seed * 7 + i * 13) % 100 for i in range(80)]
        _, submits = play([("valid", c) for c in choices], "sms", Conversation())
        assert submits or seed % 4, seed  # most seeds submit; cancel and delete may end it
