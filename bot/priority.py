"""Priority of a complaint (P1 urgent … P4) and the reasons for it, from a table of rules.

Pure: no I/O. The rules are data (``ANSWER_RULES``, ``WORD_RULES``, ``PATTERN_RULE``) and are
documented in ``docs/priority.md``; change both together. Most signals come from the structured
answers the dialog collects. Violence, threats and property attacks are not asked as options: they
are detected from words in the description, decrypted in memory only, with a short multilingual
keyword list. The word check is conservative (whole words or long stems, no guessing) and its
reasons say that they were detected from words, so staff know to check them.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from dialogs.municipalities import normalize

PRIORITIES = ("P1", "P2", "P3", "P4")
"""Most urgent first: P1 urgent, P2 high, P3 raised, P4 the rest."""

REPEAT_WINDOW_DAYS = 90
REPEAT_MIN_EARLIER = 2
"""Earlier complaints (same perpetrator type and municipality, within the window) that make a
pattern: with this one, three complaints in 90 days."""

# Answers too vague to say two complaints are about the same perpetrator or place.
REPEAT_IGNORED_PERPETRATORS = frozenset({"unknown"})
REPEAT_IGNORED_MUNICIPALITIES = frozenset({"outside"})


@dataclass(frozen=True)
class Reason:
    """Why a complaint has its priority: a stable machine code and English text for people."""

    code: str
    priority: str
    source: str  # "answer", "words", "pattern", "staff" or "default"
    text: str

    def to_json(self) -> dict[str, str]:
        """The reason as stored on the complaint and sent in events."""
        return {
            "code": self.code,
            "priority": self.priority,
            "source": self.source,
            "text": self.text,
        }


@dataclass(frozen=True)
class AnswerRule:
    """A signal read from one structured answer: it fires when the answer holds any value."""

    code: str
    priority: str
    answer: str
    values: tuple[Any, ...]
    text: str


@dataclass(frozen=True)
class WordRule:
    """A signal detected from words in the description; ``*`` ends a stem, spaces a phrase."""

    code: str
    priority: str
    text: str
    words: Mapping[str, tuple[str, ...]]  # language → words (written as people spell them)


ANSWER_RULES: tuple[AnswerRule, ...] = (
    AnswerRule("danger_now", "P1", "danger", (True,), "The person said they are in danger now."),
    AnswerRule("child_affected", "P2", "stakes", ("child",), "A child is affected."),
    AnswerRule(
        "eviction_imminent", "P2", "stakes", ("home",), "The person may lose their home soon."
    ),
    AnswerRule(
        "health_care_denied",
        "P2",
        "stakes",
        ("health_care",),
        "Health care is denied or may be lost soon.",
    ),
    AnswerRule(
        "income_cut", "P2", "stakes", ("job",), "Income is at risk: the job may be lost soon."
    ),
    AnswerRule(
        "documents_blocking",
        "P2",
        "stakes",
        ("documents",),
        "Documents block access to services or may be lost soon.",
    ),
    AnswerRule("legal_deadline", "P2", "stakes", ("deadline",), "A legal deadline is running."),
    AnswerRule(
        "official_perpetrator",
        "P3",
        "perpetrator",
        ("public_institution", "police"),
        "A public official or a police officer is named as the perpetrator.",
    ),
)

# Kept short on purpose: every word here raises a complaint to P1, so a word that often means
# something harmless ("fire" as in dismissed, "kicked out" of school, "heart attack") is left
# out. Cyrillic needs no entries: text is transliterated before matching (тукао → tukao).
# Romani spelling varies and the Romani list is unverified by a native speaker.
WORD_RULES: tuple[WordRule, ...] = (
    WordRule(
        "violence_or_threat",
        "P1",
        "Words in the description suggest violence or a threat (detected from words, not "
        "asked: check the description).",
        {
            "en": (
                "beat", "beats", "beaten", "beating", "beat up", "hit", "hits", "hitting",
                "punched", "punch", "slapped", "attacked", "assault*", "stabbed", "knife",
                "knives", "gun", "guns", "threat*", "violence", "violent",
            ),
            "sq": (
                "rrah*", "godit*", "sulm*", "kërcën*", "thikë", "thika", "thikën", "dhun*",
                "plagos*", "armë", "armën",
            ),
            "rom": ("mard*", "čhuri", "ćhuri", "churi"),
            "sr": (
                "tukao", "tukla", "tukli", "pretuk*", "istuk*", "udari*", "pretnj*",
                "zapreti*", "pretio", "pretili", "napad*", "napali", "nož", "nožem", "nasilj*",
                "pištolj*",
            ),
            "bs": ("prijetnj*", "prijeti*", "zaprijeti*", "udaren*", "nožem"),
            "tr": (
                "dövdü", "dövdüler", "dövüldü", "dövüldüm", "tehdit*", "bıçak*", "vurdu",
                "vurdular", "saldır*", "şiddet*", "silah*",
            ),
        },
    ),
    WordRule(
        "property_attack",
        "P1",
        "Words in the description suggest an attack on a home or property (detected from "
        "words, not asked: check the description).",
        {
            "en": (
                "burn*", "set fire", "set on fire", "arson", "smashed", "vandal*",
            ),
            "sq": ("dogj*", "djeg*", "vunë zjarr*", "i vunë flakën", "shkatërru*"),
            "rom": ("phabard*",),
            "sr": ("zapali*", "spali*", "požar*", "razbili", "razbio", "uništili"),
            "bs": ("zapalili", "spalili"),
            "tr": ("yaktı", "yaktılar", "ateşe ver*"),
        },
    ),
)  # fmt: skip

PATTERN_RULE = Reason(
    "repeated_pattern",
    "P3",
    "pattern",
    f"Several complaints about the same type of perpetrator in this municipality within "
    f"{REPEAT_WINDOW_DAYS} days (a repeated or collective case).",
)

DEFAULT_REASON = Reason(
    "no_signal", "P4", "default", "No urgent or high-priority signal in the answers or words."
)


def _word_pattern(word: str) -> str:
    """A regex for one listed word, matched on normalised text (words joined by one space)."""
    stem = word.endswith("*")
    folded = normalize(word.rstrip("*"))
    if not folded:
        raise ValueError(f"keyword {word!r} has no letters")
    body = re.escape(folded).replace(r"\ ", " ")
    return body + (r"[a-z]*" if stem else "")


def _compile(rule: WordRule) -> re.Pattern[str]:
    words = sorted({w for ws in rule.words.values() for w in ws})
    alternatives = "|".join(_word_pattern(w) for w in words)
    return re.compile(rf"(?<![a-z])(?:{alternatives})(?![a-z])")


_COMPILED: tuple[tuple[WordRule, re.Pattern[str]], ...] = tuple(
    (rule, _compile(rule)) for rule in WORD_RULES
)


@dataclass(frozen=True)
class Assessment:
    """A complaint's priority and every reason that applies, most urgent first."""

    priority: str
    reasons: tuple[Reason, ...]

    @property
    def codes(self) -> frozenset[str]:
        """The reason codes, for routing rules that depend on them."""
        return frozenset(r.code for r in self.reasons)

    def reasons_json(self) -> list[dict[str, str]]:
        """The reasons as stored on the complaint and sent in events."""
        return [r.to_json() for r in self.reasons]


def detect_words(description: str | None) -> list[WordRule]:
    """The word rules whose words appear in the description (normalised, any language)."""
    if not description:
        return []
    text = normalize(description)
    return [rule for rule, pattern in _COMPILED if pattern.search(text)]


def _answer_matches(rule: AnswerRule, answers: Mapping[str, Any]) -> bool:
    value = answers.get(rule.answer)
    if isinstance(value, list | tuple | set | frozenset):
        return any(v in rule.values for v in value)
    return value in rule.values


def counts_for_pattern(perpetrator: str | None, municipality: str | None) -> bool:
    """Whether two complaints with these answers can be counted as the same kind of case."""
    return (
        bool(perpetrator)
        and bool(municipality)
        and perpetrator not in REPEAT_IGNORED_PERPETRATORS
        and municipality not in REPEAT_IGNORED_MUNICIPALITIES
    )


def assess(
    answers: Mapping[str, Any], description: str | None = None, *, similar_earlier: int = 0
) -> Assessment:
    """Apply the rule table: answers, words in the description and earlier similar complaints.

    ``answers`` holds ``danger`` (bool), ``stakes`` (list), ``perpetrator`` and ``municipality``;
    ``similar_earlier`` is how many earlier complaints share perpetrator type and municipality
    within ``REPEAT_WINDOW_DAYS`` (the caller counts them in the database).
    """
    reasons: list[Reason] = [
        Reason(rule.code, rule.priority, "answer", rule.text)
        for rule in ANSWER_RULES
        if _answer_matches(rule, answers)
    ]
    reasons += [Reason(r.code, r.priority, "words", r.text) for r in detect_words(description)]
    if similar_earlier >= REPEAT_MIN_EARLIER and counts_for_pattern(
        answers.get("perpetrator"), answers.get("municipality")
    ):
        reasons.append(PATTERN_RULE)
    if not reasons:
        return Assessment("P4", (DEFAULT_REASON,))
    reasons.sort(key=lambda r: PRIORITIES.index(r.priority))  # stable: table order within a level
    return Assessment(reasons[0].priority, tuple(reasons))


def reason_codes() -> frozenset[str]:
    """Every reason code the rules can give (routing rows may name them as signals)."""
    codes: Iterable[str] = (
        *(r.code for r in ANSWER_RULES),
        *(r.code for r in WORD_RULES),
        PATTERN_RULE.code,
        DEFAULT_REASON.code,
    )
    return frozenset(codes)
