"""Everything the plugin runs, built once from its settings: no ``orthanc`` import here."""

from __future__ import annotations

import hmac
import re
from dataclasses import dataclass

from collections.abc import Iterable, Iterator

from .audit import AuditLog
from .egress import EgressGate
from .identity import MACHINE, AccountGate, Identity
from .deid import Deidentifier, Keyring, load_key, load_profile
from .deid.parallel import Outcome, Source, WorkerPool, outcome
from .orthanc_api import OrthancApi
from .routing.consent import ConsentFile, ConsentService, ConsentSource
from .routing.jobs import JobQueue, PostgresJobQueue, open_queue
from .routing.router import RetryPolicy, Router, Worker
from .routing.release_gate import ReleaseGate, ReleaseService
from .routing.rules import RuleError, load_rules
from .settings import Settings

#: Orthanc's own routes that hand out identified data; filtered when RestrictIdentifiedExport is on.
IDENTIFIED_EXPORT_ROUTES = re.compile(
    r"^/(?:(?:patients|studies|series)/[^/]+/(?:archive|media)"
    r"|(?:patients|studies|series|instances)/[^/]+/attachments/dicom/(?:data|compressed-data)"
    r"|instances/[^/]+/(?:file|export)"
    r"|tools/create-(?:archive|media|media-extended)"
    r"|(?:modalities|peers)/[^/]+/(?:store|store-straight|move)"
    r"|(?:patients|studies|series|instances)/[^/]+/(?:anonymize|modify))/?$")

#: The one route the de-identification processes read (with the plugin's own token).
WORKER_ROUTE = re.compile(r"^/instances/[^/]+/file$")


def _consent_source(settings: Settings) -> ConsentSource | None:
    if settings.consent_url:
        token = settings.consent_token_file.read_text().strip() if settings.consent_token_file else ""
        return ConsentService(settings.consent_url, token)
    if settings.consent_file:
        return ConsentFile(settings.consent_file)
    return None


def _release_gate(settings: Settings, key: bytes, rules: list) -> ReleaseGate | None:
    """The release gate, when a rule requires review; refuses to start without a service."""
    reviewed = [r.name for r in rules if r.review_required]
    if not reviewed:
        return None
    if not settings.release_url:
        raise RuleError(f"routing rules {', '.join(reviewed)} require review, but neither Gdpr.ReleaseServiceUrl "
                        "nor Gdpr.ConsentServiceUrl names the service that records releases")
    token = settings.release_token_file.read_text().strip() if settings.release_token_file else ""
    return ReleaseGate(ReleaseService(settings.release_url, token), key, settings.review_expiry_days,
                       settings.review_poll_seconds)


def _account_gate(settings: Settings) -> AccountGate | None:
    if not settings.authenticate_with_service:
        return None
    assert settings.consent_token_file is not None
    credential = settings.service_credential_file.read_text().strip() if settings.service_credential_file else ""
    return AccountGate(settings.consent_url, settings.consent_token_file.read_text().strip(), credential,
                       settings.login_cache_seconds)


@dataclass
class Runtime:
    settings: Settings
    engines: dict[str, Deidentifier]
    audit: AuditLog
    queue: JobQueue | PostgresJobQueue
    router: Router
    worker: Worker
    key: bytes
    accounts: AccountGate | None = None  #: with AuthenticateWithService: the service's accounts
    pool: WorkerPool | None = None

    @property
    def egress(self) -> EgressGate:
        return EgressGate(self.router.api, self.router.consent, self.audit)

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
        queue = open_queue(settings.queue_path, settings.queue_database_url)
        retry = RetryPolicy(settings.retry_first_delay, settings.retry_max_delay, settings.retry_max_attempts)
        router = Router(api, rules, engines, queue, audit, _consent_source(settings), retry,
                        _release_gate(settings, key, rules))
        return cls(settings, engines, audit, queue, router, Worker(router), key, _account_gate(settings))

    def start(self, source: Source | None = None) -> None:
        """Start the routing worker and the de-identification processes (once Orthanc runs).

        With a ``source`` (Orthanc's loopback URL and a REST token of this plugin), the worker
        processes read the stored files themselves; its token is then also the only credential
        besides :attr:`Settings.identified_export_users` that passes the export filter.
        """
        if self.settings.workers:
            self.pool = WorkerPool([e.profile for e in self.engines.values()], self.key,
                                   self.settings.workers, self.settings.worker_python, source)
        self.worker.start()

    def stop(self) -> None:
        self.worker.stop()
        if self.pool is not None:
            self.pool.close()

    def instance_outcomes(self, profile: str, instances: list[str]) -> Iterator[Outcome]:
        """De-identify Orthanc's ``instances`` in order: read and processed by the worker
        processes when they can read from Orthanc, else read here (:meth:`outcomes`)."""
        pool = self.pool
        if pool is not None and pool.source is not None and pool.acquire():
            yield from pool.fetched_outcomes(profile, instances)
        else:
            yield from self.outcomes(profile, (self.router.api.get(f"/instances/{i}/file") for i in instances))

    def outcomes(self, profile: str, files: Iterable[bytes]) -> Iterator[Outcome]:
        """De-identify ``files`` in order: in the worker processes when they are free."""
        if self.pool is not None and self.pool.acquire():
            yield from self.pool.outcomes(profile, files)
        else:
            engine = self.engines[profile]
            for data in files:
                yield outcome(engine, data)

    def may_export_identified(self, uri: str, user: str, authorization: str = "") -> bool:
        """The request filter's answer for Orthanc's plain export routes. ``authorization`` is
        the request's "Authorization" header: the worker processes' own token passes, for the
        one route they read (Orthanc 1.10 does not even filter requests with a plugin token)."""
        if not self.settings.restrict_identified_export or user in self.settings.identified_export_users:
            return True
        if WORKER_ROUTE.match(uri) and self.is_own_request(authorization):
            return True
        return IDENTIFIED_EXPORT_ROUTES.match(uri) is None

    def identify(self, authorization: str, client: str, user: str) -> Identity | None:
        """Who sends a request. With the service's accounts, the verified account (None: no valid
        login; raises AccountsUnavailable when the service cannot say); otherwise the user Orthanc
        has already authenticated (``user``), a clinician when listed in ``CareUsers``."""
        if self.is_own_request(authorization):
            return Identity("orthanc-gdpr-plugin", MACHINE)
        if self.accounts is not None:
            return self.accounts.identify(authorization, client)
        return Identity(user or "anonymous", "clinician" if user in self.settings.care_users else "staff")

    def is_own_request(self, authorization: str) -> bool:
        """Whether an "Authorization" header is exactly the token given to the worker processes."""
        source = self.pool.source if self.pool is not None else None
        if source is None or not source.authorization or not authorization:
            return False
        return hmac.compare_digest(authorization.encode(), source.authorization.encode())
