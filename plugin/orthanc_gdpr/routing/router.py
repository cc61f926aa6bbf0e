"""The routing engine: rules in, de-identified deliveries out, every outcome audited.

Written against :class:`~orthanc_gdpr.orthanc_api.OrthancApi`, so it runs the same inside the
plugin and against a remote Orthanc.
"""

from __future__ import annotations

import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from ..anonymous.decision import PSEUDONYMISED
from ..audit import AuditLog
from ..deid import DeidentificationError, Deidentifier, InstanceDropped, deidentify_bytes
from ..deid.manifest import Manifest
from ..orthanc_api import OrthancApi, OrthancApiError, get_json, patient_identity
from .consent import ConsentSource, MissingPatientId, decide
from .destinations import DeliveryError, send
from .jobs import Job, JobQueue
from .release_gate import ReleaseGate, ReleaseUnavailable
from .rules import Rule, StudyFacts

#: Marker of our own de-identified copies (rule ``store_copy``): never routed again.
OWN_METHOD_PREFIX = "orthanc-gdpr"


@dataclass(frozen=True)
class RetryPolicy:
    first_delay: float = 5.0  #: seconds before the first retry
    max_delay: float = 600.0
    max_attempts: int = 20

    def delay(self, attempts: int) -> float:
        return min(self.first_delay * 2 ** max(attempts - 1, 0), self.max_delay)


class Router:
    def __init__(self, api: OrthancApi, rules: list[Rule], engines: dict[str, Deidentifier],
                 queue: JobQueue, audit: AuditLog, consent: ConsentSource | None,
                 retry: RetryPolicy = RetryPolicy(), gate: ReleaseGate | None = None):
        self.api, self.queue, self.audit, self.consent, self.retry = api, queue, audit, consent, retry
        self.gate = gate
        self.rules = {r.name: r for r in rules}
        self.engines = engines

    # -- choosing what to route -------------------------------------------------------------

    def study_facts(self, study_id: str) -> StudyFacts | None:
        """Facts about a study for rule matching; None for our own de-identified copies."""
        study = get_json(self.api, f"/studies/{study_id}")
        instances = get_json(self.api, f"/studies/{study_id}/instances")
        if not instances:
            return None
        first = instances[0]["ID"]
        tags = get_json(self.api, f"/instances/{first}/simplified-tags")
        method = tags.get("DeidentificationMethod", "")
        method = method if isinstance(method, str) else "\\".join(method)
        if method.startswith(OWN_METHOD_PREFIX):
            return None
        metadata = get_json(self.api, f"/instances/{first}/metadata?expand")
        modalities = {get_json(self.api, f"/series/{s}")["MainDicomTags"].get("Modality", "")
                      for s in study.get("Series", [])}
        flat = {k: v for k, v in tags.items() if isinstance(v, str)}
        return StudyFacts(modalities=frozenset(modalities),
                          calling_aets=frozenset({metadata.get("RemoteAET", "")}),
                          called_aets=frozenset({metadata.get("CalledAET", "")}), tags=flat)

    def on_stable_study(self, study_id: str) -> list[Job]:
        facts = self.study_facts(study_id)
        if facts is None:
            return []
        return [self.queue.add(rule.name, "studies", study_id, "auto-routing")
                for rule in self.rules.values() if rule.matches(facts)]

    def route_by_hand(self, level: str, resource: str, rule_name: str, user: str) -> Job:
        if rule_name not in self.rules:
            raise KeyError(rule_name)
        get_json(self.api, f"/{level}/{resource}")  # raises when the resource does not exist
        if self.consent is not None and not patient_identity(self.api, level, resource)[0].strip():
            error = MissingPatientId()  # refused now: a queued job could never succeed
            self.audit.append("route.refused", user=user, level=level, resource=resource, rule=rule_name,
                              reason=str(error))
            raise error
        job = self.queue.add(rule_name, level, resource, user)
        self.audit.append("route.requested", user=user, level=level, resource=resource, rule=rule_name, job=job.id)
        return job

    # -- delivering --------------------------------------------------------------------------

    def run_once(self) -> bool:
        """Process the next due job; False when none is due."""
        job = self.queue.claim()
        if job is None:
            return False
        try:
            self.process(job)
        except Exception as e:  # a fault of ours: the job is retried, never half-reported as done
            self._retry_or_fail(job, f"internal error: {type(e).__name__}: {e}", {"job": job.id})
            raise
        return True

    def process(self, job: Job) -> None:
        rule = self.rules.get(job.rule)
        base = {"user": job.requested_by, "job": job.id, "level": job.level, "resource": job.resource}
        if rule is None:
            self._finish(job, "failed", {"error": f"rule {job.rule!r} is no longer configured"}, base)
            return
        base.update(rule=rule.name, profile=rule.profile, destination=rule.destination.key,
                    purpose=rule.purpose, lawful_basis=rule.lawful_basis, classification=PSEUDONYMISED)
        try:
            patient_id, issuer = patient_identity(self.api, job.level, job.resource)
            instances = [i["ID"] for i in get_json(self.api, f"/{job.level}/{job.resource}/instances")]
        except OrthancApiError as e:
            self._retry_or_fail(job, f"cannot read the resource from Orthanc: {e}", base)
            return
        decision = decide(self.consent, patient_id, issuer, rule.purpose, rule.lawful_basis)
        if decision.verdict == "wait":
            self._retry_or_fail(job, decision.reason, base, status_if_exhausted="refused")
            return
        if decision.verdict in ("refuse", "reject"):
            self._finish(job, "refused", {"reason": decision.reason}, base)
            return
        engine = self.engines[rule.profile]
        with tempfile.TemporaryDirectory(prefix="orthanc-gdpr-release-") as spool:
            produce = self._fresh(engine)
            if rule.review_required:
                produce = self._released(job, rule, engine, instances, base, Path(spool))
                if produce is None:
                    return
            self._deliver(job, rule, instances, produce, base)

    def _fresh(self, engine: Deidentifier) -> Callable[[str], bytes]:
        """De-identify a stored instance now (raises InstanceDropped, DeidentificationError,
        OrthancApiError)."""
        return lambda instance: deidentify_bytes(engine, self.api.get(f"/instances/{instance}/file"))[1]

    def _deliver(self, job: Job, rule: Rule, instances: list[str], produce: Callable[[str], bytes],
                 base: dict) -> None:
        sent, skipped, dropped, held_back = 0, 0, 0, []
        for instance in instances:
            if self.queue.is_cancelled(job.id):
                self.audit.append("route.cancelled", **base, sent=sent)
                return
            if self.queue.is_delivered(rule.destination.key, rule.profile, instance):
                skipped += 1
                continue
            try:
                dicom = produce(instance)
            except InstanceDropped:
                dropped += 1  # by policy (a report the profile does not keep): not a failure
                continue
            except DeidentificationError as e:
                held_back.append({"instance": instance, "error": str(e)})
                continue
            except OrthancApiError as e:
                self._retry_or_fail(job, str(e), base, sent=sent)
                return
            try:
                send(self.api, rule.destination, dicom)
                if rule.store_copy:
                    self.api.post("/instances", dicom)
            except (DeliveryError, OrthancApiError) as e:
                self._retry_or_fail(job, str(e), base, sent=sent)
                return
            self.queue.mark_delivered(rule.destination.key, rule.profile, instance, job.id)
            sent += 1
        counts = {"instances": len(instances), "sent": sent, "already_delivered": skipped,
                  "dropped_by_policy": dropped, "held_back": len(held_back)}
        if held_back:
            self._finish(job, "failed", {**counts, "held_back_instances": held_back,
                                         "error": f"{len(held_back)} instance(s) could not be de-identified and were not sent"}, base)
        else:
            self._finish(job, "done", counts, base)

    # -- the release gate (rules with "review": "required") ----------------------------------

    def _released(self, job: Job, rule: Rule, engine: Deidentifier, instances: list[str], base: dict,
                  spool: Path) -> Callable[[str], bytes] | None:
        """The de-identified files a release covers, exactly as reviewed; None when the job must
        wait (no decision, service down, release void), was cancelled (rejected) or expired."""
        if self.gate is None:
            self._finish(job, "failed", {"error": "the rule requires review but no release service is configured"},
                         base)
            return None
        if job.level != "studies":
            self._finish(job, "failed", {"error": "a rule that requires review routes whole studies only"}, base)
            return None
        try:
            standing = self.gate.service.standing(job.resource, rule.name, rule.profile)
        except ReleaseUnavailable as e:
            self._await_review(job, base, f"the release service did not answer ({e})")
            return None
        if standing.decision == "none":
            self._await_review(job, base, "no release decision yet")
            return None
        base["release"] = standing.release
        if standing.release is not None and job.detail.get("void_release") == standing.release:
            # Found void before, but the service was not told (or not yet): no second check.
            self._await_review(job, base, job.detail.get("awaiting", "release void"), void_release=standing.release)
            return None
        if standing.decision == "reject":
            self._finish(job, "cancelled", {"reason": f"release {standing.release} rejected by {standing.decided_by}: "
                                                      f"{standing.rationale}"}, base)
            return None
        manifest, files = Manifest(), {}
        for n, instance in enumerate(instances):
            try:
                dicom = self._fresh(engine)(instance)
            except InstanceDropped as e:
                manifest.drop(instance)
                files[instance] = e
                continue
            except DeidentificationError as e:
                files[instance] = e
                continue
            except OrthancApiError as e:
                self._retry_or_fail(job, str(e), base)
                return None
            path = spool / f"{n}.dcm"
            path.write_bytes(dicom)
            manifest.add(instance, dicom)
            files[instance] = path
        why = self.gate.mismatch(standing, manifest)
        if why is not None:
            told = self.gate.service.void(standing.release, why)
            self.audit.append("release.void", **base, reason=why, service_told=told)
            self._await_review(job, base, f"release {standing.release} is void: {why}; a new review is needed",
                               void_release=standing.release)
            return None

        def reviewed(instance: str) -> bytes:
            item = files[instance]
            if isinstance(item, Exception):
                raise item
            return item.read_bytes()
        return reviewed

    def _await_review(self, job: Job, base: dict, reason: str, **detail) -> None:
        """Wait for a release (checked again every poll interval), or expire after N days."""
        gate = self.gate
        assert gate is not None
        if time.time() - job.created > gate.expiry_seconds:
            self._finish(job, "expired", {"error": f"not released within {gate.expiry_seconds / 86400:g} days "
                                                   f"({reason})"}, base)
            return
        self.queue.finish(job.id, "awaiting-review", {"awaiting": reason, **detail}, retry_in=gate.poll_seconds)
        if job.detail.get("awaiting") != reason:  # audited when the reason changes, not at every poll
            self.audit.append("route.awaiting-review", **base, reason=reason)

    def _finish(self, job: Job, status: str, detail: dict, base: dict) -> None:
        self.queue.finish(job.id, status, detail)
        audit_detail = {k: v for k, v in detail.items() if k != "held_back_instances"}
        self.audit.append(f"route.{status}", **base, **audit_detail)

    def _retry_or_fail(self, job: Job, error: str, base: dict, status_if_exhausted: str = "failed", **counts) -> None:
        if job.attempts >= self.retry.max_attempts:
            self._finish(job, status_if_exhausted, {"error": f"gave up after {job.attempts} attempts: {error}", **counts}, base)
            return
        delay = self.retry.delay(job.attempts)
        self.queue.finish(job.id, "pending", {"error": error, "retry_in_seconds": delay, **counts}, retry_in=delay)
        self.audit.append("route.retry", **base, error=error, attempt=job.attempts, retry_in_seconds=delay, **counts)


class Worker:
    """A background thread that drains the queue, off Orthanc's request threads."""

    def __init__(self, router: Router, idle_wait: float = 1.0, on_error: Callable[[Exception], None] | None = None):
        self.router, self.idle_wait, self.on_error = router, idle_wait, on_error
        self._stop = threading.Event()
        self._wake = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="orthanc-gdpr-router", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def wake(self) -> None:
        self._wake.set()

    def stop(self, timeout: float = 10) -> None:
        self._stop.set()
        self._wake.set()
        self._thread.join(timeout)

    def _loop(self) -> None:
        while not self._stop.is_set():
            try:
                busy = self.router.run_once()
            except Exception as e:  # keep the worker alive; the job stays queued
                busy = False
                if self.on_error:
                    self.on_error(e)
            if not busy:
                self._wake.wait(self.idle_wait)
                self._wake.clear()
