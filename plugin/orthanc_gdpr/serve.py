"""``orthanc-gdpr serve``: a native Orthanc with the plugin, on embedded defaults, supervised.

The data directory holds everything that persists: Orthanc's storage, the plugin's state (queue,
audit log), the pseudonymisation key and the generated admin password. Orthanc is restarted
within seconds when it dies, and each such death is an audit record (a security incident: a
crafted file can crash Orthanc 1.10).
"""

from __future__ import annotations

import ctypes
import json
import os
import secrets
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from .audit import AuditLog
from .deid.keys import create_key_file

REPO = Path(__file__).resolve().parents[2]
PRODUCTION = REPO / "orthanc-config" / "orthanc.production.json"
DEFAULTS = REPO / "orthanc-config" / "orthanc.defaults.json"  # serve's loopback overrides
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
    orthanc_binary: str = shutil.which("Orthanc") or "/usr/sbin/Orthanc"


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


def base_config() -> dict:
    """The production template with serve's loopback overrides: one source of truth for the
    security settings (orthanc-config/orthanc.production.json)."""
    from .config_check.jsonc import loads

    config = loads(PRODUCTION.read_text())
    overrides = json.loads(DEFAULTS.read_text())
    overrides.pop("_comment", None)
    config.update(overrides)
    return config


def write_config(opts: ServeOptions, password: str) -> Path:
    """Orthanc's configuration for this data directory (mode 0600: it holds the password)."""
    data = opts.data_dir.resolve()
    config = base_config()
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
    os.chmod(path, 0o600)
    return path


try:  # resolved in the parent: nothing may be dlopen-ed between fork and exec
    _prctl = ctypes.CDLL(None, use_errno=True).prctl
except (OSError, AttributeError):
    _prctl = None


def _die_with_supervisor() -> None:  # in the child, between fork and exec
    # Linux: Orthanc gets SIGTERM if the supervisor is killed (even with SIGKILL): no orphan
    # keeps the ports and the storage.
    if _prctl is not None:
        _prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


class Supervisor:
    """Runs Orthanc, restarts it when it dies (audited), stops it on SIGTERM or Ctrl-C.

    A death within ``quick_death`` seconds of a start doubles the delay before the next start
    (up to ``max_delay``), so a configuration error does not spin; otherwise Orthanc is back
    after ``restart_delay`` seconds.
    """

    def __init__(self, opts: ServeOptions, config: Path, restart_delay: float = 0.5,
                 max_delay: float = 30.0, quick_death: float = 5.0, stop_timeout: float = 30.0):
        self.opts, self.config = opts, config
        self.restart_delay, self.max_delay, self.quick_death = restart_delay, max_delay, quick_death
        self.stop_timeout = stop_timeout
        self.process: subprocess.Popen | None = None
        self.started_at = 0.0
        self.stopping = False
        self.restarts = 0
        self.log = open(opts.data_dir / "orthanc.log", "ab")

    def _start(self) -> None:
        self.started_at = time.monotonic()
        self.process = subprocess.Popen([self.opts.orthanc_binary, str(self.config)],
                                        stdin=subprocess.DEVNULL, stdout=self.log,
                                        stderr=subprocess.STDOUT, cwd=self.opts.data_dir,
                                        preexec_fn=_die_with_supervisor)

    def stop(self, *_: object) -> None:
        self.stopping = True
        if self.process and self.process.poll() is None:
            self.process.terminate()

    def _audit(self, code: int, pid: int, uptime: float, delay: float) -> None:
        cause = f"signal {signal.Signals(-code).name}" if code < 0 and -code in signal.valid_signals() \
            else f"exit code {code}"
        audit = AuditLog(self.opts.data_dir / "gdpr-state" / "audit.jsonl")
        audit.append("security.orthanc-died", severity="incident", exit_code=code, cause=cause,
                     pid=pid, uptime_seconds=round(uptime, 1), restart=self.restarts + 1,
                     restart_delay_seconds=delay, action="restarted by orthanc-gdpr serve")
        print(f"orthanc-gdpr: Orthanc (pid {pid}) died ({cause}) after {uptime:.1f} s; "
              f"restarting in {delay:g} s", file=sys.stderr, flush=True)

    def run(self) -> int:
        signal.signal(signal.SIGTERM, self.stop)
        signal.signal(signal.SIGINT, self.stop)
        delay = self.restart_delay
        self._start()
        while True:
            assert self.process is not None
            try:
                code = self.process.wait(timeout=0.5)
            except subprocess.TimeoutExpired:
                continue
            if self.stopping:
                return 0
            uptime = time.monotonic() - self.started_at
            delay = min(delay * 2, self.max_delay) if uptime < self.quick_death else self.restart_delay
            self._audit(code, self.process.pid, uptime, delay)
            deadline = time.monotonic() + delay
            while time.monotonic() < deadline and not self.stopping:
                time.sleep(0.05)
            if self.stopping:
                return 0
            self.restarts += 1
            self._start()

    def shutdown(self) -> None:
        """After run(): make sure Orthanc is gone (SIGKILL after ``stop_timeout``)."""
        if self.process and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=self.stop_timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


def serve(opts: ServeOptions) -> int:
    opts.data_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    (opts.data_dir / "gdpr-state").mkdir(mode=0o700, exist_ok=True)
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
    supervisor = Supervisor(opts, config)
    try:
        return supervisor.run()
    finally:
        supervisor.shutdown()


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
