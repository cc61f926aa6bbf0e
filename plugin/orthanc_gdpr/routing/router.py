"""The routing engine: rules in, de-identified deliveries out, every outcome audited.

Written against :class:`~orthanc_gdpr.orthanc_api.OrthancApi`, so it runs the same inside the
plugin and against a remote Orthanc.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass

from ..anonymous.decision import PSEUDONYMISED
from ..audit import AuditLog
from ..deid import DeidentificationError, Deidentifier, InstanceDropped, deidentify_bytes
from ..orthanc_api import OrthancApi, OrthancApiError, get_json, patient_identity
from .consent import ConsentSource, MissingPatientId, decide
from .destinations import DeliveryError, send
from .jobs import Job, JobQueue
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
                 retry: RetryPolicy = RetryPolicy()):
        self.api, self.queue, self.audit, self.consent, self.retry = api, queue, audit, consent, retry
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
        sent, skipped, dropped, held_back = 0, 0, 0, []
        for instance in instances:
            if self.queue.is_cancelled(job.id):
                self.audit.append("route.cancelled", **base, sent=sent)
                return
            if self.queue.is_delivered(rule.destination.key, rule.profile, instance):
                skipped += 1
                continue
            try:
                original = self.api.get(f"/instances/{instance}/file")
                _, dicom, _ = deidentify_bytes(engine, original)
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
