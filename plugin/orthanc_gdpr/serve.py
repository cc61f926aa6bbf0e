"""``orthanc-gdpr serve``: a native Orthanc with the plugin, and the portability service beside
it, on embedded defaults, supervised.

The data directory holds everything that persists: Orthanc's storage, the plugin's state (queue,
audit log), the pseudonymisation key, the generated admin password, and the portability
service's data (``service/``: SQLite database with the staff accounts, bundles), the first
dpo's generated password (``dpo-password``, the owner-only first-start secret) and the token the
plugin uses to ask the service. Accounts live in the service's database and persist across
restarts: ``serve`` creates the first dpo once, when no dpo account exists; everyone else is
added with ``orthanc-gdpr users add`` or ``/api/users``. A generated secret is shown only on a
terminal, never written to a redirected standard output (a log). Orthanc and the service are restarted within
seconds when they die, and each such death is an audit record (a security incident: a crafted
file can crash Orthanc 1.10): Orthanc's in the plugin's audit log, the service's in the
service's audit store (the one chain that also imports the plugin's log).
"""

from __future__ import annotations

import ctypes
import json
import os
import secrets
import shutil
import signal
import re
import subprocess
import sys
import sysconfig
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from . import CONFIG_DIR
from .accounts_config import with_service_accounts
from .audit import AuditLog
from .deid.keys import create_key_file
from .identity import SERVICE_USER

PRODUCTION = CONFIG_DIR / "orthanc.production.json"
DEFAULTS = CONFIG_DIR / "orthanc.defaults.json"  # serve's loopback overrides
ENTRY_SCRIPT = Path(__file__).resolve().parent / "plugin_entry.py"
SITE_PACKAGES_ENV = "ORTHANC_GDPR_SITE_PACKAGES"
PYTHON_PLUGIN = Path("/usr/share/orthanc/plugins/libOrthancPython.so")
PASSWORD_ENV = "ORTHANC_GDPR_ADMIN_PASSWORD"
ADMIN = "admin"
DPO = "dpo"  #: the first account, created once (role dpo: every route)
SERVICE_CREDENTIAL = "orthanc-credential"  #: its secret, owner-only in the data directory
SERVICE_ENV = "ORTHANC_GDPR_SERVICE_"


@dataclass(frozen=True)
class ServeOptions:
    data_dir: Path
    http_port: int = 8042
    dicom_port: int = 4242
    routing_rules: Path | None = None
    orthanc_binary: str = shutil.which("Orthanc") or "/usr/sbin/Orthanc"
    service_port: int | None = 8000  #: the portability service's port; None: no service
    python: str = sys.executable  #: the interpreter that runs the service (the venv's)

    @property
    def service_url(self) -> str | None:
        return f"http://127.0.0.1:{self.service_port}" if self.service_port else None

    @property
    def service_dir(self) -> Path:
        return self.data_dir.resolve() / "service"


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
    from portability.accounts import generate_password

    return _secret_file(data_dir / "admin-password", generate_password)


def seed_dpo(data_dir: Path, env: dict[str, str]) -> str | None:
    """Create the first dpo account when the service's database has no enabled dpo, with a
    generated password kept in ``dpo-password`` (owner-only). Returns the password when it was
    generated just now (to be shown on a terminal), else None."""
    from portability import accounts, chain
    from portability.db import Database
    from portability.settings import Settings

    db = Database(Settings.from_env(env).database_url)
    try:
        db.migrate()
        if accounts.has_enabled(db, "dpo"):
            return None
        password, created = _secret_file(data_dir / "dpo-password", accounts.generate_password)
        try:
            accounts.create(db, DPO, "dpo", password, "orthanc-gdpr serve", enforce_policy=False)
        except accounts.DuplicateAccount:
            return None
        chain.append(db, "user.created", actor="orthanc-gdpr serve", account=DPO, role="dpo", channel="serve",
                     password="generated")
        return password if created else None
    finally:
        db.dispose()


def service_token(data_dir: Path) -> str:
    """The bearer token with which the plugin asks the service (consent gate): a machine's token,
    accepted only by the routes the plugin calls."""
    return _secret_file(data_dir / "service-token", lambda: secrets.token_urlsafe(32))[0]


def show_secret(what: str, value: str, path: Path) -> None:
    """Show a generated secret once, on a terminal only; a redirected standard output is a log."""
    if sys.stdout.isatty():
        print(f"orthanc-gdpr: generated {what} (shown once, stored owner-only in {path}): {value}")
    else:
        print(f"orthanc-gdpr: generated {what}, stored owner-only in {path} (not shown: standard output "
              "is not a terminal)")


def service_env(opts: ServeOptions, environ: dict[str, str] | None = None) -> dict[str, str]:
    """The service's environment: the local Orthanc with the service's own machine credential
    (from an owner-only file), SQLite and bundles in ``<data>/service``, the plugin's audit log
    and key, and the file of the plugin's token. Other ``ORTHANC_GDPR_SERVICE_*`` variables of
    the caller (e.g. a PostgreSQL ``DATABASE_URL``) are passed on; no password ever travels in
    the environment."""
    data = opts.data_dir.resolve()
    opts.service_dir.mkdir(mode=0o700, exist_ok=True)
    env = {k: v for k, v in (os.environ if environ is None else environ).items() if k != PASSWORD_ENV}
    for name in ("ORTHANC_PASSWORD", "STAFF_USERS"):  # never an inherited inline password: the file wins
        env.pop(SERVICE_ENV + name, None)
    env.update({SERVICE_ENV + k: v for k, v in {
        "ORTHANC_URL": f"http://127.0.0.1:{opts.http_port}", "ORTHANC_USERNAME": SERVICE_USER,
        "ORTHANC_PASSWORD_FILE": str(data / SERVICE_CREDENTIAL), "DATA_DIR": str(opts.service_dir),
        "PLUGIN_TOKEN_FILE": str(data / "service-token"),
        "PLUGIN_AUDIT_LOG": str(data / "gdpr-state" / "audit.jsonl"), "PLUGIN_KEY_FILE": str(data / "gdpr.key"),
        "HOST": "127.0.0.1", "PORT": str(opts.service_port)}.items()})
    return env


def base_config() -> dict:
    """The production template with serve's loopback overrides: one source of truth for the
    security settings (orthanc-config/orthanc.production.json)."""
    from .config_check.jsonc import loads

    config = loads(PRODUCTION.read_text())
    overrides = json.loads(DEFAULTS.read_text())
    overrides.pop("_comment", None)
    config.update(overrides)
    return config


def write_config(opts: ServeOptions, password: str | None) -> Path:
    """Orthanc's configuration for this data directory (mode 0600). With the service, Orthanc's
    own user list is off and the plugin checks every request against the service's accounts
    (``AuthenticateWithService``); the service logs in with its own credential. Without it,
    Orthanc's ``admin`` with ``password``."""
    data = opts.data_dir.resolve()
    config = base_config()
    gdpr = {"KeyFile": str(data / "gdpr.key"), "StateDirectory": str(data / "gdpr-state"),
            "DownloadProfiles": ["basic", "research", "teaching", "clinical-trial"]}
    if opts.routing_rules:
        gdpr["RoutingRules"] = str(opts.routing_rules.resolve())
    config.update({
        "HttpPort": opts.http_port, "DicomPort": opts.dicom_port,
        "StorageDirectory": str(data / "storage"), "IndexDirectory": str(data / "storage"),
        "Plugins": [str(PYTHON_PLUGIN)], "PythonScript": str(ENTRY_SCRIPT), "Gdpr": gdpr,
    })
    if opts.service_url:  # the consent gate and the accounts: the service beside Orthanc
        config = with_service_accounts(config, opts.service_url, str(data / "service-token"),
                                       str(data / SERVICE_CREDENTIAL))
    else:
        config["RegisteredUsers"] = {ADMIN: password}
    path = data / "orthanc.json"
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        json.dump(config, f, indent=2)
    os.chmod(path, 0o600)
    return path


def orthanc_env(environ: dict[str, str] | None = None) -> dict[str, str]:
    """Orthanc's environment: the caller's, plus ``$ORTHANC_GDPR_SITE_PACKAGES`` set to the
    site-packages of the interpreter running ``serve`` (unless the caller set it), so the plugin
    imports the same installation, wherever it is."""
    env = dict(os.environ if environ is None else environ)
    env.setdefault(SITE_PACKAGES_ENV, sysconfig.get_paths()["purelib"])
    return env


#: ``serve``'s exit code when Orthanc could not start (restarting would not help).
EXIT_START_FAILED = 3


try:  # resolved in the parent: nothing may be dlopen-ed between fork and exec
    _prctl = ctypes.CDLL(None, use_errno=True).prctl
except (OSError, AttributeError):
    _prctl = None


def _die_with_supervisor() -> None:  # in the child, between fork and exec
    # Linux: Orthanc gets SIGTERM if the supervisor is killed (even with SIGKILL): no orphan
    # keeps the ports and the storage.
    if _prctl is not None:
        _prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


#: Orthanc's log line once it serves (glog ``W... main.cpp] Orthanc has started``).
ORTHANC_STARTED = b"Orthanc has started"
#: Lines of Orthanc's log that say why it stopped: glog errors, and the plugin's Python traceback.
_ERROR_LINE = re.compile(rb"^E\d{4} |Traceback|Error|error:|Exception")


class Child:
    """One supervised process: how to start it, where its output goes, how its death is audited.

    With ``ready_marker``, a start is good once the marker appears in the log; a death before
    that is a failed start (counted in ``failed_starts``, reset by a good start).
    """

    def __init__(self, name: str, argv: list[str], log: Path, cwd: Path,
                 on_death: Callable[["Child", int, int, float, float], None],
                 env: dict[str, str] | None = None, ready_marker: bytes | None = None):
        self.name, self.argv, self.cwd, self.env, self.on_death = name, argv, cwd, env, on_death
        self.log = os.fdopen(os.open(log, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600), "ab")  # owner-only
        os.chmod(log, 0o600)
        self.log_path, self.ready_marker = log, ready_marker
        self.log_offset = 0  #: size of the log when the current run started
        self.ready = ready_marker is None
        self.failed_starts = 0
        self.process: subprocess.Popen | None = None
        self.started_at = 0.0
        self.restarts = 0
        self.delay = 0.0
        self.due: float | None = None  #: monotonic time of the next start after a death

    def output(self) -> bytes:
        """What the current (or last) run wrote to the log."""
        self.log.flush()
        with open(self.log_path, "rb") as f:
            f.seek(self.log_offset)
            return f.read()

    def check_ready(self) -> bool:
        if not self.ready and self.ready_marker is not None and self.ready_marker in self.output():
            self.ready, self.failed_starts = True, 0
        return self.ready

    def error_lines(self, limit: int = 20) -> list[str]:
        """The lines of the last run that say what went wrong (else its last lines)."""
        lines = self.output().splitlines()
        errors = [line for line in lines if _ERROR_LINE.search(line)] or lines
        return [line.decode("utf-8", "replace") for line in errors[-limit:]]

    def start(self) -> None:
        self.started_at, self.due = time.monotonic(), None
        self.log.flush()
        self.log_offset = self.log_path.stat().st_size
        self.ready = self.ready_marker is None
        self.process = subprocess.Popen(self.argv, stdin=subprocess.DEVNULL, stdout=self.log,
                                        stderr=subprocess.STDOUT, cwd=self.cwd, env=self.env,
                                        preexec_fn=_die_with_supervisor)

    def terminate(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.terminate()


def _cause(code: int) -> str:
    return f"signal {signal.Signals(-code).name}" if code < 0 and -code in signal.valid_signals() \
        else f"exit code {code}"


class Supervisor:
    """Runs Orthanc (and the portability service beside it), restarts each when it dies (audited),
    stops both on SIGTERM or Ctrl-C.

    A death within ``quick_death`` seconds of a start doubles the delay before the next start
    (up to ``max_delay``), so a configuration error does not spin; otherwise the process is back
    after ``restart_delay`` seconds. Orthanc dying before it has started (plugin import error,
    port in use, bad configuration) ``max_failed_starts`` times in a row cannot be fixed by
    restarting: its error lines are printed and :meth:`run` returns :data:`EXIT_START_FAILED`.
    """

    def __init__(self, opts: ServeOptions, config: Path, restart_delay: float = 0.5,
                 max_delay: float = 30.0, quick_death: float = 5.0, stop_timeout: float = 30.0,
                 service_env: dict[str, str] | None = None, max_failed_starts: int = 3):
        self.opts, self.config = opts, config
        self.restart_delay, self.max_delay, self.quick_death = restart_delay, max_delay, quick_death
        self.stop_timeout, self.max_failed_starts = stop_timeout, max_failed_starts
        self.stopping = False
        self.exit_code = 0
        self.orthanc = Child("Orthanc", [opts.orthanc_binary, str(config)], opts.data_dir / "orthanc.log",
                             opts.data_dir, self._audit_orthanc, env=orthanc_env(), ready_marker=ORTHANC_STARTED)
        self.children = [self.orthanc]
        self.service: Child | None = None
        if service_env is not None:
            self.service = Child("portability service", [opts.python, "-m", "portability.server"],
                                 opts.data_dir / "service.log", opts.service_dir, self._audit_service,
                                 env=service_env)
            self.children.append(self.service)

    @property
    def process(self) -> subprocess.Popen | None:  # Orthanc's (kept for callers of the old API)
        return self.orthanc.process

    @property
    def restarts(self) -> int:
        return self.orthanc.restarts

    def stop(self, *_: object) -> None:
        self.stopping = True
        for child in self.children:
            child.terminate()

    def _audit_orthanc(self, child: Child, code: int, pid: int, uptime: float, delay: float) -> None:
        audit = AuditLog(self.opts.data_dir / "gdpr-state" / "audit.jsonl")  # Orthanc is down: no other writer
        audit.append("security.orthanc-died", severity="incident", exit_code=code, cause=_cause(code),
                     pid=pid, uptime_seconds=round(uptime, 1), restart=child.restarts + 1,
                     restart_delay_seconds=delay, action="restarted by orthanc-gdpr serve")

    def _audit_service(self, child: Child, code: int, pid: int, uptime: float, delay: float) -> None:
        # Into the service's own store, not the plugin's log: Orthanc is running and appending to
        # that file; the store serialises appends (it is where the plugin's records end up too).
        from portability import chain
        from portability.db import Database
        from portability.settings import Settings

        db = Database(Settings.from_env(child.env).database_url)
        try:
            db.migrate()
            chain.append(db, "security.service-died", actor="orthanc-gdpr serve", severity="incident",
                         exit_code=code, cause=_cause(code), pid=pid, uptime_seconds=round(uptime, 1),
                         restart=child.restarts + 1, restart_delay_seconds=delay,
                         action="restarted by orthanc-gdpr serve")
        finally:
            db.dispose()

    def _died(self, child: Child, code: int) -> None:
        assert child.process is not None
        if not child.check_ready():
            child.failed_starts += 1
            print(f"orthanc-gdpr: {child.name} failed to start ({_cause(code)}; attempt {child.failed_starts} of "
                  f"{self.max_failed_starts}); its log {child.log_path} says:", file=sys.stderr)
            for line in child.error_lines():
                print(f"  {line}", file=sys.stderr)
            sys.stderr.flush()
            if child.failed_starts >= self.max_failed_starts:
                print(f"orthanc-gdpr: giving up: {child.name} failed to start {child.failed_starts} times in a row; "
                      "fix the cause above and start again", file=sys.stderr, flush=True)
                self.exit_code = EXIT_START_FAILED
                self.stop()
                return
        uptime = time.monotonic() - child.started_at
        child.delay = (min(child.delay * 2, self.max_delay)
                       if uptime < self.quick_death else self.restart_delay)
        print(f"orthanc-gdpr: {child.name} (pid {child.process.pid}) died ({_cause(code)}) after "
              f"{uptime:.1f} s; restarting in {child.delay:g} s", file=sys.stderr, flush=True)
        try:
            child.on_death(child, code, child.process.pid, uptime, child.delay)
        except Exception as e:  # noqa: BLE001 - the restart matters more than the record
            print(f"orthanc-gdpr: could not audit the death of {child.name}: {e}", file=sys.stderr, flush=True)
        child.due = time.monotonic() + child.delay

    def run(self) -> int:
        signal.signal(signal.SIGTERM, self.stop)
        signal.signal(signal.SIGINT, self.stop)
        for child in self.children:
            child.delay = self.restart_delay
            child.start()
        while not self.stopping:
            time.sleep(0.1)
            for child in self.children:
                if self.stopping:
                    break
                if child.due is not None:
                    if time.monotonic() >= child.due:
                        child.restarts += 1
                        child.start()
                    continue
                assert child.process is not None
                code = child.process.poll()
                if code is not None and not self.stopping:
                    self._died(child, code)
                elif code is None:
                    child.check_ready()
        return self.exit_code

    def shutdown(self) -> None:
        """After run(): make sure every child is gone (SIGKILL after ``stop_timeout``)."""
        for child in self.children:
            child.terminate()
        deadline = time.monotonic() + self.stop_timeout
        for child in self.children:
            if child.process is None:
                continue
            try:
                child.process.wait(timeout=max(deadline - time.monotonic(), 0.1))
            except subprocess.TimeoutExpired:
                child.process.kill()
                child.process.wait()
            child.log.close()


def serve(opts: ServeOptions) -> int:
    # Orthanc's storage and index, the plugin's queue, the service's bundles: everything under the
    # data directory holds PHI or secrets, so whatever serve and its children create is owner-only.
    os.umask(0o077)
    opts.data_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    (opts.data_dir / "gdpr-state").mkdir(mode=0o700, exist_ok=True)
    if not (opts.data_dir / "gdpr.key").exists():
        create_key_file(opts.data_dir / "gdpr.key")
    password, created, env, dpo = None, False, None, None
    if opts.service_port:
        service_token(opts.data_dir)
        _secret_file(opts.data_dir / SERVICE_CREDENTIAL, lambda: secrets.token_hex(32))
        env = service_env(opts)
        dpo = seed_dpo(opts.data_dir, env)
    else:
        password, created = admin_password(opts.data_dir)
    config = write_config(opts, password)
    print(f"orthanc-gdpr: data directory {opts.data_dir.resolve()}")
    if opts.service_url:
        print(f"orthanc-gdpr: Orthanc REST and web UI  http://127.0.0.1:{opts.http_port}/gdpr-login  "
              "(staff accounts: orthanc-gdpr users)")
    else:
        print(f"orthanc-gdpr: Orthanc REST and web UI  http://127.0.0.1:{opts.http_port}/  (user {ADMIN})")
    print(f"orthanc-gdpr: plugin health            http://127.0.0.1:{opts.http_port}/gdpr/health")
    print(f"orthanc-gdpr: DICOM                    AET ORTHANC_GDPR on port {opts.dicom_port} (declared modalities only)")
    if opts.service_url:
        print(f"orthanc-gdpr: portability service      {opts.service_url}/  (staff accounts: orthanc-gdpr users; "
              f"API docs {opts.service_url}/docs)")
    if created:
        show_secret("admin password", password, opts.data_dir / "admin-password")
    if dpo:
        show_secret(f"password of the first dpo account {DPO!r}", dpo, opts.data_dir / "dpo-password")
    sys.stdout.flush()
    supervisor = Supervisor(opts, config, service_env=env)
    try:
        return supervisor.run()
    finally:
        supervisor.shutdown()


def add_command(sub) -> None:
    """Register ``orthanc-gdpr serve`` on the CLI's sub-command parser."""
    p = sub.add_parser("serve", help="run Orthanc with the plugin, and the portability service beside it, "
                                     "on embedded defaults (loopback, auth on)")
    p.add_argument("--data-dir", default="./orthanc-gdpr-data", type=Path,
                   help="storage, key, state, service data and generated passwords (default: ./orthanc-gdpr-data)")
    p.add_argument("--orthanc-http-port", type=int, default=8042)
    p.add_argument("--orthanc-dicom-port", type=int, default=4242)
    p.add_argument("--service-port", type=int, default=8000,
                   help="the portability service's port on 127.0.0.1 (default: 8000)")
    p.add_argument("--no-service", action="store_true", help="run Orthanc only, without the portability service")
    p.add_argument("--routing-rules", type=Path, help="routing rules JSON (default: none, downloads only)")
    p.set_defaults(func=lambda args: serve(ServeOptions(
        data_dir=args.data_dir, http_port=args.orthanc_http_port, dicom_port=args.orthanc_dicom_port,
        routing_rules=args.routing_rules, service_port=None if args.no_service else args.service_port)))
