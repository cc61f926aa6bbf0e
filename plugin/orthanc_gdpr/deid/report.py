"""What de-identification did to each instance, and what remains and why.

Reports name attributes, rules and counts, never the identifying values themselves, so a report
can travel with the data it describes and be signed off by a data-protection officer.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from dataclasses import dataclass, field

REPORT_VERSION = 1


@dataclass
class InstanceReport:
    """One instance: every action taken, safety-net hits, and the residual risk."""

    sop_class_uid: str = ""
    sop_instance_uid: str = ""  #: the new (de-identified) SOP Instance UID
    patient_pseudonym: str = ""  #: the keyed pseudonym of the patient (never the real ID)
    pixels: dict | None = None  #: what Clean Pixel Data masked (boxes, methods; never the text)
    #: per overlay plane under Clean Graphics: text masked, no text found, or removed (and why)
    overlays: list[dict] | None = None
    actions: list[tuple[str, str, str]] = field(default_factory=list)  #: (path, action, rule)
    safety_net: list[tuple[str, int]] = field(default_factory=list)  #: (path, hits)
    residual: dict[str, set[str]] = field(default_factory=lambda: defaultdict(set))
    #: what else the reader should know, e.g. a transfer syntax conversion or a header-only object
    notes: list[str] = field(default_factory=list)

    def add(self, path: str, action: str, rule: str) -> None:
        self.actions.append((path, action, rule))

    def to_dict(self) -> dict:
        return {
            "sop_class_uid": self.sop_class_uid,
            "sop_instance_uid": self.sop_instance_uid,
            "patient_pseudonym": self.patient_pseudonym,
            "counts": dict(Counter(a for _, a, _ in self.actions)),
            "actions": [{"attribute": p, "action": a, "rule": r} for p, a, r in self.actions],
            "safety_net": [{"attribute": p, "hits": h} for p, h in self.safety_net],
            "residual_risk": {k: sorted(v) for k, v in sorted(self.residual.items())},
            **({"pixels": self.pixels} if self.pixels is not None else {}),
            **({"overlays": self.overlays} if self.overlays is not None else {}),
            **({"notes": self.notes} if self.notes else {}),
        }


@dataclass
class RunReport:
    """A whole run: per-instance reports, held-back inputs and a residual-risk summary."""

    profile: str
    options: list[str]
    instances: list[dict] = field(default_factory=list)
    held_back: list[dict] = field(default_factory=list)
    #: input paths of held-back files, for the operator's console only: paths may carry names,
    #: so they stay out of the report that travels with the data (inputs are numbered there).
    held_back_paths: list[str] = field(default_factory=list)

    def add_instance(self, index: int, output: str, report: dict) -> None:
        self.instances.append({"input": index, "output": output, **report})

    #: inputs left out by policy (report-bearing objects), with their console paths
    dropped: list[dict] = field(default_factory=list)
    dropped_paths: list[str] = field(default_factory=list)

    def add_held_back(self, index: int, path: str, error: str) -> None:
        self.held_back.append({"input": index, "error": error})
        self.held_back_paths.append(path)

    def add_dropped(self, index: int, path: str, reason: str) -> None:
        self.dropped.append({"input": index, "reason": reason})
        self.dropped_paths.append(path)

    def summary(self) -> dict:
        actions: Counter = Counter()
        residual: dict[str, set[str]] = defaultdict(set)
        safety_hits = 0
        for inst in self.instances:
            actions.update(inst["counts"])
            safety_hits += sum(h["hits"] for h in inst["safety_net"])
            for category, attributes in inst["residual_risk"].items():
                residual[category].update(attributes)
        return {
            "instances_written": len(self.instances),
            "instances_held_back": len(self.held_back),
            "instances_dropped": len(self.dropped),
            "actions": dict(actions),
            "safety_net_hits": safety_hits,
            "residual_risk": {k: sorted(v) for k, v in sorted(residual.items())},
        }

    def to_dict(self) -> dict:
        return {"report_version": REPORT_VERSION, "profile": self.profile, "options": self.options,
                "summary": self.summary(), "held_back": self.held_back, "dropped": self.dropped,
                "instances": self.instances}
