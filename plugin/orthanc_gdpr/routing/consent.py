"""The lawful-basis gate: is this patient's study allowed to leave for this purpose?

Sources of truth, in order of preference: the portability service's consent API when configured,
otherwise a local consent file. A source that does not answer means "not yet", never "yes".
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Protocol

import requests

CARE = "care"


@dataclass(frozen=True)
class Standing:
    """What the registry knows about one patient and one purpose."""

    consent: bool  #: an explicit, unexpired, unwithdrawn consent for the purpose is recorded
    restricted: bool  #: processing restricted (GDPR Art. 18)
    objected: bool  #: the patient objected (GDPR Art. 21)


@dataclass(frozen=True)
class Decision:
    verdict: str  #: "allow", "refuse", "wait", or "reject" (the data itself rules out an answer)
    reason: str


class ConsentUnavailable(Exception):
    """The consent source did not answer."""


class MissingPatientId(Exception):
    """The data has no PatientID, so no registry can be asked about it: retrying cannot help."""

    def __init__(self) -> None:
        super().__init__("the patient has no PatientID (0010,0020), so the consent registry cannot be asked "
                         "about this patient; give the data a PatientID (rectification) before it leaves")


class ConsentSource(Protocol):
    def standing(self, patient_id: str, issuer: str, purpose: str) -> Standing: ...


def decide(source: ConsentSource | None, patient_id: str, issuer: str, purpose: str, lawful_basis: str,
           may_act_for_care: bool = True) -> Decision:
    """Apply the gate: consent-based sending needs consent; restriction or objection blocks
    every purpose other than care, and care too unless the person asking ``may_act_for_care``
    (a clinician or the dpo; a routing rule for care is configured by the site); an unreachable
    source defers the decision; data without a PatientID is rejected (no registry can answer for it)."""
    if source is None:
        if lawful_basis == "consent":
            return Decision("refuse", "lawful basis is consent but no consent source is configured")
        return Decision("allow", f"lawful basis {lawful_basis}; no consent registry configured")
    if not patient_id.strip():
        return Decision("reject", str(MissingPatientId()))
    try:
        standing = source.standing(patient_id, issuer, purpose)
    except ConsentUnavailable as e:
        return Decision("wait", f"consent source unavailable: {e}")
    if purpose != CARE and standing.restricted:
        return Decision("refuse", "processing of this patient's data is restricted (Art. 18)")
    if purpose != CARE and standing.objected:
        return Decision("refuse", "the patient objected to this processing (Art. 21)")
    if (standing.restricted or standing.objected) and not may_act_for_care:
        why = "restricted (Art. 18)" if standing.restricted else "objected to (Art. 21)"
        return Decision("refuse", f"processing of this patient's data is {why}: only a clinician or the dpo "
                                  "may take it for care")
    if lawful_basis == "consent" and not standing.consent:
        return Decision("refuse", f"no recorded consent for purpose {purpose!r}")
    return Decision("allow", f"lawful basis {lawful_basis}" + (", consent recorded" if standing.consent else ""))


def _active(entry: dict, now: datetime) -> bool:
    if entry.get("withdrawn_at"):
        return False
    expires = entry.get("expires")
    return not expires or datetime.fromisoformat(expires).replace(tzinfo=timezone.utc) > now


class ConsentFile:
    """A local JSON registry, re-read on every question so edits take effect at once::

        {"consents": [{"patient_id": "P1", "issuer": "", "purpose": "research",
                       "expires": "2030-01-01", "withdrawn_at": null}],
         "restrictions": [{"patient_id": "P2", "issuer": "", "kind": "restriction"}]}
    """

    def __init__(self, path: str | Path):
        self.path = Path(path)

    def standing(self, patient_id: str, issuer: str, purpose: str) -> Standing:
        try:
            doc = json.loads(self.path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            doc = {}
        except (OSError, json.JSONDecodeError) as e:
            raise ConsentUnavailable(f"consent file {self.path.name} unreadable: {e}") from None
        now = datetime.now(timezone.utc)

        def same_patient(e: dict) -> bool:
            return e.get("patient_id") == patient_id and (e.get("issuer") or "") == issuer

        consent = any(same_patient(e) and e.get("purpose") == purpose and _active(e, now)
                      for e in doc.get("consents", []))
        flags = {e.get("kind") for e in doc.get("restrictions", []) if same_patient(e) and not e.get("lifted_at")}
        return Standing(consent=consent, restricted="restriction" in flags, objected="objection" in flags)


class ConsentService:
    """The portability service's registry: ``GET {url}/api/consents/standing``."""

    def __init__(self, url: str, token: str = "", timeout: float = 5):
        self.url, self.token, self.timeout = url.rstrip("/"), token, timeout

    def standing(self, patient_id: str, issuer: str, purpose: str) -> Standing:
        headers = {"Authorization": f"Bearer {self.token}"} if self.token else {}
        try:
            r = requests.get(f"{self.url}/api/consents/standing", timeout=self.timeout, headers=headers,
                             params={"patient_id": patient_id, "issuer": issuer, "purpose": purpose})
            r.raise_for_status()
            doc = r.json()
            return Standing(consent=bool(doc["consent"]), restricted=bool(doc["restricted"]),
                            objected=bool(doc["objected"]))
        except (requests.RequestException, ValueError, KeyError) as e:
            raise ConsentUnavailable(type(e).__name__) from None
