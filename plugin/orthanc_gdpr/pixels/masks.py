"""Declarative mask rules: which header values mean which image rectangles hold burned-in text.

Rules live as JSON files in ``orthanc-config/pixel-masks/`` (or the directory named by
``ORTHANC_GDPR_PIXEL_MASKS``), one list of rules per file, each rule with the origin of its
rectangles::

    {"rules": [{"name": "GE LOGIQ 9 banner",
                "match": {"Modality": {"equals": "US"}, "ManufacturerModelName": {"contains": "LOGIQ9"}},
                "boxes": [{"x": 0, "y": 0, "width": 640, "height": 40}],
                "origin": "where the rectangle comes from"}]}

A condition names an attribute by keyword and tests its value as text, case-insensitively:
``equals`` (one value), ``contains`` (a substring) or ``contains_any`` (a list of substrings).
Every condition of a rule must hold. Boxes are clipped to the image.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

from pydicom.dataset import Dataset

from .. import CONFIG_DIR

MASKS_ENV = "ORTHANC_GDPR_PIXEL_MASKS"
DEFAULT_MASKS_DIR = CONFIG_DIR / "pixel-masks"
_TESTS = ("equals", "contains", "contains_any")
_RULE_KEYS = {"name", "match", "boxes", "origin"}

Box = tuple[int, int, int, int]  # x0, y0, x1, y1, end-exclusive


class MaskRuleError(ValueError):
    """A mask rule file that is unreadable or invalid."""


@dataclass(frozen=True)
class Condition:
    keyword: str
    test: str
    values: tuple[str, ...]

    def holds(self, ds: Dataset) -> bool:
        element = ds.get(self.keyword)
        if element is None:
            return False
        value = str(element).upper()
        if self.test == "equals":
            return value == self.values[0]
        return any(v in value for v in self.values)


@dataclass(frozen=True)
class MaskRule:
    name: str
    conditions: tuple[Condition, ...]
    boxes: tuple[Box, ...]
    origin: str

    def matches(self, ds: Dataset) -> bool:
        return all(c.holds(ds) for c in self.conditions)


@dataclass(frozen=True)
class MaskRules:
    rules: tuple[MaskRule, ...]

    @classmethod
    def load(cls, directory: Path | None = None) -> MaskRules:
        """All rules of the ``*.json`` files in ``directory`` (default: the shipped starter set)."""
        directory = directory or Path(os.environ.get(MASKS_ENV, DEFAULT_MASKS_DIR))
        rules: list[MaskRule] = []
        for path in sorted(directory.glob("*.json")):
            try:
                data = json.loads(path.read_text(encoding="utf-8"))
                rules += [_parse(r) for r in data["rules"]]
            except (OSError, ValueError, KeyError, TypeError) as exc:
                raise MaskRuleError(f"{path}: {exc}") from exc
        return cls(tuple(rules))

    def boxes_for(self, ds: Dataset) -> tuple[list[Box], list[str]]:
        """The boxes of every matching rule, clipped to the image, and the matching rules' names."""
        rows, cols = int(ds.Rows), int(ds.Columns)
        boxes, names = [], []
        for rule in self.rules:
            if rule.matches(ds):
                names.append(rule.name)
                boxes += [(max(0, x0), max(0, y0), min(cols, x1), min(rows, y1))
                          for x0, y0, x1, y1 in rule.boxes if x0 < cols and y0 < rows]
        return boxes, names


def _parse(raw: dict) -> MaskRule:
    if set(raw) != _RULE_KEYS:
        raise MaskRuleError(f"rule keys must be {sorted(_RULE_KEYS)}, got {sorted(raw)}")
    if not str(raw["origin"]).strip():
        raise MaskRuleError(f"rule {raw['name']!r} has no origin note")
    conditions = []
    for keyword, test in raw["match"].items():
        (kind, value), = test.items()
        if kind not in _TESTS:
            raise MaskRuleError(f"rule {raw['name']!r}: unknown test {kind!r}")
        values = tuple(str(v).upper() for v in (value if kind == "contains_any" else [value]))
        conditions.append(Condition(keyword, kind, values))
    boxes = tuple((int(b["x"]), int(b["y"]), int(b["x"]) + int(b["width"]), int(b["y"]) + int(b["height"]))
                  for b in raw["boxes"])
    return MaskRule(str(raw["name"]), tuple(conditions), boxes, str(raw["origin"]))
