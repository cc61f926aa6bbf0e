"""Keyed pseudonyms for Patient ID and Patient Name.

A format is a template with one placeholder: ``{hash:N}`` (N base-32 characters, A-Z and 2-7)
or ``{digits:N}`` (N decimal digits), e.g. ``"P-{hash:10}"`` or ``"ANON^{digits:6}"``.
"""

from __future__ import annotations

import base64
import re

from .keys import Keyring

_PLACEHOLDER = re.compile(r"\{(hash|digits):(\d{1,2})\}")
DEFAULT_ID_FORMAT = "GDPR{hash:12}"
DEFAULT_NAME_FORMAT = "GDPR^{hash:12}"


class PseudonymFormatError(ValueError):
    """A pseudonym template without exactly one valid placeholder."""


def check_format(template: str, max_length: int) -> None:
    matches = _PLACEHOLDER.findall(template)
    if len(matches) != 1:
        raise PseudonymFormatError(
            f"pseudonym format {template!r} needs exactly one {{hash:N}} or {{digits:N}} placeholder"
        )
    kind, width = matches[0]
    if int(width) < 6:
        raise PseudonymFormatError(f"pseudonym format {template!r}: use at least 6 characters")
    length = len(_PLACEHOLDER.sub("", template)) + int(width)
    if length > max_length:
        raise PseudonymFormatError(f"pseudonym format {template!r} is longer than {max_length} characters")


class Pseudonymizer:
    """Turns a patient's identity into stable pseudonyms under one key."""

    def __init__(self, keyring: Keyring, id_format: str = DEFAULT_ID_FORMAT,
                 name_format: str = DEFAULT_NAME_FORMAT):
        check_format(id_format, 64)  # LO
        check_format(name_format, 64)  # PN component group
        self._keyring = keyring
        self.id_format, self.name_format = id_format, name_format
        self._cache: dict[tuple[str, str, str], str] = {}  # instances of one patient come together

    def _render(self, template: str, purpose: str, identity: str) -> str:
        key = (template, purpose, identity)
        pseudonym = self._cache.get(key)
        if pseudonym is None:
            if len(self._cache) > 4096:
                self._cache.clear()
            pseudonym = self._cache[key] = self._computed(template, purpose, identity)
        return pseudonym

    def _computed(self, template: str, purpose: str, identity: str) -> str:
        digest = self._keyring.digest(purpose, identity)

        def fill(m: re.Match) -> str:
            width = int(m.group(2))
            if m.group(1) == "hash":
                return base64.b32encode(digest).decode()[:width]
            return str(int.from_bytes(digest, "big")).zfill(width)[-width:]

        return _PLACEHOLDER.sub(fill, template)

    def patient_id(self, identity: str) -> str:
        return self._render(self.id_format, "patient-id", identity)

    def patient_name(self, identity: str) -> str:
        return self._render(self.name_format, "patient-name", identity)
