"""The PS3.15 options (the ten of Table E.1-1 and the two pixel options): selectable by standard
and kebab name; action C really cleans."""

from __future__ import annotations

import pytest

from corpus import make_instance, quiet_pydicom_in_test  # noqa: F401
from orthanc_gdpr.deid import Deidentifier, Keyring, UnknownOptionError, load_profile
from orthanc_gdpr.deid import options as opts
from orthanc_gdpr.deid.cleaning import Identifiers, clean_text

STANDARD_NAMES = {
    "Retain Safe Private Option": "retain-safe-private",
    "Retain UIDs Option": "retain-uids",
    "Retain Device Identity Option": "retain-device-identity",
    "Retain Institution Identity Option": "retain-institution-identity",
    "Retain Patient Characteristics Option": "retain-patient-characteristics",
    "Retain Longitudinal Temporal Information with Full Dates Option": "retain-longitudinal-full-dates",
    "Retain Longitudinal Temporal Information with Modified Dates Option": "retain-longitudinal-modified-dates",
    "Clean Descriptors Option": "clean-descriptors",
    "Clean Structured Content Option": "clean-structured-content",
    "Clean Graphics Option": "clean-graphics",
    "Clean Pixel Data Option": "clean-pixel-data",
    "Clean Recognizable Visual Features Option": "clean-recognizable-visual-features",
}


def test_ten_table_options_and_two_pixel_options():
    assert {o.name for o in opts.ALL} == set(STANDARD_NAMES)
    assert sum(bool(o.column) for o in opts.ALL) == 10


@pytest.mark.parametrize("standard, kebab", STANDARD_NAMES.items())
def test_option_by_standard_and_kebab_name(standard, kebab):
    option = opts.parse(kebab)
    assert opts.parse(standard) is option
    assert opts.parse(standard.upper()) is option
    assert opts.parse(standard.removesuffix(" Option")) is option
    assert option.cli == kebab and option.code.startswith("1131")
    profile = load_profile("basic").with_options([standard])
    assert profile.has(kebab)


def test_unknown_option_is_named_in_the_error():
    with pytest.raises(UnknownOptionError, match="retain-everything"):
        opts.parse("retain-everything")


def test_contradictory_date_options_are_refused():
    with pytest.raises(UnknownOptionError, match="exclude each other"):
        load_profile("basic").with_options(["retain-longitudinal-full-dates", "retain-longitudinal-modified-dates"])


def test_options_change_the_table():
    basic = load_profile("basic").table
    device = load_profile("basic").with_options(["retain-device-identity"]).table
    assert basic.lookup(0x00181000).action != "K"  # Device Serial Number
    assert device.lookup(0x00181000).action == "K"
    uids = load_profile("basic").with_options(["retain-uids"]).table
    assert uids.lookup(0x0020000D).action == "K"  # Study Instance UID


def test_clean_text_removes_names_ids_and_dates():
    identifiers = Identifiers()
    identifiers.add_person_name("Smith^John")
    text, hits = clean_text("CT of John Smith 12345678 on 2020-01-02 thorax", identifiers)
    assert hits >= 4
    for gone in ("John", "Smith", "12345678", "2020-01-02"):
        assert gone not in text
    assert "thorax" in text and text.startswith("CT of")


@pytest.mark.parametrize("description", [
    "CT of John Smith 12345678 on 2020-01-02",
    "MR knee Dr. Meyer 03/04/2019 call 0401234567",
    "PET smith.j@example.org 20190304",
])
def test_clean_descriptors_action_c_removes_identifying_text(description):
    ds = make_instance(patient_name="Smith^John")
    ds.StudyDescription = ds.SeriesDescription = description
    profile = load_profile("basic").with_options(["clean-descriptors"])
    Deidentifier(profile, Keyring(b"k" * 32)).deidentify(ds)
    for value in (ds.StudyDescription, ds.SeriesDescription):
        for word in ("John", "Smith", "12345678", "2020-01-02", "Meyer", "03/04/2019", "0401234567",
                     "smith.j@example.org", "20190304"):
            assert word not in value
        assert value.split()[0] in ("CT", "MR", "PET")


def test_clean_descriptors_keeps_harmless_descriptions_unchanged():
    ds = make_instance()
    ds.SeriesDescription = "AX T2 FLAIR"
    Deidentifier(load_profile("research"), Keyring(b"k" * 32)).deidentify(ds)
    assert ds.SeriesDescription == "AX T2 FLAIR"
