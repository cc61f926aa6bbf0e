"""The service's settings: one object, read from ``ORTHANC_GDPR_SERVICE_*`` environment variables.

=====================================  ==========================================================
``ORTHANC_GDPR_SERVICE_DATABASE_URL``  SQLAlchemy URL (default: SQLite in the data directory);
                                       ``postgresql+psycopg://user@127.0.0.1:5432/db`` for PostgreSQL
``ORTHANC_GDPR_SERVICE_ORTHANC_URL``   Orthanc's REST API (default ``http://127.0.0.1:8042``)
``..._ORTHANC_USERNAME``               Orthanc user
``..._ORTHANC_PASSWORD`` / ``..._ORTHANC_PASSWORD_FILE``   its password, inline or from a file
``..._DATA_DIR``                       bundles, staging files, SQLite (default ``./portability-data``)
``..._TOKEN_TTL_HOURS``                lifetime of a download link (default 168 = 7 days)
``..._STAFF_USERS``                    ``user:password:role[,user:password:role...]``
``..._STAFF_TOKENS``                   ``token:role[,token:role...]`` (bearer tokens)
``..._ISSUER``                         who issues the copies (shown to the patient)
``..._HOST`` / ``..._PORT``            where :func:`portability.server.run` listens
``..._WORKER``                         ``0`` to run no background worker in this process
``..._PLUGIN_AUDIT_LOG``               the plugin's ``audit.jsonl``, imported into the one audit store
``..._PLUGIN_KEY_FILE``                the plugin's key file: lets Art. 19 rejection notes name the
                                       de-identified UIDs a research destination received
``..._RIGHTS_RETRY_SECONDS``           first back-off of a failed rectification/erasure apply (30)
=====================================  ==========================================================

Roles: ``staff`` (handles requests), ``reviewer`` (and may also verify identity), ``dpo`` (all).
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field, replace
from pathlib import Path

PREFIX = "ORTHANC_GDPR_SERVICE_"
ROLES = ("staff", "reviewer", "dpo")


class SettingsError(ValueError):
    """A setting is missing or malformed."""


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
    staff_users: dict[str, tuple[str, str]] = field(default_factory=dict)  # user -> (password, role)
    staff_tokens: dict[str, str] = field(default_factory=dict)  # token -> role
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
        values = dict(
            data_dir=Path(get("DATA_DIR", "portability-data")),
            database_url=get("DATABASE_URL", ""),
            orthanc_url=get("ORTHANC_URL", "http://127.0.0.1:8042"),
            orthanc_username=get("ORTHANC_USERNAME"),
            orthanc_password=password,
            staff_users={u: (p, r) for u, p, r in _pairs(get("STAFF_USERS", ""), 3)},
            staff_tokens={t: r for t, r in _pairs(get("STAFF_TOKENS", ""), 2)},
            issuer=get("ISSUER", cls.issuer),
            host=get("HOST", "127.0.0.1"),
            worker=get("WORKER", "1") not in ("0", "false", "no"),
            plugin_audit_log=Path(get("PLUGIN_AUDIT_LOG")) if get("PLUGIN_AUDIT_LOG") else None,
            plugin_key_file=Path(get("PLUGIN_KEY_FILE")) if get("PLUGIN_KEY_FILE") else None,
        )
        try:
            values["token_ttl_hours"] = float(get("TOKEN_TTL_HOURS", "168"))
            values["port"] = int(get("PORT", "8000"))
            values["rights_retry_seconds"] = float(get("RIGHTS_RETRY_SECONDS", "30"))
        except ValueError as e:
            raise SettingsError(f"bad number in settings: {e}") from e
        values.update(overrides)
        return cls(**values)
