"""The checks of ``orthanc-gdpr check-config``: a table of risks (data) and small functions.

Every risk has one entry in :data:`CHECKS` (id, severity, title, fix). A check function looks at
the loaded configuration and yields ``(check id, detail)`` pairs; :func:`run_static` turns them
into :class:`Finding` objects. Values Orthanc 1.10 uses when a key is absent are in
:data:`ORTHANC_DEFAULTS` (from Debian's /etc/orthanc/orthanc.json of 1.10.1).
"""

from __future__ import annotations

import os
import re
import stat
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .jsonc import ConfigSyntaxError, loads

CRITICAL, HIGH, MEDIUM, LOW, INFO = "critical", "high", "medium", "low", "info"
SEVERITIES = (CRITICAL, HIGH, MEDIUM, LOW, INFO)


@dataclass(frozen=True)
class Check:
    id: str
    severity: str
    title: str
    fix: str


_TABLE = [
    # ------------------------------------------------------------------ authentication
    Check("remote-access-without-auth", CRITICAL,
          "REST API (all images, delete, export) reachable from other hosts without authentication",
          'Set "AuthenticationEnabled": true with a strong password in "RegisteredUsers" '
          '(or "RemoteAccessAllowed": false and a reverse proxy that authenticates).'),
    Check("auth-disabled", HIGH,
          "HTTP authentication is off: every local user and process (and any web page a local "
          "browser opens, via DNS rebinding) can read and delete all images",
          'Set "AuthenticationEnabled": true and declare users in "RegisteredUsers".'),
    Check("default-credentials", CRITICAL,
          "Default or well-known credentials",
          'Replace them in "RegisteredUsers" with a generated password (orthanc-gdpr serve '
          "generates one; docker: docker/init-secrets.sh)."),
    Check("weak-password", HIGH,
          "Weak password (shorter than 12 characters, or equal to the user name)",
          "Use a generated password of at least 16 random characters, kept outside the "
          "configuration (environment variable ${...} or a secret file)."),
    Check("auth-without-users", LOW,
          "Authentication is on but no user is declared: nobody can use the REST API",
          'Declare a user in "RegisteredUsers" (a password from ${ENV}).'),
    Check("password-from-environment", INFO,
          "A password is taken from an environment variable at start-up: not checked here",
          "Check the running server with --url (default credentials are tried)."),
    Check("config-readable-by-others", HIGH,
          "A configuration file holding a password is readable by other users",
          "chmod 600 the file (owner: the account Orthanc runs as), or move the password to an "
          "environment variable / secret file."),
    # ------------------------------------------------------------------ transport
    Check("http-no-tls", HIGH,
          "Remote HTTP access without TLS: passwords and images cross the network in clear",
          'Set "SslEnabled": true and "SslCertificate" (PEM with certificate and key), or '
          "terminate TLS in a reverse proxy and keep RemoteAccessAllowed false."),
    Check("tls-certificate-missing", MEDIUM,
          "A TLS certificate or key file named in the configuration does not exist (here)",
          "Install the certificate at that path (on the server) before starting Orthanc."),
    Check("dicom-no-tls", MEDIUM,
          "DICOM without TLS; Orthanc 1.10 has no bind-address setting, so the DICOM port "
          "listens on every interface",
          'Enable DICOM TLS ("DicomTlsEnabled", "DicomTlsCertificate", "DicomTlsPrivateKey", '
          '"DicomTlsTrustedCertificates"), or restrict the port with a firewall / private network.'),
    Check("http-listens-all-interfaces", INFO,
          "Orthanc 1.10 has no bind-address setting: the HTTP port listens on every interface; "
          "RemoteAccessAllowed=false only makes it refuse non-loopback clients",
          "Firewall the HTTP port from other hosts as a second line of defence."),
    Check("https-peers-unverified", MEDIUM,
          "Outgoing HTTPS (peers, DICOMweb, the consent service) does not verify certificates",
          'Set "HttpsVerifyPeers": true (and "HttpsCACertificates").'),
    # ------------------------------------------------------------------ DICOM access control
    Check("cstore-open", HIGH,
          "C-STORE accepted from any AE title (DicomAlwaysAllowStore): anyone on the network "
          "can inject studies, fill the disk, or send a crafted file that crashes Orthanc 1.10",
          'Set "DicomAlwaysAllowStore": false and declare the sending modalities in "DicomModalities".'),
    Check("cfind-open", CRITICAL,
          "C-FIND (or worklist C-FIND) answered for any AE title: anyone on the network can list "
          "patients' names, IDs and birth dates",
          'Set "DicomAlwaysAllowFind": false and "DicomAlwaysAllowFindWorklist": false.'),
    Check("cget-open", CRITICAL,
          "C-GET answered for any AE title: anyone on the network can download every image",
          'Set "DicomAlwaysAllowGet": false.'),
    Check("cmove-open", HIGH,
          "C-MOVE accepted from any AE title: anyone can push studies to the declared destinations",
          'Set "DicomAlwaysAllowMove": false.'),
    Check("echo-open", LOW,
          "C-ECHO answered for any AE title (lets scanners discover the server)",
          'Set "DicomAlwaysAllowEcho": false.'),
    Check("called-aet-unchecked", MEDIUM,
          "The called AE title is not checked (DicomCheckCalledAet false)",
          'Set "DicomCheckCalledAet": true.'),
    Check("modality-host-unchecked", MEDIUM,
          "Declared modalities are recognised by AE title only: any host can claim that AE title",
          'Set "DicomCheckModalityHost": true (and declare each modality\'s real IP address).'),
    # ------------------------------------------------------------------ code the server runs
    Check("script-writable", CRITICAL,
          "A script Orthanc executes (Lua or Python) can be rewritten by other users",
          "Make the script and its directory owned by root and not group/world-writable "
          "(chmod 644 / 755)."),
    Check("script-in-storage", HIGH,
          "A script Orthanc executes lies inside its storage or index directory, which Orthanc "
          "itself writes",
          "Move scripts out of the storage directory (e.g. /usr/share or /etc), read-only."),
    Check("script-writable-by-server", MEDIUM,
          "A script Orthanc executes is writable by the account that owns the storage directory "
          "(presumably the account Orthanc runs as): a compromised server can persist itself",
          "Install scripts owned by root (or another account), read-only for Orthanc."),
    Check("execute-lua-enabled", HIGH,
          "POST /tools/execute-script runs arbitrary Lua (shell access) for any API user",
          'Set "ExecuteLuaEnabled": false.'),
    Check("rest-write-filesystem", HIGH,
          "The REST API may write files anywhere Orthanc can (RestApiWriteToFileSystemEnabled)",
          'Set "RestApiWriteToFileSystemEnabled": false.'),
    # ------------------------------------------------------------------ logs
    Check("logs-not-deidentified", MEDIUM,
          "C-FIND / C-GET / C-MOVE queries are logged with patient identifiers (DeidentifyLogs false)",
          'Set "DeidentifyLogs": true (the default).'),
    Check("log-exported-resources", LOW,
          "Every export is logged in the index with patient identifiers, kept indefinitely",
          'Set "LogExportedResources": false; the orthanc-gdpr audit trail records exports without PHI.'),
    Check("python-verbose", LOW,
          "The Python plugin logs verbosely (may include request details)",
          'Set "PythonVerbose": false.'),
    Check("http-describe-errors", LOW,
          "HTTP error answers describe internal errors (details can reach the client)",
          'Set "HttpDescribeErrors": false.'),
    # ------------------------------------------------------------------ file-level problems
    Check("duplicate-key", HIGH,
          "The same top-level key is set in several files of the configuration directory: "
          "Orthanc 1.10 refuses to start",
          "Keep each key in one file only."),
    # ------------------------------------------------------------------ live server (--url)
    Check("live-anonymous-access", CRITICAL,
          "The running server answers the REST API without credentials",
          'Set "AuthenticationEnabled": true and restart Orthanc.'),
    Check("live-default-credentials", CRITICAL,
          "The running server accepts well-known credentials",
          'Change the password in "RegisteredUsers" and restart Orthanc.'),
    Check("live-no-tls", HIGH,
          "The running server is reached over plain HTTP from a non-loopback address",
          "Serve HTTPS (SslEnabled) or put a TLS reverse proxy in front."),
    Check("live-verbose-logging", MEDIUM,
          "The running server logs at verbose/trace level: logs may contain patient data",
          "PUT /tools/log-level default (and do not start Orthanc with --verbose/--trace)."),
    Check("live-crash-prone-version", MEDIUM,
          "This Orthanc release dies (SIGSEGV) on a single upload of a DICOM file with ~100,000 "
          "nested sequences (verified on Debian's 1.10.1)",
          "Run it under `orthanc-gdpr serve` (restarts it, records the incident) or a restart "
          "policy, keep C-STORE limited to declared modalities, and upgrade."),
]

CHECKS: dict[str, Check] = {c.id: c for c in _TABLE}

#: Orthanc 1.10 values of keys that are absent from the configuration.
ORTHANC_DEFAULTS: dict[str, Any] = {
    "HttpServerEnabled": True, "RemoteAccessAllowed": False, "SslEnabled": False,
    "DicomServerEnabled": True, "DicomCheckCalledAet": False, "DicomCheckModalityHost": False,
    "DicomAlwaysAllowEcho": True, "DicomAlwaysAllowStore": True, "DicomAlwaysAllowFind": False,
    "DicomAlwaysAllowFindWorklist": False, "DicomAlwaysAllowGet": False,
    "DicomAlwaysAllowMove": False, "DicomTlsEnabled": False, "ExecuteLuaEnabled": False,
    "RestApiWriteToFileSystemEnabled": False, "LogExportedResources": False,
    "DeidentifyLogs": True, "PythonVerbose": False, "HttpDescribeErrors": True,
    "HttpsVerifyPeers": True, "StorageDirectory": "OrthancStorage",
}

#: Credentials shipped in samples, images and tutorials.
DEFAULT_CREDENTIALS = {("orthanc", "orthanc"), ("admin", "admin"), ("alice", "alicepassword"),
                       ("orthanc", "password"), ("admin", "password"), ("admin", "orthanc"),
                       ("demo", "demo"), ("test", "test"), ("root", "root"), ("user", "user"),
                       ("postgres", "postgres")}
COMMON_PASSWORDS = {"orthanc", "admin", "password", "passw0rd", "123456", "12345678", "changeme",
                    "secret", "demo", "test", "pacs", "dicom", "postgres", "pgpassword",
                    "alicepassword", "letmein", "qwerty", "orthanctest"}
MIN_PASSWORD_LENGTH = 12
_ENV_REF = re.compile(r"^\$\{([A-Za-z_][A-Za-z0-9_]*)\}$")


@dataclass(frozen=True)
class Finding:
    check: Check
    detail: str
    source: str  # a file, or the URL of the live server

    def to_dict(self) -> dict[str, str]:
        c = self.check
        return {"id": c.id, "severity": c.severity, "title": c.title, "detail": self.detail,
                "fix": c.fix, "source": self.source}


class ConfigLoadError(ValueError):
    """The configuration cannot be read (missing, not JSON-with-comments, not an object)."""


@dataclass
class Config:
    """A configuration as Orthanc reads it: one file, or every ``*.json`` of a directory merged."""
    values: dict[str, Any]
    files: list[Path]
    origin: dict[str, Path] = field(default_factory=dict)  # top-level key -> file
    duplicates: dict[str, list[Path]] = field(default_factory=dict)

    def get(self, key: str) -> Any:
        return self.values.get(key, ORTHANC_DEFAULTS.get(key))

    def explicit(self, key: str) -> bool:
        return key in self.values

    def source(self, key: str) -> str:
        path = self.origin.get(key) or (self.files[0] if self.files else None)
        return str(path) if path else "?"

    def base_dir(self, key: str) -> Path:
        path = self.origin.get(key) or (self.files[0] if self.files else Path.cwd() / "x")
        return path.parent

    def path(self, key: str, value: str) -> Path:
        """A path option as Orthanc interprets it: relative to the configuration file's folder."""
        p = Path(os.path.expandvars(value))
        return p if p.is_absolute() else self.base_dir(key) / p


def load_config(path: str | os.PathLike) -> Config:
    """Read a configuration file, or a directory of ``*.json`` files as Orthanc merges them."""
    path = Path(path)
    if path.is_dir():
        files = sorted(p for p in path.iterdir() if p.suffix == ".json" and p.is_file())
        if not files:
            raise ConfigLoadError(f"{path}: no *.json file in this directory")
    elif path.is_file():
        files = [path]
    else:
        raise ConfigLoadError(f"{path}: no such file or directory")
    config = Config(values={}, files=files)
    for f in files:
        try:
            data = loads(f.read_text(encoding="utf-8"))
        except ConfigSyntaxError as e:
            raise ConfigLoadError(f"{f}: {e}") from None
        except (OSError, UnicodeDecodeError) as e:
            raise ConfigLoadError(f"{f}: cannot read: {e}") from None
        if not isinstance(data, dict):
            raise ConfigLoadError(f"{f}: the configuration must be a JSON object")
        for key, value in data.items():
            if key in config.origin:
                config.duplicates.setdefault(key, [config.origin[key]]).append(f)
            else:
                config.origin[key] = f
            config.values[key] = value
    return config


# ====================================================================== check functions
Result = Iterator[tuple[str, str]]  # (check id, detail)


def _true(value: Any) -> bool:
    return value is True or (isinstance(value, str) and value.lower() == "true")


def _plugin_authenticates(cfg: Config) -> bool:
    """The orthanc-gdpr plugin checks every request against the service's accounts."""
    gdpr = cfg.values.get("Gdpr")
    return (isinstance(gdpr, dict) and gdpr.get("AuthenticateWithService") is True
            and "python" in str(cfg.values.get("Plugins", "")).lower())


def _effective_auth(cfg: Config) -> bool:
    if _plugin_authenticates(cfg):
        return True
    # Orthanc >= 1.5.8: when absent, authentication follows RemoteAccessAllowed.
    if cfg.explicit("AuthenticationEnabled"):
        return _true(cfg.values["AuthenticationEnabled"])
    return _true(cfg.get("RemoteAccessAllowed"))


def _users(cfg: Config) -> dict[str, Any]:
    users = cfg.get("RegisteredUsers")
    return users if isinstance(users, dict) else {}


def check_authentication(cfg: Config) -> Result:
    if not _true(cfg.get("HttpServerEnabled")):
        return
    remote, auth = _true(cfg.get("RemoteAccessAllowed")), _effective_auth(cfg)
    if remote and not auth:
        yield "remote-access-without-auth", '"RemoteAccessAllowed": true, "AuthenticationEnabled": false'
    elif not auth:
        yield "auth-disabled", '"AuthenticationEnabled": false (loopback clients only)'
    if auth and not _users(cfg) and not _plugin_authenticates(cfg):
        if remote:  # Orthanc then creates orthanc:orthanc itself ("Your setup is INSECURE")
            yield "default-credentials", ('authentication on, remote access on and no "RegisteredUsers": '
                                          "Orthanc creates the user orthanc/orthanc")
        elif "authorization" not in str(cfg.values.get("Plugins", "")).lower():
            yield "auth-without-users", 'no "RegisteredUsers"'


def _password_findings(where: str, user: str, password: Any) -> Result:
    if not isinstance(password, str):
        return
    env = _ENV_REF.match(password.strip())
    if env:
        yield "password-from-environment", f"{where}: user {user!r} <- ${{{env.group(1)}}}"
        return
    low = password.lower()
    if (user.lower(), low) in DEFAULT_CREDENTIALS or low in COMMON_PASSWORDS:
        yield "default-credentials", f"{where}: user {user!r} has a well-known password"
    elif low == user.lower():
        yield "default-credentials", f"{where}: user {user!r} has its own name as password"
    elif len(password) < MIN_PASSWORD_LENGTH:
        yield "weak-password", f"{where}: user {user!r}: password of {len(password)} characters"


def check_credentials(cfg: Config) -> Result:
    for user, password in _users(cfg).items():
        yield from _password_findings("RegisteredUsers", str(user), password)
    pg = cfg.values.get("PostgreSQL")
    if isinstance(pg, dict) and "Password" in pg:
        yield from _password_findings("PostgreSQL", str(pg.get("Username", "postgres")), pg["Password"])


def _has_literal_password(data: Any) -> bool:
    users = data.get("RegisteredUsers") if isinstance(data, dict) else None
    values = list(users.values()) if isinstance(users, dict) else []
    pg = data.get("PostgreSQL") if isinstance(data, dict) else None
    if isinstance(pg, dict) and "Password" in pg:
        values.append(pg["Password"])
    return any(isinstance(v, str) and v and not _ENV_REF.match(v.strip()) for v in values)


def check_file_permissions(cfg: Config) -> Result:
    for f in cfg.files:
        try:
            mode = f.stat().st_mode
            data = loads(f.read_text(encoding="utf-8"))
        except (OSError, ConfigSyntaxError, UnicodeDecodeError):
            continue
        if mode & stat.S_IROTH and _has_literal_password(data):
            yield "config-readable-by-others", f"{f}: mode {stat.filemode(mode)}"


def check_transport(cfg: Config) -> Result:
    if _true(cfg.get("HttpServerEnabled")):
        ssl = _true(cfg.get("SslEnabled"))
        if _true(cfg.get("RemoteAccessAllowed")) and not ssl:
            yield "http-no-tls", '"RemoteAccessAllowed": true, "SslEnabled": false'
        if ssl:
            cert = cfg.values.get("SslCertificate", "certificate.pem")
            if isinstance(cert, str) and "${" not in cert and not cfg.path("SslCertificate", cert).exists():
                yield "tls-certificate-missing", f"SslCertificate {cert}"
        yield "http-listens-all-interfaces", f"HttpPort {cfg.values.get('HttpPort', 8042)}"
    if _true(cfg.get("DicomServerEnabled")):
        if not _true(cfg.get("DicomTlsEnabled")):
            yield "dicom-no-tls", f"DicomPort {cfg.values.get('DicomPort', 4242)}"
        else:
            for key in ("DicomTlsCertificate", "DicomTlsPrivateKey", "DicomTlsTrustedCertificates"):
                value = cfg.values.get(key)
                if not isinstance(value, str):
                    yield "tls-certificate-missing", f'"DicomTlsEnabled": true but no "{key}"'
                elif "${" not in value and not cfg.path(key, value).exists():
                    yield "tls-certificate-missing", f"{key} {value}"
    if not _true(cfg.get("HttpsVerifyPeers")):
        yield "https-peers-unverified", '"HttpsVerifyPeers": false'


def check_dicom(cfg: Config) -> Result:
    if not _true(cfg.get("DicomServerEnabled")):
        return
    for key, check in (("DicomAlwaysAllowStore", "cstore-open"), ("DicomAlwaysAllowFind", "cfind-open"),
                       ("DicomAlwaysAllowFindWorklist", "cfind-open"), ("DicomAlwaysAllowGet", "cget-open"),
                       ("DicomAlwaysAllowMove", "cmove-open"), ("DicomAlwaysAllowEcho", "echo-open")):
        if _true(cfg.get(key)):
            how = "set to true" if cfg.explicit(key) else "absent: Orthanc's default is true"
            yield check, f'"{key}" {how}'
    if not _true(cfg.get("DicomCheckCalledAet")):
        yield "called-aet-unchecked", '"DicomCheckCalledAet" is false' + (
            "" if cfg.explicit("DicomCheckCalledAet") else " (default)")
    modalities = cfg.get("DicomModalities")
    if modalities and not _true(cfg.get("DicomCheckModalityHost")):
        yield "modality-host-unchecked", f"{len(modalities)} declared modalities, DicomCheckModalityHost false"


def _scripts(cfg: Config) -> list[tuple[str, Path]]:
    out: list[tuple[str, Path]] = []
    lua = cfg.values.get("LuaScripts") or []
    for value in lua if isinstance(lua, list) else [lua]:
        if isinstance(value, str):
            out.append(("LuaScripts", cfg.path("LuaScripts", value)))
    python = cfg.values.get("PythonScript")
    section = cfg.values.get("Python")
    if isinstance(section, dict) and isinstance(section.get("Path"), str):
        out.append(("Python.Path", cfg.path("Python", section["Path"])))
    if isinstance(python, str):
        out.append(("PythonScript", cfg.path("PythonScript", python)))
    unique: dict[Path, str] = {}
    for key, p in out:
        unique.setdefault(p, key)
    return [(k, p) for p, k in unique.items()]


def _writable_by_others(path: Path) -> str | None:
    try:
        st = path.stat()
    except OSError:
        return None
    mask = stat.S_IWOTH | (stat.S_IWGRP if st.st_gid != 0 else 0)  # group root: administrators
    if not st.st_mode & mask:
        return None
    if path.is_dir() and st.st_mode & stat.S_ISVTX:
        return None  # sticky directory (/tmp): others cannot replace a file they do not own
    return f"{path} is {stat.filemode(st.st_mode)} (uid {st.st_uid}, gid {st.st_gid})"


def check_scripts(cfg: Config) -> Result:
    storage = [cfg.path(k, str(cfg.get(k))) for k in ("StorageDirectory", "IndexDirectory")
               if isinstance(cfg.get(k), str)]
    storage_owner = None
    for s in storage:
        try:
            storage_owner = s.stat().st_uid
            break
        except OSError:
            continue
    for key, script in _scripts(cfg):
        resolved = script.resolve()
        bad = _writable_by_others(script) or _writable_by_others(script.parent)
        if bad:
            yield "script-writable", f"{key}: {bad}"
        for s in storage:
            s = s.resolve()
            if resolved == s or s in resolved.parents:
                yield "script-in-storage", f"{key}: {script} is inside {s}"
                break
        else:
            try:
                st = script.stat()
            except OSError:
                continue
            if storage_owner is not None and st.st_uid == storage_owner and st.st_mode & stat.S_IWUSR:
                yield "script-writable-by-server", f"{key}: {script} (uid {st.st_uid}, like the storage)"
    if _true(cfg.get("ExecuteLuaEnabled")):
        yield "execute-lua-enabled", '"ExecuteLuaEnabled": true'
    if _true(cfg.get("RestApiWriteToFileSystemEnabled")):
        yield "rest-write-filesystem", '"RestApiWriteToFileSystemEnabled": true'


def check_logs(cfg: Config) -> Result:
    if not _true(cfg.get("DeidentifyLogs")):
        yield "logs-not-deidentified", '"DeidentifyLogs": false'
    if _true(cfg.get("LogExportedResources")):
        yield "log-exported-resources", '"LogExportedResources": true'
    verbose = _true(cfg.get("PythonVerbose")) or (
        isinstance(cfg.values.get("Python"), dict) and _true(cfg.values["Python"].get("Verbose")))
    if verbose:
        yield "python-verbose", "PythonVerbose / Python.Verbose true"
    if _true(cfg.get("HttpDescribeErrors")):
        yield "http-describe-errors", '"HttpDescribeErrors" ' + (
            "true" if cfg.explicit("HttpDescribeErrors") else "absent (default true)")


def check_structure(cfg: Config) -> Result:
    for key, files in cfg.duplicates.items():
        yield "duplicate-key", f"{key!r} in {', '.join(str(f) for f in files)}"


STATIC_CHECKS: list[Callable[[Config], Result]] = [
    check_structure, check_authentication, check_credentials, check_file_permissions,
    check_transport, check_dicom, check_scripts, check_logs,
]

_KEY_OF = re.compile(r'"([A-Za-z]+)"')


def run_static(cfg: Config) -> list[Finding]:
    findings = []
    for fn in STATIC_CHECKS:
        for check_id, detail in fn(cfg):
            m = _KEY_OF.search(detail) or re.match(r"([A-Za-z]+)", detail)
            source = cfg.source(m.group(1)) if m else cfg.source("")
            findings.append(Finding(CHECKS[check_id], detail, source))
    return findings
