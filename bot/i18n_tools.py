"""The ``raporto i18n`` commands: extract the template, update, transliterate, check, compile.

Everything is done with Babel's Python API rather than ``pybabel``, because ``pybabel init`` and
``update`` refuse Romani (``rom``: CLDR has no such locale) and write a wrong ``Plural-Forms``
for Turkish. The extraction keywords live here only (:data:`EXTRACT_KEYWORDS`); the Makefile
calls ``raporto i18n extract``.

Serbian Cyrillic (``sr_Cyrl``) is the master text; ``sr_Latn`` is generated from it by the
deterministic Cyrillic to Latin transliteration, never edited by hand.
"""

from __future__ import annotations

import io
import os
import re
import tempfile
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

import click
from babel.messages.catalog import Catalog, Message
from babel.messages.extract import DEFAULT_KEYWORDS, extract_from_dir
from babel.messages.frontend import parse_keywords, parse_mapping_cfg
from babel.messages.mofile import write_mo
from babel.messages.pofile import PoFileError, PoFileParser, denormalize, write_po

from bot.i18n import DOMAIN, LOCALES_DIR
from dialogs import options as opt
from dialogs.lexicon import SMS_CARRIER_STOP_WORDS
from dialogs.messages import LANGUAGES
from dialogs.municipalities import normalize

PROJECT_DIR = LOCALES_DIR.parent
"""Where the sources and ``babel.cfg`` are: the extraction runs from here, like the Makefile."""

EXTRACT_KEYWORDS: tuple[str, ...] = (
    "N_",
    "nN_:1,2",
    "Cx:1c,2",
    "Kw:1c,2",
    "_",
    "gettext",
    "ngettext:1,2",
    "pgettext:1c,2",
    "lazy_gettext",
)
"""The extraction keywords (GNU gettext syntax), on top of Babel's defaults. The only copy."""

COMMENT_TAGS: tuple[str, ...] = ("TRANSLATORS:",)
"""Source comments starting with these are copied into the template for translators."""

PROJECT = "Raporto"
COPYRIGHT_HOLDER = "Raporto contributors"
SOURCE_LANGUAGE = "en"
SERBIAN_MASTER = "sr_Cyrl"
SERBIAN_GENERATED = "sr_Latn"

_TWO_FORMS = "nplurals=2; plural=(n != 1);"
_SLAVIC_FORMS = (
    "nplurals=3; plural=(n%10==1 && n%100!=11 ? 0 : n%10>=2 && n%10<=4 && "
    "(n%100<10 || n%100>=20) ? 1 : 2);"
)
PLURAL_FORMS: dict[str, str] = {
    "sq": _TWO_FORMS,
    "rom": _TWO_FORMS,  # assumed (no CLDR data); Kosovo Romani distinguishes one / many
    "sr_Latn": _SLAVIC_FORMS,
    "sr_Cyrl": _SLAVIC_FORMS,
    "tr": _TWO_FORMS,  # Babel says nplurals=1, but the texts do say "1 dosya" / "3 dosya"
    "bs": _SLAVIC_FORMS,
    "en": _TWO_FORMS,
}
"""The gettext ``Plural-Forms`` header every catalog must carry."""

LANGUAGE_TITLES: dict[str, str] = {
    "sq": "Albanian",
    "rom": "Romani (Kosovo Arli/Gurbet)",
    "sr_Latn": "Serbian (Latin script)",
    "sr_Cyrl": "Serbian (Cyrillic script)",
    "tr": "Turkish",
    "bs": "Bosnian",
    "en": "English",
}

REVIEW_STATUS_TAG = "REVIEW-STATUS:"
AWAITING_REVIEW = "awaiting review by a native speaker (machine-drafted)"
GENERATED_TAG = "GENERATED-FROM:"

_PLACEHOLDER = re.compile(r"%\((\w+)\)[-#0 +]*(?:\d+|\*)?(?:\.(?:\d+|\*))?([diouxXeEfFgGcrsa])")
_STRAY_PERCENT = re.compile(r"%(?!%)")
_CYRILLIC_LETTER = re.compile(r"[\u0400-\u04ff]")
_POT_DATE = re.compile(r'^"POT-Creation-Date: .*\\n"$', re.MULTILINE)

# --- Serbian Cyrillic to Latin --------------------------------------------------------------

_SERBIAN_LOWER: dict[str, str] = {
    "а": "a", "б": "b", "в": "v", "г": "g", "д": "d", "ђ": "đ", "е": "e", "ж": "ž",
    "з": "z", "и": "i", "ј": "j", "к": "k", "л": "l", "љ": "lj", "м": "m", "н": "n",
    "њ": "nj", "о": "o", "п": "p", "р": "r", "с": "s", "т": "t", "ћ": "ć", "у": "u",
    "ф": "f", "х": "h", "ц": "c", "ч": "č", "џ": "dž", "ш": "š",
}  # fmt: skip
_SERBIAN: dict[str, str] = {
    **_SERBIAN_LOWER,
    # Capitals are title case here ("Љ" -> "Lj"); transliterate() capitalises the whole
    # digraph inside a word written in capitals ("ЏЕП" -> "DŽEP").
    **{cyr.upper(): lat[0].upper() + lat[1:] for cyr, lat in _SERBIAN_LOWER.items()},
}


def _in_capitals(prev: str, nxt: str) -> bool:
    """Whether the letters around a capital digraph show a word written in capitals."""
    if nxt.isalpha():
        return nxt.isupper()
    return prev.isalpha() and prev.isupper()


def transliterate(text: str) -> str:
    """Serbian Cyrillic to Serbian Latin; everything that is not Serbian Cyrillic is kept."""
    out: list[str] = []
    last = len(text) - 1
    for i, ch in enumerate(text):
        latin = _SERBIAN.get(ch)
        if latin is None:
            out.append(ch)
            continue
        if len(latin) > 1 and ch.isupper():
            prev = text[i - 1] if i > 0 else ""
            nxt = text[i + 1] if i < last else ""
            if _in_capitals(prev, nxt):
                latin = latin.upper()
        out.append(latin)
    return "".join(out)


# --- reading and writing catalogs -----------------------------------------------------------


class CatalogError(Exception):
    """A catalog that cannot be read or compiled."""


class _ProjectCatalog(Catalog):
    """A catalog that keeps its ``Plural-Forms`` header even for a language CLDR lacks (rom).

    Babel only writes ``Plural-Forms`` when it knows the locale, so a Romani catalog would lose
    it on every write and its ``.mo`` would fall back to gettext's default rule. It also leaves
    out ``Generated-By``: that header names Babel's version, so every Babel release would
    rewrite every catalog and make the committed ones look stale.
    """

    def _headers_with_plural_forms(self) -> list[tuple[str, str]]:
        headers = [(k, v) for k, v in self._get_mime_headers() if k != "Generated-By"]
        if self.locale is None and self.locale_identifier:
            names = [name for name, _ in headers]
            if "Plural-Forms" not in names:
                at = names.index("Language-Team") + 1 if "Language-Team" in names else 0
                headers.insert(at, ("Plural-Forms", self.plural_forms))
        return headers

    mime_headers = property(_headers_with_plural_forms, Catalog._set_mime_headers)


def po_path(locales_dir: Path, language: str) -> Path:
    """Where a language's ``.po`` file lives."""
    return locales_dir / language / "LC_MESSAGES" / f"{DOMAIN}.po"


def read_catalog(path: Path, language: str | None = None) -> Catalog:
    """A ``.po`` or ``.pot`` file as a catalog; CatalogError when it is not valid PO."""
    catalog = _ProjectCatalog(locale=language, domain=DOMAIN)
    try:
        with path.open("rb") as fh:
            PoFileParser(catalog, abort_invalid=True).parse(fh)
    except PoFileError as exc:
        raise CatalogError(f"{path}: {exc}") from exc
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        raise CatalogError(f"{path}: {exc}") from exc
    return catalog


def render_catalog(catalog: Catalog, *, keep_obsolete: bool = False) -> bytes:
    """The PO text of a catalog, as it is written to disk."""
    buffer = io.BytesIO()
    write_po(
        buffer,
        catalog,
        no_location=True,
        ignore_obsolete=not keep_obsolete,
        include_previous=True,
    )
    return buffer.getvalue()


def _write_if_changed(path: Path, content: bytes) -> bool:
    """Write a file unless it already holds exactly this content; True when written."""
    if path.exists() and path.read_bytes() == content:
        return False
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(content)
    return True


def _set_headers(catalog: Catalog, language: str) -> None:
    """Set the Language and Plural-Forms headers a language's catalog must have."""
    catalog.mime_headers = [("Language", language), ("Plural-Forms", PLURAL_FORMS[language])]
    catalog.fuzzy = False


def header_comment(language: str, review_status: str | None = AWAITING_REVIEW) -> str:
    """The header comment a new catalog starts with (with its review status, except English)."""
    lines = [
        f"# {LANGUAGE_TITLES.get(language, language)} ({language}) translations for {PROJECT}.",
        f"# Copyright (C) {COPYRIGHT_HOLDER}",
        f"# This file is distributed under the same license as the {PROJECT} project.",
    ]
    if language != SOURCE_LANGUAGE and review_status:
        lines.append(f"# {REVIEW_STATUS_TAG} {review_status}")
    lines.append("#")
    return "\n".join(lines)


def _comment_lines(catalog: Catalog) -> list[str]:
    return [line for line in (catalog.header_comment or "").splitlines() if line.strip()]


def review_status(catalog: Catalog) -> str | None:
    """The review status stated in a catalog's header comment, if any."""
    for line in _comment_lines(catalog):
        text = line.lstrip("#").strip()
        if text.startswith(REVIEW_STATUS_TAG):
            return text[len(REVIEW_STATUS_TAG) :].strip()
    return None


def _ensure_review_line(catalog: Catalog, language: str) -> None:
    if language == SOURCE_LANGUAGE or review_status(catalog) is not None:
        return
    lines = [line for line in _comment_lines(catalog) if line.strip() != "#"]
    lines += [f"# {REVIEW_STATUS_TAG} {AWAITING_REVIEW}", "#"]
    catalog.header_comment = "\n".join(lines)


# --- extract --------------------------------------------------------------------------------


_parse_mapping: Callable[
    [IO[str], str], tuple[list[tuple[str, str]], dict[str, dict[str, Any]]]
] = parse_mapping_cfg  # Babel leaves it unannotated


def extract_template(source_dir: Path = PROJECT_DIR) -> Catalog:
    """Extract every message of the sources as a template (what ``pybabel extract`` does)."""
    with (source_dir / "babel.cfg").open(encoding="utf-8") as fh:
        method_map, options_map = _parse_mapping(fh, "babel.cfg")
    catalog = _ProjectCatalog(project=PROJECT, copyright_holder=COPYRIGHT_HOLDER, domain=DOMAIN)
    for filename, lineno, message, comments, context in extract_from_dir(
        source_dir,
        method_map,
        options_map,
        keywords=_keywords(),
        comment_tags=COMMENT_TAGS,
        strip_comment_tags=True,
    ):
        catalog.add(
            message,
            None,
            [(os.path.normpath(filename), lineno)],
            auto_comments=comments,
            context=context,
        )
    return catalog


def _keywords() -> dict[str, Any]:
    keywords: dict[str, Any] = dict(DEFAULT_KEYWORDS)
    keywords.update(parse_keywords(EXTRACT_KEYWORDS))
    return keywords


def render_template(template: Catalog) -> bytes:
    """The template's PO text, as the Makefile always wrote it (sorted, no locations)."""
    buffer = io.BytesIO()
    write_po(buffer, template, no_location=True, sort_output=True)
    return buffer.getvalue()


def write_template(template: Catalog, path: Path) -> bool:
    """Write the template unless only its creation date would change; True when written."""
    content = render_template(template)
    if path.exists():
        old = path.read_bytes().decode("utf-8")
        if _POT_DATE.sub("", old) == _POT_DATE.sub("", content.decode("utf-8")):
            return False
    return _write_if_changed(path, content)


# --- update and transliterate ---------------------------------------------------------------


def _fill_source_language(catalog: Catalog) -> None:
    """English is the source: an empty or fuzzy entry takes its message id as its text."""
    for message in catalog:
        if not message.id or (all(_strings(message)) and not message.fuzzy):
            continue
        if isinstance(message.id, str):
            message.string = message.id
        else:
            forms = catalog.num_plurals
            message.string = tuple(message.id[min(i, 1)] for i in range(forms))
        message.flags.discard("fuzzy")
        message.previous_id = []


def update_catalog(language: str, template: Catalog, locales_dir: Path) -> Catalog:
    """A language's catalog merged with the template (a new catalog when none exists yet)."""
    path = po_path(locales_dir, language)
    if path.exists():
        catalog = read_catalog(path, language)
    else:
        catalog = _ProjectCatalog(
            locale=language,
            domain=DOMAIN,
            project=PROJECT,
            copyright_holder=COPYRIGHT_HOLDER,
            header_comment=header_comment(language),
        )
    _set_headers(catalog, language)  # before merging, so plural entries get enough forms
    catalog.update(template)
    _ensure_review_line(catalog, language)
    if language == SOURCE_LANGUAGE:
        _fill_source_language(catalog)
    return catalog


def transliterated_catalog(cyrillic: Catalog) -> Catalog:
    """The Serbian Latin catalog generated from the Serbian Cyrillic one."""
    latin = _ProjectCatalog(
        locale=SERBIAN_GENERATED,
        domain=DOMAIN,
        project=cyrillic.project,
        version=cyrillic.version,
        copyright_holder=COPYRIGHT_HOLDER,
        msgid_bugs_address=cyrillic.msgid_bugs_address,
        creation_date=cyrillic.creation_date,
        revision_date=cyrillic.revision_date,
        last_translator=cyrillic.last_translator,
    )
    _set_headers(latin, SERBIAN_GENERATED)
    lines = [
        f"# {LANGUAGE_TITLES[SERBIAN_GENERATED]} ({SERBIAN_GENERATED}) translations for {PROJECT}.",
        f"# {GENERATED_TAG} {SERBIAN_MASTER} (raporto i18n transliterate); do not edit.",
    ]
    lines += [line for line in _comment_lines(cyrillic)[1:] if line.strip() != "#"]
    latin.header_comment = "\n".join([*lines, "#"])
    for message in cyrillic:
        if not message.id:
            continue
        string: str | tuple[str, ...]
        if isinstance(message.string, str):
            string = transliterate(message.string)
        else:
            string = tuple(transliterate(s) for s in _strings(message))
        latin[message.id] = Message(
            message.id,
            string,
            flags=message.flags,
            auto_comments=message.auto_comments,
            user_comments=[transliterate(c) for c in message.user_comments],
            previous_id=message.previous_id,
            context=message.context,
        )
    return latin


def generated_from(catalog: Catalog) -> str | None:
    """The catalog this one is generated from, as stated in its header comment."""
    for line in _comment_lines(catalog):
        text = line.lstrip("#").strip()
        if text.startswith(GENERATED_TAG):
            return text[len(GENERATED_TAG) :].split()[0]
    return None


def transliterate_catalogs(locales_dir: Path) -> bool:
    """Regenerate sr_Latn from sr_Cyrl; True when the file changed."""
    cyrillic = read_catalog(po_path(locales_dir, SERBIAN_MASTER), SERBIAN_MASTER)
    latin = transliterated_catalog(cyrillic)
    return _write_if_changed(po_path(locales_dir, SERBIAN_GENERATED), render_catalog(latin))


def update_catalogs(locales_dir: Path, template_path: Path, *, keep_obsolete: bool) -> list[str]:
    """Merge the template into every catalog, then regenerate sr_Latn; the languages changed."""
    template = read_catalog(template_path)
    changed: list[str] = []
    for language in LANGUAGES:
        if language == SERBIAN_GENERATED:
            continue
        catalog = update_catalog(language, template, locales_dir)
        content = render_catalog(catalog, keep_obsolete=keep_obsolete)
        if _write_if_changed(po_path(locales_dir, language), content):
            changed.append(language)
    if transliterate_catalogs(locales_dir):
        changed.append(SERBIAN_GENERATED)
    return changed


# --- checks ---------------------------------------------------------------------------------


def _key(message: Message) -> tuple[str, str | None]:
    msgid = message.id if isinstance(message.id, str) else message.id[0]
    return msgid, message.context


def _describe(message: Message) -> str:
    msgid, context = _key(message)
    short = msgid if len(msgid) <= 60 else msgid[:57] + "..."
    return f"[{context}] {short!r}" if context else repr(short)


def placeholders(text: str) -> set[tuple[str, str]]:
    """The named ``%(name)s`` placeholders of a text, with their conversion letters."""
    return {(m.group(1), m.group(2)) for m in _PLACEHOLDER.finditer(text)}


def _has_stray_percent(text: str) -> bool:
    """Whether a ``%`` would break ``text % params`` (not a placeholder, not ``%%``)."""
    rest = _PLACEHOLDER.sub("", text).replace("%%", "")
    return bool(_STRAY_PERCENT.search(rest))


def _strings(message: Message) -> list[str]:
    if isinstance(message.string, str):
        return [message.string]
    return list(message.string or ())


def _ids(message: Message) -> list[str]:
    return [message.id] if isinstance(message.id, str) else list(message.id)


def message_problems(message: Message) -> list[str]:
    """What is wrong with one translated message: placeholders, stray percent signs."""
    problems: list[str] = []
    expected: set[tuple[str, str]] = set()
    for msgid in _ids(message):
        expected |= placeholders(msgid)
    formatted = bool(expected) or "python-format" in message.flags
    for index, text in enumerate(_strings(message)):
        if not text:
            continue
        where = f"form {index}: " if not isinstance(message.string, str) else ""
        found = placeholders(text)
        if found != expected:
            missing = ", ".join(f"%({n}){c}" for n, c in sorted(expected - found))
            extra = ", ".join(f"%({n}){c}" for n, c in sorted(found - expected))
            parts = [f"missing {missing}" if missing else "", f"unknown {extra}" if extra else ""]
            detail = "; ".join(part for part in parts if part)
            problems.append(f"{where}placeholders differ from the message id ({detail})")
        if formatted and _has_stray_percent(text):
            problems.append(f"{where}a lone '%' breaks formatting (write '%%')")
    return problems


def _plural_form_counts(path: Path) -> Iterator[tuple[int, int]]:
    """(line number, number of msgstr[N] forms) of every live plural entry in a PO file."""
    start = 0
    plural = False
    forms: set[int] = set()
    lines = path.read_text(encoding="utf-8").splitlines()
    for lineno, raw in enumerate([*lines, ""], 1):
        line = raw.strip()
        if not line:
            if plural:
                yield start, len(forms)
            start, plural, forms = 0, False, set()
            continue
        if line.startswith("#"):
            continue
        if not start:
            start = lineno
        if line.startswith("msgid_plural"):
            plural = True
        match = re.match(r"msgstr\[(\d+)\]", line)
        if match:
            forms.add(int(match.group(1)))


def header_field(path: Path, name: str) -> str | None:
    """A header field exactly as written in the file (Babel fills in defaults when absent)."""
    block: list[str] = []
    in_header = False
    for raw in path.read_text(encoding="utf-8").splitlines():
        line = raw.strip()
        if line.startswith("#"):
            continue
        if not in_header:
            if line.startswith("msgstr"):
                in_header = True
                block.append(line[len("msgstr") :].strip())
            elif line and not line.startswith(("msgid", '"')):
                return None  # the first entry is not the header
            continue
        if not line.startswith('"'):
            break
        block.append(line)
    for field in denormalize("\n".join(block)).splitlines():
        key, _, value = field.partition(":")
        if key.strip().lower() == name.lower():
            return value.strip()
    return None


@dataclass(frozen=True)
class Problem:
    """One thing wrong with the translations."""

    where: str
    what: str

    def __str__(self) -> str:
        return f"{self.where}: {self.what}"


def catalog_problems(language: str, path: Path, template: Catalog | None = None) -> list[Problem]:
    """What is wrong with one catalog; with a template, also what is missing or left over."""
    if not path.exists():
        return [Problem(language, f"no catalog at {path}")]
    try:
        path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        return [Problem(language, f"{path}: not UTF-8 ({exc})")]
    problems: list[Problem] = []

    def add(what: str) -> None:
        problems.append(Problem(language, what))

    # The header and the number of forms are checked on the text as written: Babel's reader
    # fills in a default Plural-Forms when there is none and refuses surplus forms.
    if header_field(path, "Language") != language:
        add(f"header Language is {header_field(path, 'Language')!r}, expected {language!r}")
    expected_forms = PLURAL_FORMS.get(language)
    written_forms = header_field(path, "Plural-Forms")
    if expected_forms and written_forms != expected_forms:
        add(f"header Plural-Forms is {written_forms!r}, expected {expected_forms!r}")
    declared = re.search(r"nplurals\s*=\s*(\d+)", written_forms or "")
    nplurals = int(declared.group(1)) if declared else 2
    for lineno, count in _plural_form_counts(path):
        if count != nplurals:
            add(f"line {lineno}: plural entry has {count} forms, nplurals is {nplurals}")
    try:
        catalog = read_catalog(path, language)
    except CatalogError as exc:
        add(str(exc))
        return problems
    if catalog.fuzzy:
        add("the header is marked fuzzy")
    if language != SOURCE_LANGUAGE and review_status(catalog) is None:
        add(f"the header comment has no '# {REVIEW_STATUS_TAG} ...' line")
    for key in catalog.obsolete:
        msgid = key if isinstance(key, str) else key[0]
        add(f"obsolete entry {msgid[:60]!r} (remove it, or run `raporto i18n update`)")
    for message in catalog:
        if not message.id:
            continue
        if message.fuzzy:
            add(f"fuzzy: {_describe(message)}")
        if any(not s for s in _strings(message)):
            add(f"untranslated: {_describe(message)}")
        for what in message_problems(message):
            add(f"{_describe(message)}: {what}")
    if template is not None:
        wanted = {_key(m) for m in template if m.id}
        present = {_key(m) for m in catalog if m.id}
        for msgid, context in sorted(wanted - present, key=str):
            add(f"missing: {f'[{context}] ' if context else ''}{msgid[:60]!r}")
        for msgid, context in sorted(present - wanted, key=str):
            add(f"not in the template: {f'[{context}] ' if context else ''}{msgid[:60]!r}")
    return problems


def _message_keys(catalog: Catalog) -> set[tuple[str | tuple[str, ...], str | None]]:
    return {(m.id if isinstance(m.id, str) else tuple(m.id), m.context) for m in catalog if m.id}


def template_problems(template_path: Path, source_dir: Path) -> list[Problem]:
    """Whether the template holds exactly the messages the sources have now."""
    if not template_path.exists():
        return [Problem("template", f"no template at {template_path}")]
    try:
        template = read_catalog(template_path)
    except CatalogError as exc:
        return [Problem("template", str(exc))]
    fresh = _message_keys(extract_template(source_dir))
    stored = _message_keys(template)
    problems = [
        Problem("template", f"stale: {_short(key)} is in the sources but not in the template")
        for key in sorted(fresh - stored, key=str)
    ]
    problems += [
        Problem("template", f"stale: {_short(key)} is in the template but not in the sources")
        for key in sorted(stored - fresh, key=str)
    ]
    if problems:
        problems.append(Problem("template", "run `make i18n-update` (extract, then update)"))
    return problems


def _short(key: tuple[str | tuple[str, ...], str | None]) -> str:
    msgid, context = key
    text = msgid if isinstance(msgid, str) else msgid[0]
    text = text if len(text) <= 60 else text[:57] + "..."
    return f"[{context}] {text!r}" if context else repr(text)


def transliteration_problems(locales_dir: Path) -> list[Problem]:
    """Whether sr_Latn is exactly the transliteration of sr_Cyrl."""
    cyr_path = po_path(locales_dir, SERBIAN_MASTER)
    lat_path = po_path(locales_dir, SERBIAN_GENERATED)
    if not cyr_path.exists() or not lat_path.exists():
        return []  # reported as missing catalogs
    try:
        cyrillic = read_catalog(cyr_path, SERBIAN_MASTER)
        latin = read_catalog(lat_path, SERBIAN_GENERATED)
    except CatalogError:
        return []  # reported by catalog_problems
    problems: list[Problem] = []
    where = SERBIAN_GENERATED
    if generated_from(latin) != SERBIAN_MASTER:
        problems.append(Problem(where, f"header comment lacks '# {GENERATED_TAG} sr_Cyrl'"))
    expected = {_key(m): _strings(m) for m in transliterated_catalog(cyrillic) if m.id}
    actual = {_key(m): _strings(m) for m in latin if m.id}
    for key in sorted(expected.keys() | actual.keys(), key=str):
        if expected.get(key) != actual.get(key):
            label = f"[{key[1]}] {key[0][:50]!r}" if key[1] else repr(key[0][:50])
            problems.append(Problem(where, f"not the transliteration of sr_Cyrl: {label}"))
    for message in latin:
        if message.id and any(_CYRILLIC_LETTER.search(s) for s in _strings(message)):
            problems.append(Problem(where, f"Cyrillic left in {_describe(message)}"))
    if problems:
        problems.append(Problem(where, "run `raporto i18n transliterate`"))
    return problems


def check(locales_dir: Path, template_path: Path, source_dir: Path) -> list[Problem]:
    """Every problem with the template and the catalogs (an empty list when all is well)."""
    problems = template_problems(template_path, source_dir)
    template: Catalog | None = None
    if template_path.exists():
        try:
            template = read_catalog(template_path)
        except CatalogError:
            template = None
    for language in LANGUAGES:
        problems += catalog_problems(language, po_path(locales_dir, language), template)
    problems += transliteration_problems(locales_dir)
    return problems


# --- command words that collide -------------------------------------------------------------

_GLOBAL_COMMANDS = ("delete", "help", "back", "restart", "language", "stop", "start")
"""The commands the lexicon tries at every step, in its order."""


def _translations(locales_dir: Path) -> dict[str, Catalog]:
    catalogs: dict[str, Catalog] = {}
    for language in LANGUAGES:
        path = po_path(locales_dir, language)
        if path.exists():
            try:
                catalogs[language] = read_catalog(path, language)
            except CatalogError:
                continue
    return catalogs


@dataclass(frozen=True)
class Collision:
    """A typed word that means two things, and the languages whose catalogs give it."""

    word: str
    languages: frozenset[str]
    what: str

    def __str__(self) -> str:
        return f"words: {self.word!r} ({', '.join(sorted(self.languages))}) {self.what}"


def word_collisions(locales_dir: Path) -> list[Collision]:
    """Typed words that mean two things, with every language's words pooled as the lexicon does.

    A word of an option that is also a command word can only be picked by number; a "done" or
    "skip" word that is a command (or an SMS carrier stop word) never means "done".
    """
    catalogs = _translations(locales_dir)

    def words(msgid: str, context: str, *, split: bool) -> dict[str, set[str]]:
        """Normalised word -> the languages that give it."""
        found: dict[str, set[str]] = {}
        for language, catalog in catalogs.items():
            message = catalog.get(msgid, context)
            text = message.string if message is not None and message.string else msgid
            if not isinstance(text, str):
                continue
            for part in text.split("|") if split else [text]:
                word = normalize(part)
                if word:
                    found.setdefault(word, set()).add(language)
        return found

    commands = {
        name: words(text.msgid, text.context or "", split=True)
        for name, text in opt.COMMAND_WORDS.items()
    }
    problems: list[Collision] = []

    def report(word: str, langs: Iterable[str], what: str) -> None:
        problems.append(Collision(word, frozenset(langs), what))

    checked = [*_GLOBAL_COMMANDS, "done", "skip"]
    for i, first in enumerate(checked):
        for second in checked[i + 1 :]:
            if {first, second} == {"done", "skip"}:
                continue  # both mean "go on" where both are accepted
            for word in commands[first].keys() & commands[second].keys():
                langs = commands[first][word] | commands[second][word]
                report(word, langs, f"is a {first!r} word and a {second!r} word")
    for name in ("done", "skip", "restart", "start", "back", "help", "language", "delete"):
        for word in commands[name].keys() & SMS_CARRIER_STOP_WORDS:
            report(word, commands[name][word], f"is a {name!r} word but stops SMS at the carrier")
    status_words = commands["status"]
    global_words = {w: n for n in _GLOBAL_COMMANDS for w in commands[n]}
    groups = {
        "yes/no": opt.YES_NO,
        "area": opt.AREAS,
        "ground": opt.GROUNDS,
        "perpetrator": opt.PERPETRATORS,
        "when": opt.WHEN,
        "stakes": opt.STAKES,
        "contact (sms)": opt.CONTACT_SMS,
        "contact (telegram)": opt.CONTACT_TELEGRAM,
        "sharing": opt.SHARING,
        "review": opt.REVIEW,
        "change": opt.CHANGE,
    }
    for step, choices in groups.items():
        owners: dict[str, list[str]] = {}
        for choice in choices:
            option_words = words(choice.label.msgid, choice.label.context or "", split=False)
            key = ("yes" if choice.value in {"yes", "no"} else step, choice.value)
            extra = opt.OPTION_KEYWORDS.get(key)
            if extra is not None:
                for word, langs in words(extra.msgid, extra.context or "", split=True).items():
                    option_words.setdefault(word, set()).update(langs)
            for word, langs in option_words.items():
                owners.setdefault(word, []).append(choice.value)
                if word in global_words:
                    report(
                        word,
                        langs,
                        f"picks {step} option {choice.value!r} but is the "
                        f"{global_words[word]!r} command",
                    )
                first = word.split(" ", 1)[0]
                if " " in word and first in status_words:
                    report(word, langs, f"starts with a 'status' word ({step} {choice.value!r})")
        for word, values in owners.items():
            if len(set(values)) > 1:
                report(word, catalogs, f"picks several {step} options: {', '.join(values)}")
    return problems


# --- compile --------------------------------------------------------------------------------


def compile_problems(language: str, catalog: Catalog) -> list[Problem]:
    """Errors that must stop a catalog from being compiled (wrong forms, broken placeholders)."""
    problems: list[Problem] = []
    for message, errors in catalog.check():
        for error in errors:
            problems.append(Problem(language, f"{_describe(message)}: {error}"))
    for message in catalog:
        if message.id and not message.fuzzy:
            problems += [
                Problem(language, f"{_describe(message)}: {what}")
                for what in message_problems(message)
            ]
        if message.id and not isinstance(message.string, str):
            if len(_strings(message)) != catalog.num_plurals:
                problems.append(Problem(language, f"{_describe(message)}: wrong number of forms"))
    expected_forms = PLURAL_FORMS.get(language)
    if expected_forms and catalog.plural_forms != expected_forms:
        wrong = f"Plural-Forms is {catalog.plural_forms!r}, expected {expected_forms!r}"
        problems.append(Problem(language, wrong))
    return problems


def compile_catalogs(locales_dir: Path) -> list[Path]:
    """Compile every catalog to a ``.mo`` next to it; nothing is written if any has errors."""
    compiled: list[tuple[Path, Catalog]] = []
    problems: list[Problem] = []
    for language in LANGUAGES:
        path = po_path(locales_dir, language)
        if not path.exists():
            problems.append(Problem(language, f"no catalog at {path}"))
            continue
        try:
            catalog = read_catalog(path, language)
        except CatalogError as exc:
            problems.append(Problem(language, str(exc)))
            continue
        problems += compile_problems(language, catalog)
        compiled.append((path.with_suffix(".mo"), catalog))
    if problems:
        raise CatalogError("\n".join(str(p) for p in problems))
    written: list[Path] = []
    for mo_path, catalog in compiled:
        buffer = io.BytesIO()
        write_mo(buffer, catalog, use_fuzzy=False)
        # Written whole to a temporary file and renamed: a running bot never reads half a file.
        fd, tmp = tempfile.mkstemp(dir=mo_path.parent, suffix=".mo.tmp")
        with os.fdopen(fd, "wb") as fh:
            fh.write(buffer.getvalue())
        os.replace(tmp, mo_path)
        written.append(mo_path)
    return written


# --- the click group ------------------------------------------------------------------------

_locales_option = click.option(
    "--locales-dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=LOCALES_DIR,
    show_default=True,
    help="Directory with <lang>/LC_MESSAGES/messages.po.",
)
_template_option = click.option(
    "--template",
    "template_path",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="The template (default: messages.pot in the locales directory).",
)
_source_option = click.option(
    "--source-dir",
    type=click.Path(file_okay=False, exists=True, path_type=Path),
    default=PROJECT_DIR,
    show_default=True,
    help="Where the sources and babel.cfg are.",
)


def _template(locales_dir: Path, template_path: Path | None) -> Path:
    return template_path if template_path is not None else locales_dir / "messages.pot"


@click.group("i18n")
def i18n() -> None:
    """Translations: extract the template, update, transliterate, check and compile catalogs."""


@i18n.command("extract")
@_locales_option
@_template_option
@_source_option
def extract_command(locales_dir: Path, template_path: Path | None, source_dir: Path) -> None:
    """Extract the messages of the sources into the template (messages.pot)."""
    path = _template(locales_dir, template_path)
    template = extract_template(source_dir)
    written = write_template(template, path)
    count = sum(1 for m in template if m.id)
    click.echo(f"{path}: {count} messages" + ("" if written else " (unchanged)"))


@i18n.command("update")
@_locales_option
@_template_option
@click.option("--keep-obsolete", is_flag=True, help="Keep removed messages as #~ entries.")
def update_command(locales_dir: Path, template_path: Path | None, keep_obsolete: bool) -> None:
    """Merge the template into every catalog and regenerate sr_Latn from sr_Cyrl."""
    try:
        changed = update_catalogs(
            locales_dir, _template(locales_dir, template_path), keep_obsolete=keep_obsolete
        )
    except CatalogError as exc:
        raise click.ClickException(str(exc)) from exc
    click.echo("updated: " + (", ".join(changed) if changed else "nothing changed"))


@i18n.command("transliterate")
@_locales_option
def transliterate_command(locales_dir: Path) -> None:
    """Write sr_Latn from sr_Cyrl by Serbian Cyrillic to Latin transliteration."""
    try:
        changed = transliterate_catalogs(locales_dir)
    except CatalogError as exc:
        raise click.ClickException(str(exc)) from exc
    path = po_path(locales_dir, SERBIAN_GENERATED)
    click.echo(f"{path}" + ("" if changed else " (unchanged)"))


@i18n.command("check")
@_locales_option
@_template_option
@_source_option
@click.pass_context
def check_command(
    ctx: click.Context, locales_dir: Path, template_path: Path | None, source_dir: Path
) -> None:
    """Fail when the template is stale or a catalog is incomplete, fuzzy or broken."""
    problems = check(locales_dir, _template(locales_dir, template_path), source_dir)
    for warning in word_collisions(locales_dir):
        click.echo(f"warning: {warning}", err=True)
    if problems:
        for problem in problems:
            click.echo(str(problem), err=True)
        click.echo(f"{len(problems)} translation problem(s)", err=True)
        ctx.exit(1)
    click.echo(f"translations OK ({len(LANGUAGES)} catalogs)")


@i18n.command("compile")
@_locales_option
def compile_command(locales_dir: Path) -> None:
    """Compile every catalog to .mo; refuses (writing nothing) when a catalog has errors."""
    try:
        written = compile_catalogs(locales_dir)
    except CatalogError as exc:
        raise click.ClickException(f"not compiled, the catalogs have errors:\n{exc}") from exc
    for path in written:
        click.echo(f"compiled {path}")


# `sms-report` (SMS segment budgets of every prompt) is added to this group by the lead.
