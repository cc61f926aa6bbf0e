"""The tag table of a review: one row per attribute of an instance, nested items included.

Each row says what the attribute held (shown only to roles allowed identified data), what the
engine did (PS3.15 action code), what it holds after, which rule decided (a Table E.1-1 row, a
profile option, a profile override or the safety net) and that rule's purpose.
"""
from __future__ import annotations

import json
import re
from dataclasses import asdict, dataclass
from pathlib import Path

from pydicom.dataelem import DataElement
from pydicom.dataset import Dataset
from pydicom.multival import MultiValue

from orthanc_gdpr.deid import Profile
from orthanc_gdpr.deid.engine import BINARY_VRS, _label

from .inspection import Inspected

PURPOSES = json.loads((Path(__file__).resolve().parent / "purposes.json").read_text(encoding="utf-8"))
_RULE = re.compile(r"^\S+ \((?P<source>.*)\)$")
SHOW = ("all", "remains", "changed", "private")
MAX_VALUE = 160


@dataclass
class TagRow:
    path: str  #: the engine's path, e.g. ``OtherPatientIDsSequence[0]/PatientID``
    depth: int
    tag: str  #: ``(gggg,eeee)``
    name: str
    vr: str
    original: str | None  #: None: not present (or not shown to this role)
    after: str | None  #: None: removed
    action: str  #: X Z D K C U, or "+" for attributes de-identification adds
    rule: str
    purpose: str
    private: bool

    @property
    def changed(self) -> bool:
        return self.action != "K" or self.original_value != self.after

    original_value: str | None = None  #: always filled; ``original`` is the role-filtered copy

    def to_dict(self) -> dict:
        out = asdict(self)
        out.pop("original_value")
        out["changed"] = self.changed
        return out


def _show(elem: DataElement | None) -> str | None:
    if elem is None:
        return None
    if elem.VR == "SQ":
        n = len(elem.value or [])
        return f"{n} item" + ("" if n == 1 else "s")
    if elem.VR in BINARY_VRS or elem.tag == 0x7FE00010:
        value = elem.value
        return f"({len(value) if value is not None else 0} bytes of binary data)"
    value = elem.value
    if value is None:
        return ""
    text = "\\".join(str(v) for v in value) if isinstance(value, (list, tuple, MultiValue)) else str(value)
    return text if len(text) <= MAX_VALUE else text[:MAX_VALUE] + "…"


def _walk(ds: Dataset, prefix: str = "", depth: int = 0, out: dict | None = None) -> dict[str, tuple[int, DataElement]]:
    """path -> (depth, element), in dataset order, items included."""
    out = {} if out is None else out
    for elem in ds:
        path = prefix + _label(int(elem.tag))
        out[path] = (depth, elem)
        if elem.VR == "SQ":
            for i, item in enumerate(elem.value or []):
                _walk(item, f"{path}[{i}]/", depth + 1, out)
    return out


def purpose_of(profile: Profile, rule: str) -> str:
    """The written purpose of the rule that decided an attribute's fate."""
    m = _RULE.match(rule)
    source = m.group("source") if m else rule
    if source.startswith("profile override: "):
        return source.removeprefix("profile override: ")
    for option in profile.options:
        if source.startswith(option.label) or (option.cli == "retain-safe-private" and "E.3.10-1" in source):
            return profile.purposes.get(option.cli, PURPOSES["basic"])
    if rule.startswith("keyed pseudonym"):
        return PURPOSES["pseudonym"]
    if rule.startswith("safety net"):
        return PURPOSES["safety-net"]
    if rule.startswith("unlisted instance UID"):
        return PURPOSES["unlisted-uid"]
    if rule.startswith("unlisted date"):
        return PURPOSES["unlisted-date"]
    return PURPOSES["basic"]


def _fallback(tag: int, present_after: bool) -> tuple[str, str, str]:
    """Action, rule and purpose of an attribute the engine's report does not list."""
    group, element = tag >> 16, tag & 0xFFFF
    if element == 0:
        return ("X", "group length", PURPOSES["group-length"])
    if group & 1 and 0x10 <= element <= 0xFF:
        return ("K" if present_after else "X", "private creator", PURPOSES["private-creator"])
    if present_after:
        return ("K", "not listed in Table E.1-1: kept", PURPOSES["not-listed"])
    return ("X", "not listed in Table E.1-1: removed with its parent", PURPOSES["not-listed"])


def tag_rows(inspected: Inspected, profile: Profile) -> list[TagRow]:
    """Every attribute of the original, then what de-identification added."""
    before = _walk(inspected.original)
    after = _walk(inspected.after) if inspected.after is not None else {}
    decided = {path: (action, rule) for path, action, rule in
               (inspected.report.actions if inspected.report is not None else [])}
    rows = []
    for path, (depth, elem) in before.items():
        tag = int(elem.tag)
        new = after.get(path, (0, None))[1]
        if path in decided:
            action, rule = decided[path]
            purpose = purpose_of(profile, rule)
        elif inspected.after is None:
            action, rule, purpose = "X", f"instance {inspected.outcome}: {inspected.reason}", inspected.reason
        else:
            action, rule, purpose = _fallback(tag, new is not None)
        original = _show(elem)
        rows.append(TagRow(path=path, depth=depth, tag=f"({tag >> 16:04X},{tag & 0xFFFF:04X})",
                           name=_label(tag), vr=str(elem.VR), original=original, original_value=original,
                           after=_show(new), action=action, rule=rule, purpose=purpose, private=bool((tag >> 16) & 1)))
    for path, (depth, elem) in after.items():
        if path not in before:
            tag = int(elem.tag)
            rows.append(TagRow(path=path, depth=depth, tag=f"({tag >> 16:04X},{tag & 0xFFFF:04X})",
                               name=_label(tag), vr=str(elem.VR), original=None, after=_show(elem), action="+",
                               rule="added by de-identification", purpose=PURPOSES["added"],
                               private=bool((tag >> 16) & 1)))
    return rows


def filter_rows(rows: list[TagRow], show: str) -> list[TagRow]:
    if show == "remains":
        return [r for r in rows if r.after is not None and not r.changed]
    if show == "changed":
        return [r for r in rows if r.changed]
    if show == "private":
        return [r for r in rows if r.private]
    return rows
