"""Understanding typed answers: option words and command words in every supported language."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from dialogs.messages import LANGUAGE_NAMES, LANGUAGES, Choice, Text
from dialogs.municipalities import normalize
from dialogs.options import COMMAND_WORDS, OPTION_KEYWORDS

Translate = Callable[[str, Text], str]
"""``translate(language, text)`` gives the text in that language (the msgid when untranslated)."""

_NUMBERS = re.compile(r"\d+")
_REFERENCE_CODE = re.compile(r"\bRAE-?[A-Z0-9]{6}\b", re.IGNORECASE)
_CYRILLIC_LETTER = re.compile("[\u0400-\u04ff]")

SMS_CARRIER_STOP_WORDS = frozenset(
    {"stop", "stopall", "unsubscribe", "end", "quit", "revoke", "optout", "cancel"}
)
"""Twilio opts a number out on these single words whatever we do, so we must agree with it."""


def _within_one(a: str, b: str) -> bool:
    """Distance at most 1 (one edit or one swap of neighbours), in one pass instead of a table."""
    if len(a) > len(b):
        a, b = b, a
    i = 0
    while i < len(a) and a[i] == b[i]:
        i += 1
    if len(a) == len(b):
        if i >= len(a) - 1:
            return True  # equal, or only the last letter differs
        if a[i + 1 :] == b[i + 1 :]:
            return True  # one letter replaced
        return a[i] == b[i + 1] and a[i + 1] == b[i] and a[i + 2 :] == b[i + 2 :]  # swapped
    return a[i:] == b[i + 1 :]  # one letter more in b


def edit_distance_at_most(a: str, b: str, limit: int) -> bool:
    """True when the Damerau-Levenshtein distance between a and b is at most ``limit``."""
    if abs(len(a) - len(b)) > limit:
        return False
    if a == b:
        return True
    if limit == 1:
        return _within_one(a, b)
    prev2: list[int] = []
    prev = list(range(len(b) + 1))
    for i in range(1, len(a) + 1):
        cur = [i] + [0] * len(b)
        for j in range(1, len(b) + 1):
            cost = 0 if a[i - 1] == b[j - 1] else 1
            cur[j] = min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + cost)
            if i > 1 and j > 1 and a[i - 1] == b[j - 2] and a[i - 2] == b[j - 1]:
                cur[j] = min(cur[j], prev2[j - 2] + 1)
        if min(cur) > limit:
            return False
        prev2, prev = prev, cur
    return prev[len(b)] <= limit


def typo_budget(word: str) -> int:
    """How many typos a word of this length may carry and still be recognised."""
    if len(word) >= 9:
        return 2
    if len(word) >= 4:
        return 1
    return 0


@dataclass(frozen=True)
class _Entry:
    value: str
    words: frozenset[str]
    by_length: dict[int, tuple[str, ...]]  # the same words by length: typos change it by 2 at most

    @classmethod
    def of(cls, value: str, words: frozenset[str]) -> _Entry:
        """An option's words, indexed by length."""
        by_length: dict[int, list[str]] = {}
        for word in words:
            by_length.setdefault(len(word), []).append(word)
        return cls(value, words, {n: tuple(ws) for n, ws in by_length.items()})

    def near(self, norm: str, limit: int) -> bool:
        """Whether one of the words is within ``limit`` typos of ``norm``."""
        size = len(norm)
        for length in range(size - limit, size + limit + 1):
            for word in self.by_length.get(length, ()):
                if edit_distance_at_most(norm, word, limit):
                    return True
        return False


class Lexicon:
    """Normalised words for every option and command, in every language, built once."""

    def __init__(self, translate: Translate) -> None:
        self._translate = translate
        self._labels: dict[Text, frozenset[str]] = {}
        self._commands: dict[str, frozenset[str]] = {
            name: self._words(words, split=True) for name, words in COMMAND_WORDS.items()
        }
        # Words with no letters ("?") normalise to nothing: they are kept as typed.
        self._symbols: dict[str, frozenset[str]] = {
            name: self._symbol_words(words) for name, words in COMMAND_WORDS.items()
        }
        self._languages = {lang: frozenset({normalize(LANGUAGE_NAMES[lang])}) for lang in LANGUAGES}
        self._keywords: dict[tuple[str, str], frozenset[str]] = {
            key: self._words(words, split=True) for key, words in OPTION_KEYWORDS.items()
        }
        self._entries: dict[tuple[str, tuple[Choice, ...]], tuple[_Entry, ...]] = {}

    def _words(self, text: Text, *, split: bool) -> frozenset[str]:
        forms: set[str] = set()
        for lang in LANGUAGES:
            translated = self._translate(lang, text)
            parts = translated.split("|") if split else [translated]
            forms.update(normalize(p) for p in parts)
        forms.discard("")
        return frozenset(forms)

    def _symbol_words(self, text: Text) -> frozenset[str]:
        forms: set[str] = set()
        for lang in LANGUAGES:
            for part in self._translate(lang, text).split("|"):
                raw = part.strip()
                if raw and not normalize(raw) and not raw.isdigit():
                    forms.add(raw)
        return frozenset(forms)

    def label_words(self, label: Text) -> frozenset[str]:
        """Every language's normalised form of one option label (cached)."""
        words = self._labels.get(label)
        if words is None:
            words = self._words(label, split=False)
            self._labels[label] = words
        return words

    def command(self, text: str, channel: str) -> str | None:
        """The global command this whole message is, if it is one."""
        norm = normalize(text)
        if not norm:
            raw = text.strip()
            for name in ("help", "back", "restart", "language", "stop", "start"):
                if raw in self._symbols[name]:
                    return name
            return None
        first = norm.split(" ", 1)[0]
        if first in self._commands["status"] and (
            " " not in norm or _REFERENCE_CODE.search(text) is not None
        ):
            # Only "status" alone or followed by a code: a description may start with the word.
            return "status"
        if self.is_carrier_stop_word(text, channel):
            return "stop"
        for name in ("delete", "help", "back", "restart", "language", "stop", "start", "letters"):
            if norm in self._commands[name]:
                return name
        return None

    def carrier_stop_word(self, text: str) -> bool:
        """Whether an SMS is one of the words on which the carrier itself opts the number out."""
        return normalize(text) in SMS_CARRIER_STOP_WORDS

    def is_label(self, choices: Iterable[Choice], text: str) -> bool:
        """True when the whole message is exactly (case and accents aside) one option's label."""
        norm = normalize(text)
        return bool(norm) and any(norm in self.label_words(c.label) for c in choices)

    def is_carrier_stop_word(self, text: str, channel: str) -> bool:
        """True when an SMS carrier opts the sender out on this message, whatever we do."""
        return channel == "sms" and self.carrier_stop_word(text)

    def is_word(self, name: str, text: str) -> bool:
        """True when the whole message is one of the words for ``name`` (done, skip...)."""
        return normalize(text) in self._commands[name]

    def language(self, text: str) -> str | None:
        """The language picked by number or by its name."""
        digits = text.strip().strip(".)")
        if digits.isdecimal() and 1 <= int(digits) <= len(LANGUAGES):  # not "²": int() fails
            return LANGUAGES[int(digits) - 1]
        norm = normalize(text)
        if norm in self._languages["sr_Cyrl"] and _CYRILLIC_LETTER.search(text):
            return "sr_Cyrl"  # "Српски" and "Srpski" normalise alike; the script tells them apart
        for lang, names in self._languages.items():
            if norm in names:
                return lang
        # "Srpski" and "Српски" normalise alike; the Latin spelling means Latin script.
        if norm in {"srpski", "serbian", "srpsko"}:
            return "sr_Latn"
        return None

    def option(self, step: str, choices: Iterable[Choice], text: str) -> str | None:
        """The option picked by number, label or keyword, tolerating case, accents and typos."""
        picked = self.options(step, choices, text, multi=False)
        return picked[0] if picked else None

    def options(self, step: str, choices: Iterable[Choice], text: str, *, multi: bool) -> list[str]:
        """The options picked; with ``multi``, several numbers such as ``1 3`` or ``1,3``."""
        options = list(choices)
        numbers = _NUMBERS.findall(text)
        if numbers and all(ch.isdigit() or not ch.isalnum() for ch in text):
            return self._by_numbers(options, numbers, multi=multi)
        norm = normalize(text)
        if not norm:
            return []
        entries = self._entries_for(step, tuple(options))
        for entry in entries:  # exact first, so a typo match never beats an exact one
            if norm in entry.words:
                return [entry.value]
        # A typo counts only when it points at one option: "Wark" is Work, but a word as close
        # to two options is not guessed (the first in the list must not win by its position).
        for limit in range(1, typo_budget(norm) + 1):
            near = [e.value for e in entries if e.near(norm, limit)]
            if near:
                return near if len(near) == 1 else []
        tokens = [t for t in norm.split() if len(t) >= 3]
        if len(norm.split()) <= 4:  # a keyword inside a short sentence ("at the school")
            found = [e.value for e in entries if any(t in e.words for t in tokens)]
            if len(found) == 1:
                return found
        return []

    def _entries_for(self, step: str, options: tuple[Choice, ...]) -> tuple[_Entry, ...]:
        """The options' words for this step, built once per step and set of options."""
        key = (step, options)
        entries = self._entries.get(key)
        if entries is None:
            entries = tuple(_Entry.of(c.value, self._entry_words(step, c)) for c in options)
            self._entries[key] = entries
        return entries

    def _entry_words(self, step: str, choice: Choice) -> frozenset[str]:
        words = self.label_words(choice.label)
        step_key = "yes" if choice.value in {"yes", "no"} else step
        extra = self._keywords.get((step_key, choice.value))
        return words | extra if extra else words

    @staticmethod
    def _by_numbers(options: list[Choice], numbers: list[str], *, multi: bool) -> list[str]:
        if multi and len(numbers) == 1 and len(numbers[0]) > 1:
            numbers = list(numbers[0])  # "13" on a keypad means 1 and 3 when options are 1-9
        picked: list[str] = []
        for num in numbers:
            index = int(num)
            if not 1 <= index <= len(options):
                return []
            value = options[index - 1].value
            if value not in picked:
                picked.append(value)
        if not multi and len(picked) != 1:
            return []
        return picked
