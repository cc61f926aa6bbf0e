"""Values the profile removed, hunted in everything the instance keeps.

A study description removed by the profile must not survive as the Code Meaning of a Procedure
Code Sequence, nor an accession number in a coded (CS) or private element. While the engine
walks an instance, every text value it removes (X), empties (Z) or replaces (D) is recorded
here with its attribute and rule; afterwards each kept text value is compared with them:

* a kept value equal to a removed one (case-insensitive, padding ignored) gets the removed
  attribute's action;
* a removed value inside longer kept text is cut out of it.

Matching is on whole words (a removed value never matches inside a longer word) and
case-insensitive. Values shorter than :data:`MIN_LENGTH` characters are not hunted: "CT",
"HEAD" or "AXIAL" would blank half the header, and the patient's own short identifiers are
hunted anyway, from 3 characters on, by :class:`~orthanc_gdpr.deid.cleaning.Identifiers`.

Values are compared as the file holds them: raw bytes read as Latin-1 for single-byte
character sets (nothing is decoded unless a value matches), decoded text otherwise.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from .cleaning import whole_words

#: Shortest removed value (in characters, padding stripped) that is hunted in kept text.
MIN_LENGTH = 6


@dataclass(frozen=True)
class Removal:
    """Where a removed value came from: the attribute (path), its action and the rule."""

    attribute: str
    action: str
    rule: str


class RemovedValues:
    """The removed values of one instance, compiled into one case-insensitive matcher."""

    def __init__(self) -> None:
        self._by_value: dict[str, Removal] = {}
        self._regex: re.Pattern | None = None

    def add(self, text: str, removal: Removal) -> None:
        """Record each backslash-separated value of ``text`` (first removal of a value wins)."""
        for value in text.split("\\"):
            value = value.strip(" \0")
            if len(value) >= MIN_LENGTH:
                key = value.casefold()
                if key not in self._by_value:
                    self._by_value[key] = removal
                    self._regex = None

    def __bool__(self) -> bool:
        return bool(self._by_value)

    @property
    def regex(self) -> re.Pattern | None:
        if self._regex is None and self._by_value:
            self._regex = whole_words(self._by_value)
        return self._regex

    def found_in(self, text: str) -> bool:
        regex = self.regex
        return regex is not None and regex.search(text) is not None

    def equal_to(self, value: str) -> Removal | None:
        """The removal whose value ``value`` is (padding and case aside), if any."""
        return self._by_value.get(value.strip(" \0").casefold())

    def redact(self, text: str) -> tuple[str, list[Removal]]:
        """``text`` with every removed value cut out, and the removals that matched."""
        regex = self.regex
        if regex is None:
            return text, []
        hits: list[Removal] = []

        def cut(match: re.Match) -> str:
            hits.append(self._by_value.get(match.group(0).casefold()) or next(iter(self._by_value.values())))
            return ""

        return regex.sub(cut, text), hits
