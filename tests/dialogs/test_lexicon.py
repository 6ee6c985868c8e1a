"""The lexicon: numbers, option words and command words in every language, typos tolerated."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bot.i18n import Catalogs
from dialogs import options as opt
from dialogs.lexicon import Lexicon, edit_distance_at_most, typo_budget
from dialogs.messages import LANGUAGES, Choice, Text
from dialogs.municipalities import normalize


def identity(language: str, text: Text) -> str:
    return text.msgid


LEX = Lexicon(identity)

# Every question with choices, by the step name the lexicon is asked with.
QUESTIONS: dict[str, tuple[Choice, ...]] = {
    "consent": opt.YES_NO,
    "area": opt.AREAS,
    "ground": opt.GROUNDS,
    "perpetrator": opt.PERPETRATORS,
    "when": opt.WHEN,
    "stakes": opt.STAKES,
    "contact": opt.CONTACT_SMS,
    "contact_telegram": opt.CONTACT_TELEGRAM,
    "sharing": opt.SHARING,
    "review": opt.REVIEW,
    "change": opt.CHANGE,
}

# Option labels that are also a command word; on their question the engine takes the option
# (see test_complaint_dialog.test_an_option_label_is_not_taken_for_a_command).
KNOWN_LABEL_COMMANDS = {("ground", "language"), ("review", "cancel")}


@pytest.fixture(scope="module")
def catalogs() -> Catalogs:
    return Catalogs()


@pytest.fixture(scope="module")
def lexicon(catalogs: Catalogs) -> Lexicon:
    return Lexicon(lambda lang, text: catalogs.text(lang, text))


# --- distances ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("a", "b", "limit", "expected"),
    [
        ("work", "work", 0, True),
        ("work", "wrok", 1, True),  # a transposition is one edit
        ("work", "wok", 1, True),
        ("work", "wark", 1, True),
        ("work", "wxyk", 1, False),
        ("hospital", "hsopitla", 2, True),
        ("a" * 50, "b" * 50, 2, False),
        ("", "ab", 2, True),
        ("", "abc", 2, False),
    ],
)
def test_edit_distance_at_most(a: str, b: str, limit: int, expected: bool) -> None:
    assert edit_distance_at_most(a, b, limit) is expected
    assert edit_distance_at_most(b, a, limit) is expected


def _reference_distance(a: str, b: str) -> int:
    """Optimal string alignment distance by the full table, for comparison."""
    d = [[i + j if i * j == 0 else 0 for j in range(len(b) + 1)] for i in range(len(a) + 1)]
    for i in range(1, len(a) + 1):
        for j in range(1, len(b) + 1):
            d[i][j] = min(
                d[i - 1][j] + 1, d[i][j - 1] + 1, d[i - 1][j - 1] + (a[i - 1] != b[j - 1])
            )
            if i > 1 and j > 1 and a[i - 1] == b[j - 2] and a[i - 2] == b[j - 1]:
                d[i][j] = min(d[i][j], d[i - 2][j - 2] + 1)
    return d[len(a)][len(b)]


@given(
    st.text(alphabet="abcš", max_size=7),
    st.text(alphabet="abcš", max_size=7),
    st.integers(min_value=0, max_value=2),
)
def test_edit_distance_agrees_with_the_full_table(a: str, b: str, limit: int) -> None:
    # The one-edit case takes a shortcut of its own: it must agree with the table.
    assert edit_distance_at_most(a, b, limit) is (_reference_distance(a, b) <= limit)


def test_typo_budget_grows_with_the_word() -> None:
    assert [typo_budget("x" * n) for n in (1, 3, 4, 8, 9, 20)] == [0, 0, 1, 1, 2, 2]


# --- commands ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "command"),
    [
        ("help", "help"),
        (" HELP ", "help"),
        ("?", "help"),  # no letters: kept as typed, not normalised away
        (" ? ", "help"),
        ("back", "back"),
        ("Back.", "back"),
        ("restart", "restart"),
        ("start again", "restart"),
        ("language", "language"),
        ("stop", "stop"),
        ("start", "start"),
        ("status", "status"),  # alone: the engine answers with how to ask
        ("status RAE-7K3Q9P", "status"),
        ("STATUS rae7k3q9p 1234", "status"),
        ("delete my data", "delete"),
        ("Delete my data!", "delete"),
        ("help me please", None),  # a sentence is not a command
        ("back of the class", None),
        ("", None),
        ("   ", None),
        ("!!", None),
        ("0", None),
        ("🙂", None),
    ],
)
def test_commands(text: str, command: str | None) -> None:
    assert LEX.command(text, "telegram") == command


@pytest.mark.parametrize(
    "word", sorted({"stop", "stopall", "unsubscribe", "end", "quit", "cancel"})
)
def test_sms_carrier_stop_words_always_stop_on_sms(word: str) -> None:
    assert LEX.command(word.upper(), "sms") == "stop"
    assert LEX.is_carrier_stop_word(word, "sms")
    assert not LEX.is_carrier_stop_word(word, "telegram")


def test_done_and_skip_words() -> None:
    assert LEX.is_word("done", "Done")
    assert LEX.is_word("skip", "none")
    assert not LEX.is_word("done", "done with it")


# --- languages ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "language"),
    [
        ("1", "sq"),
        ("7.", "en"),
        (" 4) ", "sr_Cyrl"),
        ("Shqip", "sq"),
        ("romani", "rom"),
        ("Srpski", "sr_Latn"),
        ("SRPSKI", "sr_Latn"),
        ("Српски", "sr_Cyrl"),  # the same word in Cyrillic means Cyrillic
        ("српски", "sr_Cyrl"),
        ("Türkçe", "tr"),
        ("turkce", "tr"),
        ("Bosanski", "bs"),
        ("english", "en"),
        ("serbian", "sr_Latn"),
        ("١", "sq"),  # Arabic-Indic digit one: a decimal digit like any other
        ("8", None),
        ("0", None),
        ("²", None),  # a superscript is a digit to str.isdigit() but int() refuses it
        ("¹", None),
        ("Deutsch", None),
        ("", None),
    ],
)
def test_language(text: str, language: str | None) -> None:
    assert LEX.language(text) == language


# --- options -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("3", "health"),
        (" 3 ", "health"),
        ("3.", "health"),
        ("Health care", "health"),
        ("HEALTH CARE", "health"),
        ("helth care", "health"),  # one typo
        ("Wark", "employment"),  # one typo in a short word
        ("hospital", "health"),  # a keyword
        ("at the hospital", "health"),  # a keyword in a short sentence
        ("10", None),
        ("0", None),
        ("1 3", None),  # one answer only
        ("xyz", None),
        ("", None),
        ("the hospital and the police", None),  # two options named: not guessed
    ],
)
def test_option(text: str, value: str | None) -> None:
    assert LEX.option("area", opt.AREAS, text) == value


def test_a_typo_as_close_to_two_options_is_not_guessed() -> None:
    choices = (
        Choice("a", Text("Sand", "choice")),
        Choice("b", Text("Band", "choice")),
    )
    assert LEX.option("x", choices, "Sand") == "a"
    assert LEX.option("x", choices, "Band") == "b"
    assert LEX.option("x", choices, "Land") is None  # one edit from both
    assert LEX.option("x", choices, "Snad") == "a"  # one edit from Sand only


def test_exact_beats_typo() -> None:
    choices = (
        Choice("a", Text("Ages", "choice")),
        Choice("b", Text("Age", "choice")),
    )
    assert LEX.option("x", choices, "age") == "b"


@pytest.mark.parametrize(
    ("text", "values"),
    [
        ("1 3", ["child", "job"]),
        ("1,3", ["child", "job"]),
        ("1, 3.", ["child", "job"]),
        ("13", ["child", "job"]),
        ("3 3 1", ["job", "child"]),
        ("١ ٣", ["child", "job"]),
        ("1 8", []),
        ("13 1", []),
        ("May lose home soon", ["home"]),
    ],
)
def test_several_options(text: str, values: list[str]) -> None:
    assert LEX.options("stakes", opt.STAKES, text, multi=True) == values


def test_very_long_text_is_no_option_and_fast() -> None:
    assert LEX.option("area", opt.AREAS, "health " * 2000) is None
    assert LEX.options("stakes", opt.STAKES, "1 " * 5000, multi=True) == ["child"]


def test_is_label() -> None:
    assert LEX.is_label(opt.GROUNDS, "LANGUAGE")
    assert not LEX.is_label(opt.GROUNDS, "languag")
    assert not LEX.is_label(opt.GROUNDS, "")


# --- every language, from the catalogs ---------------------------------------------------------

YES_NO_WORDS = {
    "sq": ("po", "jo"),
    "rom": ("va", "na"),
    "sr_Latn": ("da", "ne"),
    "bs": ("da", "ne"),
    "sr_Cyrl": ("да", "не"),
    "tr": ("evet", "hayır"),
    "en": ("yes", "no"),
}


@pytest.mark.parametrize("language", LANGUAGES)
def test_yes_and_no_in_every_language(language: str, lexicon: Lexicon) -> None:
    yes, no = YES_NO_WORDS[language]
    for text, value in [(yes, "yes"), (no, "no"), (yes.upper(), "yes"), (no.title(), "no")]:
        assert lexicon.option("consent", opt.YES_NO, text) == value, text
        assert lexicon.option("sharing", opt.SHARING, text) == value, text
    assert lexicon.option("consent", opt.YES_NO, "hayir") == "no"  # without the dotless ı


@pytest.mark.parametrize("language", LANGUAGES)
@pytest.mark.parametrize("step", list(QUESTIONS))
def test_every_label_of_every_language_is_understood(
    language: str, step: str, lexicon: Lexicon, catalogs: Catalogs
) -> None:
    choices = QUESTIONS[step]
    for choice in choices:
        label = catalogs.text(language, choice.label)
        for typed in (label, label.upper(), label.lower(), normalize(label)):
            assert lexicon.option(step, choices, typed) == choice.value, (typed, choice)
        command = lexicon.command(label, "telegram")
        if command is not None:
            assert (step, choice.value) in KNOWN_LABEL_COMMANDS, (label, command)


@pytest.mark.parametrize("language", LANGUAGES)
@pytest.mark.parametrize("step", list(QUESTIONS))
def test_a_typo_never_picks_another_option(
    language: str, step: str, lexicon: Lexicon, catalogs: Catalogs
) -> None:
    """Every one-letter slip (a letter dropped or replaced) of every label: right or refused."""
    choices = QUESTIONS[step]
    for choice in choices:
        word = normalize(catalogs.text(language, choice.label))
        for i, letter in enumerate(word):
            if letter == " ":
                continue
            for typo in (
                word[:i] + word[i + 1 :],
                word[:i] + ("q" if letter != "q" else "x") + word[i + 1 :],
            ):
                if any(typo in lexicon.label_words(c.label) for c in choices if c != choice):
                    continue  # a slip that spells another option ("Kur" → "Ku": When → Where)
                picked = lexicon.option(step, choices, typo)
                assert picked in (choice.value, None), (typo, picked, choice.value)


def test_the_catalogs_translate_the_option_words(catalogs: Catalogs) -> None:
    """Waits for the catalogs: every language but English has its own yes and no."""
    for language in LANGUAGES:
        if language == "en":
            continue
        assert catalogs.text(language, opt.YES_NO[0].label) != "Yes", language
        assert catalogs.text(language, opt.COMMAND_WORDS["help"]) != "help|info|?", language


def test_no_keyword_is_a_command(lexicon: Lexicon, catalogs: Catalogs) -> None:
    for keywords in opt.OPTION_KEYWORDS.values():
        for language in LANGUAGES:
            for word in catalogs.text(language, keywords).split("|"):
                assert lexicon.command(word, "telegram") is None, (language, word)
