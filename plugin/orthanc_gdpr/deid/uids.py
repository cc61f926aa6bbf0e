"""Keyed UID remapping: same source UID + same key -> same new UID, in every export."""

from __future__ import annotations

from pydicom.multival import MultiValue
from pydicom.uid import UID_dictionary

from .keys import Keyring

#: UIDs under 2.25 are decimal forms of 128-bit numbers (PS3.5 B.2); 44 characters at most.
UUID_ROOT = "2.25."


def is_registered(uid: str) -> bool:
    """True for UIDs the standard defines (SOP classes, transfer syntaxes, coding schemes...).

    Those identify no one and must stay, or the object would no longer say what it is.
    """
    return uid in UID_dictionary


class UidMapper:
    """Maps instance UIDs to new UIDs under 2.25, consistently for one key."""

    def __init__(self, keyring: Keyring):
        self._keyring = keyring
        self._cache: dict[str, str] = {}

    def map(self, uid: str) -> str:
        uid = uid.strip("\x00 ")
        new = self._cache.get(uid)
        if new is None:
            if not uid or is_registered(uid):
                new = uid
            else:
                number = int.from_bytes(self._keyring.digest("uid", uid)[:16], "big")
                new = UUID_ROOT + str(number)
            if len(self._cache) > 1_000_000:
                self._cache.clear()
            self._cache[uid] = new
        return new

    def remap_value(self, old):
        """The remapped form of a UI element's value (one UID or several), or None when no UID
        in it changes (registered UIDs, empty values)."""
        if isinstance(old, (list, MultiValue)):
            new = [self.map(str(v)) for v in old]
            return new if new != [str(v) for v in old] else None
        new = self.map(str(old))
        return new if new != str(old) else None
