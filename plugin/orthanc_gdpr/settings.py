"""The plugin's own section of Orthanc's configuration, ``"Gdpr": {...}``, validated at start-up.

Bad or missing settings stop Orthanc with a clear message instead of running half-configured::

    "Gdpr": {
      "KeyFile": "/var/lib/orthanc-gdpr/gdpr.key",          // required: the pseudonymisation key
      "StateDirectory": "/var/lib/orthanc-gdpr/state",       // required: job queue + audit log
      "ProfilesDirectory": "/etc/orthanc-gdpr/profiles",     // default: the project's profiles
      "RoutingRules": "/etc/orthanc-gdpr/routing-rules.json",// optional: no auto-routing without
      "ConsentFile": "/etc/orthanc-gdpr/consents.json",      // local consent registry, or:
      "ConsentServiceUrl": "http://127.0.0.1:8000",          // the portability service
      "ConsentServiceTokenFile": "/etc/orthanc-gdpr/service.token",
      "DownloadProfiles": ["basic", "research"],             // profiles users may download with
      "DefaultDownloadProfile": "basic",
      "ArchiveCompression": "stored",                        // or "deflate-fast"
      "RestrictIdentifiedExport": false,                     // filter Orthanc's plain export routes
      "IdentifiedExportUsers": ["admin"],                    // who may still use them
      "AuthenticateWithService": false,                      // every request: the service's accounts
      "ServiceCredentialFile": "/etc/orthanc-gdpr/service.credential", // the service's login to Orthanc
      "LoginCacheSeconds": 30,                               // how long a verified login is trusted
      "CareUsers": [],                                       // without accounts: who counts as clinician
      "Retry": {"FirstDelaySeconds": 5, "MaxDelaySeconds": 600, "MaxAttempts": 20},
      "QueueDatabaseUrl": "postgresql://orthanc@db/gdpr",   // optional: one routing queue for replicas
      "ReleaseServiceUrl": "http://127.0.0.1:8000",          // release gate (default: ConsentServiceUrl)
      "ReleaseServiceTokenFile": "/etc/orthanc-gdpr/service.token", // default: ConsentServiceTokenFile
      "ReviewExpiryDays": 14,                                // unreviewed "review": "required" jobs expire
      "ReviewPollSeconds": 30,                               // how often a waiting job asks again
      "WorkspaceUrl": "https://gdpr.example.org",            // the staff workspace, for Explorer buttons
      "Workers": 2,                                          // de-identification processes (0: in Orthanc)
      "WorkerPython": "/usr/bin/python3"                     // the Python 3.11 that runs them
    }

The processes read the stored files themselves from Orthanc's HTTP port on 127.0.0.1 with a REST
token of the plugin (``GenerateRestApiAuthorizationToken``); with ``SslEnabled`` or without the
HTTP server, the plugin reads the files and hands them over instead.

Rules with ``"review": "required"`` need a release service (``ReleaseServiceUrl`` or
``ConsentServiceUrl``): Orthanc refuses to start without one. Their jobs wait as
``awaiting-review`` and ask the service every ``ReviewPollSeconds``; an unreachable service keeps
them waiting (never sending); after ``ReviewExpiryDays`` they expire.

With ``AuthenticateWithService`` (needs ``ConsentServiceUrl`` and ``ConsentServiceTokenFile``, and
Orthanc's own ``AuthenticationEnabled`` off, since Orthanc would refuse the accounts before the
plugin sees them), every HTTP request is checked against the portability service's staff
accounts (:mod:`orthanc_gdpr.identity`); ``GET /gdpr-login`` asks a browser for them and opens
Orthanc Explorer. Orthanc's own routes that hand out identified data are gated and audited
(:mod:`orthanc_gdpr.egress`) in every mode.

Downloads honour the consent registry (``ConsentFile`` / ``ConsentServiceUrl``): a restriction
(Art. 18) or objection (Art. 21) refuses every download purpose (``?purpose=``, default
"download") except "care"; an unreachable registry refuses with 503.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from .deid.profile import profiles_dir
from .downloads import COMPRESSION

SECTION = "Gdpr"
_KEYS = {"KeyFile", "StateDirectory", "ProfilesDirectory", "RoutingRules", "ConsentFile", "ConsentServiceUrl",
         "ConsentServiceTokenFile", "DownloadProfiles", "DefaultDownloadProfile", "ArchiveCompression",
         "RestrictIdentifiedExport", "IdentifiedExportUsers", "Retry", "Workers", "WorkerPython", "QueueDatabaseUrl",
         "ReleaseServiceUrl", "ReleaseServiceTokenFile", "ReviewExpiryDays", "ReviewPollSeconds", "WorkspaceUrl",
         "AuthenticateWithService", "ServiceCredentialFile", "LoginCacheSeconds", "CareUsers"}


class ConfigError(ValueError):
    """The "Gdpr" configuration section is missing or wrong."""


@dataclass(frozen=True)
class Settings:
    key_file: Path
    state_dir: Path
    profiles_dir: Path
    routing_rules: Path | None
    consent_file: Path | None
    consent_url: str
    consent_token_file: Path | None
    download_profiles: tuple[str, ...]
    default_download_profile: str
    compression: str
    restrict_identified_export: bool
    identified_export_users: tuple[str, ...]
    retry_first_delay: float
    retry_max_delay: float
    retry_max_attempts: int
    workers: int
    worker_python: str
    queue_database_url: str = ""
    release_url: str = ""
    release_token_file: Path | None = None
    review_expiry_days: float = 14.0
    review_poll_seconds: float = 30.0
    workspace_url: str = ""
    authenticate_with_service: bool = False
    service_credential_file: Path | None = None
    login_cache_seconds: float = 30.0
    care_users: tuple[str, ...] = ()

    @property
    def queue_path(self) -> Path:
        return self.state_dir / "routing-queue.sqlite"

    @property
    def audit_path(self) -> Path:
        return self.state_dir / "audit.jsonl"


def _path(section: dict, key: str, required: bool = False) -> Path | None:
    value = section.get(key)
    if value in (None, ""):
        if required:
            raise ConfigError(f'"{SECTION}.{key}" is required')
        return None
    if not isinstance(value, str):
        raise ConfigError(f'"{SECTION}.{key}" must be a path')
    return Path(value)


def parse_settings(config: dict) -> Settings:
    """Validate Orthanc's whole configuration (as JSON) and return the plugin's settings."""
    section = config.get(SECTION)
    if not isinstance(section, dict):
        raise ConfigError(f'the Orthanc configuration has no "{SECTION}" section; orthanc-gdpr needs at least '
                          f'"KeyFile" and "StateDirectory"')
    unknown = set(section) - _KEYS
    if unknown:
        raise ConfigError(f'unknown "{SECTION}" settings {sorted(unknown)}; known: {sorted(_KEYS)}')
    key_file = _path(section, "KeyFile", required=True)
    assert key_file is not None
    if not key_file.is_file():
        raise ConfigError(f'"{SECTION}.KeyFile" {key_file} does not exist (create one with 32 random bytes, mode 0600)')
    state_dir = _path(section, "StateDirectory", required=True)
    assert state_dir is not None
    rules = _path(section, "RoutingRules")
    if rules is not None and not rules.is_file():
        raise ConfigError(f'"{SECTION}.RoutingRules" {rules} does not exist')
    profiles = _path(section, "ProfilesDirectory") or profiles_dir()
    if not profiles.is_dir():
        raise ConfigError(f'"{SECTION}.ProfilesDirectory" {profiles} is not a directory')
    downloads = section.get("DownloadProfiles", ["basic"])
    if not isinstance(downloads, list) or not downloads or not all(isinstance(p, str) for p in downloads):
        raise ConfigError(f'"{SECTION}.DownloadProfiles" is a non-empty list of profile names')
    default = section.get("DefaultDownloadProfile", downloads[0])
    if default not in downloads:
        raise ConfigError(f'"{SECTION}.DefaultDownloadProfile" {default!r} is not in DownloadProfiles')
    compression = section.get("ArchiveCompression", "stored")
    if compression not in COMPRESSION:
        raise ConfigError(f'"{SECTION}.ArchiveCompression" must be one of {sorted(COMPRESSION)}')
    users = section.get("IdentifiedExportUsers", [])
    if not isinstance(users, list) or not all(isinstance(u, str) for u in users):
        raise ConfigError(f'"{SECTION}.IdentifiedExportUsers" is a list of user names')
    retry = section.get("Retry", {})
    try:
        first, most, attempts = (float(retry.get("FirstDelaySeconds", 5)), float(retry.get("MaxDelaySeconds", 600)),
                                 int(retry.get("MaxAttempts", 20)))
    except (TypeError, ValueError, AttributeError):
        raise ConfigError(f'"{SECTION}.Retry" takes numbers: FirstDelaySeconds, MaxDelaySeconds, MaxAttempts') from None
    workers = section.get("Workers", min(os.cpu_count() or 1, 4))
    if not isinstance(workers, int) or isinstance(workers, bool) or workers < 0:
        raise ConfigError(f'"{SECTION}.Workers" is a whole number (0: de-identify inside Orthanc)')
    worker_python = section.get("WorkerPython", "/usr/bin/python3")
    if workers and not (isinstance(worker_python, str) and os.access(worker_python, os.X_OK)):
        raise ConfigError(f'"{SECTION}.WorkerPython" {worker_python!r} is not an executable Python 3.11')
    queue_url = section.get("QueueDatabaseUrl", "")
    if not isinstance(queue_url, str) or (queue_url and not queue_url.startswith(
            ("postgresql://", "postgresql+psycopg://", "postgres://"))):
        raise ConfigError(f'"{SECTION}.QueueDatabaseUrl" must be a PostgreSQL URL (postgresql://...)')
    try:
        expiry, poll = float(section.get("ReviewExpiryDays", 14)), float(section.get("ReviewPollSeconds", 30))
    except (TypeError, ValueError):
        raise ConfigError(f'"{SECTION}.ReviewExpiryDays" and "ReviewPollSeconds" are numbers') from None
    if expiry <= 0 or poll <= 0:
        raise ConfigError(f'"{SECTION}.ReviewExpiryDays" and "ReviewPollSeconds" must be above 0')
    consent_url = str(section.get("ConsentServiceUrl", ""))
    release_url = str(section.get("ReleaseServiceUrl", "") or consent_url)
    accounts = section.get("AuthenticateWithService", False)
    if not isinstance(accounts, bool):
        raise ConfigError(f'"{SECTION}.AuthenticateWithService" is true or false')
    if accounts and not (section.get("ConsentServiceUrl") and section.get("ConsentServiceTokenFile")):
        raise ConfigError(f'"{SECTION}.AuthenticateWithService" needs "ConsentServiceUrl" and "ConsentServiceTokenFile" '
                          "(the portability service holds the accounts)")
    if accounts and config.get("AuthenticationEnabled") is not False:
        raise ConfigError(f'"{SECTION}.AuthenticateWithService" needs "AuthenticationEnabled": false: Orthanc would '
                          "otherwise refuse every account before the plugin checks it")
    cache = section.get("LoginCacheSeconds", 30)
    if isinstance(cache, bool) or not isinstance(cache, (int, float)) or not 0 <= cache <= 300:
        raise ConfigError(f'"{SECTION}.LoginCacheSeconds" is a number of seconds from 0 to 300')
    care_users = section.get("CareUsers", [])
    if not isinstance(care_users, list) or not all(isinstance(u, str) for u in care_users):
        raise ConfigError(f'"{SECTION}.CareUsers" is a list of user names')
    return Settings(
        key_file=key_file, state_dir=state_dir, profiles_dir=profiles, routing_rules=rules,
        consent_file=_path(section, "ConsentFile"), consent_url=str(section.get("ConsentServiceUrl", "")),
        consent_token_file=_path(section, "ConsentServiceTokenFile"),
        download_profiles=tuple(downloads), default_download_profile=default, compression=compression,
        restrict_identified_export=bool(section.get("RestrictIdentifiedExport", False)),
        identified_export_users=tuple(users), retry_first_delay=first, retry_max_delay=most,
        retry_max_attempts=attempts, workers=workers, worker_python=worker_python,
        queue_database_url=queue_url, release_url=release_url,
        release_token_file=_path(section, "ReleaseServiceTokenFile") or _path(section, "ConsentServiceTokenFile"),
        review_expiry_days=expiry, review_poll_seconds=poll,
        workspace_url=str(section.get("WorkspaceUrl", "") or release_url).rstrip("/"),
        authenticate_with_service=accounts,
        service_credential_file=_path(section, "ServiceCredentialFile"), login_cache_seconds=float(cache),
        care_users=tuple(care_users))
