"""De-identification profiles: named, declarative files a data-protection officer can review.

A profile (``orthanc-config/profiles/NAME.json``) selects PS3.15 options and overrides single
attributes; every option and every override carries its written purpose, so that each retained
field has a reason on record (data minimisation, GDPR Art. 5(1)(c)).
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field, replace
from functools import cached_property
from pathlib import Path

from pydicom.datadict import tag_for_keyword

from . import options as opts
from .pseudonyms import DEFAULT_ID_FORMAT, DEFAULT_NAME_FORMAT, PseudonymFormatError, check_format
from .. import CONFIG_DIR
from .table import SIMPLE_ACTIONS, ActionTable, Rule, parse_tag

PROFILES_ENV = "ORTHANC_GDPR_PROFILES"
DEFAULT_PROFILES_DIR = CONFIG_DIR / "profiles"
_KEYS = {"name", "description", "options", "pseudonyms", "date_shift_days", "overrides", "text_check"}
_TEXT_CHECK_KEYS = {"modalities", "purpose"}
_OVERRIDE_KEYS = {"tag", "keyword", "action", "purpose"}


class ProfileError(ValueError):
    """A profile that is unknown, unreadable or invalid. Raised before any data is touched."""


def profiles_dir() -> Path:
    return Path(os.environ.get(PROFILES_ENV, DEFAULT_PROFILES_DIR))


def available(directory: Path | None = None) -> list[str]:
    return sorted(p.stem for p in (directory or profiles_dir()).glob("*.json"))


@dataclass(frozen=True)
class Profile:
    name: str
    description: str
    options: tuple[opts.Option, ...] = ()
    purposes: dict[str, str] = field(default_factory=dict)  #: option cli name -> purpose
    overrides: dict[int, Rule] = field(default_factory=dict)
    id_format: str = DEFAULT_ID_FORMAT
    name_format: str = DEFAULT_NAME_FORMAT
    date_shift_days: tuple[int, int] = (-3650, -365)
    #: Clean Pixel Data checks every image for burned-in text; ``text_check`` narrows it to these
    #: modalities (secondary captures and BurnedInAnnotation YES are always checked)
    text_modalities: frozenset[str] | None = None
    text_check_purpose: str = ""

    @cached_property
    def table(self) -> ActionTable:
        return ActionTable(self.options, self.overrides)

    def has(self, cli_name: str) -> bool:
        return any(o.cli == cli_name for o in self.options)

    def with_options(self, names: list[str], purpose: str = "selected on the command line") -> "Profile":
        """This profile plus more options (e.g. from ``--option``)."""
        added = [opts.parse(n) for n in names]
        selected = tuple(dict.fromkeys(self.options + tuple(added)))
        opts.check_compatible(list(selected))
        purposes = {**{o.cli: purpose for o in added}, **self.purposes}
        return replace(self, options=selected, purposes=purposes)


def _require(cond: bool, where: str, message: str) -> None:
    if not cond:
        raise ProfileError(f"{where}: {message}")


def _override(entry: object, where: str) -> tuple[int, Rule]:
    _require(isinstance(entry, dict), where, "each override is an object")
    assert isinstance(entry, dict)
    unknown = set(entry) - _OVERRIDE_KEYS
    _require(not unknown, where, f"unknown override keys {sorted(unknown)}")
    _require(("tag" in entry) != ("keyword" in entry), where, "an override names either a tag or a keyword")
    if "tag" in entry:
        try:
            tag = parse_tag(str(entry["tag"]))
        except ValueError:
            raise ProfileError(f"{where}: bad tag {entry['tag']!r}, write it as (gggg,eeee)") from None
        label = str(entry["tag"])
    else:
        found = tag_for_keyword(str(entry["keyword"]))
        _require(found is not None, where, f"unknown DICOM keyword {entry['keyword']!r}")
        tag, label = int(found), str(entry["keyword"])  # type: ignore[arg-type]
    action = entry.get("action")
    _require(action in SIMPLE_ACTIONS, where, f"{label}: action must be one of {''.join(sorted(SIMPLE_ACTIONS))}")
    purpose = entry.get("purpose")
    _require(isinstance(purpose, str) and purpose.strip() != "", where, f"{label}: every override needs a purpose")
    return tag, Rule(action=str(action), code=str(action), source=f"profile override: {purpose}", name=label)


def parse_profile(data: object, where: str) -> Profile:
    """Validate a profile document (already parsed JSON)."""
    _require(isinstance(data, dict), where, "a profile is a JSON object")
    assert isinstance(data, dict)
    unknown = set(data) - _KEYS
    _require(not unknown, where, f"unknown keys {sorted(unknown)}; allowed: {sorted(_KEYS)}")
    name = data.get("name")
    _require(isinstance(name, str) and name != "", where, "'name' is required")
    options_doc = data.get("options", {})
    _require(isinstance(options_doc, dict), where, "'options' maps option names to their purpose")
    selected, purposes = [], {}
    for option_name, purpose in options_doc.items():
        try:
            option = opts.parse(option_name)
        except opts.UnknownOptionError as e:
            raise ProfileError(f"{where}: {e}") from None
        _require(isinstance(purpose, str) and purpose.strip() != "", where, f"option {option_name}: give its purpose")
        selected.append(option)
        purposes[option.cli] = purpose
    try:
        opts.check_compatible(selected)
    except opts.UnknownOptionError as e:
        raise ProfileError(f"{where}: {e}") from None
    overrides_doc = data.get("overrides", [])
    _require(isinstance(overrides_doc, list), where, "'overrides' is a list")
    overrides = dict(_override(entry, f"{where}, override {i + 1}") for i, entry in enumerate(overrides_doc))
    pseudonyms = data.get("pseudonyms", {})
    _require(isinstance(pseudonyms, dict) and set(pseudonyms) <= {"patient_id", "patient_name"}, where,
             "'pseudonyms' may set patient_id and patient_name formats")
    id_format = pseudonyms.get("patient_id", DEFAULT_ID_FORMAT)
    name_format = pseudonyms.get("patient_name", DEFAULT_NAME_FORMAT)
    try:
        check_format(id_format, 64)
        check_format(name_format, 64)
    except PseudonymFormatError as e:
        raise ProfileError(f"{where}: {e}") from None
    shift = data.get("date_shift_days", [-3650, -365])
    _require(isinstance(shift, list) and len(shift) == 2 and all(isinstance(d, int) for d in shift)
             and shift[0] <= shift[1] and not shift[0] <= 0 <= shift[1], where,
             "'date_shift_days' is [low, high] in days, not containing 0")
    modalities, text_purpose = _text_check(data.get("text_check"), where)
    return Profile(name=name, description=str(data.get("description", "")), options=tuple(selected),
                   purposes=purposes, overrides=overrides, id_format=id_format, name_format=name_format,
                   date_shift_days=(shift[0], shift[1]), text_modalities=modalities,
                   text_check_purpose=text_purpose)


def _text_check(doc: object, where: str) -> tuple[frozenset[str] | None, str]:
    """``{"modalities": ["US", ...], "purpose": "why the other modalities need no check"}``."""
    if doc is None:
        return None, ""
    _require(isinstance(doc, dict) and set(doc) == _TEXT_CHECK_KEYS, where,
             "'text_check' has exactly 'modalities' (a list of modality codes) and 'purpose'")
    assert isinstance(doc, dict)
    modalities = doc["modalities"]
    _require(isinstance(modalities, list) and all(isinstance(m, str) and m.isalnum() and len(m) <= 16
                                                  for m in modalities), where,
             "'text_check.modalities' is a list of modality codes such as \"US\"")
    purpose = doc["purpose"]
    _require(isinstance(purpose, str) and purpose.strip() != "", where,
             "'text_check.purpose' says why the other modalities need no burned-in text check")
    return frozenset(m.upper() for m in modalities), purpose


def load_profile(name_or_path: str, directory: Path | None = None) -> Profile:
    """Load a profile by name (from the profiles folder) or by path to a JSON file."""
    path = Path(name_or_path)
    if path.suffix != ".json":
        directory = directory or profiles_dir()
        path = directory / f"{name_or_path}.json"
        if not path.is_file():
            raise ProfileError(f"unknown profile {name_or_path!r}; available: {', '.join(available(directory)) or 'none'}")
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as e:
        raise ProfileError(f"cannot read profile {path}: {e.strerror}") from None
    try:
        data = json.loads(text)
    except json.JSONDecodeError as e:
        raise ProfileError(f"profile {path} is not valid JSON: {e.msg} at line {e.lineno}, column {e.colno}") from None
    return parse_profile(data, f"profile {path.name}")
