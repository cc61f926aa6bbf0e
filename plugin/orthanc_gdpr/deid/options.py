"""The ten options of PS3.15 Table E.1-1, by their standard names."""

from __future__ import annotations

from dataclasses import dataclass

from .. import standard


@dataclass(frozen=True)
class Option:
    """An option of PS3.15 Annex E that a profile can select: a column of Table E.1-1, or one
    of the pixel options (Clean Pixel Data, Clean Recognizable Visual Features) that have none."""

    name: str  #: the standard's name, e.g. "Retain UIDs Option"
    cli: str  #: kebab-case name used on the command line and in profiles
    column: str  #: column key in the table data file ("" for the pixel options)
    code: str  #: code value in DICOM CID 7050 (coding scheme DCM)
    meaning: str  #: code meaning in CID 7050

    @property
    def label(self) -> str:
        return self.name.removesuffix(" Option")


ALL: tuple[Option, ...] = tuple(Option(**o) for o in standard.load("options.json"))
_BY_KEY = {
    key: o
    for o in ALL
    for key in (o.cli, o.column, o.name.lower(), o.label.lower(), o.code) if key
}

BASIC_PROFILE_CODE = ("113100", "Basic Application Confidentiality Profile")


class UnknownOptionError(ValueError):
    """An option name that PS3.15 Table E.1-1 does not define."""


def parse(name: str) -> Option:
    """Find an option by kebab-case name, standard name, table column or CID 7050 code."""
    option = _BY_KEY.get(name.strip().lower())
    if option is None:
        known = ", ".join(o.cli for o in ALL)
        raise UnknownOptionError(f"unknown de-identification option {name!r}; known options: {known}")
    return option


def check_compatible(selected: list[Option]) -> None:
    """Refuse selections that contradict each other in the standard's own terms."""
    clis = {o.cli for o in selected}
    if {"retain-longitudinal-full-dates", "retain-longitudinal-modified-dates"} <= clis:
        raise UnknownOptionError(
            "retain-longitudinal-full-dates and retain-longitudinal-modified-dates exclude each other"
        )
