"""Routing rules: which stable studies go where, with which profile, purpose and lawful basis.

Rules are a declarative JSON file (``orthanc-config/routing-rules.json``)::

    {"rules": [{
        "name": "ct-to-research",
        "match": {"Modality": ["CT"], "CallingAet": ["SCANNER1"], "CalledAet": ["ORTHANC"],
                  "Tags": {"StudyDescription": "*BRAIN*"}},
        "destination": {"type": "modality", "name": "RESEARCH_PACS"},
        "profile": "research", "purpose": "research", "lawful_basis": "research"}]}

``"review": "required"`` makes the rule's jobs wait as ``awaiting-review`` until a person
releases the study for this rule and profile (:mod:`.release_gate`); ``"none"`` is the default.

``destination.type`` is ``modality`` (DICOM C-STORE to a modality declared in Orthanc),
``peer`` (an Orthanc peer) or ``dicomweb`` (STOW-RS to ``url``). Every ``match`` key is optional;
a value list matches any of its values; ``Tags`` values are shell-style patterns.
"""

from __future__ import annotations

import fnmatch
import json
from dataclasses import dataclass, field
from pathlib import Path

#: Lawful bases a rule may name, with the GDPR provisions they stand for.
LAWFUL_BASES = {
    "consent": "Art. 6(1)(a) and 9(2)(a): explicit consent of the data subject",
    "care": "Art. 9(2)(h): medical diagnosis and the provision of health care",
    "public-health": "Art. 9(2)(i): public interest in the area of public health",
    "research": "Art. 9(2)(j) with Art. 89: scientific research with safeguards",
    "legal-obligation": "Art. 6(1)(c): a legal obligation of the controller",
    "vital-interest": "Art. 9(2)(c): vital interests of the data subject",
}
DESTINATION_TYPES = ("modality", "peer", "dicomweb")
_MATCH_KEYS = {"Modality", "CallingAet", "CalledAet", "Tags"}
_RULE_KEYS = {"name", "match", "destination", "profile", "purpose", "lawful_basis", "store_copy", "description",
              "review"}
REVIEW_VALUES = ("none", "required")


class RuleError(ValueError):
    """A routing rules file that cannot be used; Orthanc does not start half-configured."""


@dataclass(frozen=True)
class Destination:
    type: str
    name: str = ""  #: modality or peer name as declared in Orthanc's configuration
    url: str = ""  #: DICOMweb base URL (for STOW-RS: POST {url}/studies)
    username: str = ""
    password_file: str = ""

    @property
    def key(self) -> str:
        """Identifies the destination for "already delivered" bookkeeping."""
        return f"{self.type}:{self.name or self.url}"


@dataclass(frozen=True)
class StudyFacts:
    """What a rule can match on, gathered from Orthanc for one study."""

    modalities: frozenset[str]
    calling_aets: frozenset[str]
    called_aets: frozenset[str]
    tags: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Rule:
    name: str
    destination: Destination
    profile: str
    purpose: str
    lawful_basis: str
    modalities: tuple[str, ...] = ()
    calling_aets: tuple[str, ...] = ()
    called_aets: tuple[str, ...] = ()
    tags: tuple[tuple[str, str], ...] = ()
    store_copy: bool = False
    review_required: bool = False  #: ``"review": "required"``: a person releases each study first

    def matches(self, facts: StudyFacts) -> bool:
        if self.modalities and not facts.modalities & set(self.modalities):
            return False
        if self.calling_aets and not facts.calling_aets & set(self.calling_aets):
            return False
        if self.called_aets and not facts.called_aets & set(self.called_aets):
            return False
        return all(fnmatch.fnmatchcase(facts.tags.get(k, ""), pattern) for k, pattern in self.tags)


def _strings(value: object, where: str) -> tuple[str, ...]:
    if isinstance(value, str):
        return (value,)
    if isinstance(value, list) and all(isinstance(v, str) for v in value):
        return tuple(value)
    raise RuleError(f"{where}: expected a string or a list of strings")


def parse_rule(doc: object, where: str) -> Rule:
    if not isinstance(doc, dict):
        raise RuleError(f"{where}: a rule is a JSON object")
    unknown = set(doc) - _RULE_KEYS
    if unknown:
        raise RuleError(f"{where}: unknown keys {sorted(unknown)}")
    for key in ("name", "destination", "profile", "purpose", "lawful_basis"):
        if not doc.get(key):
            raise RuleError(f"{where}: '{key}' is required")
    name = str(doc["name"])
    where = f"{where} ({name})"
    if doc["lawful_basis"] not in LAWFUL_BASES:
        raise RuleError(f"{where}: lawful_basis must be one of {', '.join(LAWFUL_BASES)}")
    dest = doc["destination"]
    if not isinstance(dest, dict) or dest.get("type") not in DESTINATION_TYPES:
        raise RuleError(f"{where}: destination.type must be one of {', '.join(DESTINATION_TYPES)}")
    if dest["type"] == "dicomweb" and not dest.get("url"):
        raise RuleError(f"{where}: a dicomweb destination needs a 'url'")
    if dest["type"] != "dicomweb" and not dest.get("name"):
        raise RuleError(f"{where}: a {dest['type']} destination needs the 'name' declared in Orthanc")
    unknown = set(dest) - {"type", "name", "url", "username", "password_file"}
    if unknown:
        raise RuleError(f"{where}: unknown destination keys {sorted(unknown)}")
    match = doc.get("match", {})
    if not isinstance(match, dict) or set(match) - _MATCH_KEYS:
        raise RuleError(f"{where}: 'match' may use {sorted(_MATCH_KEYS)}")
    if doc.get("review", "none") not in REVIEW_VALUES:
        raise RuleError(f"{where}: review must be one of {', '.join(REVIEW_VALUES)}")
    tags = match.get("Tags", {})
    if not isinstance(tags, dict) or not all(isinstance(v, str) for v in tags.values()):
        raise RuleError(f"{where}: match.Tags maps DICOM keywords to patterns")
    return Rule(
        name=name, destination=Destination(**{k: str(v) for k, v in dest.items()}),
        profile=str(doc["profile"]), purpose=str(doc["purpose"]), lawful_basis=str(doc["lawful_basis"]),
        modalities=_strings(match.get("Modality", []), f"{where}: Modality"),
        calling_aets=_strings(match.get("CallingAet", []), f"{where}: CallingAet"),
        called_aets=_strings(match.get("CalledAet", []), f"{where}: CalledAet"),
        tags=tuple(sorted(tags.items())), store_copy=bool(doc.get("store_copy", False)),
        review_required=doc.get("review") == "required")


def load_rules(path: str | Path) -> list[Rule]:
    try:
        doc = json.loads(Path(path).read_text(encoding="utf-8"))
    except OSError as e:
        raise RuleError(f"cannot read routing rules {path}: {e.strerror}") from None
    except json.JSONDecodeError as e:
        raise RuleError(f"routing rules {path}: invalid JSON: {e.msg} at line {e.lineno}") from None
    if not isinstance(doc, dict) or not isinstance(doc.get("rules"), list):
        raise RuleError(f"routing rules {path}: expected {{\"rules\": [...]}}")
    rules = [parse_rule(r, f"routing rules {Path(path).name}, rule {i + 1}") for i, r in enumerate(doc["rules"])]
    names = [r.name for r in rules]
    duplicates = {n for n in names if names.count(n) > 1}
    if duplicates:
        raise RuleError(f"routing rules {path}: duplicate rule names {sorted(duplicates)}")
    return rules
