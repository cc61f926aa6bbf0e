"""The service's settings: one object, read from ``ORTHANC_GDPR_SERVICE_*`` environment variables.

=====================================  ==========================================================
``ORTHANC_GDPR_SERVICE_DATABASE_URL``  SQLAlchemy URL (default: SQLite in the data directory);
                                       ``postgresql+psycopg://user@127.0.0.1:5432/db`` for PostgreSQL
``ORTHANC_GDPR_SERVICE_ORTHANC_URL``   Orthanc's REST API (default ``http://127.0.0.1:8042``)
``..._ORTHANC_USERNAME``               Orthanc user
``..._ORTHANC_PASSWORD`` / ``..._ORTHANC_PASSWORD_FILE``   its password, inline or from a file
``..._DATA_DIR``                       bundles, staging files, SQLite (default ``./portability-data``)
``..._TOKEN_TTL_HOURS``                lifetime of a download link (default 168 = 7 days)
``..._STAFF_TOKENS``                   ``token:role[,token:role...]``: bearer tokens of integrations
``..._PLUGIN_TOKEN_FILE``              the Orthanc plugin's bearer token (consent gate, login checks,
                                       egress checks; nothing else)
``..._ISSUER``                         who issues the copies (shown to the patient)
``..._HOST`` / ``..._PORT``            where :func:`portability.server.run` listens
``..._WORKER``                         ``0`` to run no background worker in this process
``..._PLUGIN_AUDIT_LOG``               the plugin's ``audit.jsonl``, imported into the one audit store
``..._PLUGIN_KEY_FILE``                the plugin's key file: lets Art. 19 rejection notes name the
                                       de-identified UIDs a research destination received
``..._RIGHTS_RETRY_SECONDS``           first back-off of a failed rectification/erasure apply (30)
``..._ANONYMITY_LIMITS``               the site's limits for anonymous exports (JSON; default: the
                                       committee's, see ``orthanc_gdpr.anonymous.limits``)
=====================================  ==========================================================

What the patient's copy tells (GDPR Art. 15; every text is translated, the values are shown as given):

=====================================  ==========================================================
``..._BUNDLE_LANGUAGES``               languages of INDEX.HTM and README.TXT, first = default
                                       (``en,de``; known: en de fr it es nl pl); a request's
                                       ``language`` comes first
``..._SITE_PURPOSES``                  ``purpose:lawful-basis[,...]`` the site processes images for
                                       (default ``care:care``); bases as in routing rules
``..._RETENTION_YEARS``                years kept after the last examination (unset: "ask us")
``..._RETENTION_LAW``                  the rule that sets that period, e.g. ``§ 630f BGB``
``..._SUPERVISORY_AUTHORITY``          name of the data-protection supervisory authority
``..._SUPERVISORY_AUTHORITY_CONTACT``  its address, web site or phone
``..._RIGHTS_CONTACT``                 how a patient exercises their rights here (office, e-mail)
``..._RECIPIENT_NAMES``                ``destination=Display name[;...]``: routing destinations
                                       (``modality:PACS2``, ``dicomweb:https://...``) as patients
                                       should read them
``..._USER_ORGANISATIONS``             ``user=Organisation[;...]``: whose staff an Orthanc user is
                                       (default: the issuer)
``..._VIEWER_SIZE``                    longest side of the viewer's images in pixels (256; larger
                                       images are reduced by a whole factor: 512 -> 256); 512
                                       keeps CT at full resolution (bigger, slower, see
                                       bench/README.md); ``0``: no viewer
``..._VIEWER_QUALITY``                 JPEG quality of the viewer's images, 1-95 (80): lower is
                                       smaller and blurrier
``..._VIEWER_MAX_FRAMES``              frames shown per multi-frame image (40); a longer cine is
                                       shown as an evenly sampled strip
=====================================  ==========================================================

Roles: ``staff`` (handles requests), ``clinician`` (staff who may act for care), ``reviewer``
(and may also verify identity), ``dpo`` (all). People are accounts in the database
(``orthanc-gdpr users``, ``/api/users``); no password is ever read from the environment.
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field, replace
from pathlib import Path

from .accounts import ROLES

PREFIX = "ORTHANC_GDPR_SERVICE_"
LAWFUL_BASES = ("consent", "care", "public-health", "research", "legal-obligation", "vital-interest")


class SettingsError(ValueError):
    """A setting is missing or malformed."""


def _mapping(text: str, name: str) -> dict[str, str]:
    out = {}
    for item in filter(None, (p.strip() for p in text.split(";"))):
        key, sep, value = item.partition("=")
        if not sep or not key.strip() or not value.strip():
            raise SettingsError(f"{PREFIX}{name}: each entry must be 'key=value', separated by ';'")
        out[key.strip()] = value.strip()
    return out


def _purposes(text: str) -> tuple[tuple[str, str], ...]:
    out = []
    for item in filter(None, (p.strip() for p in text.split(","))):
        purpose, sep, basis = item.partition(":")
        if not sep or not purpose or basis not in LAWFUL_BASES:
            raise SettingsError(f"{PREFIX}SITE_PURPOSES: each entry must be 'purpose:basis' with a basis "
                                f"among {', '.join(LAWFUL_BASES)}")
        out.append((purpose, basis))
    return tuple(out)


def _languages(text: str) -> tuple[str, ...]:
    from .i18n import LANGUAGES

    langs = tuple(dict.fromkeys(p.strip() for p in text.split(",") if p.strip()))
    if not langs or any(lang not in LANGUAGES for lang in langs):
        raise SettingsError(f"{PREFIX}BUNDLE_LANGUAGES: a comma-separated list among {', '.join(LANGUAGES)}")
    return langs


def _pairs(text: str, parts: int) -> list[list[str]]:
    out = []
    for item in filter(None, (p.strip() for p in text.split(","))):
        fields = item.split(":")
        if len(fields) != parts:
            raise SettingsError(f"malformed entry {item.split(':')[0]!r}: expected {parts} ':'-separated fields")
        if fields[-1] not in ROLES:
            raise SettingsError(f"unknown role {fields[-1]!r} (known: {', '.join(ROLES)})")
        out.append(fields)
    return out


@dataclass(frozen=True)
class Settings:
    data_dir: Path = Path("portability-data")
    database_url: str = ""
    orthanc_url: str = "http://127.0.0.1:8042"
    orthanc_username: str | None = None
    orthanc_password: str | None = None
    token_ttl_hours: float = 168.0
    #: accounts created at start when missing (tests, embedding): user -> (password, role)
    staff_users: dict[str, tuple[str, str]] = field(default_factory=dict)
    staff_tokens: dict[str, str] = field(default_factory=dict)  # token -> role
    plugin_token: str | None = None  #: the Orthanc plugin's bearer token
    issuer: str = "Orthanc GDPR portability service"
    host: str = "127.0.0.1"
    port: int = 8000
    worker: bool = True
    worker_poll_seconds: float = 0.5
    due_soon_days: int = 7
    plugin_audit_log: Path | None = None
    plugin_key_file: Path | None = None
    rights_retry_seconds: float = 30.0
    rights_max_retry_seconds: float = 600.0
    rights_max_attempts: int = 50
    patient_token_ttl_hours: float = 24.0 * 30
    bundle_languages: tuple[str, ...] = ("en", "de")
    site_purposes: tuple[tuple[str, str], ...] = (("care", "care"),)
    retention_years: int | None = None
    retention_law: str | None = None
    supervisory_authority: str | None = None
    supervisory_authority_contact: str | None = None
    rights_contact: str | None = None
    recipient_names: dict[str, str] = field(default_factory=dict)
    user_organisations: dict[str, str] = field(default_factory=dict)
    viewer_size: int = 256
    viewer_quality: int = 80
    viewer_max_frames: int = 40
    anonymity_limits: Path | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "data_dir", Path(self.data_dir).resolve())
        if not self.database_url:
            object.__setattr__(self, "database_url", f"sqlite:///{self.data_dir / 'portability.sqlite'}")

    @property
    def bundles_dir(self) -> Path:
        return self.data_dir / "bundles"

    @property
    def orthanc_auth(self) -> tuple[str, str] | None:
        return (self.orthanc_username, self.orthanc_password or "") if self.orthanc_username else None

    def with_(self, **changes) -> "Settings":
        return replace(self, **changes)

    @classmethod
    def from_env(cls, environ: dict[str, str] | None = None, **overrides) -> "Settings":
        env = os.environ if environ is None else environ

        def get(name: str, default=None):
            return env.get(PREFIX + name, default)

        password = get("ORTHANC_PASSWORD")
        password_file = get("ORTHANC_PASSWORD_FILE")
        if password is None and password_file:
            try:
                password = Path(password_file).read_text().strip()
            except OSError as e:
                raise SettingsError(f"cannot read {PREFIX}ORTHANC_PASSWORD_FILE: {e}") from e
        if get("STAFF_USERS") is not None:
            raise SettingsError(f"{PREFIX}STAFF_USERS is no longer read: passwords never come from the environment; "
                                "create accounts with `orthanc-gdpr users add NAME --role ROLE`")
        plugin_token = None
        if get("PLUGIN_TOKEN_FILE"):
            try:
                plugin_token = Path(get("PLUGIN_TOKEN_FILE")).read_text().strip() or None
            except OSError as e:
                raise SettingsError(f"cannot read {PREFIX}PLUGIN_TOKEN_FILE: {e}") from e
        values = dict(
            data_dir=Path(get("DATA_DIR", "portability-data")),
            database_url=get("DATABASE_URL", ""),
            orthanc_url=get("ORTHANC_URL", "http://127.0.0.1:8042"),
            orthanc_username=get("ORTHANC_USERNAME"),
            orthanc_password=password,
            staff_tokens={t: r for t, r in _pairs(get("STAFF_TOKENS", ""), 2)},
            plugin_token=plugin_token,
            issuer=get("ISSUER", cls.issuer),
            host=get("HOST", "127.0.0.1"),
            worker=get("WORKER", "1") not in ("0", "false", "no"),
            plugin_audit_log=Path(get("PLUGIN_AUDIT_LOG")) if get("PLUGIN_AUDIT_LOG") else None,
            plugin_key_file=Path(get("PLUGIN_KEY_FILE")) if get("PLUGIN_KEY_FILE") else None,
            bundle_languages=_languages(get("BUNDLE_LANGUAGES", "en,de")),
            site_purposes=_purposes(get("SITE_PURPOSES", "care:care")),
            retention_law=get("RETENTION_LAW") or None,
            supervisory_authority=get("SUPERVISORY_AUTHORITY") or None,
            supervisory_authority_contact=get("SUPERVISORY_AUTHORITY_CONTACT") or None,
            rights_contact=get("RIGHTS_CONTACT") or None,
            recipient_names=_mapping(get("RECIPIENT_NAMES", ""), "RECIPIENT_NAMES"),
            user_organisations=_mapping(get("USER_ORGANISATIONS", ""), "USER_ORGANISATIONS"),
            anonymity_limits=Path(get("ANONYMITY_LIMITS")) if get("ANONYMITY_LIMITS") else None,
        )
        try:
            values["token_ttl_hours"] = float(get("TOKEN_TTL_HOURS", "168"))
            values["port"] = int(get("PORT", "8000"))
            values["rights_retry_seconds"] = float(get("RIGHTS_RETRY_SECONDS", "30"))
            values["retention_years"] = int(get("RETENTION_YEARS")) if get("RETENTION_YEARS") else None
            values["viewer_size"] = int(get("VIEWER_SIZE", "256"))
            values["viewer_quality"] = int(get("VIEWER_QUALITY", "80"))
            values["viewer_max_frames"] = int(get("VIEWER_MAX_FRAMES", "40"))
        except ValueError as e:
            raise SettingsError(f"bad number in settings: {e}") from e
        if not 1 <= values["viewer_quality"] <= 95 or values["viewer_size"] < 0 or values["viewer_max_frames"] < 1:
            raise SettingsError(f"{PREFIX}VIEWER_QUALITY must be 1-95, VIEWER_SIZE >= 0, VIEWER_MAX_FRAMES >= 1")
        values.update(overrides)
        return cls(**values)
