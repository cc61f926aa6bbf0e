"""Everything the plugin runs, built once from its settings: no ``orthanc`` import here."""

from __future__ import annotations

import re
from dataclasses import dataclass

from collections.abc import Iterable, Iterator

from .audit import AuditLog
from .deid import Deidentifier, Keyring, load_key, load_profile
from .deid.parallel import Outcome, WorkerPool, outcome
from .orthanc_api import OrthancApi
from .routing.consent import ConsentFile, ConsentService, ConsentSource
from .routing.jobs import JobQueue
from .routing.router import RetryPolicy, Router, Worker
from .routing.rules import load_rules
from .settings import Settings

#: Orthanc's own routes that hand out identified data; filtered when RestrictIdentifiedExport is on.
IDENTIFIED_EXPORT_ROUTES = re.compile(
    r"^/(?:(?:patients|studies|series)/[^/]+/(?:archive|media)"
    r"|(?:patients|studies|series|instances)/[^/]+/attachments/dicom/(?:data|compressed-data)"
    r"|instances/[^/]+/(?:file|export)"
    r"|tools/create-(?:archive|media|media-extended)"
    r"|(?:modalities|peers)/[^/]+/(?:store|store-straight|move)"
    r"|(?:patients|studies|series|instances)/[^/]+/(?:anonymize|modify))/?$")


def _consent_source(settings: Settings) -> ConsentSource | None:
    if settings.consent_url:
        token = settings.consent_token_file.read_text().strip() if settings.consent_token_file else ""
        return ConsentService(settings.consent_url, token)
    if settings.consent_file:
        return ConsentFile(settings.consent_file)
    return None


@dataclass
class Runtime:
    settings: Settings
    engines: dict[str, Deidentifier]
    audit: AuditLog
    queue: JobQueue
    router: Router
    worker: Worker
    key: bytes
    pool: WorkerPool | None = None

    @classmethod
    def build(cls, settings: Settings, api: OrthancApi) -> "Runtime":
        """Load key, profiles and rules; raises a clear error on anything wrong."""
        key = load_key(settings.key_file)
        assert key is not None
        keyring = Keyring(key)
        rules = load_rules(settings.routing_rules) if settings.routing_rules else []
        names = set(settings.download_profiles) | {r.profile for r in rules}
        engines = {n: Deidentifier(load_profile(n, settings.profiles_dir), keyring) for n in sorted(names)}
        audit = AuditLog(settings.audit_path)
        queue = JobQueue(settings.queue_path)
        retry = RetryPolicy(settings.retry_first_delay, settings.retry_max_delay, settings.retry_max_attempts)
        router = Router(api, rules, engines, queue, audit, _consent_source(settings), retry)
        return cls(settings, engines, audit, queue, router, Worker(router), key)

    def start(self) -> None:
        """Start the routing worker and the de-identification processes (once Orthanc runs)."""
        if self.settings.workers:
            self.pool = WorkerPool([e.profile for e in self.engines.values()], self.key,
                                   self.settings.workers, self.settings.worker_python)
        self.worker.start()

    def stop(self) -> None:
        self.worker.stop()
        if self.pool is not None:
            self.pool.close()

    def outcomes(self, profile: str, files: Iterable[bytes]) -> Iterator[Outcome]:
        """De-identify ``files`` in order: in the worker processes when they are free."""
        if self.pool is not None and self.pool.acquire():
            yield from self.pool.outcomes(profile, files)
        else:
            engine = self.engines[profile]
            for data in files:
                yield outcome(engine, data)

    def may_export_identified(self, uri: str, user: str) -> bool:
        """The request filter's answer for Orthanc's plain export routes."""
        if not self.settings.restrict_identified_export or user in self.settings.identified_export_users:
            return True
        return IDENTIFIED_EXPORT_ROUTES.match(uri) is None
