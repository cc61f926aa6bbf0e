"""PS3.15 Table E.1-1 as a lookup: attribute tag -> the action a set of options asks for.

The table is data (``standard/ps315_table_e1_1_2026d.json``); this module only turns its rows
into :class:`Rule` objects keyed by tag, resolves the option columns, and answers the wildcard
rows (curves ``50xx``, overlays ``60xx``, private attributes).
"""

from __future__ import annotations

from dataclasses import dataclass

from .. import standard
from .options import Option

TABLE_FILE = "ps315_table_e1_1_2026d.json"
SAFE_PRIVATE_FILE = "ps315_table_e3_10_1_safe_private_2026d.json"

#: A composite code needs the attribute's type in the IOD at hand (E.1-1a). Without the IOD we
#: take the choice that is valid for every type it allows: keep a zero-length value where Type 2
#: is possible, a dummy value where Type 1 is, and remapped UIDs inside reference sequences.
COMPOSITE_RESOLUTION = {"X/Z": "Z", "X/D": "D", "Z/D": "D", "X/Z/D": "D", "X/Z/U*": "U"}

SIMPLE_ACTIONS = frozenset("XZDKCU")

#: Attributes Table E.1-1 removes (X) although an IOD requires them as Type 2C: removing them
#: would make a conformant object non-conformant, so their value is emptied instead (Z), which
#: discloses as little. Responsible Person and Organization: Patient Module, for animals
#: (PS3.3 C.7.1.1, present when Patient Species Description/Code is).
TYPE_2_REMOVALS = frozenset({"(0010,2297)", "(0010,2299)"})


@dataclass(frozen=True)
class Rule:
    """What to do with one attribute, and why."""

    action: str  #: one of X Z D K C U
    code: str  #: the code as the source wrote it (may be composite, e.g. "X/Z/U*")
    source: str  #: where the action comes from, e.g. "E.1-1 basic" or "Clean Descriptors"
    name: str  #: the attribute's name in the table

    def __post_init__(self) -> None:
        code = self.code if self.code == self.action else f"{self.code}->{self.action}"
        object.__setattr__(self, "_description", f"{code} ({self.source})")  # read per attribute per instance

    def describe(self) -> str:
        return self._description  # type: ignore[attr-defined]


def parse_tag(text: str) -> int:
    """``"(0008,0050)"`` -> ``0x00080050``."""
    group, element = text.strip("()").split(",")
    return int(group, 16) << 16 | int(element, 16)


def _resolve(row: dict, selected: tuple[Option, ...]) -> Rule:
    code, source = row["basic"], "E.1-1 basic"
    chosen = [(row[o.column], o.label) for o in selected if o.column and row[o.column]]
    if chosen:
        # Two selected options can name the same attribute (e.g. Retain Patient Characteristics
        # and Clean Descriptors): cleaning is the safer of keep and clean.
        code, source = min(chosen, key=lambda c: c[0] != "C")
    action = COMPOSITE_RESOLUTION.get(code, code)
    if action not in SIMPLE_ACTIONS:
        raise ValueError(f"unknown action code {code!r} for {row['tag']} in {TABLE_FILE}")
    if action == "X" and row["tag"] in TYPE_2_REMOVALS:
        action, source = "Z", f"{source}; emptied, not removed: Type 2C in the Patient Module"
    return Rule(action=action, code=code, source=source, name=row["name"])


@dataclass(frozen=True)
class SafePrivate:
    """Table E.3.10-1 keyed by (private creator, group, element byte)."""

    keys: frozenset[tuple[str, int, int]]

    @classmethod
    def load(cls) -> "SafePrivate":
        keys = set()
        for row in standard.load(SAFE_PRIVATE_FILE):
            group, element = row["tag"].strip("()").split(",")
            keys.add((row["private_creator"].strip().upper(), int(group, 16), int(element[2:], 16)))
        return cls(frozenset(keys))

    def is_safe(self, creator: str, tag: int) -> bool:
        return (creator.strip().upper(), tag >> 16, tag & 0xFF) in self.keys


class ActionTable:
    """Table E.1-1 resolved for one selection of options (plus profile overrides)."""

    def __init__(self, selected: tuple[Option, ...] = (), overrides: dict[int, Rule] | None = None):
        self.selected = selected
        self.exact: dict[int, Rule] = {}
        wildcard: dict[str, Rule] = {}
        for row in standard.load(TABLE_FILE):
            rule = _resolve(row, selected)
            tag_text = row["tag"]
            if "x" in tag_text or "g" in tag_text:
                wildcard[tag_text] = rule
            else:
                self.exact[parse_tag(tag_text)] = rule
        self.exact.update(overrides or {})
        self.curve = wildcard["(50xx,xxxx)"]
        self.overlay_data = wildcard["(60xx,3000)"]
        self.overlay_comments = wildcard["(60xx,4000)"]
        self.private = wildcard["(gggg,eeee) where gggg is odd"]

    def lookup(self, tag: int) -> Rule | None:
        """The rule for a standard attribute, or None when the table does not list it.

        Private attributes are answered by :attr:`private` and the safe-private table, not here.
        """
        rule = self.exact.get(tag)
        if rule is not None:
            return rule
        group = tag >> 16
        if 0x5000 <= group <= 0x501E and not group & 1:
            return self.curve
        if 0x6000 <= group <= 0x601E and not group & 1:
            return self.overlay_rule(tag)
        return None

    def overlay_rule(self, tag: int) -> Rule:
        """Overlay group attributes follow the Overlay Data.

        An overlay bitmap is kept unchanged (K, by a profile override) or cleaned (Clean
        Graphics' C: its text lines are erased by the text detector, see
        :func:`orthanc_gdpr.pixels.graphics.clean_overlays`); the group's other attributes are
        then kept with their text cleaned. Once the bitmap goes (X), the whole group goes with
        it, descriptions and labels included.
        """
        element = tag & 0xFFFF
        if element == 0x3000:
            return self.overlay_data
        if element == 0x4000:
            return self.overlay_comments
        if self.overlay_data.action in ("K", "C"):
            return Rule("C", "C", "overlay kept: its text attributes are cleaned", "Overlay attribute")
        return Rule("X", "X", "overlay group goes with its Overlay Data", "Overlay attribute")
