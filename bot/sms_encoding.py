"""SMS encoding and segment counting (GSM 03.38 / UCS-2), plus folding text to GSM-7.

Carriers bill per segment, and one character outside GSM-7 (an Albanian ``ë``, a Serbian ``č``,
any Cyrillic letter, a curly quote) switches the whole message to UCS-2, which more than halves
the room per segment. ``sms_info`` says what a text will cost; ``fold_to_gsm7`` is the
per-contact "plain letters" mode that keeps messages in GSM-7.

National language shift tables (3GPP TS 23.038 Turkish, Portuguese, ...) are deliberately not
modelled: Twilio and the Kosovo carriers send the default alphabet or UCS-2, nothing else.
"""

from __future__ import annotations

import unicodedata
from dataclasses import dataclass

__all__ = ["SmsInfo", "fold_to_gsm7", "is_gsm7", "sms_info"]

# GSM 03.38 default alphabet, in table order (0x00-0x7F). 0x1B is the escape to the extension
# table, not a character a text can contain, so it is left out.
_GSM7_BASIC: frozenset[str] = frozenset(
    "@£$¥èéùìòÇ\nØø\rÅå"
    "Δ_ΦΓΛΩΠΨΣΘΞÆæßÉ"
    " !\"#¤%&'()*+,-./"
    "0123456789:;<=>?"
    "¡ABCDEFGHIJKLMNO"
    "PQRSTUVWXYZÄÖÑÜ§"
    "¿abcdefghijklmno"
    "pqrstuvwxyzäöñüà"
)

# Extension table: each one is sent as ESC + code, so it costs two septets.
_GSM7_EXTENSION: frozenset[str] = frozenset("\f^{}\\[~]|€")

_GSM7_ALL: frozenset[str] = _GSM7_BASIC | _GSM7_EXTENSION

_GSM7_SINGLE = 160
_GSM7_PART = 153  # 160 minus the 7 septets the concatenation header takes
_UCS2_SINGLE = 70
_UCS2_PART = 67  # 70 minus the 3 code units the concatenation header takes


@dataclass(frozen=True)
class SmsInfo:
    """What an SMS text costs: its encoding, size in units, and number of billed segments."""

    encoding: str  # "GSM-7" or "UCS-2"
    units: int  # septets (GSM-7) or UTF-16 code units (UCS-2)
    segments: int  # at least 1: carriers bill an empty message as one segment
    characters: int  # len(text), i.e. code points


def is_gsm7(text: str) -> bool:
    """Return True if every character of ``text`` is in the GSM-7 basic or extension table."""
    return all(ch in _GSM7_ALL for ch in text)


def _count_parts(costs: list[int], single: int, part: int) -> int:
    """Count segments the way a splitter does: units that belong together never straddle parts."""
    if sum(costs) <= single:
        return 1
    parts = 1
    used = 0
    for cost in costs:
        # An escape+char pair (GSM-7) or a surrogate pair (UCS-2) moves whole to the next part,
        # leaving the previous one a unit short: that is why a plain division undercounts.
        if used + cost > part:
            parts += 1
            used = cost
        else:
            used += cost
    return parts


def sms_info(text: str) -> SmsInfo:
    """Return the encoding, unit count and segment count a carrier would use for ``text``."""
    if is_gsm7(text):
        costs = [2 if ch in _GSM7_EXTENSION else 1 for ch in text]
        encoding, single, part = "GSM-7", _GSM7_SINGLE, _GSM7_PART
    else:
        # Counted per code point rather than via .encode("utf-16"), so lone surrogates (which
        # Python strings can hold) cannot make this raise.
        costs = [2 if ord(ch) > 0xFFFF else 1 for ch in text]
        encoding, single, part = "UCS-2", _UCS2_SINGLE, _UCS2_PART
    return SmsInfo(
        encoding=encoding,
        units=sum(costs),
        segments=_count_parts(costs, single, part),
        characters=len(text),
    )


# Explicit replacements for characters that have no usable Unicode decomposition (đ, ı, ł),
# whose decomposition is not GSM-7 (…, ⁄) or that Twilio's "smart encoding" would not catch.
# Letters that decompose to a GSM-7 base plus marks (ë, č, ş, ğ, İ, ...) are left to NFKD.
_LATIN_FOLDS: dict[str, str] = {
    # Serbian / Bosnian / Croatian
    "đ": "dj",
    "Đ": "Dj",
    # Ð (Icelandic eth) is what Đ often turns into after a trip through a Latin-1 system.
    "Ð": "Dj",
    "ð": "d",
    # Turkish dotless i
    "ı": "i",
    # Other Latin letters without a decomposition
    "ł": "l",
    "Ł": "L",
    "œ": "oe",
    "Œ": "OE",
    "þ": "th",
    "Þ": "Th",
    "ħ": "h",
    "Ħ": "H",
    "ŧ": "t",
    "Ŧ": "T",
    # Quotes, dashes and punctuation that phones and word processors insert on their own
    "‘": "'",
    "’": "'",
    "‚": "'",
    "‛": "'",
    "′": "'",
    "‹": "'",
    "›": "'",
    "“": '"',
    "”": '"',
    "„": '"',
    "‟": '"',
    "″": '"',
    "«": '"',
    "»": '"',
    "\u2010": "-",  # hyphen
    "\u2011": "-",  # non-breaking hyphen
    "\u2012": "-",  # figure dash
    "\u2013": "-",  # en dash
    "\u2014": "-",  # em dash
    "\u2015": "-",  # horizontal bar
    "\u2212": "-",  # minus sign
    "…": "...",
    "⁄": "/",
    "•": "*",
    "·": ".",
    # Whitespace: GSM-7 has only space, LF and CR
    "\t": " ",
    "\u00a0": " ",
    "\u2028": "\n",
    "\u2029": "\n",
    "\u0085": "\n",
}

# Serbian Cyrillic to Serbian Latin (the official one-to-one mapping), written with the Latin
# letters before folding; the result is folded again, so č, ć, š, ž, đ, dž end up as plain
# c, c, s, z, dj, dz.
_CYRILLIC_LOWER: dict[str, str] = {
    "а": "a",
    "б": "b",
    "в": "v",
    "г": "g",
    "д": "d",
    "ђ": "đ",
    "е": "e",
    "ж": "ž",
    "з": "z",
    "и": "i",
    "ј": "j",
    "к": "k",
    "л": "l",
    "љ": "lj",
    "м": "m",
    "н": "n",
    "њ": "nj",
    "о": "o",
    "п": "p",
    "р": "r",
    "с": "s",
    "т": "t",
    "ћ": "ć",
    "у": "u",
    "ф": "f",
    "х": "h",
    "ц": "c",
    "ч": "č",
    "џ": "dž",
    "ш": "š",
}
# Uppercase forms are title case ("Љ" -> "Lj"); _fold_char upper-cases the whole digraph when
# the surrounding word is written in capitals.
_CYRILLIC: dict[str, str] = {
    **_CYRILLIC_LOWER,
    **{cyr.upper(): lat[:1].upper() + lat[1:] for cyr, lat in _CYRILLIC_LOWER.items()},
}


def _fold_simple(ch: str) -> str | None:
    """Fold one character by table lookup only; None if the tables do not make it GSM-7."""
    if ch in _GSM7_ALL:
        return ch
    if ch in _LATIN_FOLDS:
        return _LATIN_FOLDS[ch]
    if ch in _CYRILLIC:
        latin = _CYRILLIC[ch]
        # Strip the marks of the Latin transliteration (č -> c) and map đ -> dj.
        parts = [_fold_simple(c) for c in unicodedata.normalize("NFD", latin)]
        return "".join(p for p in parts if p is not None)
    return None


def _is_capital_context(prev: str, nxt: str) -> bool:
    """Return True if the neighbouring letters show a word written in capitals (ЉУБАВ, ĐAK)."""
    if nxt.isalpha():
        return nxt.isupper()
    return prev.isalpha() and prev.isupper()


def _fold_char(ch: str, prev: str, nxt: str) -> str:
    """Fold one character to GSM-7 text, using its neighbours to capitalise digraphs."""
    folded = _fold_simple(ch)
    if folded is None:
        category = unicodedata.category(ch)
        if category in ("Mn", "Me", "Cf"):
            # A leftover combining mark (after NFC) only decorates the letter before it, and
            # format characters (ZWJ, soft hyphen, BOM, variation selectors' kin) are invisible:
            # a "?" for either would only add noise.
            return ""
        decomposed = unicodedata.normalize("NFKD", ch)
        if decomposed == ch:
            return "?"
        pieces: list[str] = []
        for piece in decomposed:
            if unicodedata.combining(piece):
                continue
            simple = _fold_simple(piece)
            if simple is None:
                return "?"
            pieces.append(simple)
        folded = "".join(pieces)
        if not folded:
            return "?"
    if len(folded) > 1 and folded[0].isupper() and ch.isupper() and _is_capital_context(prev, nxt):
        upper = folded.upper()
        # str.upper() can leave GSM-7 (ì -> Ì), so only use it when it stays representable.
        if is_gsm7(upper):
            return upper
    return folded


def fold_to_gsm7(text: str) -> str:
    """Replace every character outside GSM-7 with a GSM-7 look-alike or "?" (plain letters)."""
    # NFC first, so a decomposed "e" + U+0308 is treated as the single letter "ë"; every GSM-7
    # character is already NFC, so text that is GSM-7 comes back unchanged.
    text = unicodedata.normalize("NFC", text)
    if is_gsm7(text):
        return text
    out: list[str] = []
    last = len(text) - 1
    for i, ch in enumerate(text):
        prev = text[i - 1] if i > 0 else ""
        nxt = text[i + 1] if i < last else ""
        out.append(_fold_char(ch, prev, nxt))
    return "".join(out)
