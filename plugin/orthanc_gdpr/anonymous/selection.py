"""The ``--slices`` argument: which slices of a series, by Instance Number.

Items are separated by commas: ``12`` (instance 12), ``10-12`` (instances 10, 11 and 12),
``7:3`` (frame 3 of the multi-frame instance 7, frames counted from 1) and ``7:3-4``. Whole
series (``all``, ``*``) are refused: a whole volume is never anonymous.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from .refusal import Refused

_ITEM = re.compile(r"^(\d{1,9})(?:-(\d{1,9}))?$|^(\d{1,9}):(\d{1,6})(?:-(\d{1,6}))?$")
#: No range may expand past this many slices (a typo such as ``1-100000`` is refused early).
MAX_EXPANDED = 1000


@dataclass(frozen=True, order=True)
class SliceRef:
    """One slice: an Instance Number, and a frame number (from 1) for multi-frame instances."""
    instance: int
    frame: int | None = None

    def __str__(self) -> str:
        return str(self.instance) if self.frame is None else f"{self.instance}:{self.frame}"


def _span(first: str, last: str | None) -> range:
    a, b = int(first), int(last) if last else int(first)
    if b < a:
        raise Refused("--slices", "syntax", f"range {a}-{b} runs backwards")
    if b - a + 1 > MAX_EXPANDED:
        raise Refused("--slices", "whole-volume", f"range {a}-{b} asks for {b - a + 1} slices")
    return range(a, b + 1)


def parse_slices(text: str) -> list[SliceRef]:
    """The slices of ``text``, sorted and without repeats; :class:`Refused` on bad syntax."""
    text = (text or "").strip()
    if not text:
        raise Refused("--slices", "required", "name the slices, e.g. 12,40,77 or 3,10-12")
    if text.lower() in ("all", "*"):
        raise Refused("--slices", "whole-volume", "a whole volume is never anonymous (criterion 2): "
                      "name a few slices")
    refs: set[SliceRef] = set()
    for item in text.split(","):
        m = _ITEM.match(item.strip())
        if not m:
            raise Refused("--slices", "syntax", f"{item.strip()[:20]!r} is not N, N-M, N:F or N:F-G "
                          "(instance numbers, frame numbers from 1)")
        if m.group(1):
            refs.update(SliceRef(i) for i in _span(m.group(1), m.group(2)))
        else:
            if int(m.group(4)) < 1:
                raise Refused("--slices", "syntax", "frame numbers start at 1")
            refs.update(SliceRef(int(m.group(3)), f) for f in _span(m.group(4), m.group(5)))
        if len(refs) > MAX_EXPANDED:
            raise Refused("--slices", "whole-volume", f"more than {MAX_EXPANDED} slices asked")
    return sorted(refs, key=lambda r: (r.instance, r.frame or 0))
