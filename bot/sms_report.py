"""Every SMS prompt in every language with its length, encoding and segment count.

Each extra segment is billed and a long message arrives in pieces on old phones, so a prompt
over three segments is a defect: ``raporto i18n sms-report`` exits non-zero on one.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from babel.messages.extract import extract_from_file

from bot.i18n import Catalogs
from bot.rendering import Renderer
from bot.sms_encoding import sms_info
from dialogs import complaint_dialog as cd
from dialogs import options as opt
from dialogs.messages import LANGUAGES, Conversation, Prompt, Text
from dialogs.municipalities import MUNICIPALITIES

MAX_SEGMENTS = 3
SMS_SOURCES = (
    "dialogs/complaint_dialog.py",
    "bot/intake.py",
    "bot/delivery.py",
)
"""The modules whose messages go out by SMS (the desk's texts never do)."""
PROJECT_DIR = Path(__file__).resolve().parent.parent
_KEYWORDS = {"N_": None, "nN_": (1, 2)}


@dataclass(frozen=True)
class Row:
    """One prompt in one language, as an SMS."""

    name: str
    language: str
    characters: int
    encoding: str
    units: int
    segments: int
    plain_segments: int  # in plain-letters mode (GSM-7)

    @property
    def over_budget(self) -> bool:
        """Whether the prompt takes more than three segments."""
        return self.segments > MAX_SEGMENTS


def _sms_msgids() -> dict[str, str | None]:
    """Message id → its plural form (None for plain messages), from the SMS sources."""
    found: dict[str, str | None] = {}
    for source in SMS_SOURCES:
        for _line, message, _comments, _context in extract_from_file(
            "python", PROJECT_DIR / source, keywords=_KEYWORDS
        ):
            if isinstance(message, tuple):
                found.setdefault(message[0], message[1])
            elif message:
                found.setdefault(message, None)
    return found


def _longest(catalogs: Catalogs, language: str, labels: list[Text]) -> Text:
    return max(labels, key=lambda t: len(catalogs.text(language, t)))


def _worst_params(catalogs: Catalogs, language: str) -> dict[str, str | int | Text]:
    """Placeholder values that make a prompt as long as it gets in this language."""
    place = max((m.name(language) for m in MUNICIPALITIES), key=len)
    return {
        "reference": "RAE-7K3Q9P",
        "pin": "0000",
        "count": 20,
        "municipality": place,
        "status": _longest(catalogs, language, list(opt.STATUS_LABELS.values())),
        "area": _longest(catalogs, language, [c.label for c in opt.AREAS]),
        "ground": _longest(catalogs, language, [c.label for c in opt.GROUNDS]),
        "perpetrator": _longest(catalogs, language, [c.label for c in opt.PERPETRATORS]),
        "when": _longest(catalogs, language, [c.label for c in opt.WHEN]),
    }


def prompts_for(catalogs: Catalogs, language: str) -> list[tuple[str, Prompt]]:
    """Every SMS prompt, questions with their options, at its longest in ``language``."""
    worst = _worst_params(catalogs, language)
    longest_place = max(MUNICIPALITIES, key=lambda m: len(m.name(language)))
    conv = Conversation(language=language, answers={"_candidate": longest_place.code})
    prompts: list[tuple[str, Prompt]] = []
    questions: set[str] = set()
    for state in cd.State:
        prompt = cd.question(state, conv, "sms")
        if prompt is None:
            continue
        if state is cd.State.REVIEW:
            prompt = Prompt(prompt.msgid, dict(worst), prompt.choices, prompt.step)
        questions.add(prompt.msgid)
        prompts.append((f"question:{state.value}", prompt))
    for msgid, plural_id in _sms_msgids().items():
        if msgid in questions:
            continue
        plural = (msgid, plural_id, 20) if plural_id else None
        prompts.append((msgid[:48], Prompt(msgid, dict(worst), plural=plural)))
    return prompts


def sms_report(catalogs: Catalogs | None = None) -> list[Row]:
    """Measure every SMS prompt in every language."""
    catalogs = catalogs or Catalogs()
    renderer = Renderer(catalogs)
    rows: list[Row] = []
    for language in LANGUAGES:
        for name, prompt in prompts_for(catalogs, language):
            text = _render(renderer, prompt, language, plain=False)
            info = sms_info(text)
            plain = sms_info(_render(renderer, prompt, language, plain=True))
            rows.append(
                Row(
                    name,
                    language,
                    info.characters,
                    info.encoding,
                    info.units,
                    info.segments,
                    plain.segments,
                )
            )
    return rows


def _render(renderer: Renderer, prompt: Prompt, language: str, *, plain: bool) -> str:
    params = {k: v for k, v in prompt.params.items() if f"%({k})s" in prompt.msgid}
    shaped = Prompt(
        prompt.msgid,
        params,
        prompt.choices,
        prompt.step,
        prompt.multi,
        prompt.plural,
        prompt.multilingual,
    )
    return renderer.sms(shaped, language, plain_letters=plain).text
