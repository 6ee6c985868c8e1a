"""The translation catalogs and the ``raporto i18n`` commands that keep them right."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest
from babel.messages.catalog import Catalog, Message
from click.testing import CliRunner, Result

from bot import i18n_tools as tools
from bot.i18n import LOCALES_DIR, Catalogs
from dialogs import options as opt
from dialogs.complaint_dialog import help_prompt
from dialogs.messages import LANGUAGES
from dialogs.municipalities import normalize

TEMPLATE = LOCALES_DIR / "messages.pot"
NON_ENGLISH = [lang for lang in LANGUAGES if lang != "en"]
TWO_FORMS = "nplurals=2; plural=(n != 1);"
SLAVIC_FORMS = (
    "nplurals=3; plural=(n%10==1 && n%100!=11 ? 0 : n%10>=2 && n%10<=4 && "
    "(n%100<10 || n%100>=20) ? 1 : 2);"
)
EXPECTED_PLURAL_FORMS = {
    "sq": TWO_FORMS,
    "en": TWO_FORMS,
    "tr": TWO_FORMS,
    "rom": TWO_FORMS,
    "sr_Cyrl": SLAVIC_FORMS,
    "sr_Latn": SLAVIC_FORMS,
    "bs": SLAVIC_FORMS,
}
DANGER = "Are you in danger right now?"
FILES = "Received %(count)s file. Send more, or 0 when you are done."
FILES_PLURAL = "Received %(count)s files. Send more, or 0 when you are done."
NAMED = re.compile(r"%\((\w+)\)s")


def run(*args: str) -> Result:
    """Run ``raporto i18n ...`` in-process."""
    return CliRunner().invoke(tools.i18n, list(args))


def catalog(language: str, locales_dir: Path = LOCALES_DIR) -> Catalog:
    return tools.read_catalog(tools.po_path(locales_dir, language), language)


def strings(message: Message) -> list[str]:
    if isinstance(message.string, str):
        return [message.string]
    return list(message.string or ())


@pytest.fixture
def locales(tmp_path: Path) -> Path:
    """A copy of the repository's template and catalogs (no compiled files)."""
    target = tmp_path / "locales"
    shutil.copytree(LOCALES_DIR, target, ignore=shutil.ignore_patterns("*.mo"))
    return target


def edit(
    locales_dir: Path, language: str, msgid: str, context: str | None = None, **changes: object
) -> None:
    """Change one message of a copied catalog and write it back as the tools write it."""
    cat = catalog(language, locales_dir)
    message = cat.get(msgid, context)
    assert message is not None, msgid
    for name, value in changes.items():
        setattr(message, name, value)
    tools.po_path(locales_dir, language).write_bytes(tools.render_catalog(cat))


def check(locales_dir: Path, template: Path | None = None) -> Result:
    return run(
        "check",
        "--locales-dir",
        str(locales_dir),
        "--template",
        str(template or locales_dir / "messages.pot"),
    )


# --- the repository's catalogs --------------------------------------------------------------


def test_check_passes_on_the_repository_catalogs() -> None:
    result = run("check")
    assert result.exit_code == 0, result.output
    assert "translations OK" in result.output


@pytest.mark.parametrize("language", LANGUAGES)
def test_plural_forms_header(language: str) -> None:
    path = tools.po_path(LOCALES_DIR, language)
    assert tools.header_field(path, "Plural-Forms") == EXPECTED_PLURAL_FORMS[language]
    assert tools.header_field(path, "Language") == language
    assert catalog(language).num_plurals == (3 if language in ("sr_Cyrl", "sr_Latn", "bs") else 2)


@pytest.mark.parametrize("language", NON_ENGLISH)
def test_non_english_catalogs_await_native_review(language: str) -> None:
    text = tools.po_path(LOCALES_DIR, language).read_text(encoding="utf-8")
    header = text.split('msgid ""', 1)[0]
    assert "# REVIEW-STATUS: awaiting review by a native speaker (machine-drafted)" in header
    assert tools.review_status(catalog(language)) == tools.AWAITING_REVIEW


@pytest.mark.parametrize("language", LANGUAGES)
def test_every_message_is_translated_with_the_same_placeholders(language: str) -> None:
    template = tools.read_catalog(TEMPLATE)
    cat = catalog(language)
    for entry in template:
        if not entry.id:
            continue
        message = cat.get(entry.id if isinstance(entry.id, str) else entry.id[0], entry.context)
        assert message is not None, entry.id
        assert not message.fuzzy, message.id
        ids = [message.id] if isinstance(message.id, str) else list(message.id)
        expected = set().union(*(NAMED.findall(i) for i in ids))
        for text in strings(message):
            assert text, message.id
            assert set(NAMED.findall(text)) == expected, (message.id, text)


def test_sr_latn_is_the_transliteration_of_sr_cyrl() -> None:
    cyrillic = catalog("sr_Cyrl")
    latin = catalog("sr_Latn")
    assert tools.generated_from(latin) == "sr_Cyrl"
    pairs = 0
    for message in cyrillic:
        if not message.id:
            continue
        key = message.id if isinstance(message.id, str) else message.id[0]
        other = latin.get(key, message.context)
        assert other is not None, key
        assert strings(other) == [tools.transliterate(s) for s in strings(message)]
        pairs += 1
    assert pairs == len(latin) > 100


@pytest.mark.parametrize(
    ("cyrillic", "latin"),
    [
        ("Љубљана", "Ljubljana"),
        ("ЏЕП", "DŽEP"),
        ("Ђаковица", "Đakovica"),
        ("Њ", "Nj"),
        ("Њ.", "Nj."),
        ("ЊЕГОШ", "NJEGOŠ"),
        ("ЉУ", "LJU"),
        ("Џак", "Džak"),
        ("Гњилане", "Gnjilane"),
        ("ЋЕВАП и Ћевап", "ĆEVAP i Ćevap"),
        ("Пошаљите: статус %(reference)s", "Pošaljite: status %(reference)s"),
        ("да|може|%(count)s", "da|može|%(count)s"),
        ("RAE-7K3Q9P", "RAE-7K3Q9P"),
    ],
)
def test_transliteration(cyrillic: str, latin: str) -> None:
    assert tools.transliterate(cyrillic) == latin


@pytest.mark.parametrize("language", LANGUAGES)
def test_help_names_the_command_words_of_its_own_language(language: str) -> None:
    catalogs = Catalogs()
    help_text = normalize(catalogs.gettext(language, help_prompt().msgid))
    for name in ("back", "restart", "language", "stop", "status", "delete"):
        words = {normalize(w) for w in catalogs.text(language, opt.COMMAND_WORDS[name]).split("|")}
        assert any(re.search(rf"\b{re.escape(w)}\b", help_text) for w in words if w), (
            name,
            help_text,
        )


def test_translations_add_no_word_collisions() -> None:
    """Typed words that mean two things come only from the English message ids (a code matter)."""
    # The ground "Language" is also the language command in English, so in every language.
    same_as_english = "picks ground option 'language' but is the 'language' command"
    for collision in tools.word_collisions(LOCALES_DIR):
        assert collision.languages == {"en"} or collision.what == same_as_english, str(collision)


# --- compile --------------------------------------------------------------------------------


def test_compile_writes_mo_files_that_catalogs_load(locales: Path) -> None:
    result = run("compile", "--locales-dir", str(locales))
    assert result.exit_code == 0, result.output
    expected = {lang: catalog(lang, locales) for lang in ("rom", "sr_Cyrl")}
    for language in LANGUAGES:
        assert tools.po_path(locales, language).with_suffix(".mo").exists()
        tools.po_path(locales, language).unlink()  # only the .mo files are left to load
    loaded = Catalogs(locales)
    for language, cat in expected.items():
        danger = cat.get(DANGER)
        assert danger is not None
        assert loaded.gettext(language, DANGER) == danger.string != DANGER
    assert loaded.gettext("rom", DANGER) == "San akana ande opasnost?"
    assert loaded.gettext("sr_Cyrl", DANGER) == "Да ли сте сада у опасности?"
    assert loaded.pgettext("rom", "choice", "Yes") == "Va"
    serbian = {loaded.ngettext("sr_Cyrl", FILES, FILES_PLURAL, n) for n in (1, 2, 5)}
    assert len(serbian) == 3
    assert loaded.ngettext("sr_Cyrl", FILES, FILES_PLURAL, 21) == loaded.ngettext(
        "sr_Cyrl", FILES, FILES_PLURAL, 1
    )
    romani = [loaded.ngettext("rom", FILES, FILES_PLURAL, n) for n in (1, 2)]
    assert romani[0] != romani[1] and "%(count)s" in romani[1]


def test_compile_refuses_a_catalog_with_a_broken_placeholder(locales: Path) -> None:
    edit(locales, "rom", "Did you mean %(municipality)s?", string="Gndisardan %(place)s?")
    result = run("compile", "--locales-dir", str(locales))
    assert result.exit_code != 0
    assert "rom" in result.output and "%(place)s" in result.output
    assert not list(locales.glob("*/LC_MESSAGES/*.mo"))


# --- check fails on broken copies -----------------------------------------------------------


def test_check_fails_on_a_fuzzy_entry(locales: Path) -> None:
    cat = catalog("sq", locales)
    message = cat.get(DANGER)
    assert message is not None
    message.flags.add("fuzzy")
    tools.po_path(locales, "sq").write_bytes(tools.render_catalog(cat))
    result = check(locales)
    assert result.exit_code == 1
    assert "sq: fuzzy: 'Are you in danger right now?'" in result.output


def test_check_fails_on_an_untranslated_entry(locales: Path) -> None:
    edit(locales, "tr", "Yes", "choice", string="")
    result = check(locales)
    assert result.exit_code == 1
    assert "tr: untranslated: [choice] 'Yes'" in result.output


def test_check_fails_on_a_renamed_placeholder(locales: Path) -> None:
    edit(locales, "bs", "Did you mean %(municipality)s?", string="Je li to %(mjesto)s?")
    result = check(locales)
    assert result.exit_code == 1
    assert "bs:" in result.output and "placeholders differ" in result.output


def test_check_fails_on_a_stale_template(locales: Path) -> None:
    template = locales / "messages.pot"
    stale = tools.read_catalog(template)
    stale.delete(DANGER)
    template.write_bytes(tools.render_template(stale))
    result = check(locales, template)
    assert result.exit_code == 1
    assert "template: stale: 'Are you in danger right now?' is in the sources" in result.output


def test_check_fails_when_sr_latn_is_edited_by_hand(locales: Path) -> None:
    edit(locales, "sr_Latn", "Yes", "choice", string="Jes")
    result = check(locales)
    assert result.exit_code == 1
    assert "sr_Latn: not the transliteration of sr_Cyrl: [choice] 'Yes'" in result.output


def test_check_fails_on_a_wrong_plural_header_and_form_count(locales: Path) -> None:
    path = tools.po_path(locales, "tr")
    text = path.read_text(encoding="utf-8")
    text = text.replace(TWO_FORMS, "nplurals=1; plural=0;")  # what `pybabel init -l tr` writes
    path.write_text(text, encoding="utf-8")
    result = check(locales)
    assert result.exit_code == 1
    assert "tr: header Plural-Forms is 'nplurals=1; plural=0;'" in result.output
    assert (
        "tr: line" in result.output and "plural entry has 2 forms, nplurals is 1" in result.output
    )


def test_check_fails_on_an_obsolete_entry(locales: Path) -> None:
    path = tools.po_path(locales, "sq")
    with path.open("a", encoding="utf-8") as fh:
        fh.write('\n#~ msgid "An old question?"\n#~ msgstr "Një pyetje e vjetër?"\n')
    result = check(locales)
    assert result.exit_code == 1
    assert "sq: obsolete entry 'An old question?'" in result.output


# --- update, transliterate, extract ---------------------------------------------------------


def test_update_merges_a_new_message_and_keeps_the_headers(locales: Path) -> None:
    template_path = locales / "messages.pot"
    template = tools.read_catalog(template_path)
    template.add("A brand new question?")
    template_path.write_bytes(tools.render_template(template))
    result = run("update", "--locales-dir", str(locales), "--template", str(template_path))
    assert result.exit_code == 0, result.output
    for language in LANGUAGES:
        path = tools.po_path(locales, language)
        assert tools.header_field(path, "Plural-Forms") == EXPECTED_PLURAL_FORMS[language]
        new = catalog(language, locales).get("A brand new question?")
        assert new is not None
        assert new.string == ("A brand new question?" if language == "en" else "")
    assert tools.review_status(catalog("rom", locales)) == tools.AWAITING_REVIEW
    # Translations are kept, and the new message makes every other catalog fail the check.
    kept, before = catalog("rom", locales).get(DANGER), catalog("rom").get(DANGER)
    assert kept is not None and before is not None
    assert kept.string == before.string == "San akana ande opasnost?"
    output = check(locales, template_path).output
    assert "rom: untranslated: 'A brand new question?'" in output


def test_update_creates_a_missing_catalog_with_review_status(locales: Path) -> None:
    shutil.rmtree(locales / "rom")
    result = run("update", "--locales-dir", str(locales))
    assert result.exit_code == 0, result.output
    rom = tools.po_path(locales, "rom")
    assert tools.header_field(rom, "Language") == "rom"
    assert tools.header_field(rom, "Plural-Forms") == TWO_FORMS
    assert tools.review_status(catalog("rom", locales)) == tools.AWAITING_REVIEW


def test_transliterate_regenerates_sr_latn(locales: Path) -> None:
    tools.po_path(locales, "sr_Latn").unlink()
    result = run("transliterate", "--locales-dir", str(locales))
    assert result.exit_code == 0, result.output
    assert (
        tools.po_path(locales, "sr_Latn").read_bytes()
        == tools.po_path(LOCALES_DIR, "sr_Latn").read_bytes()
    )


def test_extract_reproduces_the_template(tmp_path: Path) -> None:
    out = tmp_path / "messages.pot"
    result = run("extract", "--template", str(out))
    assert result.exit_code == 0, result.output
    fresh = {
        (m.id if isinstance(m.id, str) else m.id[0], m.context)
        for m in tools.read_catalog(out)
        if m.id
    }
    stored = {
        (m.id if isinstance(m.id, str) else m.id[0], m.context)
        for m in tools.read_catalog(TEMPLATE)
        if m.id
    }
    assert fresh == stored
    assert len(fresh) > 100
