"""Profiles: the shipped ones load; every choice carries a purpose; bad ones are refused clearly."""

from __future__ import annotations

import json

import pytest

from corpus import PROFILES
from orthanc_gdpr.deid import ProfileError, available, load_profile
from orthanc_gdpr.deid.profile import parse_profile


def test_shipped_profiles_are_available():
    assert set(PROFILES) <= set(available())


@pytest.mark.parametrize("name", PROFILES)
def test_shipped_profile_loads_with_purposes(name):
    profile = load_profile(name)
    assert profile.name == name and profile.description
    assert set(profile.purposes) == {o.cli for o in profile.options}
    assert all(p.strip() for p in profile.purposes.values())
    assert all(rule.source.startswith("profile override: ") and len(rule.source) > 30
               for rule in profile.overrides.values())
    assert profile.table.lookup(0x00100010).action != "K"  # Patient's Name never kept


def test_load_by_path(tmp_path):
    path = tmp_path / "mine.json"
    path.write_text(json.dumps({"name": "mine", "options": {"retain-uids": "linking to the PACS"}}))
    assert load_profile(str(path)).has("retain-uids")


def test_every_modality_is_checked_for_text_unless_a_profile_narrows_it_with_a_purpose():
    assert load_profile("basic").text_modalities is None
    narrowed = parse_profile({"name": "x", "text_check": {"modalities": ["us", "SC"],
                                                          "purpose": "a cohort screened for burned-in text"}}, "p")
    assert narrowed.text_modalities == {"US", "SC"} and narrowed.text_check_purpose


BAD = [
    ([], "a profile is a JSON object"),
    ({"options": {}}, "'name' is required"),
    ({"name": "x", "colour": "blue"}, "unknown keys ['colour']"),
    ({"name": "x", "options": ["retain-uids"]}, "maps option names to their purpose"),
    ({"name": "x", "options": {"retain-everything": "why not"}}, "retain-everything"),
    ({"name": "x", "options": {"retain-uids": " "}}, "option retain-uids: give its purpose"),
    ({"name": "x", "options": {"retain-longitudinal-full-dates": "a", "retain-longitudinal-modified-dates": "b"}},
     "exclude each other"),
    ({"name": "x", "overrides": [{"keyword": "ImageComments", "action": "K"}]}, "ImageComments: every override needs a purpose"),
    ({"name": "x", "overrides": [{"keyword": "ImageComments", "action": "K", "purpose": ""}]}, "needs a purpose"),
    ({"name": "x", "overrides": [{"keyword": "NoSuchThing", "action": "K", "purpose": "p"}]}, "unknown DICOM keyword 'NoSuchThing'"),
    ({"name": "x", "overrides": [{"tag": "(0010,XYZW)", "action": "K", "purpose": "p"}]}, "bad tag '(0010,XYZW)'"),
    ({"name": "x", "overrides": [{"tag": "(0010,0010)", "keyword": "PatientName", "action": "K", "purpose": "p"}]},
     "either a tag or a keyword"),
    ({"name": "x", "overrides": [{"keyword": "ImageComments", "action": "Q", "purpose": "p"}]}, "action must be one of"),
    ({"name": "x", "overrides": [{"keyword": "ImageComments", "action": "K", "purpose": "p", "why": 1}]}, "unknown override keys"),
    ({"name": "x", "pseudonyms": {"patient_id": "PAT"}}, "needs exactly one"),
    ({"name": "x", "pseudonyms": {"patient_id": "P{hash:3}"}}, "at least 6"),
    ({"name": "x", "pseudonyms": {"patient_nickname": "P{hash:8}"}}, "'pseudonyms' may set"),
    ({"name": "x", "date_shift_days": [-10, 10]}, "not containing 0"),
    ({"name": "x", "date_shift_days": "a year"}, "'date_shift_days'"),
    ({"name": "x", "text_check": {"modalities": ["US"]}}, "'text_check' has exactly"),
    ({"name": "x", "text_check": {"modalities": "US", "purpose": "p"}}, "'text_check.modalities' is a list"),
    ({"name": "x", "text_check": {"modalities": ["US"], "purpose": " "}}, "'text_check.purpose' says why"),
]


@pytest.mark.parametrize("document, message", BAD, ids=[m for _, m in BAD])
def test_bad_profiles_are_rejected_naming_the_problem(document, message):
    with pytest.raises(ProfileError) as info:
        parse_profile(document, "profile bad.json")
    assert message in str(info.value)
    assert str(info.value).startswith("profile bad.json")


def test_unknown_profile_lists_the_available_ones():
    with pytest.raises(ProfileError, match="unknown profile 'nope'; available: .*research"):
        load_profile("nope")


def test_invalid_json_is_located(tmp_path):
    path = tmp_path / "broken.json"
    path.write_text('{"name": "broken",\n "options": {,}}')
    with pytest.raises(ProfileError, match=r"not valid JSON: .* line 2"):
        load_profile(str(path))


def test_missing_profile_file(tmp_path):
    with pytest.raises(ProfileError, match="cannot read profile"):
        load_profile(str(tmp_path / "absent.json"))
