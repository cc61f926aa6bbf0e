"""Per-patient date shifting (Retain Longitudinal Temporal Information with Modified Dates).

Every DA and DT value of one patient moves by the same whole number of days, derived from the
key and the patient's identity, so intervals within and across that patient's studies survive.
Times of day (TM) are unchanged by a whole-day shift.
"""

from __future__ import annotations

from datetime import date, timedelta

from pydicom.multival import MultiValue

from .keys import Keyring

DEFAULT_RANGE = (-3650, -365)


class DateShifter:
    def __init__(self, keyring: Keyring, days_range: tuple[int, int] = DEFAULT_RANGE):
        low, high = days_range
        if low > high or (low <= 0 <= high):
            raise ValueError(f"date shift range {days_range} must not contain 0")
        self._keyring = keyring
        self._low, self._span = low, high - low + 1

    def offset_days(self, patient_key: str) -> int:
        number = int.from_bytes(self._keyring.digest("date-shift", patient_key)[:8], "big")
        return self._low + number % self._span


def _shift_yyyymmdd(text: str, days: int) -> str | None:
    if len(text) != 8 or not text.isdigit():
        return None
    try:
        shifted = date(int(text[:4]), int(text[4:6]), int(text[6:8])) + timedelta(days=days)
    except (ValueError, OverflowError):
        return None
    return f"{shifted.year:04d}{shifted.month:02d}{shifted.day:02d}"


def shift_da(value: str, days: int) -> str | None:
    """Shift one DA value (also a ``-`` range); None when it is not a valid date."""
    value = value.strip()
    if "-" in value:
        parts = [shift_da(p, days) if p else "" for p in value.split("-", 1)]
        return None if None in parts else "-".join(parts)  # type: ignore[arg-type]
    return _shift_yyyymmdd(value.replace(".", ""), days)


def shift_dt(value: str, days: int) -> str | None:
    """Shift the date part of one DT value, keeping time, fraction and UTC offset as they are."""
    value = value.strip()
    if len(value) < 8:
        return None  # year or year+month only: cannot be shifted by days
    head = _shift_yyyymmdd(value[:8], days)
    return None if head is None else head + value[8:]


def shifted_value(value, vr: str, days: int):
    """A DA or DT element's value (one or several) moved by ``days``; None when any part is not
    a shiftable date (the element is then emptied rather than passed on)."""
    shift = shift_da if vr == "DA" else shift_dt
    values = value if isinstance(value, (list, MultiValue)) else [value]
    shifted = [shift(str(v), days) for v in values]
    if any(s is None for s in shifted):
        return None
    return shifted if len(shifted) > 1 else shifted[0]
