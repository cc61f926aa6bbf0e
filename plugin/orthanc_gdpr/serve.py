"""``orthanc-gdpr serve``: a native Orthanc with the plugin, on embedded defaults, supervised.

The data directory holds everything that persists: Orthanc's storage, the plugin's state (queue,
audit log), the pseudonymisation key and the generated admin password. Orthanc is restarted
within seconds when it dies, and each such death is an audit record (a security incident: a
crafted file can crash Orthanc 1.10).
"""

from __future__ import annotations

import json
import os
import secrets
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from .audit import AuditLog
from .deid.keys import create_key_file

REPO = Path(__file__).resolve().parents[2]
DEFAULTS = REPO / "orthanc-config" / "orthanc.defaults.json"
ENTRY_SCRIPT = REPO / "plugin" / "orthanc_gdpr_plugin.py"
PYTHON_PLUGIN = Path("/usr/share/orthanc/plugins/libOrthancPython.so")
PASSWORD_ENV = "ORTHANC_GDPR_ADMIN_PASSWORD"
ADMIN = "admin"


@dataclass(frozen=True)
class ServeOptions:
    data_dir: Path
    http_port: int = 8042
    dicom_port: int = 4242
    routing_rules: Path | None = None
    orthanc_binary: str = "Orthanc"


def _secret_file(path: Path, make: callable) -> tuple[str, bool]:
    """Read a secret file, or create it (owner-only) with ``make()``; returns (value, created)."""
    if path.exists():
        return path.read_text().strip(), False
    value = make()
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(value + "\n")
    return value, True


def admin_password(data_dir: Path) -> tuple[str, bool]:
    """From $ORTHANC_GDPR_ADMIN_PASSWORD, else generated once and stored in the data directory."""
    env = os.environ.get(PASSWORD_ENV)
    if env:
        return env, False
    return _secret_file(data_dir / "admin-password", lambda: secrets.token_urlsafe(18))


def write_config(opts: ServeOptions, password: str) -> Path:
    """Orthanc's configuration for this data directory, from the embedded defaults."""
    data = opts.data_dir
    config = json.loads(DEFAULTS.read_text())
    config.pop("_comment", None)
    gdpr = {"KeyFile": str(data / "gdpr.key"), "StateDirectory": str(data / "gdpr-state"),
            "DownloadProfiles": ["basic", "research", "teaching", "clinical-trial"]}
    if opts.routing_rules:
        gdpr["RoutingRules"] = str(opts.routing_rules.resolve())
    config.update({
        "HttpPort": opts.http_port, "DicomPort": opts.dicom_port,
        "StorageDirectory": str(data / "storage"), "IndexDirectory": str(data / "storage"),
        "RegisteredUsers": {ADMIN: password},
        "Plugins": [str(PYTHON_PLUGIN)], "PythonScript": str(ENTRY_SCRIPT), "Gdpr": gdpr,
    })
    path = data / "orthanc.json"
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        json.dump(config, f, indent=2)
    return path


class Supervisor:
    """Runs Orthanc, restarts it when it dies, stops it on SIGTERM or Ctrl-C."""

    def __init__(self, opts: ServeOptions, config: Path, restart_delay: float = 1.0):
        self.opts, self.config, self.restart_delay = opts, config, restart_delay
        self.process: subprocess.Popen | None = None
        self.stopping = False
        self.log = open(opts.data_dir / "orthanc.log", "ab")

    def _start(self) -> None:
        self.process = subprocess.Popen([self.opts.orthanc_binary, str(self.config)],
                                        stdout=self.log, stderr=subprocess.STDOUT)

    def stop(self, *_: object) -> None:
        self.stopping = True
        if self.process and self.process.poll() is None:
            self.process.terminate()

    def run(self) -> int:
        signal.signal(signal.SIGTERM, self.stop)
        signal.signal(signal.SIGINT, self.stop)
        self._start()
        while True:
            assert self.process is not None
            code = self.process.wait()
            if self.stopping:
                return 0
            audit = AuditLog(self.opts.data_dir / "gdpr-state" / "audit.jsonl")
            audit.append("security.orthanc-died", exit_code=code, pid=self.process.pid,
                         action="restarted by the supervisor")
            print(f"orthanc-gdpr: Orthanc (pid {self.process.pid}) died with code {code}; restarting",
                  file=sys.stderr, flush=True)
            time.sleep(self.restart_delay)
            if not self.stopping:
                self._start()


def serve(opts: ServeOptions) -> int:
    opts.data_dir.mkdir(parents=True, exist_ok=True)
    (opts.data_dir / "gdpr-state").mkdir(exist_ok=True)
    if not (opts.data_dir / "gdpr.key").exists():
        create_key_file(opts.data_dir / "gdpr.key")
    password, created = admin_password(opts.data_dir)
    config = write_config(opts, password)
    print(f"orthanc-gdpr: data directory {opts.data_dir.resolve()}")
    print(f"orthanc-gdpr: Orthanc REST and web UI  http://127.0.0.1:{opts.http_port}/  (user {ADMIN})")
    print(f"orthanc-gdpr: plugin health            http://127.0.0.1:{opts.http_port}/gdpr/health")
    print(f"orthanc-gdpr: DICOM                    AET ORTHANC_GDPR on port {opts.dicom_port} (declared modalities only)")
    if created:
        print(f"orthanc-gdpr: generated admin password (shown once, stored owner-only in "
              f"{opts.data_dir / 'admin-password'}): {password}")
    sys.stdout.flush()
    return Supervisor(opts, config).run()


def add_command(sub) -> None:
    """Register ``orthanc-gdpr serve`` on the CLI's sub-command parser."""
    p = sub.add_parser("serve", help="run Orthanc with the plugin on embedded defaults (loopback, auth on)")
    p.add_argument("--data-dir", default="./orthanc-gdpr-data", type=Path,
                   help="storage, key, state and generated password (default: ./orthanc-gdpr-data)")
    p.add_argument("--orthanc-http-port", type=int, default=8042)
    p.add_argument("--orthanc-dicom-port", type=int, default=4242)
    p.add_argument("--routing-rules", type=Path, help="routing rules JSON (default: none, downloads only)")
    p.set_defaults(func=lambda args: serve(ServeOptions(
        data_dir=args.data_dir, http_port=args.orthanc_http_port, dicom_port=args.orthanc_dicom_port,
        routing_rules=args.routing_rules)))
