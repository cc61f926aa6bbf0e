"""Message catalogs: every language complete, every format field kept, every id used in code known."""
from __future__ import annotations

import re
import string
from pathlib import Path

import pytest

from portability.i18n import LANGUAGES, LOCALES, MissingMessage, UnknownLanguage, message_ids, translator

REPO = Path(__file__).resolve().parent.parent
DOMAINS = sorted({p.stem for p in LOCALES.glob("en/LC_MESSAGES/*.po")})


def _fields(text: str) -> set[str]:
    return {name for _, name, _, _ in string.Formatter().parse(text) if name}


@pytest.mark.parametrize("domain", DOMAINS)
@pytest.mark.parametrize("lang", LANGUAGES)
def test_every_language_translates_every_message_with_the_same_fields(lang, domain):
    en = translator("en", domain)
    ids = message_ids("en", domain)
    assert ids, f"empty English catalog for {domain}"
    assert ids <= message_ids(lang, domain), f"{lang}/{domain} lacks {sorted(ids - message_ids(lang, domain))}"
    t = translator(lang, domain)
    for msgid in ids:
        assert _fields(t(msgid)) == _fields(en(msgid)), f"{lang}/{domain} {msgid}: format fields differ"


def test_ids_used_in_the_bundle_code_exist():
    used = set()
    for path in (REPO / "portability" / "bundle").rglob("*.py"):
        used |= set(re.findall(r'\bt\(\s*"([a-z0-9_.-]+\.[a-z0-9_.-]+)"', path.read_text()))
    assert len(used) > 50, "message ids not found in the bundle code"
    assert used <= message_ids("en", "bundle"), sorted(used - message_ids("en", "bundle"))


def test_fallback_and_errors():
    de = translator("de")
    assert de("viewer.position", n=3, total=40) == "Bild 3 von 40"
    assert de.name == "Deutsch" and translator("pl").name == "Polski" and translator("nl").name == "Nederlands"
    with pytest.raises(MissingMessage):
        de("no.such.message")
    with pytest.raises(UnknownLanguage, match="language must be one of"):
        translator("xx")
