"""Kosovo's 38 municipalities and forgiving matching of place names typed on a phone."""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from itertools import product
from typing import NamedTuple

__all__ = [
    "BY_CODE",
    "MUNICIPALITIES",
    "Municipality",
    "match_municipality",
    "normalize",
]


@dataclass(frozen=True)
class Municipality:
    """One municipality with its official Albanian and Serbian (Latin, Cyrillic) names."""

    code: str
    sq: str
    sr_latn: str
    sr_cyrl: str

    def name(self, language: str) -> str:
        """Return the name to show in a UI language, falling back to Albanian."""
        if language == "sr_Cyrl":
            return self.sr_cyrl
        if language in ("sr_Latn", "bs"):
            return self.sr_latn
        if language == "tr":
            return _TURKISH.get(self.code, self.sq)
        return self.sq


# --- normalisation ---------------------------------------------------------------------------

# Serbian Cyrillic is transliterated the standard way, then folded to ASCII like the Latin
# letters (ж→ž→z), so "Урошевцу" and "Uroševcu" normalise identically.  A few Russian,
# Macedonian and Ukrainian letters are included because phones offer those keyboards too.
_CYRILLIC = {
    "а": "a", "б": "b", "в": "v", "г": "g", "д": "d", "ђ": "dj", "е": "e", "ж": "z",
    "з": "z", "и": "i", "ј": "j", "к": "k", "л": "l", "љ": "lj", "м": "m", "н": "n",
    "њ": "nj", "о": "o", "п": "p", "р": "r", "с": "s", "т": "t", "ћ": "c", "у": "u",
    "ф": "f", "х": "h", "ц": "c", "ч": "c", "џ": "dz", "ш": "s",
    "ы": "y", "э": "e", "ю": "ju", "я": "ja", "щ": "sc", "ъ": "", "ь": "",
    "ѕ": "dz", "і": "i", "є": "je", "ґ": "g",
}  # fmt: skip

# Letters NFKD does not decompose.  "ð" (eth) is here because it looks exactly like "đ" and
# some keyboards offer it instead; "ı" is Turkish dotless i.
_SPECIAL = {"đ": "dj", "ð": "dj", "ı": "i", "ł": "l", "ø": "o", "æ": "ae", "œ": "oe", "þ": "th"}

_COMBINING_RANGES = ((0x0300, 0x036F), (0x1AB0, 0x1AFF), (0x1DC0, 0x1DFF), (0x20D0, 0x20FF),
                     (0xFE20, 0xFE2F))  # fmt: skip

_FOLD = str.maketrans(
    {
        **_CYRILLIC,
        **_SPECIAL,
        **{chr(cp): None for lo, hi in _COMBINING_RANGES for cp in range(lo, hi + 1)},
    }
)

# Letters only: digits, underscores, punctuation and emoji all separate words.
_LETTER_RUNS = re.compile(r"[^\W\d_]+")


def normalize(text: str) -> str:
    """Fold text to lowercase ASCII-ish words: Cyrillic transliterated, diacritics dropped."""
    # NFKD before casefold turns compatibility letters (ℌ, ｐ) into plain ones that casefold
    # can lower; the second NFKD splits what casefold composed (İ → i + dot), which keeps the
    # function idempotent.
    folded = unicodedata.normalize("NFKD", unicodedata.normalize("NFKD", text).casefold())
    return " ".join(_LETTER_RUNS.findall(folded.translate(_FOLD)))


# --- data ------------------------------------------------------------------------------------


class _Row(NamedTuple):
    code: str
    sq: str
    sr_latn: str
    sr_cyrl: str
    sq_alt: tuple[str, ...] = ()  # other Albanian names, inflected like Albanian nouns
    sr_alt: tuple[str, ...] = ()  # other Serbian names, inflected like Serbian nouns
    fixed: tuple[str, ...] = ()  # Turkish/English/joined forms, matched as written


_ROWS: tuple[_Row, ...] = (
    _Row("decan", "Deçan", "Dečani", "Дечани", sr_alt=("Dečane",)),
    _Row("dragash", "Dragash", "Dragaš", "Драгаш"),
    _Row("drenas", "Drenas", "Glogovac", "Глоговац", sq_alt=("Gllogoc", "Glogoc")),
    _Row("ferizaj", "Ferizaj", "Uroševac", "Урошевац", fixed=("Ferizovik",)),
    _Row(
        "fushe-kosove", "Fushë Kosovë", "Kosovo Polje", "Косово Поље",
        sq_alt=("Fusha e Kosovës",), fixed=("Fushëkosovë", "Kosovopolje"),
    ),
    _Row("gjakove", "Gjakovë", "Đakovica", "Ђаковица", fixed=("Yakova",)),
    _Row("gjilan", "Gjilan", "Gnjilane", "Гњилане", fixed=("Gilan",)),
    _Row("gracanice", "Graçanicë", "Gračanica", "Грачаница"),
    _Row(
        "hani-i-elezit", "Hani i Elezit", "Đeneral Janković", "Ђенерал Јанковић",
        sq_alt=("Han i Elezit", "Hanit të Elezit", "Elez Han"),
        sr_alt=("Elez Han", "General Janković"),
        fixed=("Hani Elezit", "Hanielezit", "Elezhan"),
    ),
    _Row("istog", "Istog", "Istok", "Исток"),
    _Row("junik", "Junik", "Junik", "Јуник"),
    _Row("kacanik", "Kaçanik", "Kačanik", "Качаник"),
    _Row("kamenice", "Kamenicë", "Kamenica", "Каменица"),
    _Row("kline", "Klinë", "Klina", "Клина"),
    _Row("kllokot", "Kllokot", "Klokot", "Клокот"),
    _Row("leposaviq", "Leposaviq", "Leposavić", "Лепосавић"),
    _Row("lipjan", "Lipjan", "Lipljan", "Липљан"),
    _Row("malisheve", "Malishevë", "Mališevo", "Малишево"),
    _Row("mamushe", "Mamushë", "Mamuša", "Мамуша", fixed=("Mamuşa",)),
    _Row("mitrovice-jugut", "Mitrovicë e Jugut", "Južna Mitrovica", "Јужна Митровица"),
    _Row("mitrovice-veriut", "Mitrovicë e Veriut", "Severna Mitrovica", "Северна Митровица"),
    _Row(
        "novoberde", "Novobërdë", "Novo Brdo", "Ново Брдо",
        sq_alt=("Novo Bërdë",), fixed=("Novobrdo",),
    ),
    _Row("obiliq", "Obiliq", "Obilić", "Обилић"),
    _Row("partesh", "Partesh", "Parteš", "Партеш"),
    _Row("peje", "Pejë", "Peć", "Пећ", fixed=("İpek",)),
    _Row("podujeve", "Podujevë", "Podujevo", "Подујево", sq_alt=("Besianë",)),
    _Row("prishtine", "Prishtinë", "Priština", "Приштина", fixed=("Priştine",)),
    _Row("prizren", "Prizren", "Prizren", "Призрен"),
    _Row("rahovec", "Rahovec", "Orahovac", "Ораховац"),
    _Row("ranillug", "Ranillug", "Ranilug", "Ранилуг"),
    _Row("shterpce", "Shtërpcë", "Štrpce", "Штрпце"),
    _Row("shtime", "Shtime", "Štimlje", "Штимље"),
    _Row("skenderaj", "Skënderaj", "Srbica", "Србица"),
    _Row(
        "suhareke", "Suharekë", "Suva Reka", "Сува Река",
        sq_alt=("Therandë",), fixed=("Suvareka",),
    ),
    _Row("viti", "Viti", "Vitina", "Витина"),
    _Row("vushtrri", "Vushtrri", "Vučitrn", "Вучитрн", fixed=("Vıçıtırın",)),
    _Row("zubin-potok", "Zubin Potok", "Zubin Potok", "Зубин Поток", fixed=("Zubinpotok",)),
    _Row("zvecan", "Zveçan", "Zvečan", "Звечан"),
)  # fmt: skip

# Sorted on the folded name so the order does not depend on a collation library
# (Albanian collation would put "gj" after every other "g").
MUNICIPALITIES: tuple[Municipality, ...] = tuple(
    sorted(
        (Municipality(r.code, r.sq, r.sr_latn, r.sr_cyrl) for r in _ROWS),
        key=lambda m: normalize(m.sq),
    )
)
BY_CODE: dict[str, Municipality] = {m.code: m for m in MUNICIPALITIES}

# Turkish has official status in Prizren, Mamushë and a few other municipalities; only names
# in settled use are listed (a native speaker should review them).
_TURKISH: dict[str, str] = {
    "prishtine": "Priştine",
    "prizren": "Prizren",
    "mamushe": "Mamuşa",
    "gjilan": "Gilan",
    "gjakove": "Yakova",
    "peje": "İpek",
    "mitrovice-jugut": "Güney Mitroviça",
    "mitrovice-veriut": "Kuzey Mitroviça",
    "vushtrri": "Vıçıtırın",
    "dragash": "Dragaş",
    "kacanik": "Kaçanik",
}

# --- matching tables -------------------------------------------------------------------------

_SOUTH = "mitrovice-jugut"
_NORTH = "mitrovice-veriut"
_BOTH_MITROVICAS = (_SOUTH, _NORTH)

# A bare "Mitrovica" names either municipality; a qualifier this close decides which.
_QUALIFIER_WINDOW = 3
_QUALIFIERS: dict[str, str] = {
    **dict.fromkeys(
        (
            "jug jugu jugut jugun jugor jugore jugores jugorja south southern "
            "juzna juzne juzni juznoj juznu juznom guney"
        ).split(),
        _SOUTH,
    ),
    **dict.fromkeys(
        (
            "veri veriu veriut verior veriore veriores veriorja north northern "
            "sever severu severna severne severni severnoj severnu severnom "
            "sjever sjeveru sjeverna sjeverne sjeverni sjevernoj sjevernu sjevernom kuzey"
        ).split(),
        _NORTH,
    ),
}

# Typos are tolerated only in short replies: inside running text too many ordinary words sit
# one edit from a short name (Srbija~Srbica, vitin "the year"~Vitina, shtimi "increase"~Shtime).
_FUZZY_MAX_TOKENS = 8
_NO_FUZZY = frozenset(
    (
        "srbija srbije srbiji srbiju srbijom srbima srbin srbina srbinu "
        "milan milana milanu milane milanom dragan dragana draganu dragane "
        "vitin vitit vitet shtim shtimi shtimin shtimit unik unike "
        "istom istoj istim istih istoga istome"
    ).split()
)


def _sq_forms(word: str) -> set[str]:
    """Albanian definite and case forms of one (casefolded, accented) word of a name."""
    if len(word) <= 2:
        return {word}
    forms = {word}
    last = word[-1]
    if last == "ë":  # Prishtinë → Prishtina, Prishtinës, Prishtinën
        stem = word[:-1]
        forms |= {stem + "a", stem + "ës", stem + "ën"}
    elif last == "e":  # Shtime → Shtimja, Shtimes, Shtimen
        forms |= {word[:-1] + "ja", word + "s", word + "n"}
    elif last == "i":  # Vushtrri → Vushtrria, Vushtrrisë, Vushtrrinë
        forms |= {word + "a", word + "së", word + "në"}
    elif last in "kgh":  # Istog → Istogu, Istogut, Istogun
        forms |= {word + "u", word + "ut", word + "un"}
    elif last not in "aou":  # Gjilan → Gjilani, Gjilanit, Gjilanin; Ferizaj → Ferizajt
        forms |= {word + "i", word + "it", word + "in"}
        if last == "j":
            forms.add(word + "t")
    return forms


def _sr_forms(word: str) -> set[str]:
    """Serbian case forms of one normalised word of a name (noun or adjective)."""
    if len(word) <= 2:
        return {word}
    forms = {word}
    stem, last = word[:-1], word[-1]
    if last == "a":  # Priština → Prištini, Prištinu, Prištine; Suva → Suvoj
        forms |= {stem + e for e in ("e", "i", "u", "om", "o", "oj")}
        if stem.endswith("k"):  # sibilarisation: Reka → Reci
            forms.add(stem[:-1] + "ci")
    elif last == "e":  # Gnjilane → Gnjilanu; Štrpce → Štrpcu; Dečane → Dečanima
        forms |= {stem + e for e in ("a", "u", "om", "em", "ima", "i")}
    elif last == "o":  # Mališevo → Mališevu; Novo → Novom, Novog
        forms |= {stem + e for e in ("a", "u", "om", "og", "oga", "ome")}
    elif last == "i":  # Dečani → Dečana, Dečanima
        forms |= {stem + e for e in ("a", "e", "ima")}
    else:  # Prizren → Prizrenu; Peć → Peći; Zubin → Zubinom
        forms |= {word + e for e in ("a", "u", "om", "em", "e", "i", "og")}
        if word.endswith("ac") and len(word) > 4:  # fleeting a: Uroševac → Uroševcu
            short = word[:-2] + "c"
            forms |= {short + e for e in ("a", "u", "om", "em", "e", "i")}
    return forms


def _max_typos(base_word: str) -> int:
    """Edits tolerated for a word whose uninflected form is base_word."""
    n = len(base_word)
    return 2 if n >= 9 else 1 if n >= 5 else 0


def _spelling_variants(form: str) -> set[str]:
    """The same form as people type đ without a Serbian keyboard: dj, d or Albanian gj."""
    if "dj" not in form:
        return {form}
    return {form, form.replace("dj", "d"), form.replace("dj", "gj")}


_PHRASES: dict[str, tuple[str, ...]] = {}  # normalised phrase → municipality codes
_VOCAB_TYPOS: dict[str, int] = {}  # every word of every phrase → edits tolerated


def _add_phrase(words: list[set[tuple[str, int]]], codes: tuple[str, ...]) -> None:
    """Register every combination of per-word forms as a phrase for codes."""
    for combo in product(*words):
        phrase = " ".join(w for w, _ in combo)
        if _PHRASES.setdefault(phrase, codes) != codes:
            # Inflection rules must never make one municipality's form another's name.
            raise ValueError(f"{phrase!r} would name both {_PHRASES[phrase]} and {codes}")
        for word, typos in combo:
            # A form shared by a short and a long name gets the stricter tolerance.
            _VOCAB_TYPOS[word] = min(typos, _VOCAB_TYPOS.get(word, typos))


def _add_name(name: str, language: str, codes: tuple[str, ...]) -> None:
    """Register name and its inflected forms; language is "sq", "sr" or "" (as written)."""
    raw_words = name.casefold().replace("-", " ").split()
    slots: list[set[tuple[str, int]]] = []
    for raw in raw_words:
        base = normalize(raw)
        if language == "sq":
            forms = {normalize(f) for f in _sq_forms(raw)}
        elif language == "sr":
            forms = _sr_forms(base)
        else:
            forms = {base}
        typos = _max_typos(base)
        slots.append({(v, typos) for f in forms for v in _spelling_variants(f)})
    _add_phrase(slots, codes)


def _build_tables() -> None:
    """Fill _PHRASES and _VOCAB_TYPOS from _ROWS."""
    for row in _ROWS:
        if row.code in _BOTH_MITROVICAS:
            continue  # the shared word "Mitrovica" is registered once, below
        codes = (row.code,)
        for sq_name in (row.sq, *row.sq_alt):
            _add_name(sq_name, "sq", codes)
        for sr_name in (row.sr_latn, row.sr_cyrl, *row.sr_alt):
            _add_name(sr_name, "sr", codes)
        for other in row.fixed:
            _add_name(other, "", codes)
    _add_name("Mitrovicë", "sq", _BOTH_MITROVICAS)
    _add_name("Mitrovica", "sr", _BOTH_MITROVICAS)
    _add_name("Митровица", "sr", _BOTH_MITROVICAS)
    _add_name("Mitroviça", "", _BOTH_MITROVICAS)


_build_tables()
# Proper word prefixes of multi-word names ("hani", "hani i"), so phrases stop growing early.
_PREFIXES = frozenset(
    " ".join(words[:k]) for words in map(str.split, _PHRASES) for k in range(1, len(words))
)
_MAX_WORD_LEN = max(len(w) for w in _VOCAB_TYPOS)


def _deletes(word: str, depth: int) -> set[str]:
    """word and every string made by deleting up to depth characters from it."""
    out = {word}
    frontier = {word}
    for _ in range(depth):
        frontier = {w[:i] + w[i + 1 :] for w in frontier for i in range(len(w))}
        out |= frontier
    return out


# Symmetric-delete index (as in SymSpell): two words within k edits share a string reachable
# by at most k deletions from each, so a typo is found with set look-ups instead of comparing
# it against every form.
_DELETE_INDEX: dict[str, set[str]] = {}
for _word, _typos in _VOCAB_TYPOS.items():
    if _typos:
        for _d in _deletes(_word, _typos):
            _DELETE_INDEX.setdefault(_d, set()).add(_word)
del _word, _typos


def _osa_distance(a: str, b: str, limit: int) -> int:
    """Damerau–Levenshtein (optimal string alignment) distance, capped at limit + 1."""
    if abs(len(a) - len(b)) > limit:
        return limit + 1
    # Plain comparisons instead of min(): this runs for every typo candidate.
    before = previous = list(range(len(b) + 1))
    for i, ca in enumerate(a, 1):
        current = [i]
        for j, cb in enumerate(b, 1):
            value = previous[j - 1] + (ca != cb)
            if previous[j] < value:
                value = previous[j] + 1
            if current[j - 1] < value:
                value = current[j - 1] + 1
            if i > 1 and j > 1 and ca == b[j - 2] and a[i - 2] == cb and before[j - 2] < value:
                value = before[j - 2] + 1
            current.append(value)
        if min(current) > limit:
            return limit + 1
        before, previous = previous, current
    return min(previous[-1], limit + 1)


def _word_options(token: str, fuzzy: bool) -> list[tuple[str, int]]:
    """Vocabulary words token may stand for, with the edits needed, closest first."""
    if token in _VOCAB_TYPOS:
        return [(token, 0)]
    if not fuzzy or not 5 <= len(token) <= _MAX_WORD_LEN + 2 or token in _NO_FUZZY:
        return []
    candidates: set[str] = set()
    # Only names of 9+ letters allow two edits, so shorter tokens need not pay for depth 2.
    for variant in _deletes(token, 2 if len(token) >= 6 else 1):
        candidates |= _DELETE_INDEX.get(variant, set())
    scored = []
    for word in candidates:
        allowed = _VOCAB_TYPOS[word]
        distance = _osa_distance(token, word, allowed)
        if distance <= allowed:
            scored.append((distance, word))
    scored.sort()
    return [(w, d) for d, w in scored[:3]]


def _resolve_mitrovica(tokens: list[str], at: int) -> tuple[str, ...]:
    """Narrow a bare "Mitrovica" at token index at using nearby north/south words."""
    lo, hi = max(0, at - _QUALIFIER_WINDOW), at + _QUALIFIER_WINDOW + 1
    sides = {_QUALIFIERS[t] for t in tokens[lo:hi] if t in _QUALIFIERS}
    if len(sides) == 1:
        return (sides.pop(),)
    return _BOTH_MITROVICAS


def match_municipality(text: str) -> list[Municipality]:
    """Return up to three municipalities named in free text, best first ([] if none)."""
    tokens = normalize(text).split()
    fuzzy = len(tokens) <= _FUZZY_MAX_TOKENS
    options = [_word_options(t, fuzzy) for t in tokens]

    # (edits, -words, start, codes): fewer edits first, then longer phrases, then earlier.
    hits: list[tuple[int, int, int, tuple[str, ...]]] = []
    for start, first in enumerate(options):
        # Grow phrases word by word while they can still become a known name.
        partial: list[tuple[str, int]] = [(w, d) for w, d in first]
        size = 1
        while partial:
            grown: list[tuple[str, int]] = []
            for phrase, edits in partial:
                codes = _PHRASES.get(phrase)
                if codes is not None:
                    hits.append((edits, -size, start, codes))
                if phrase in _PREFIXES and start + size < len(tokens):
                    grown.extend((f"{phrase} {w}", edits + d) for w, d in options[start + size])
            partial = grown
            size += 1
    hits.sort()

    taken: set[int] = set()
    chosen: list[tuple[int, int, tuple[str, ...]]] = []
    for edits, neg_size, start, codes in hits:
        span = range(start, start - neg_size)
        if taken.intersection(span):
            continue  # "Hani i Elezit" must not also count its words separately
        taken.update(span)
        if codes == _BOTH_MITROVICAS:
            codes = _resolve_mitrovica(tokens, start)
        chosen.append((edits, start, codes))
    chosen.sort()

    ordered = dict.fromkeys(code for _, _, codes in chosen for code in codes)
    return [BY_CODE[code] for code in list(ordered)[:3]]
