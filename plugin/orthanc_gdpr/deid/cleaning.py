"""Cleaning text (action C) and the safety net that hunts a patient's identifiers in what is kept.

A clean value keeps its meaning and loses what identifies: the patient's own name parts, IDs,
birth date and accession number (collected from the instance itself before anything changes),
plus patterns that identify anyone (dates, long numbers, e-mail addresses, titled names).
"""

from __future__ import annotations

import re
from collections.abc import Iterable

#: Attributes whose values, wherever else they turn up, identify the patient or the encounter.
IDENTIFYING_KEYWORDS = (
    "PatientID", "OtherPatientIDs", "AccessionNumber", "MedicalRecordLocator",
    "PatientAddress", "PatientTelephoneNumbers", "PatientInsurancePlanCodeSequence",
    "AdmissionID", "ServiceEpisodeID", "StudyID", "RequestedProcedureID", "PerformedProcedureStepID",
    "ScheduledProcedureStepID", "FillerOrderNumberImagingServiceRequest",
    "PlacerOrderNumberImagingServiceRequest", "IssuerOfPatientID", "MilitaryRank", "BranchOfService",
    "PatientReligiousPreference", "RegionOfResidence", "CountryOfResidence",
)

#: PN components that carry names (family, given, middle); prefixes and suffixes are titles.
_NAME_COMPONENTS = 3
_MIN_ID_LENGTH = 3
_BIRTH_DATE_FORMATS = ("{y}{m}{d}", "{y}-{m}-{d}", "{y}/{m}/{d}", "{y}.{m}.{d}", "{d}.{m}.{y}",
                       "{d}/{m}/{y}", "{m}/{d}/{y}", "{d}-{m}-{y}")

_GENERIC_PATTERNS = re.compile(
    r"""
    \b\d{4}[-./]\d{1,2}[-./]\d{1,2}\b          # 2024-03-01
    | \b\d{1,2}[-./]\d{1,2}[-./]\d{2,4}\b      # 01.03.2024, 3/1/24
    | \b(?:19|20)\d{6}\b                       # 20240301
    | \b\d{5,}\b                               # IDs, phone numbers
    | \b[\w.+-]+@[\w-]+\.[\w.-]+\b             # e-mail
    | \b(?:(?i:dr|prof|mr|mrs|ms|sr)\.\s*|(?:Dr|Prof|Mr|Mrs|Ms|Sr)\s+)[A-Z][\w'-]+
                                               # titled names: "Dr. Meyer", "DR. MEYER", "Mr Smith";
                                               # not the modality in "MR Knee"
    """,
    re.VERBOSE,
)
_SPACES = re.compile(r"\s{2,}")


def whole_words(phrases: Iterable[str]) -> re.Pattern:
    """One case-insensitive pattern matching any of ``phrases`` as whole words (longest first,
    never inside a longer word)."""
    alternatives = "|".join(re.escape(p) for p in sorted(phrases, key=len, reverse=True))
    return re.compile(rf"(?<![^\W_])(?:{alternatives})(?![^\W_])", re.IGNORECASE)


def tidy(text: str) -> str:
    return _SPACES.sub(" ", text).strip(" ,;:-/")


class Identifiers:
    """The identifying strings of one patient, compiled into one case-insensitive matcher."""

    def __init__(self, tokens: Iterable[str] = ()):
        self._tokens: set[str] = set()
        self._regex: re.Pattern | None = None
        for t in tokens:
            self.add(t)

    def add(self, token: str) -> None:
        token = token.strip()
        if len(token) >= 2 and not token.isspace():
            self._tokens.add(token)
            self._regex = None

    def add_person_name(self, value: str) -> None:
        for group in value.split("="):
            for part in group.split("^")[:_NAME_COMPONENTS]:
                for word in re.split(r"[\s,]+", part):
                    if len(word) >= 2:
                        self.add(word)

    def add_identifier(self, value: str) -> None:
        for v in value.split("\\"):
            if len(v.strip()) >= _MIN_ID_LENGTH:
                self.add(v)

    def add_birth_date(self, value: str) -> None:
        value = value.strip()
        if len(value) == 8 and value.isdigit():
            y, m, d = value[:4], value[4:6], value[6:]
            for fmt in _BIRTH_DATE_FORMATS:
                self.add(fmt.format(y=y, m=m, d=d))

    def __bool__(self) -> bool:
        return bool(self._tokens)

    @property
    def regex(self) -> re.Pattern | None:
        if self._regex is None and self._tokens:
            self._regex = whole_words(self._tokens)
        return self._regex

    def scrub(self, text: str) -> tuple[str, int]:
        """Remove every identifier from ``text``; returns the new text and the number of hits."""
        regex = self.regex
        if regex is None:
            return text, 0
        new, hits = regex.subn("", text)
        return (tidy(new) if hits else text), hits


def clean_text(text: str, identifiers: Identifiers) -> tuple[str, int]:
    """Action C on text: remove identifiers and identifying patterns, keep the rest."""
    text, hits = identifiers.scrub(text)
    cleaned, generic = _GENERIC_PATTERNS.subn("", text)
    return (tidy(cleaned) if generic else text), hits + generic
