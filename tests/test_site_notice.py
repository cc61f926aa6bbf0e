"""The site's Art. 15 facts from ``ORTHANC_GDPR_SERVICE_*``: read, and refused with the variable
and the rule named; the notice built from them in the patient's language."""
from __future__ import annotations

from datetime import datetime, timezone

import pytest

from portability.bundle.notice import Art15, SiteNotice, Source, rows
from portability.disclosures import Disclosure
from portability.i18n import translator
from portability.settings import Settings, SettingsError

P = "ORTHANC_GDPR_SERVICE_"


def test_site_facts_come_from_the_environment():
    s = Settings.from_env({
        P + "BUNDLE_LANGUAGES": "nl,en", P + "SITE_PURPOSES": "care:care,research:consent",
        P + "RETENTION_YEARS": "15", P + "RETENTION_LAW": "WGBO art. 7:454",
        P + "SUPERVISORY_AUTHORITY": "Autoriteit Persoonsgegevens", P + "RIGHTS_CONTACT": "privacy@zkh.example",
        P + "RECIPIENT_NAMES": "modality:PACS2=Regional archive; dicomweb:https://x.example/dicom-web=Trial bank",
        P + "USER_ORGANISATIONS": "alice=Radiology", P + "VIEWER_SIZE": "512", P + "VIEWER_QUALITY": "70"}, data_dir="/tmp")
    notice = SiteNotice.from_settings(s, "pl")
    assert notice.languages == ("pl", "nl", "en") and notice.purposes == (("care", "care"), ("research", "consent"))
    assert notice.recipient_names == {"modality:PACS2": "Regional archive", "dicomweb:https://x.example/dicom-web": "Trial bank"}
    assert (s.viewer_size, s.viewer_quality, s.retention_years) == (512, 70, 15)


@pytest.mark.parametrize("name, value, words", [
    ("BUNDLE_LANGUAGES", "en,xx", "BUNDLE_LANGUAGES: a comma-separated list among en, de"),
    ("SITE_PURPOSES", "care:because", "SITE_PURPOSES: each entry must be 'purpose:basis'"),
    ("RECIPIENT_NAMES", "modality:PACS2", "RECIPIENT_NAMES: each entry must be 'key=value'"),
    ("VIEWER_QUALITY", "100", "VIEWER_QUALITY must be 1-95"),
    ("RETENTION_YEARS", "ten", "bad number"),
])
def test_bad_site_facts_name_the_variable_and_the_rule(name, value, words):
    with pytest.raises(SettingsError, match=words.replace("(", r"\(")):
        Settings.from_env({P + name: value}, data_dir="/tmp")


def test_notice_rows_translate_codes_and_keep_site_values():
    site = SiteNotice(controller="Szpital <b>", languages=("pl",), purposes=(("care", "care"), ("download", "care")),
                      recipient_names={"modality:PACS2": "Archiwum regionalne"},
                      user_organisations={"alice": "Radiologia"})
    at = datetime(2026, 3, 4, 10, 0, tzinfo=timezone.utc)
    notice = Art15(site, [Disclosure(at, "route", "modality:PACS2", "research", "research", "research", rule="r"),
                          Disclosure(at, "download", "alice", "download", None, "basic"),
                          Disclosure(at, "route", "peer:other", "teaching-xyz", None, "teaching")],
                   [Source("CT", "20260101", ("ACME Scanner 9", "CT1"), "SCANNER1")])
    r = rows(translator("pl"), notice)
    assert r.recipients[0] == ("4 marca 2026", "Archiwum regionalne", "Badania medyczne",
                               "Badania: badania naukowe z zabezpieczeniami, takimi jak usunięcie Twojego nazwiska "
                               "(RODO art. 9 ust. 2 lit. j i art. 89).", "Nie. Nazwisko i identyfikator usunięto (profil „research”).")
    assert r.recipients[1][1:4] == ("Członek personelu: Radiologia", "Kopia dla członka personelu",
                                    "Opieka zdrowotna: potrzebne do Twojej diagnozy i leczenia (RODO art. 9 ust. 2 lit. h).")
    assert r.recipients[2][1:4] == ("other", "Inny cel („teaching-xyz”)", "Nie zapisano")
    assert r.sources == ["CT, 1 stycznia 2026: ACME Scanner 9, CT1; przesłane do naszego archiwum obrazów przez system „SCANNER1”"]
    assert r.retention == ["Zapytaj nas, jak długo przechowujemy Twoje obrazy (zobacz „Twoje prawa” poniżej)."]

