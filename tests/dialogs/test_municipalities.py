"""Tests for the municipality list and free-text municipality matching."""

from __future__ import annotations

import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from dialogs.municipalities import (
    BY_CODE,
    MUNICIPALITIES,
    Municipality,
    match_municipality,
    normalize,
)

SOUTH = BY_CODE["mitrovice-jugut"]
NORTH = BY_CODE["mitrovice-veriut"]


def codes(text: str) -> list[str]:
    """Codes matched for text, in order."""
    return [m.code for m in match_municipality(text)]


def strip_accents(text: str) -> str:
    """What someone without an Albanian/Serbian keyboard types."""
    table = str.maketrans("ëËçÇčČćĆšŠžŽ", "eEcCcCcCsSzZ")
    return text.translate(table).replace("Đ", "Dj").replace("đ", "dj")


# --- data ----------------------------------------------------------------------------------


def test_there_are_38_unique_municipalities() -> None:
    assert len(MUNICIPALITIES) == 38
    assert len({m.code for m in MUNICIPALITIES}) == 38
    assert len({m.sq for m in MUNICIPALITIES}) == 38
    assert set(BY_CODE) == {m.code for m in MUNICIPALITIES}
    assert all(BY_CODE[m.code] is m for m in MUNICIPALITIES)


def test_sorted_alphabetically_by_albanian_name() -> None:
    keys = [normalize(m.sq) for m in MUNICIPALITIES]
    assert keys == sorted(keys)
    assert MUNICIPALITIES[0].sq == "Deçan"
    assert MUNICIPALITIES[-1].sq == "Zveçan"


@pytest.mark.parametrize(
    ("code", "sq"),
    [
        ("prishtine", "Prishtinë"),
        ("mitrovice-jugut", "Mitrovicë e Jugut"),
        ("mitrovice-veriut", "Mitrovicë e Veriut"),
        ("hani-i-elezit", "Hani i Elezit"),
        ("fushe-kosove", "Fushë Kosovë"),
        ("zubin-potok", "Zubin Potok"),
        ("drenas", "Drenas"),
        ("peje", "Pejë"),
    ],
)
def test_known_codes(code: str, sq: str) -> None:
    assert BY_CODE[code].sq == sq


@pytest.mark.parametrize("m", MUNICIPALITIES, ids=lambda m: m.code)
def test_code_is_an_ascii_slug(m: Municipality) -> None:
    assert re.fullmatch(r"[a-z]+(-[a-z]+)*", m.code)


@pytest.mark.parametrize("m", MUNICIPALITIES, ids=lambda m: m.code)
def test_cyrillic_agrees_with_latin(m: Municipality) -> None:
    # Cyrillic→Latin is deterministic, so both spellings must fold to the same words.
    assert re.fullmatch(r"[\u0400-\u04ff ]+", m.sr_cyrl)
    assert normalize(m.sr_cyrl) == normalize(m.sr_latn)


@pytest.mark.parametrize(
    ("code", "cyrillic"),
    [
        ("hani-i-elezit", "Ђенерал Јанковић"),
        ("gjakove", "Ђаковица"),
        ("gjilan", "Гњилане"),
        ("lipjan", "Липљан"),
        ("shtime", "Штимље"),
        ("peje", "Пећ"),
        ("leposaviq", "Лепосавић"),
        ("fushe-kosove", "Косово Поље"),
    ],
)
def test_cyrillic_spellings(code: str, cyrillic: str) -> None:
    assert BY_CODE[code].sr_cyrl == cyrillic


# --- name() --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("language", "expected"),
    [
        ("sq", "Prishtinë"),
        ("rom", "Prishtinë"),
        ("en", "Prishtinë"),
        ("sr_Latn", "Priština"),
        ("bs", "Priština"),
        ("sr_Cyrl", "Приштина"),
        ("tr", "Priştine"),
        ("xx", "Prishtinë"),
    ],
)
def test_name_by_language(language: str, expected: str) -> None:
    assert BY_CODE["prishtine"].name(language) == expected


def test_turkish_falls_back_to_albanian() -> None:
    assert BY_CODE["mamushe"].name("tr") == "Mamuşa"
    assert BY_CODE["shtime"].name("tr") == "Shtime"


@pytest.mark.parametrize("m", MUNICIPALITIES, ids=lambda m: m.code)
@pytest.mark.parametrize("language", ["sq", "rom", "sr_Latn", "sr_Cyrl", "tr", "bs", "en"])
def test_every_display_name_matches_back(m: Municipality, language: str) -> None:
    assert match_municipality(m.name(language)) == [m]


# --- official names ------------------------------------------------------------------------


@pytest.mark.parametrize("m", MUNICIPALITIES, ids=lambda m: m.code)
@pytest.mark.parametrize("field", ["sq", "sr_latn", "sr_cyrl"])
def test_official_names_match(m: Municipality, field: str) -> None:
    name: str = getattr(m, field)
    assert match_municipality(name) == [m]
    assert match_municipality(name.upper()) == [m]
    assert match_municipality(name.lower()) == [m]


@pytest.mark.parametrize("m", MUNICIPALITIES, ids=lambda m: m.code)
@pytest.mark.parametrize("field", ["sq", "sr_latn"])
def test_names_without_diacritics_match(m: Municipality, field: str) -> None:
    assert match_municipality(strip_accents(getattr(m, field))) == [m]


@pytest.mark.parametrize("m", MUNICIPALITIES, ids=lambda m: m.code)
def test_names_match_inside_a_sentence(m: Municipality) -> None:
    assert match_municipality(f"Ka ndodhur në {m.sq}, para dy ditësh.") == [m]
    assert match_municipality(f"It happened in {m.sr_latn}!") == [m]


# --- variants, inflections, alternative names ----------------------------------------------


@pytest.mark.parametrize(
    ("text", "code"),
    [
        # Albanian definite / case endings
        ("Prishtina", "prishtine"),
        ("Prishtinë", "prishtine"),
        ("Prishtine", "prishtine"),
        ("Prishtines", "prishtine"),
        ("Prishtinës", "prishtine"),
        ("Prishtinën", "prishtine"),
        ("Peja", "peje"),
        ("Pejë", "peje"),
        ("Peje", "peje"),
        ("Pejës", "peje"),
        ("Gjakova", "gjakove"),
        ("Gjakovës", "gjakove"),
        ("Ferizaji", "ferizaj"),
        ("Ferizajt", "ferizaj"),
        ("Gjilani", "gjilan"),
        ("Gjilanit", "gjilan"),
        ("Prizreni", "prizren"),
        ("Prizrenit", "prizren"),
        ("Istogu", "istog"),
        ("Kaçaniku", "kacanik"),
        ("Vushtrria", "vushtrri"),
        ("Vushtrrisë", "vushtrri"),
        ("Vitia", "viti"),
        ("Shtimja", "shtime"),
        ("Malisheva", "malisheve"),
        ("Podujeva", "podujeve"),
        ("Suhareka", "suhareke"),
        ("Skënderaji", "skenderaj"),
        ("Fushë-Kosovë", "fushe-kosove"),
        ("Fushe Kosova", "fushe-kosove"),
        ("Fusha e Kosovës", "fushe-kosove"),
        ("Hanit të Elezit", "hani-i-elezit"),
        ("Han i Elezit", "hani-i-elezit"),
        ("Zubin Potoku", "zubin-potok"),
        # Serbian case forms
        ("u Prištini", "prishtine"),
        ("u Pristini", "prishtine"),
        ("iz Peći", "peje"),
        ("iz Peci", "peje"),
        ("u Uroševcu", "ferizaj"),
        ("Urosevca", "ferizaj"),
        ("u Gnjilanu", "gjilan"),
        ("u Kosovom Polju", "fushe-kosove"),
        ("iz Kosova Polja", "fushe-kosove"),
        ("u Đakovici", "gjakove"),
        ("u Djakovici", "gjakove"),
        ("Dakovica", "gjakove"),
        ("u Prizrenu", "prizren"),
        ("u Glogovcu", "drenas"),
        ("u Orahovcu", "rahovec"),
        ("u Novom Brdu", "novoberde"),
        ("iz Novog Brda", "novoberde"),
        ("u Suvoj Reci", "suhareke"),
        ("u Zubinom Potoku", "zubin-potok"),
        ("u Štrpcu", "shterpce"),
        ("u Štimlju", "shtime"),
        ("u Dečanima", "decan"),
        ("u Vučitrnu", "vushtrri"),
        ("u Srbici", "skenderaj"),
        ("u Obiliću", "obiliq"),
        ("u Leposaviću", "leposaviq"),
        ("u Đeneral Jankoviću", "hani-i-elezit"),
        ("у Приштини", "prishtine"),
        ("из Пећи", "peje"),
        ("Урошевцу", "ferizaj"),
        ("у Косовом Пољу", "fushe-kosove"),
        # alternative and foreign names
        ("Gllogoc", "drenas"),
        ("Gllogoci", "drenas"),
        ("Glogovac", "drenas"),
        ("Drenasi", "drenas"),
        ("Elez Han", "hani-i-elezit"),
        ("Đeneral Janković", "hani-i-elezit"),
        ("Deneral Jankovic", "hani-i-elezit"),
        ("General Jankovic", "hani-i-elezit"),
        ("Dečane", "decan"),
        ("Mamuşa", "mamushe"),
        ("Mamusha", "mamushe"),
        ("Pristina", "prishtine"),
        ("Priştine", "prishtine"),
        ("Priştine'de", "prishtine"),
        ("Pec", "peje"),
        ("Gjakova", "gjakove"),
        ("Gjakovica", "gjakove"),
        ("Ferizaj", "ferizaj"),
        ("Gilan", "gjilan"),
        ("Besiana", "podujeve"),
        ("Theranda", "suhareke"),
        ("Novo Bërdë", "novoberde"),
        ("Kosovo Polje", "fushe-kosove"),
        ("KOSOVO POLJE", "fushe-kosove"),
        # surrounding words
        ("në Prishtinë", "prishtine"),
        ("ne prishtine", "prishtine"),
        ("in Peja", "peje"),
        ("u Prizrenu", "prizren"),
        ("Gjilan, kosovo", "gjilan"),
        ("Gjilan, Kosovë", "gjilan"),
        ("near Ferizaj", "ferizaj"),
        ("afër Ferizajt", "ferizaj"),
        ("  PEJA!!! ", "peje"),
        ("Prizren 🙏", "prizren"),
        ("fshati afer Lipjanit", "lipjan"),
    ],
)
def test_variants(text: str, code: str) -> None:
    assert codes(text) == [code]


# --- Mitrovica ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "text",
    ["Mitrovica", "Mitrovicë", "mitrovice", "Mitrovicës", "u Mitrovici", "Митровица",
     "Kosovska Mitrovica", "Mitroviça", "ne mitrovic"],
)  # fmt: skip
def test_bare_mitrovica_is_ambiguous(text: str) -> None:
    assert match_municipality(text) == [SOUTH, NORTH]


@pytest.mark.parametrize(
    "text",
    [
        "Mitrovicë e Jugut",
        "Mitrovica e Jugut",
        "Mitrovica Jug",
        "Mitrovica South",
        "South Mitrovica",
        "southern Mitrovica",
        "Južna Mitrovica",
        "u Južnoj Mitrovici",
        "Јужна Митровица",
        "Mitrovica, pjesa jugore",
        "Güney Mitroviça",
    ],
)
def test_south_mitrovica(text: str) -> None:
    assert match_municipality(text) == [SOUTH]


@pytest.mark.parametrize(
    "text",
    [
        "Mitrovicë e Veriut",
        "Mitrovica e Veriut",
        "Mitrovica Veri",
        "North Mitrovica",
        "Mitrovica North",
        "Severna Mitrovica",
        "u Severnoj Mitrovici",
        "Sjeverna Mitrovica",
        "Severna Kosovska Mitrovica",
        "Северна Митровица",
        "Kuzey Mitroviça",
    ],
)
def test_north_mitrovica(text: str) -> None:
    assert match_municipality(text) == [NORTH]


def test_both_qualifiers_keep_mitrovica_ambiguous() -> None:
    assert match_municipality("Mitrovica, north or south") == [SOUTH, NORTH]


# --- typos ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "code"),
    [
        ("Prishitna", "prishtine"),  # transposition
        ("Prishtna", "prishtine"),  # deletion
        ("Prishtinna", "prishtine"),  # insertion
        ("Prshtne", "prishtine"),  # two edits, 9-letter name
        ("Prizern", "prizren"),
        ("Ferizja", "ferizaj"),
        ("Gjilna", "gjilan"),
        ("Podujeve", "podujeve"),
        ("Podjueve", "podujeve"),
        ("Skndraj", "skenderaj"),
        ("Lepsavc", "leposaviq"),
        ("Vushtri", "vushtrri"),
        ("Glogovc", "drenas"),
        ("Klnie", "kline"),
        ("Uroshevac", "ferizaj"),
        ("Grachanica", "gracanice"),
        ("Gnilane", "gjilan"),
        ("Stimle", "shtime"),
        ("Kacanki", "kacanik"),
        ("Zubim Potok", "zubin-potok"),
        ("Hani i Elezti", "hani-i-elezit"),
        ("ne Prishitne", "prishtine"),
    ],
)
def test_typos(text: str, code: str) -> None:
    assert codes(text)[:1] == [code]


def test_typo_in_mitrovica_is_still_ambiguous() -> None:
    assert match_municipality("Mitrovcia") == [SOUTH, NORTH]
    assert match_municipality("Mitrovcia e Veriut") == [NORTH]


@pytest.mark.parametrize(
    "text",
    [
        "Pjea",  # 4-letter names only match exactly
        "Vitt",
        "Pex",
        "Frzaj",  # two edits in a 7-letter name
        "Przrn",
        "Gjlna",
    ],
)
def test_too_many_typos_do_not_match(text: str) -> None:
    assert match_municipality(text) == []


def test_typos_are_ignored_in_long_text() -> None:
    # In running text too many ordinary words are one edit from a name, so only exact forms
    # count there.
    text = "Ajo ndodhi në Prishitne, afër stacionit të autobusëve, para dy javësh."
    assert match_municipality(text) == []
    assert codes(text.replace("Prishitne", "Prishtinë")) == ["prishtine"]


# --- several names, ranking ----------------------------------------------------------------


def test_several_names_in_order_of_appearance() -> None:
    assert codes("Prizren apo Peja") == ["prizren", "peje"]


def test_exact_match_ranks_before_typo() -> None:
    assert codes("Prizern ose Peja") == ["peje", "prizren"]


def test_multi_word_name_is_not_split() -> None:
    assert codes("Zubin Potok") == ["zubin-potok"]
    assert codes("Kosovo Polje") == ["fushe-kosove"]


def test_at_most_three_results() -> None:
    found = match_municipality("Prishtinë, Pejë, Prizren, Gjilan, Ferizaj")
    assert [m.code for m in found] == ["prishtine", "peje", "prizren"]


def test_same_municipality_twice_is_listed_once() -> None:
    assert codes("Prishtina / Priština / Приштина") == ["prishtine"]


# --- junk ------------------------------------------------------------------------------------

LONG_TEXT = (
    "Unë jam nënë e tre fëmijëve dhe vitin e kaluar djalin tim nuk e pranuan në shkollë. "
    "Mësuesja tha që fëmijët tanë nuk mund të rrinë me të tjerët. Kam shkuar në zyrë disa "
    "herë, por askush nuk më ndihmoi. Nuk kam dokumente dhe nuk kam punë. Familja ime "
    "jeton në një shtëpi të vjetër pa rrymë. Ju lutem më ndihmoni sa më shpejt sepse "
    "fëmijët kanë nevojë për shkollë dhe ushqim. Faleminderit shumë për ndihmën tuaj!"
)


@pytest.mark.parametrize(
    "text",
    [
        "",
        " ",
        "1",
        "2",
        "0",
        "12345",
        "yes",
        "no",
        "po",
        "jo",
        "ok",
        "OK!",
        "da",
        "ne",
        "va",
        "👍",
        "🙂🙂🙂",
        "?!",
        "...",
        "nuk e di",
        "ne znam",
        "I don't know",
        "Kosovo",
        "Kosovë",
        "Kosova",
        "Srbija",
        "Serbia",
        "Milan",
        "Dragan",
        "vitin e kaluar",
        "shtimi i pagave",
        "north",
        "jug",
        "polje",
        "fshati",
        "opština",
        LONG_TEXT,
    ],
)
def test_junk_matches_nothing(text: str) -> None:
    assert match_municipality(text) == []


def test_long_texts_do_not_break_the_matcher() -> None:
    # Speed is measured in bench/, not asserted here; this only checks the long inputs work.
    samples = [LONG_TEXT, LONG_TEXT.upper(), "x" * 500, "abcdefghij " * 45, "Mitrovica " * 50]
    for text in samples:
        assert len(match_municipality(text)) <= 3


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=300))
def test_never_raises_and_returns_at_most_three(text: str) -> None:
    found = match_municipality(text)
    assert len(found) <= 3
    assert all(isinstance(m, Municipality) for m in found)
    assert len(set(found)) == len(found)


@settings(max_examples=200, deadline=None)
@given(
    st.lists(
        st.sampled_from([m.sq for m in MUNICIPALITIES] + ["në", "u", "Kosovo", "qyteti", "1"]),
        max_size=6,
    )
)
def test_random_name_salads_never_raise(words: list[str]) -> None:
    assert len(match_municipality(" ".join(words))) <= 3


# --- normalize ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Prishtinë", "prishtine"),
        ("  Fushë-Kosovë!! ", "fushe kosove"),
        ("Graçanicë", "gracanice"),
        ("Đeneral Janković", "djeneral jankovic"),
        ("ÐENERAL", "djeneral"),  # eth, the look-alike of Đ
        ("Ђенерал Јанковић", "djeneral jankovic"),
        ("Гњилане Липљан Џ", "gnjilane lipljan dz"),
        ("Урошевац, Штрпце, Жабљак", "urosevac strpce zabljak"),
        ("PRİŞTİNE", "pristine"),
        ("Vıçıtırın", "vicitirin"),
        ("Straße", "strasse"),
        ("ｐｒｉｚｒｅｎ", "prizren"),
        ("a1b_c-d", "a b c d"),
        ("", ""),
        ("123 🙂 !?", ""),
    ],
)
def test_normalize(text: str, expected: str) -> None:
    assert normalize(text) == expected


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=200))
def test_normalize_is_idempotent_and_tidy(text: str) -> None:
    once = normalize(text)
    assert normalize(once) == once
    assert once == once.strip()
    assert "  " not in once
