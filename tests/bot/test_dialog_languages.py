"""Whole conversations in every language through the intake service, on SQLite and PostgreSQL.

These read the real catalogs: the replies must be in the person's language, and the words a
person types (option labels, yes and no, commands) must be understood in it.
"""

from __future__ import annotations

import itertools
import unicodedata
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from sqlalchemy import select

from bot.app import Services, build_services
from bot.i18n import Catalogs
from dialogs import options as opt
from dialogs.complaint_dialog import State, question, review_prompt
from dialogs.messages import LANGUAGES, Conversation, Prompt
from dialogs.municipalities import BY_CODE, normalize
from storage.models import Complaint
from storage.models import Conversation as ConversationRow
from tests.conftest import make_settings
from tests.helpers import say, texts

YES_NO_WORDS = {
    "sq": ("po", "jo"),
    "rom": ("va", "na"),
    "sr_Latn": ("da", "ne"),
    "bs": ("da", "ne"),
    "sr_Cyrl": ("да", "не"),
    "tr": ("evet", "hayır"),
    "en": ("yes", "no"),
}
DESCRIPTION = "Në spital nuk na pranuan. У болници нас нису примили. They sent us away."
_senders = itertools.count(1)


def new_sender() -> str:
    return f"+3834900{next(_senders):04d}"


def expected(services: Services, state: State, language: str, **answers: Any) -> str:
    """The question of ``state`` as the person must see it on SMS, in their language."""
    conv = Conversation(state=state.value, language=language, answers=dict(answers))
    prompt = review_prompt(conv) if state is State.REVIEW else question(state, conv, "sms")
    assert prompt is not None
    return services.renderer.render(prompt, language, "sms").text


def message(services: Services, msgid: str, language: str) -> str:
    return services.renderer.render(Prompt(msgid), language, "sms").text


def check_stored(services: Services, reference: str, language: str, **fields: Any) -> None:
    with services.uow() as session:
        complaint = session.scalars(select(Complaint).where(Complaint.reference == reference)).one()
        assert complaint.language == language
        assert complaint.channel == "sms"
        assert complaint.status == "new"
        assert complaint.pin_hash
        for name, value in fields.items():
            assert getattr(complaint, name) == value, name
        assert complaint.description is not None
        assert complaint.description.strip()
        conv = session.scalars(
            select(ConversationRow).where(ConversationRow.contact_id == complaint.contact_id)
        ).one()
        assert conv.state == "idle"
        assert conv.answers == {}


def test_the_catalogs_are_translated(services_catalogs: Catalogs) -> None:
    """Waits for the catalogs: each language but English reads its own questions."""
    for language in LANGUAGES:
        if language == "en":
            continue
        for msgid in ("May we record your report?", "Where did it happen?", "Who did it?"):
            assert services_catalogs.gettext(language, msgid) != msgid, (language, msgid)


@pytest.fixture(scope="module")
def services_catalogs() -> Catalogs:
    return Catalogs()


# --- by numbers ------------------------------------------------------------------------------


@pytest.mark.parametrize("language", LANGUAGES)
def test_full_report_by_numbers_in_every_language(services: Services, language: str) -> None:
    sender = new_sender()
    number = str(LANGUAGES.index(language) + 1)
    catalogs = services.catalogs

    def ask(text: str) -> list[str]:
        result = say(services, text, sender=sender)
        assert not result.duplicate
        assert result.replies
        return texts(result)

    menu = ask("hello")
    assert "Shqip" in menu[-1] and "Српски" in menu[-1]
    welcome = ask(number)
    consent = welcome[-1]
    assert consent.splitlines()[0] == catalogs.gettext(language, "May we record your report?")
    assert consent == expected(services, State.CONSENT, language)
    assert ask("1")[-1] == expected(services, State.DANGER, language)
    danger = ask("1")  # in danger: the emergency numbers, then on
    assert "112" in danger[0] and "192" in danger[0]
    assert danger[0] == message(
        services,
        "Call 112 now (police 192), it is free. We mark your report as urgent. Let us continue.",
        language,
    )
    assert danger[-1] == expected(services, State.AREA, language)
    assert ask("3")[-1] == expected(services, State.GROUND, language)
    assert ask("7")[-1] == expected(services, State.GROUND_OTHER, language)
    assert ask("Because of our surname")[-1] == expected(services, State.PERPETRATOR, language)
    assert ask("4")[-1] == expected(services, State.MUNICIPALITY, language)
    confirm = ask(BY_CODE["prizren"].name(language))
    assert confirm[-1] == expected(
        services, State.MUNICIPALITY_CONFIRM, language, _candidate="prizren"
    )
    assert ask("1")[-1] == expected(services, State.WHEN, language)
    assert ask("2")[-1] == expected(services, State.DESCRIPTION, language)
    got_it = ask(DESCRIPTION)
    assert got_it == [message(services, "Got it. Send more, or 0 when you are done.", language)]
    assert ask("0")[-1] == expected(services, State.EVIDENCE, language)
    assert ask("0")[-1] == expected(services, State.STAKES, language)
    assert ask("2 4")[-1] == expected(services, State.CONTACT, language)
    assert ask("2")[-1] == expected(services, State.CONTACT_PHONE, language)
    assert ask("049 555 111")[-1] == expected(services, State.LEGAL, language)
    assert ask("2")[-1] == expected(services, State.SHARING, language)
    review = ask("1")
    answers = {
        "area": "health",
        "ground": "other",
        "perpetrator": "health_facility",
        "municipality": "prizren",
        "when": "this_week",
    }
    assert review[-1] == expected(services, State.REVIEW, language, **answers)
    sent = say(services, "1", sender=sender)
    assert sent.complaint_reference is not None
    thanks = texts(sent)[0]
    template = catalogs.gettext(
        language,
        "Thank you. Your report is sent. Code: %(reference)s, PIN: %(pin)s. "
        "Keep them. To ask about it, send: status %(reference)s",
    )
    assert thanks.startswith(template.split("%(")[0])
    assert sent.complaint_reference in thanks
    check_stored(
        services,
        sent.complaint_reference,
        language,
        urgent=True,
        area="health",
        ground="other",
        ground_other="Because of our surname",
        perpetrator="health_facility",
        municipality="prizren",
        occurred="this_week",
        description=DESCRIPTION,
        stakes=["home", "health_care"],
        contact_preference="other",
        contact_phone="+38349555111",
        legal_support=False,
        sharing="yes",
    )
    status = say(services, f"status {sent.complaint_reference}", sender=sender)
    assert texts(status)[0].startswith(
        catalogs.gettext(language, "Report %(reference)s: %(status)s.").split("%(")[0]
    )


# --- by words ---------------------------------------------------------------------------------


def strip_diacritics(text: str) -> str:
    decomposed = unicodedata.normalize("NFKD", text)
    return "".join(ch for ch in decomposed if not unicodedata.combining(ch))


def one_letter_typo(text: str) -> str:
    """The label with one letter in its middle replaced (as a thumb slips on a keypad)."""
    letters = [i for i, ch in enumerate(text) if ch.isalpha()]
    i = letters[len(letters) // 2]
    replacement = "x" if text[i].lower() != "x" else "q"
    typo = text[:i] + replacement + text[i + 1 :]
    assert normalize(typo) != normalize(text)
    return typo


def label(catalogs: Catalogs, language: str, choices: tuple[Any, ...], value: str) -> str:
    return next(catalogs.text(language, c.label) for c in choices if c.value == value)


def first_word(catalogs: Catalogs, language: str, name: str) -> str:
    return catalogs.text(language, opt.COMMAND_WORDS[name]).split("|")[0]


@pytest.mark.parametrize("language", LANGUAGES)
def test_full_report_by_words_in_every_language(services: Services, language: str) -> None:
    sender = new_sender()
    catalogs = services.catalogs
    yes, no = YES_NO_WORDS[language]

    def ask(text: str) -> str:
        result = say(services, text, sender=sender)
        assert result.replies, text
        return texts(result)[-1]

    def lab(choices: tuple[Any, ...], value: str) -> str:
        return label(catalogs, language, choices, value)

    ask("hi")
    assert ask(str(LANGUAGES.index(language) + 1)) == expected(services, State.CONSENT, language)
    steps: list[tuple[str, State]] = [
        (yes, State.DANGER),
        (no.upper(), State.AREA),
        (lab(opt.AREAS, "education"), State.GROUND),  # the label as shown
        (strip_diacritics(lab(opt.GROUNDS, "ethnicity")), State.PERPETRATOR),
        (lab(opt.PERPETRATORS, "school").upper(), State.MUNICIPALITY),  # another case
        (BY_CODE["gjakove"].name(language), State.MUNICIPALITY_CONFIRM),
        (yes.title(), State.WHEN),
        (one_letter_typo(lab(opt.WHEN, "ongoing")), State.DESCRIPTION),
    ]
    for text, state in steps:
        reply = ask(text)
        if state is State.MUNICIPALITY_CONFIRM:
            assert reply == expected(services, state, language, _candidate="gjakove"), text
        else:
            assert reply == expected(services, state, language), text
    ask(DESCRIPTION)
    done = first_word(catalogs, language, "done")
    assert ask(done) == expected(services, State.EVIDENCE, language)
    skip = first_word(catalogs, language, "skip")
    assert ask(skip) == expected(services, State.STAKES, language)
    child = strip_diacritics(lab(opt.STAKES, "child")).lower()
    assert ask(child) == expected(services, State.CONTACT, language)
    assert ask(lab(opt.CONTACT_SMS, "none").lower()) == expected(services, State.LEGAL, language)
    assert ask(yes.upper()) == expected(services, State.SHARING, language)
    review = ask(one_letter_typo(lab(opt.SHARING, "after_talk")))
    answers = {
        "area": "education",
        "ground": "ethnicity",
        "perpetrator": "school",
        "municipality": "gjakove",
        "when": "ongoing",
    }
    assert review == expected(services, State.REVIEW, language, **answers)
    sent = say(services, strip_diacritics(lab(opt.REVIEW, "send")).lower(), sender=sender)
    assert sent.complaint_reference is not None
    check_stored(
        services,
        sent.complaint_reference,
        language,
        urgent=False,
        area="education",
        ground="ethnicity",
        ground_other=None,
        perpetrator="school",
        municipality="gjakove",
        occurred="ongoing",
        description=DESCRIPTION,
        stakes=["child"],
        contact_preference="none",
        contact_phone=None,
        legal_support=True,
        sharing="after_talk",
    )


# --- commands in the person's language, through the service ----------------------------------


@pytest.mark.parametrize("language", LANGUAGES)
def test_commands_in_the_persons_language(services: Services, language: str) -> None:
    sender = new_sender()
    catalogs = services.catalogs
    words = {name: first_word(catalogs, language, name) for name in opt.COMMAND_WORDS}
    number = str(LANGUAGES.index(language) + 1)
    for text in ["hi", number, "1", "2", "1"]:  # at the ground question
        say(services, text, sender=sender)
    ground = expected(services, State.GROUND, language)
    helped = texts(say(services, words["help"], sender=sender))
    assert helped[0] == message(
        services,
        "Answer with the number of your choice. You can also write: back, restart, "
        "language, stop, status and your code, delete my data.",
        language,
    )
    assert helped[-1] == ground
    assert texts(say(services, words["back"], sender=sender))[-1] == expected(
        services, State.AREA, language
    )
    menu = texts(say(services, words["language"].upper(), sender=sender))
    assert "Shqip" in menu[-1] and "Türkçe" in menu[-1]
    chosen = texts(say(services, "7", sender=sender))
    assert chosen == ["Language changed.", expected(services, State.AREA, "en")]
    say(services, "language", sender=sender)
    back = texts(say(services, number, sender=sender))
    assert back == [
        message(services, "Language changed.", language),
        expected(services, State.AREA, language),
    ]
    delete = texts(say(services, words["delete"], sender=sender))
    assert delete[-1] == expected(services, State.DELETE_CONFIRM, language)
    kept = texts(say(services, "2", sender=sender))
    assert kept[0] == message(services, "Nothing was deleted.", language)
    stopped = say(services, words["stop"], sender=sender)
    assert texts(stopped) == [
        message(
            services,
            "You will get no more messages from us. Write to us again at any time.",
            language,
        )
    ]
    restarted = texts(say(services, words["restart"], sender=sender))
    assert restarted[-1] == expected(services, State.CONSENT, language)


# --- random conversations through the service ---------------------------------------------


@pytest.fixture
def sqlite_services(sqlite_only_url: str, tmp_path: Path) -> Iterator[Services]:
    built = build_services(make_settings(sqlite_only_url, tmp_path))
    yield built
    built.engine.dispose()


_ANSWERS = {
    State.LANGUAGE: ["7", "1", "4"],
    State.CONSENT: ["1"],
    State.DANGER: ["2"],
    State.AREA: ["1"],
    State.GROUND: ["1", "7"],
    State.GROUND_OTHER: ["a reason"],
    State.PERPETRATOR: ["1"],
    State.MUNICIPALITY: ["Gjakova", "0"],
    State.MUNICIPALITY_CONFIRM: ["1"],
    State.WHEN: ["1"],
    State.DESCRIPTION: ["what happened", "0"],
    State.EVIDENCE: ["0"],
    State.STAKES: ["1 3"],
    State.CONTACT: ["1", "2", "3"],
    State.CONTACT_PHONE: ["044 123 456"],
    State.LEGAL: ["1"],
    State.SHARING: ["2"],
    State.REVIEW: ["1", "1", "2"],
    State.CHANGE: ["6", "4"],
    State.DELETE_CONFIRM: ["2"],
    State.IDLE: ["hi"],
    State.CLEANUP: ["1", "2"],
    State.NEW: ["hi"],
}
_NOISE = st.sampled_from(
    [
        "",
        "🙂",
        "مرحبا",
        "שלום",
        "Ђаковица",
        "x" * 10_000,
        "\x00\x1b",
        " \t ",
        "back",
        "help",
        "language",
        "stop",
        "restart",
        "status RAE-7K3Q9P",
        "delete my data",
        "9",
        "1 3",
        "jo",
        "да",
    ]
)
_STEP = st.one_of(*[st.integers(0, 9)] * 7, _NOISE)  # mostly fitting answers


def test_random_conversations_through_the_service_store_whole_complaints(
    sqlite_services: Services,
) -> None:
    services = sqlite_services
    seen = {"complaints": 0}

    @settings(
        max_examples=12,
        deadline=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
    )
    @given(st.lists(_STEP, min_size=20, max_size=50), st.sampled_from(["sms", "telegram"]))
    @example([0] * 10 + [1] + [0] * 6, "sms")  # straight to a stored report
    def run(steps: list[int | str], channel: str) -> None:
        sender = new_sender()
        state = State.LANGUAGE
        for item in steps:
            if isinstance(item, int):
                answers = _ANSWERS[state]
                text = answers[item % len(answers)]
            else:
                text = item
            result = say(services, text, sender=sender, channel=channel)
            assert result.replies or text in ("stop",), text  # every message is answered
            assert result.state is not None
            state = State(result.state)
        with services.uow() as session:
            complaints = session.scalars(select(Complaint)).all()
            seen["complaints"] = len(complaints)
            for c in complaints:
                assert c.area in {x.value for x in opt.AREAS}
                assert c.ground in {x.value for x in opt.GROUNDS}
                assert c.perpetrator in {x.value for x in opt.PERPETRATORS}
                assert c.municipality == "outside" or c.municipality in BY_CODE
                assert c.occurred in {x.value for x in opt.WHEN}
                assert c.description and c.description.strip()
                assert c.contact_preference in {"this", "other", "none"}
                assert (c.contact_phone is not None) == (c.contact_preference == "other")
                assert c.sharing in {x.value for x in opt.SHARING}
                assert c.language in LANGUAGES
                assert c.reference.startswith("RAE-")
                assert isinstance(c.legal_support, bool)

    run()
    assert seen["complaints"] > 0, "no random conversation reached a stored complaint"
