"""Message catalogs for everything a patient reads: gettext ``.po`` files, loaded with Babel.

Layout: ``portability/i18n/locales/<lang>/LC_MESSAGES/<domain>.po`` (package data, so
``pip install .`` ships them). One *domain* per surface: ``bundle`` (INDEX.HTM, README.TXT, the
offline viewer), ``landing`` (the patient's download page), and so on. A ``.po`` file is compiled
in memory the first time it is used (Babel's ``read_po`` + ``write_mo``), so there is no
compiled ``.mo`` that could go stale.

Message ids are symbolic (``index.what.title``), never English prose: the English text lives in
the ``en`` catalog like every other language. Texts use ``str.format`` fields::

    from portability.i18n import translator

    t = translator("de", "bundle")
    t("index.title")                          # "Ihre medizinischen Bilder"
    t("viewer.slice_of", n=3, total=40)       # "Bild 3 von 40"
    t.lang, t.name                            # "de", "Deutsch"
    t.date(datetime.date(2026, 12, 1))        # "1. Dezember 2026" (Babel, long format)

A message missing from a language falls back to English; a message missing from English raises
:class:`MissingMessage` (``tests/test_i18n.py`` checks every catalog is complete and every id used
in the code exists). To add a language: copy ``en/LC_MESSAGES/<domain>.po``, translate each
``msgstr`` in plain language (short sentences; explain every legal term), and add its code to
:data:`LANGUAGES`.
"""
from __future__ import annotations

import gettext
import io
from datetime import date, datetime
from functools import lru_cache
from pathlib import Path

from babel import Locale
from babel.dates import format_date
from babel.messages.mofile import write_mo
from babel.messages.pofile import read_po

LOCALES = Path(__file__).resolve().parent / "locales"
#: every language with catalogs, in the order a language menu lists them
LANGUAGES = ("en", "de", "fr", "it", "es", "nl", "pl")
FALLBACK = "en"


class MissingMessage(KeyError):
    """A message id that not even the English catalog has: a bug in the code or the catalog."""


class UnknownLanguage(ValueError):
    """A language code we have no catalogs for."""


def check_language(lang: str) -> str:
    """``lang`` if it is one of :data:`LANGUAGES` (else :class:`UnknownLanguage`, naming the rule)."""
    if lang not in LANGUAGES:
        raise UnknownLanguage(f"language must be one of {', '.join(LANGUAGES)}")
    return lang


@lru_cache(maxsize=None)
def _catalog(lang: str, domain: str) -> gettext.GNUTranslations | None:
    po = LOCALES / lang / "LC_MESSAGES" / f"{domain}.po"
    if not po.exists():
        return None
    with open(po, "rb") as f:
        catalog = read_po(f, locale=lang, domain=domain)
    buf = io.BytesIO()
    write_mo(buf, catalog)
    buf.seek(0)
    return gettext.GNUTranslations(buf)


def message_ids(lang: str, domain: str) -> set[str]:
    """The ids that ``lang``'s catalog of ``domain`` translates (non-empty ``msgstr``)."""
    cat = _catalog(lang, domain)
    return set() if cat is None else {k for k in cat._catalog if isinstance(k, str) and k}


class Translator:
    """Texts of one domain in one language; call it with a message id and format fields."""

    def __init__(self, lang: str, domain: str) -> None:
        self.lang, self.domain = check_language(lang), domain
        self._own = _catalog(lang, domain)
        self._fallback = _catalog(FALLBACK, domain)

    @property
    def name(self) -> str:
        """The language's own name, e.g. ``Deutsch``, ``Polski``."""
        return Locale.parse(self.lang).get_display_name(self.lang).capitalize()

    def gettext(self, msgid: str, **fields) -> str:
        for cat in (self._own, self._fallback):
            if cat is not None and msgid in cat._catalog:
                text = cat._catalog[msgid]
                return text.format(**fields) if fields else text
        raise MissingMessage(f"no message {msgid!r} in the {self.domain!r} catalogs")

    __call__ = gettext

    def has(self, msgid: str) -> bool:
        return any(cat is not None and msgid in cat._catalog for cat in (self._own, self._fallback))

    def date(self, value: date | datetime | None) -> str:
        """A date written out for a reader of this language (``1 December 2026``)."""
        if value is None:
            return ""
        return format_date(value, format="long", locale=self.lang)


@lru_cache(maxsize=None)
def translator(lang: str, domain: str = "bundle") -> Translator:
    """The :class:`Translator` of ``domain`` in ``lang`` (one of :data:`LANGUAGES`)."""
    return Translator(lang, domain)
