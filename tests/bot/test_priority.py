"""The priority rule table: answers, words in six languages, repeated cases, the default."""

from __future__ import annotations

import pytest

from bot.priority import (
    ANSWER_RULES,
    PRIORITIES,
    REPEAT_MIN_EARLIER,
    WORD_RULES,
    assess,
    detect_words,
    reason_codes,
)

CALM = {"danger": False, "stakes": [], "perpetrator": "employer", "municipality": "prizren"}


def answers(**changes: object) -> dict[str, object]:
    return {**CALM, **changes}


def test_nothing_special_is_p4_with_a_reason() -> None:
    result = assess(CALM, "They did not give me the job because I am Roma.")
    assert result.priority == "P4"
    assert [r.code for r in result.reasons] == ["no_signal"]
    assert result.reasons[0].text


def test_danger_now_is_p1() -> None:
    result = assess(answers(danger=True))
    assert result.priority == "P1"
    assert result.reasons[0].code == "danger_now"
    assert result.reasons[0].source == "answer"


@pytest.mark.parametrize(
    ("stake", "code"),
    [
        ("child", "child_affected"),
        ("home", "eviction_imminent"),
        ("health_care", "health_care_denied"),
        ("job", "income_cut"),
        ("documents", "documents_blocking"),
        ("deadline", "legal_deadline"),
    ],
)
def test_each_stake_is_p2(stake: str, code: str) -> None:
    result = assess(answers(stakes=[stake]))
    assert result.priority == "P2"
    assert result.codes == {code}


@pytest.mark.parametrize("perpetrator", ["police", "public_institution"])
def test_official_or_police_perpetrator_is_p3(perpetrator: str) -> None:
    result = assess(answers(perpetrator=perpetrator))
    assert result.priority == "P3"
    assert result.codes == {"official_perpetrator"}


def test_every_reason_is_listed_most_urgent_first() -> None:
    result = assess(answers(danger=True, stakes=["child", "home"], perpetrator="police"))
    assert result.priority == "P1"
    assert [r.code for r in result.reasons] == [
        "danger_now",
        "child_affected",
        "eviction_imminent",
        "official_perpetrator",
    ]
    levels = [PRIORITIES.index(r.priority) for r in result.reasons]
    assert levels == sorted(levels)


@pytest.mark.parametrize(
    "description",
    [
        "He beat my son in front of the school",
        "They threatened us with a knife",
        "Më rrahën para shtëpisë",  # sq: they beat me
        "Na kërcënuan se do na dëbojnë",  # sq: they threatened us
        "Marde man o gazhe",  # rom: they beat me
        "Policajac me je tukao",  # sr Latin
        "Полицајац ме је тукао",  # sr Cyrillic
        "Dobio sam prijetnju od komšije",  # bs: I got a threat
        "Polis beni dövdü",  # tr: the police beat me
        "Bizi tehdit ettiler",  # tr: they threatened us
        "MË RRAHËN",  # capitals
        "me rrahen",  # typed without diacritics
    ],
)
def test_violence_or_threat_detected_from_words(description: str) -> None:
    result = assess(CALM, description)
    assert result.priority == "P1"
    reason = result.reasons[0]
    assert reason.code == "violence_or_threat"
    assert reason.source == "words"
    assert "detected from words" in reason.text


@pytest.mark.parametrize(
    "description",
    [
        "They burned our house",
        "i vunë zjarrin shtëpisë",  # sq: they set the house on fire
        "zapalili su nam kuću",  # sr/bs: they set our house on fire
        "evimizi yaktılar",  # tr: they burned our house
    ],
)
def test_property_attack_detected_from_words(description: str) -> None:
    result = assess(CALM, description)
    assert result.priority == "P1"
    assert "property_attack" in result.codes


@pytest.mark.parametrize(
    "description",
    [
        "My father had a heart attack and the clinic sent us away",
        "They fired me after one week",
        "The teacher kicked my son out of class",
    ],
)
def test_harmless_words_are_not_flagged(description: str) -> None:
    assert assess(CALM, description).priority == "P4"


def test_words_match_whole_words_only() -> None:
    assert detect_words("the shitty office") == []  # "hit" inside another word
    assert detect_words("white knight") == []  # "knife" is not "knight"
    assert [r.code for r in detect_words("he hit me")] == ["violence_or_threat"]


def test_no_description_no_words() -> None:
    assert detect_words(None) == []
    assert detect_words("") == []


def test_repeated_cases_are_p3() -> None:
    result = assess(answers(), similar_earlier=REPEAT_MIN_EARLIER)
    assert result.priority == "P3"
    assert result.codes == {"repeated_pattern"}
    assert assess(answers(), similar_earlier=REPEAT_MIN_EARLIER - 1).priority == "P4"


@pytest.mark.parametrize(("perpetrator", "municipality"), [("unknown", "prizren"),
                                                           ("employer", "outside")])  # fmt: skip
def test_vague_answers_never_make_a_pattern(perpetrator: str, municipality: str) -> None:
    result = assess(answers(perpetrator=perpetrator, municipality=municipality),
                    similar_earlier=10)  # fmt: skip
    assert "repeated_pattern" not in result.codes


def test_reason_codes_are_unique_and_known() -> None:
    codes = [r.code for r in ANSWER_RULES] + [r.code for r in WORD_RULES]
    assert len(codes) == len(set(codes))
    assert set(codes) < reason_codes()
    for rule in (*ANSWER_RULES, *WORD_RULES):
        assert rule.priority in PRIORITIES


def test_word_lists_cover_every_language() -> None:
    for rule in WORD_RULES:
        assert set(rule.words) == {"en", "sq", "rom", "sr", "bs", "tr"}


def test_reasons_serialise_to_json() -> None:
    reason = assess(answers(danger=True)).reasons_json()[0]
    assert set(reason) == {"code", "priority", "source", "text"}
