"""Release decisions: a named person approves or rejects a study de-identified with a profile.

An approval de-identifies every instance of the study with the plugin's key and records exactly
what may leave: the key's fingerprint (never the key), the instance count, the manifest hash
(SHA-256 of each de-identified file, in order; :mod:`orthanc_gdpr.deid.manifest`) and the
residual risks accepted, with the rationale. The record also goes into the audit chain
(``release.approved`` / ``release.rejected``).

The plugin's release gate asks :func:`standing` before a ``"review": "required"`` rule sends,
re-computes the manifest at send time and reports a mismatch with :func:`void`.
"""
from __future__ import annotations

from dataclasses import dataclass, field

from sqlalchemy import select

from orthanc_gdpr.anonymous.decision import AGGREGATE, PSEUDONYMISED, SLICES
from orthanc_gdpr.deid import DeidentificationError, InstanceDropped, deidentify_bytes
from orthanc_gdpr.deid.manifest import Manifest

from . import audit
from .errors import Conflict, ServiceError
from .models import Release, utcnow
from .orthanc import OrthancClient, OrthancError
from .review.engines import Engines
from .review.search import load_study
from .routers.deps import get_or_404

DECISIONS = ("approve", "reject")
CLASSIFICATIONS = {
    PSEUDONYMISED: "Pseudonymised: still personal data (GDPR Recital 26); the recipient is bound by the "
                     "purpose, lawful basis and safeguards of the transfer.",
    AGGREGATE: "Anonymous (aggregate): only aggregated results leave, as assessed by a named clinician.",
    SLICES: "Anonymous (individual slices): single slices without metadata, not whole volumes, nothing "
                        "burned in and no rare features, as assessed by a named clinician.",
}
NEEDS_CLINICIAN = (AGGREGATE, SLICES)


class InvalidRelease(ServiceError):
    """A release request with problems: ``problems`` lists (field, rule) pairs."""
    status, code = 422, "invalid-release"

    def __init__(self, problems: list[tuple[str, str]]) -> None:
        super().__init__("; ".join(f"{f}: {m}" for f, m in problems))
        self.problems = problems


@dataclass
class ReleaseRequest:
    study: str
    profile: str
    decision: str
    rationale: str
    classification: str
    rule: str | None = None
    clinician_name: str | None = None
    clinician_statement: str | None = None

    def problems(self, profiles: list[str], rules: dict[str, dict]) -> list[tuple[str, str]]:
        out = []
        if self.profile not in profiles:
            out.append(("profile", f"Choose one of the profiles: {', '.join(profiles)}"))
        if self.decision not in DECISIONS:
            out.append(("decision", "Choose approve or reject"))
        if len((self.rationale or "").strip()) < 10:
            out.append(("rationale", "Explain the decision in at least 10 characters"))
        if self.classification not in CLASSIFICATIONS:
            out.append(("classification", f"Choose one of: {', '.join(CLASSIFICATIONS)}"))
        if self.classification in NEEDS_CLINICIAN:
            if not (self.clinician_name or "").strip():
                out.append(("clinician_name", "Enter the name of the clinician who assessed anonymity"))
            if len((self.clinician_statement or "").strip()) < 10:
                out.append(("clinician_statement", "Enter the clinician's statement (at least 10 characters)"))
        if self.rule:
            known = rules.get(self.rule)
            if known is None:
                out.append(("rule", f"Choose a configured routing rule ({', '.join(sorted(rules)) or 'none configured'})"))
            elif self.profile in profiles and known.get("profile") != self.profile:
                out.append(("rule", f"This rule sends with profile {known.get('profile')}: review with that profile"))
        return out


@dataclass
class ManifestResult:
    manifest: Manifest
    held_back: int = 0
    residual: dict[str, list[str]] = field(default_factory=dict)


def routing_rules(client: OrthancClient) -> dict[str, dict]:
    """The plugin's routing rules by name (``GET /gdpr/profiles``); empty without the plugin."""
    try:
        doc = client.get_json("/gdpr/profiles")
    except (OrthancError, LookupError):
        return {}
    return {r["name"]: r for r in doc.get("rules", []) if isinstance(r, dict) and "name" in r}


def awaiting_review(client: OrthancClient) -> list[dict]:
    """Routing jobs waiting for a release decision (the plugin's queue), with the profile their
    rule sends with; empty when the plugin does not answer."""
    rules = routing_rules(client)
    try:
        jobs = client.get_json("/gdpr/jobs", params={"status": "awaiting-review"})
    except (OrthancError, LookupError):
        return []
    return [{"job": j["id"], "rule": j["rule"], "study": j["resource"], "since": j.get("created"),
             "profile": rules.get(j["rule"], {}).get("profile"), "reason": j.get("awaiting", "")}
            for j in jobs if j.get("level") == "studies"]


def build_manifest(client: OrthancClient, engines: Engines, profile: str, instances: list[str]) -> ManifestResult:
    """De-identify every instance as the plugin will, and hash each result."""
    engine = engines.engine(profile)
    result = ManifestResult(Manifest())
    residual: dict[str, set[str]] = {}
    for instance in instances:
        try:
            _, dicom, report = deidentify_bytes(engine, client.instance_file(instance))
        except InstanceDropped:
            result.manifest.drop(instance)
            continue
        except DeidentificationError:
            result.held_back += 1
            continue
        result.manifest.add(instance, dicom)
        for category, attributes in report.residual.items():
            residual.setdefault(category, set()).update(attributes)
        if report.pixels is not None:
            residual.setdefault("burned-in text (Clean Pixel Data)", set()).add(
                f"{len(report.pixels.get('boxes', []))} region(s) masked")
    result.residual = {k: sorted(v) for k, v in sorted(residual.items())}
    return result


def decide(db, client: OrthancClient, engines: Engines, req: ReleaseRequest, who: str) -> Release:
    """Record a release decision (after validation); raises :class:`InvalidRelease` (422)."""
    problems = req.problems(engines.profiles(), routing_rules(client))
    if problems:
        raise InvalidRelease(problems)
    study = load_study(client, req.study)  # 404 for an unknown study
    instances = study.all_instances()
    profile = engines.profile(req.profile)
    options = [{"option": o.cli, "purpose": profile.purposes.get(o.cli, "")} for o in profile.options]
    release = Release(study=study.id, profile=profile.name, options=options, rule=req.rule or None,
                      decision=req.decision, status="active", rationale=req.rationale.strip(),
                      classification=req.classification,
                      clinician_name=(req.clinician_name or "").strip() or None,
                      clinician_statement=(req.clinician_statement or "").strip() or None,
                      decided_by=who, decided_at=utcnow(), key_fingerprint=engines.key_fingerprint,
                      instance_count=len(instances), residual_risks={})
    if req.decision == "approve":
        built = build_manifest(client, engines, profile.name, instances)
        if not built.manifest.count:
            raise InvalidRelease([("decision", "Nothing in this study can be sent with this profile: "
                                               "every image was held back or dropped")])
        release.manifest_sha256 = built.manifest.hash
        release.manifest = [list(e) for e in built.manifest.ordered()]
        release.instance_count = built.manifest.count
        release.dropped_count = len(built.manifest.dropped)
        release.held_back_count = built.held_back
        release.residual_risks = built.residual
    with db.session() as s:
        s.add(release)
    record = audit.record(
        f"release.{'approved' if req.decision == 'approve' else 'rejected'}", actor=who, release=release.id,
        study=release.study, profile=release.profile, options=[o["option"] for o in options], rule=release.rule,
        classification=release.classification, clinician=release.clinician_name,
        key_fingerprint=release.key_fingerprint, instances=release.instance_count,
        held_back=release.held_back_count, dropped=release.dropped_count,
        manifest_sha256=release.manifest_sha256, residual_risks_accepted=release.residual_risks,
        rationale=release.rationale)
    with db.session() as s:
        stored = s.get(Release, release.id)
        stored.audit_seq, stored.audit_hash = record.get("seq"), record.get("hash")
        release = stored
    return release


def get(db, release_id: int) -> Release:
    with db.session() as s:
        return get_or_404(s, Release, release_id, "release")


def listing(db, study: str | None = None, limit: int = 200) -> list[Release]:
    with db.session() as s:
        q = select(Release).order_by(Release.id.desc()).limit(limit)
        if study:
            q = q.where(Release.study == study)
        return list(s.scalars(q))


def standing(db, study: str, rule: str, profile: str) -> Release | None:
    """The latest decision still in force for this study, rule and profile (None: not reviewed)."""
    with db.session() as s:
        return s.scalars(select(Release).where(Release.study == study, Release.rule == rule,
                                               Release.profile == profile, Release.status == "active")
                         .order_by(Release.id.desc()).limit(1)).first()


def void(db, release_id: int, reason: str, who: str) -> Release:
    """The stored study changed since the review (or the key did): the release no longer applies."""
    with db.session() as s:
        release = get_or_404(s, Release, release_id, "release")
        if release.status == "void":
            raise Conflict(f"release {release_id} is already void")
        release.status, release.void_reason, release.voided_at = "void", reason[:500], utcnow()
    audit.record("release.void", actor=who, release=release_id, study=release.study, profile=release.profile,
                 rule=release.rule, reason=release.void_reason)
    return release


def to_dict(r: Release) -> dict:
    return {"id": r.id, "study": r.study, "profile": r.profile, "options": r.options, "rule": r.rule,
            "decision": r.decision, "status": r.status, "rationale": r.rationale,
            "classification": r.classification, "clinician_name": r.clinician_name,
            "clinician_statement": r.clinician_statement, "decided_by": r.decided_by,
            "decided_at": r.decided_at.isoformat() if r.decided_at else None,
            "key_fingerprint": r.key_fingerprint, "instances": r.instance_count, "dropped": r.dropped_count,
            "held_back": r.held_back_count, "manifest_sha256": r.manifest_sha256,
            "residual_risks": r.residual_risks, "audit_seq": r.audit_seq, "audit_hash": r.audit_hash,
            "void_reason": r.void_reason, "voided_at": r.voided_at.isoformat() if r.voided_at else None}
