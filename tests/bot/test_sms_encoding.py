"""Tests for bot.sms_encoding: GSM-7/UCS-2 detection, segment counting and plain-letter folding."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bot import sms_encoding
from bot.sms_encoding import SmsInfo, fold_to_gsm7, is_gsm7, sms_info

EXTENSION = "^{}\\[~]|€\f"
GRINNING = "\U0001f600"  # outside the BMP: two UTF-16 code units


# --- encoding detection -------------------------------------------------------------------------


def test_empty_text_is_one_gsm7_segment() -> None:
    assert sms_info("") == SmsInfo(encoding="GSM-7", units=0, segments=1, characters=0)


def test_basic_table_is_gsm7() -> None:
    basic = (
        "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?"
        "¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà"
    )
    assert len(basic) == 127  # the 128 code points minus ESC
    assert is_gsm7(basic)
    info = sms_info(basic)
    assert (info.encoding, info.units) == ("GSM-7", 127)


def test_extension_chars_are_gsm7_and_cost_two_septets() -> None:
    for ch in EXTENSION:
        assert sms_info(ch) == SmsInfo("GSM-7", 2, 1, 1), repr(ch)


@pytest.mark.parametrize(
    "ch",
    [*"ëËçčćšžđČĆŠŽĐğışİжЖ“”‘’\u2013\u2014…\u00a0\t\x1bÈÀ", GRINNING],
)
def test_characters_outside_gsm7(ch: str) -> None:
    assert not is_gsm7(ch)
    assert sms_info("abc" + ch).encoding == "UCS-2"


def test_capital_c_cedilla_is_gsm7_but_small_is_not() -> None:
    assert is_gsm7("Ç")
    assert not is_gsm7("ç")


# --- GSM-7 segment boundaries -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("length", "segments"),
    [(1, 1), (160, 1), (161, 2), (153 * 2, 2), (153 * 2 + 1, 3), (153 * 3, 3), (153 * 3 + 1, 4)],
)
def test_gsm7_segment_boundaries(length: int, segments: int) -> None:
    info = sms_info("a" * length)
    assert info == SmsInfo("GSM-7", length, segments, length)


def test_extension_char_counts_double_against_the_single_limit() -> None:
    assert sms_info("a" * 158 + "€") == SmsInfo("GSM-7", 160, 1, 159)
    assert sms_info("a" * 159 + "€") == SmsInfo("GSM-7", 161, 2, 160)


def test_escape_pair_is_not_split_across_parts() -> None:
    # 152 + 2 would straddle the first part's last septet: the pair moves whole to part two,
    # so part one holds 152 septets and part two 2 + 151 = 153.
    assert sms_info("a" * 152 + "€" + "a" * 151) == SmsInfo("GSM-7", 305, 2, 304)
    # Same text plus one septet: 306 septets would fit 2 x 153 by plain division, but the
    # splitter wasted one septet on part one, so it needs a third part.
    assert sms_info("a" * 152 + "€" + "a" * 152) == SmsInfo("GSM-7", 306, 3, 305)


def test_escape_pair_ending_exactly_on_a_part_boundary() -> None:
    # 151 + 2 = 153 fills part one exactly; nothing is wasted.
    assert sms_info("a" * 151 + "€" + "a" * 153) == SmsInfo("GSM-7", 306, 2, 305)


def test_all_extension_text() -> None:
    # 80 pairs = 160 septets: one segment; 81 pairs: each part holds 76 whole pairs (152).
    assert sms_info("{" * 80) == SmsInfo("GSM-7", 160, 1, 80)
    assert sms_info("{" * 81) == SmsInfo("GSM-7", 162, 2, 81)
    assert sms_info("{" * 152).segments == 2
    assert sms_info("{" * 153).segments == 3


# --- UCS-2 segment boundaries -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("length", "segments"),
    [(1, 1), (70, 1), (71, 2), (67 * 2, 2), (67 * 2 + 1, 3), (67 * 3, 3), (67 * 3 + 1, 4)],
)
def test_ucs2_segment_boundaries(length: int, segments: int) -> None:
    info = sms_info("ë" * length)
    assert info == SmsInfo("UCS-2", length, segments, length)


def test_emoji_counts_two_units() -> None:
    assert sms_info(GRINNING) == SmsInfo("UCS-2", 2, 1, 1)
    assert sms_info("a" * 68 + GRINNING) == SmsInfo("UCS-2", 70, 1, 69)
    assert sms_info("a" * 69 + GRINNING) == SmsInfo("UCS-2", 71, 2, 70)


def test_surrogate_pair_is_not_split_across_parts() -> None:
    # The emoji would occupy units 67 and 68: it moves whole to part two.
    assert sms_info("a" * 66 + GRINNING + "a" * 65) == SmsInfo("UCS-2", 133, 2, 132)
    assert sms_info("a" * 66 + GRINNING + "a" * 66) == SmsInfo("UCS-2", 134, 3, 133)
    # Ending exactly on the boundary wastes nothing.
    assert sms_info("a" * 65 + GRINNING + "a" * 67) == SmsInfo("UCS-2", 134, 2, 133)


def test_one_non_gsm_char_switches_whole_message_to_ucs2() -> None:
    assert sms_info("a" * 160).segments == 1
    assert sms_info("a" * 159 + "ë") == SmsInfo("UCS-2", 160, 3, 160)


def test_albanian_142_characters_with_one_e_diaeresis() -> None:
    # From kosovo.md: "A 142-character Albanian text with one ë is 3 segments; without it, 1."
    base = "Pershendetje. Dje ne mengjes policia erdhi ne lagjen tone dhe na tha qe te largohemi. "
    text = (base + base)[:141] + "ë"
    assert len(text) == 142
    assert sms_info(text) == SmsInfo("UCS-2", 142, 3, 142)
    plain = text[:-1] + "e"
    assert sms_info(plain) == SmsInfo("GSM-7", 142, 1, 142)
    assert fold_to_gsm7(text) == plain


def test_cyrillic_text_is_ucs2() -> None:
    text = "Здраво, полиција није дошла када смо звали. Молимо помоћ."
    info = sms_info(text)
    assert info.encoding == "UCS-2"
    assert info.units == len(text)
    assert info.segments == 1
    assert sms_info(text * 2).segments == 2


def test_lone_surrogate_does_not_raise() -> None:
    assert sms_info("a\ud800b") == SmsInfo("UCS-2", 3, 1, 3)
    assert fold_to_gsm7("a\ud800b") == "a?b"


# --- folding ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        # Albanian
        ("Përshëndetje, si jeni?", "Pershendetje, si jeni?"),
        ("ËSHTË çka ÇKA Çdo", "ESHTE cka ÇKA Çdo"),
        (
            "Unë jam nga Fushë Kosova; më dëbuan nga shtëpia.",
            "Une jam nga Fushe Kosova; me debuan nga shtepia.",
        ),
        # Serbian / Bosnian Latin
        ("Čačak, Ćuprija, Šabac, Žabljak, Đakovica", "Cacak, Cuprija, Sabac, Zabljak, Djakovica"),
        ("đak ĐAK Đorđe", "djak DJAK Djordje"),
        ("džep DŽEP Džamija", "dzep DZEP Dzamija"),
        (
            "Ćevapčići u Sarajevu, šećer, kahva, džezva",
            "Cevapcici u Sarajevu, secer, kahva, dzezva",
        ),
        # Serbian Cyrillic
        ("Здраво, како сте?", "Zdravo, kako ste?"),
        ("Љубав ЉУБАВ Њива ЊИВА Џеп ЏЕП", "Ljubav LJUBAV Njiva NJIVA Dzep DZEP"),
        ("Ђорђе ЂОРЂЕ ћевапи чај шума жена", "Djordje DJORDJE cevapi caj suma zena"),
        ("Полиција није дошла.", "Policija nije dosla."),
        ("Љ", "Lj"),
        # Turkish
        ("Ağrı, İstanbul, ışık, şeker, çiçek", "Agri, Istanbul, isik, seker, cicek"),
        ("ĞŞİÇ", "GSIÇ"),
        # Typography
        ("“Hello” ‘x’", "\"Hello\" 'x'"),
        ("a \u2013 b \u2014 c", "a - b - c"),
        ("Prit…", "Prit..."),
        ("10\u00a0€", "10 €"),
        ("a\tb", "a b"),
        # Decomposable letters outside the tables
        ("Łódź, Ærø, naïve, Ångström, ﬁx, ½", "Lodz, Ærø, naive, Ångström, fix, 1/2"),
        # Decomposed input is treated like the composed letter
        ("e\u0308", "e"),
        ("A\u030a", "Å"),
        # Unrepresentable
        ("ok " + GRINNING, "ok ?"),
        ("中文", "??"),
        ("\U0001f468\u200d\U0001f469\u200d\U0001f467", "???"),
    ],
)
def test_fold(text: str, expected: str) -> None:
    folded = fold_to_gsm7(text)
    assert folded == expected
    assert is_gsm7(folded)


def test_fold_keeps_gsm7_letters() -> None:
    text = "éèùìòÇØøÅåÄÖÑÜäöñüàÉßÆæ ΔΦΓΛΩΠΨΣΘΞ ¡¿§¤£¥ @$_ " + EXTENSION
    assert fold_to_gsm7(text) == text


def test_fold_bosnian_sample_stays_one_segment() -> None:
    text = "Poštovani, ovo je prijava diskriminacije u školi u Đakovici. Hvala na pomoći."
    assert sms_info(text).encoding == "UCS-2"
    folded = fold_to_gsm7(text)
    assert folded == (
        "Postovani, ovo je prijava diskriminacije u skoli u Djakovici. Hvala na pomoci."
    )
    assert sms_info(folded) == SmsInfo("GSM-7", len(folded), 1, len(folded))


def test_fold_tables_only_produce_gsm7() -> None:
    for src, dst in sms_encoding._LATIN_FOLDS.items():
        assert is_gsm7(dst), repr(src)
    for src in sms_encoding._CYRILLIC:
        assert is_gsm7(fold_to_gsm7(src)), repr(src)
        assert "?" not in fold_to_gsm7(src), repr(src)


# --- properties ---------------------------------------------------------------------------------


@given(st.text())
def test_fold_always_gsm7(text: str) -> None:
    folded = fold_to_gsm7(text)
    assert is_gsm7(folded)
    assert sms_info(folded).encoding == "GSM-7"


@given(st.text(alphabet=st.characters(codec="utf-8")))
def test_fold_is_idempotent(text: str) -> None:
    once = fold_to_gsm7(text)
    assert fold_to_gsm7(once) == once


@given(st.text(alphabet=st.sampled_from(sorted(sms_encoding._GSM7_ALL))))
def test_fold_leaves_gsm7_text_unchanged(text: str) -> None:
    assert fold_to_gsm7(text) == text


# Surrogates included on purpose: Python strings can hold lone ones (e.g. from bad decoding).
@given(st.text(alphabet=st.characters(exclude_categories=())))
def test_sms_info_never_raises(text: str) -> None:
    info = sms_info(text)
    assert info.segments >= 1
    assert info.characters == len(text)
    assert info.encoding in ("GSM-7", "UCS-2")
    if info.encoding == "UCS-2":
        assert info.units == len(text.encode("utf-16-le", "surrogatepass")) // 2
        single, part = 70, 67
    else:
        assert len(text) <= info.units <= 2 * len(text)
        single, part = 160, 153
    if info.units <= single:
        assert info.segments == 1
    else:
        # Never fewer parts than plain division; at most one septet/unit wasted per part.
        assert -(-info.units // part) <= info.segments <= -(-info.units // (part - 1))


@given(st.text(alphabet=st.sampled_from("a€ë" + GRINNING)))
def test_sms_info_segments_on_mixed_text(text: str) -> None:
    assert sms_info(text).segments >= 1
