"""Identified data leaving through Orthanc's own routes: recognised, gated, audited.

Orthanc hands out identified data on its archive, media, file, attachment and export routes, when
it stores to a modality or peer, builds an archive or media of several resources, and on the
DICOMweb plugin's retrieval routes (``/dicom-web/studies/...``, ``/wado``). Each such request is
written to the plugin's audit log (``export``: person, role, route, resources, purpose) or, when
refused, as ``export.refused`` with the reason.

The rule (GDPR Art. 18 and 21): for a patient whose processing is restricted or who objected,
identified data leaves only for the purpose ``care`` (``?purpose=care``) and only for a
clinician or the dpo; anyone else gets 403. A consent registry that does not answer refuses too.
The portability service's own machine login and the plugin's worker processes are not gated here
(the service gates and audits what it does on behalf of a named person). No ``orthanc`` import.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field

from .audit import AuditLog
from .identity import MACHINE, Identity
from .orthanc_api import OrthancApi, OrthancApiError, get_json, patient_identity
from .routing.consent import ConsentSource, decide

LEVELS = ("patients", "studies", "series", "instances")
#: GET (and the file export POST) routes whose answer is identified data of the resource in the URI.
RESOURCE_ROUTE = re.compile(r"^/(patients|studies|series|instances)/([^/]+)/"
                            r"(archive|media|file|export|attachments/dicom/(?:data|compressed-data))/?$")
#: DICOMweb retrieval (WADO-RS): a study, series or instance by UID, or its metadata, frames, renderings.
DICOMWEB_ROUTE = re.compile(r"^/dicom-web/studies/([^/]+)(?:/series/([^/]+)(?:/instances/([^/]+))?)?"
                            r"(?:/(?:metadata|rendered|thumbnail|frames/[^/]+|bulk/.*))?/?$")
WADO_URI = "/wado"
#: POST routes whose body names the resources that leave; the plugin answers them itself (see
#: :func:`resources_of_body`) and hands them on to Orthanc once allowed.
BODY_ROUTES = ("/modalities/([^/]+)/store", "/peers/([^/]+)/store", "/tools/create-archive",
               "/tools/create-media", "/tools/create-media-extended", "/dicom-web/servers/([^/]+)/stow")
PURPOSE = re.compile(r"^[a-z][a-z0-9-]{0,63}$")
UNSPECIFIED = "unspecified"
#: What the consent gate is told: identified data at a person's request, never consent-based,
#: so only a restriction (Art. 18) or an objection (Art. 21) stops it.
LAWFUL_BASIS = "identified export"
_UID_LEVEL = {"Patient": "patients", "Study": "studies", "Series": "series", "Instance": "instances"}


@dataclass(frozen=True)
class Egress:
    """One request that lets identified data out."""
    route: str  #: e.g. "studies/archive", "dicomweb", "modalities/store"
    resources: tuple[tuple[str, str], ...] = ()  #: (level, Orthanc ID); level "" when not known yet
    uids: tuple[str, ...] = ()  #: DICOM UIDs (DICOMweb), resolved to Orthanc resources when checked
    destination: str | None = None


@dataclass(frozen=True)
class Verdict:
    allowed: bool
    status: int = 200
    reason: str = ""
    purpose: str = UNSPECIFIED
    patients: tuple[tuple[str, str], ...] = field(default=(), repr=False)


def purpose_of(get: dict) -> str | None:
    """The request's ``?purpose=`` (default "unspecified"), or None when malformed."""
    value = (get or {}).get("purpose") or UNSPECIFIED
    return value if PURPOSE.match(value) else None


def classify(uri: str, method: str, get: dict) -> Egress | None:
    """The egress a request without a body makes (None: not an identified-data route)."""
    m = RESOURCE_ROUTE.match(uri)
    if m and (method == "GET" or m.group(3) == "export"):
        return Egress(f"{m.group(1)}/{m.group(3).split('/')[0]}", ((m.group(1), m.group(2)),))
    if method != "GET":
        return None
    m = DICOMWEB_ROUTE.match(uri)
    if m:
        return Egress("dicomweb", uids=tuple(u for u in m.groups() if u))
    if uri == WADO_URI:
        get = get or {}
        uids = tuple(filter(None, (get.get("studyUID"), get.get("seriesUID"), get.get("objectUID"))))
        return Egress("wado", uids=uids)
    return None


def purpose_of_post(headers: dict, body: bytes) -> tuple[str | None, bytes]:
    """The purpose of a POST (Orthanc passes no query string to plugins for POST): the body's
    "Purpose" (removed from the body handed on to Orthanc) or the ``X-Purpose`` header."""
    purpose = next((v for k, v in (headers or {}).items() if k.lower() == "x-purpose"), None)
    try:
        doc = json.loads(body or b"null")
    except ValueError:
        doc = None
    if isinstance(doc, dict) and "Purpose" in doc:
        purpose = doc.pop("Purpose")
        body = json.dumps(doc).encode()
    return purpose_of({"purpose": purpose if isinstance(purpose, str) else ""}), body


def resources_of_body(body: bytes) -> list[str]:
    """Orthanc IDs named by a store/archive body: one ID, a JSON list of IDs, or an object with
    "Resources" (IDs or {"ID": ...} items). Raises ValueError for anything else."""
    text = (body or b"").decode("utf-8", "replace").strip()
    if text and not text.startswith(("[", "{", '"')):
        return [text]
    doc = json.loads(text or "null")
    items = doc.get("Resources") if isinstance(doc, dict) else doc
    if isinstance(items, str):
        items = [items]
    if not isinstance(items, list) or not items:
        raise ValueError("no resources named")
    ids = [i.get("ID") if isinstance(i, dict) else i for i in items]
    if not all(isinstance(i, str) and i for i in ids):
        raise ValueError("resources must be Orthanc IDs")
    return ids


class EgressGate:
    """Decides and audits identified egress for one request."""

    def __init__(self, api: OrthancApi, consent: ConsentSource | None, audit: AuditLog):
        self.api, self.consent, self.audit = api, consent, audit

    def level_of(self, resource: str) -> str:
        for level in LEVELS:
            try:
                self.api.get(f"/{level}/{resource}")
                return level
            except OrthancApiError:
                continue
        raise OrthancApiError(f"no resource {resource}")

    def _resources(self, egress: Egress) -> list[tuple[str, str]]:
        found = [(level or self.level_of(rid), rid) for level, rid in egress.resources]
        for uid in egress.uids:
            matches = json.loads(self.api.post("/tools/lookup", uid))
            found += [(_UID_LEVEL[m["Type"]], m["ID"]) for m in matches if m.get("Type") in _UID_LEVEL]
        return found

    def _patient(self, level: str, resource: str) -> tuple[str, str]:
        if level != "patients":
            return patient_identity(self.api, level, resource)
        tags = get_json(self.api, f"/patients/{resource}").get("MainDicomTags") or {}
        studies = get_json(self.api, f"/patients/{resource}/studies")
        if studies:
            return patient_identity(self.api, "studies", studies[0]["ID"])
        return str(tags.get("PatientID", "")), ""

    def decide(self, who: Identity, egress: Egress, purpose: str) -> Verdict:
        """Apply the rule; raises OrthancApiError when a named resource does not exist."""
        resources = self._resources(egress)
        if self.consent is None:
            return Verdict(True, purpose=purpose)
        patients = tuple(sorted({self._patient(level, rid) for level, rid in resources}))
        for patient_id, issuer in patients:
            decision = decide(self.consent, patient_id, issuer, purpose, LAWFUL_BASIS, who.may_act_for_care)
            if decision.verdict == "wait":
                return Verdict(False, 503, f"{decision.reason}; refused until it answers", purpose)
            if decision.verdict != "allow":
                return Verdict(False, 403, decision.reason, purpose)
        return Verdict(True, purpose=purpose, patients=patients)

    def check(self, who: Identity, egress: Egress, purpose: str | None) -> Verdict:
        """Decide and write the audit record; machines pass unrecorded (they audit their own work)."""
        if who.role == MACHINE:
            return Verdict(True, purpose=purpose or UNSPECIFIED)
        fields = {"user": who.name, "role": who.role, "route": egress.route,
                  "resources": [rid for _, rid in egress.resources] or None, "uids": list(egress.uids) or None,
                  "destination": egress.destination}
        fields = {k: v for k, v in fields.items() if v is not None}
        if purpose is None:
            verdict = Verdict(False, 400, "purpose must be a lower-case word such as 'care'", UNSPECIFIED)
        else:
            try:
                verdict = self.decide(who, egress, purpose)
            except (OrthancApiError, ValueError, KeyError):  # nothing leaves: Orthanc answers 404 itself
                self.audit.append("export.not-found", **fields, purpose=purpose)
                return Verdict(True, 404, "no such resource", purpose)
        if verdict.allowed:
            self.audit.append("export", **fields, purpose=verdict.purpose, result="sent")
        else:
            self.audit.append("export.refused", **fields, purpose=verdict.purpose, reason=verdict.reason)
        return verdict
