"""Catalogs: the Babel translations of every supported language, loaded once."""

from __future__ import annotations

import io
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

from babel import Locale
from babel.dates import format_datetime
from babel.messages.mofile import write_mo
from babel.messages.pofile import read_po
from babel.support import Translations

from dialogs.messages import LANGUAGES, Text

LOCALES_DIR = Path(__file__).resolve().parent.parent / "locales"
DOMAIN = "messages"

# Romani has no CLDR locale: dates and numbers are formatted as in Albanian (Kosovo), which
# most Roma in Kosovo also read. Serbian and Albanian use their Kosovo variants (24-hour clock).
FORMAT_LOCALES: dict[str, str] = {
    "sq": "sq_XK",
    "rom": "sq_XK",
    "sr_Latn": "sr_Latn_XK",
    "sr_Cyrl": "sr_Cyrl_XK",
    "tr": "tr",
    "bs": "bs",
    "en": "en_GB",
}

KOSOVO_TIME = ZoneInfo("Europe/Belgrade")  # Kosovo keeps Central European time

UNTRANSLATED_CONTEXTS = frozenset({"language name"})
"""Texts shown as they are in every language (each language's name in itself)."""


def _load(path_dir: Path, language: str) -> Translations:
    po = path_dir / language / "LC_MESSAGES" / f"{DOMAIN}.po"
    mo = po.with_suffix(".mo")
    if mo.exists() and (not po.exists() or mo.stat().st_mtime >= po.stat().st_mtime):
        with mo.open("rb") as fh:
            return Translations(fh, domain=DOMAIN)
    if not po.exists():
        return Translations(domain=DOMAIN)
    # No compiled catalog (a fresh checkout): compile in memory so nothing is stale.
    with po.open("rb") as fh:
        catalog = read_po(fh, locale=None, domain=DOMAIN)
    buffer = io.BytesIO()
    write_mo(buffer, catalog, use_fuzzy=False)
    buffer.seek(0)
    return Translations(buffer, domain=DOMAIN)


class Catalogs:
    """Every language's translations, with helpers that take the language per call."""

    def __init__(self, locales_dir: Path = LOCALES_DIR) -> None:
        self.locales_dir = locales_dir
        self._translations = {lang: _load(locales_dir, lang) for lang in LANGUAGES}

    def translations(self, language: str) -> Translations:
        """The Babel translations object of one language (English when unknown)."""
        return self._translations.get(language) or self._translations["en"]

    def gettext(self, language: str, msgid: str) -> str:
        """A message in a language."""
        return self.translations(language).gettext(msgid)

    def pgettext(self, language: str, context: str, msgid: str) -> str:
        """A message with a context in a language."""
        return str(self.translations(language).pgettext(context, msgid))

    def ngettext(self, language: str, singular: str, plural: str, n: int) -> str:
        """A counted message in a language, with that language's plural rule."""
        return self.translations(language).ngettext(singular, plural, n)

    def text(self, language: str, text: Text) -> str:
        """A translatable text in a language."""
        if text.context in UNTRANSLATED_CONTEXTS:
            return text.msgid
        if text.context:
            return self.pgettext(language, text.context, text.msgid)
        return self.gettext(language, text.msgid)

    def format_datetime(self, language: str, value: datetime) -> str:
        """A date and time as people of that language write it (in Kosovo time)."""
        locale = Locale.parse(FORMAT_LOCALES.get(language, "en_GB"))
        return format_datetime(value, "short", tzinfo=KOSOVO_TIME, locale=locale)
