"""The anonymity decision record: why an export counts as anonymous, kept in the audit chain.

The committee audits "the completeness and transparency of the rationale". One record per
export (event :data:`EVENT`) says which criterion applies, who decided, which clinician was
consulted and what they stated, the rationale, the source series (Orthanc IDs: they stay inside
the institution's audit and never travel with the files), the SHA-256 of every file written and
the limits in force. Refused exports are recorded as :data:`REFUSED_EVENT` with the rule broken.

:data:`CLASSIFICATIONS` names what each kind of export is: only the two anonymous kinds come from
here; every de-identified DICOM export (download, routing) is ``pseudonymised``, whatever its
profile, and a patient's own copy is ``identified``.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

EVENT = "anonymity.decision"
REFUSED_EVENT = "anonymity.refused"
SLICES, AGGREGATE = "anonymous-slices", "anonymous-aggregate"
PSEUDONYMISED, IDENTIFIED = "pseudonymised", "identified"
CLASSIFICATIONS = (SLICES, AGGREGATE, PSEUDONYMISED, IDENTIFIED)
CRITERIA = {
    1: "Criterion 1: population aggregate without associated DICOM metadata",
    2: "Criterion 2: individual slices without associated DICOM metadata",
}
#: The clinician's attestation a slice export needs (criterion 2, point 4).
ATTESTATION = "no obvious or rare features that could single out the person"


@dataclass
class Decision:
    criterion: int
    classification: str
    decided_by: str
    rationale: str
    source_series: list[str]
    outputs: list[dict[str, Any]]  #: per file: name, sha256, and what it shows (slice, statistic...)
    limits: dict[str, Any]
    clinician: str | None = None
    statement: str | None = None
    checks: dict[str, Any] = field(default_factory=dict)  #: burned-in text, masking, counts
    method: dict[str, Any] = field(default_factory=dict)  #: format, window, statistic, grid

    def fields(self) -> dict[str, Any]:
        """The audit record's fields (``actor`` is ``decided_by``)."""
        body = asdict(self)
        body["criterion_text"] = CRITERIA[self.criterion]
        return body
