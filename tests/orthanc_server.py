"""Real servers for integration tests: an Orthanc process with the orthanc-gdpr plugin, and DCMTK storescp.

Nothing here is a mock. ``OrthancServer`` writes a loopback-only Orthanc configuration into a
temporary directory, starts the Debian ``Orthanc`` binary with the Debian Python plugin loading
``plugin/orthanc_gdpr/plugin_entry.py``, and waits until the REST API answers. ``StoreScp`` runs DCMTK's
``storescp`` as a DICOM destination whose received files can be inspected.

Both pick free TCP ports by binding to port 0 and retry with new ports when the process reports
that a port was taken in the meantime. Both are stopped by PID (SIGTERM, then SIGKILL after a
timeout), and anything still running when the interpreter exits is stopped by an ``atexit`` hook.
"""
from __future__ import annotations

import atexit
import ctypes
import itertools
import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path
from typing import Any, Callable, Iterable, Mapping

import requests

REPO = Path(__file__).resolve().parent.parent
ENTRY_SCRIPT = REPO / "plugin" / "orthanc_gdpr" / "plugin_entry.py"
ORTHANC_BINARY = os.environ.get("ORTHANC_BINARY") or shutil.which("Orthanc") or "/usr/sbin/Orthanc"
PYTHON_PLUGIN = os.environ.get(
    "ORTHANC_PYTHON_PLUGIN", "/usr/share/orthanc/plugins/libOrthancPython.so"
)
STORESCP_BINARY = os.environ.get("STORESCP_BINARY") or shutil.which("storescp") or "/usr/bin/storescp"
#: Debian's DICOMweb plugin (package orthanc-dicomweb), for STOW-RS destinations in tests.
DICOMWEB_PLUGIN = "/usr/share/orthanc/plugins/libOrthancDicomWeb.so"
#: Debian's PostgreSQL index plugin (package orthanc-postgresql), for replicas on one index.
POSTGRESQL_INDEX_PLUGIN = "/usr/share/orthanc/plugins/libOrthancPostgreSQLIndex.so"

LOOPBACK = "127.0.0.1"
PORT_IN_USE_MARKERS = ("already in use", "Address in use", "cannot listen")
# Environment variables that would make the Python embedded in Orthanc differ from production.
_SCRUBBED_ENV = ("PYTHONHOME", "PYTHONPATH", "PYTHONSTARTUP", "PYTHONINSPECT")

_live: set["_Process"] = set()  # running children, for the atexit hook
_aet_counter = itertools.count(1)


#: The pseudonymisation key of test servers (tests compare with the engine run locally).
TEST_KEY_HEX = "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff"


class ServerError(RuntimeError):
    """A server did not start or misbehaved; the message ends with the tail of its log."""


class PortInUse(ServerError):
    """The process could not bind one of its ports (another process took it first)."""


def free_port(host: str = LOOPBACK) -> int:
    """A TCP port that was free on ``host`` a moment ago (bind to port 0, read it, release it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def unique_aet(prefix: str = "GDPR") -> str:
    """An AE title unique to this process and (very probably) to this machine; at most 16 chars."""
    return f"{prefix}{next(_aet_counter):03d}{secrets.token_hex(3).upper()}"[:16]


def listening_ports(pid: int) -> set[int] | None:
    """TCP ports on which process ``pid`` listens (Linux /proc), or None where /proc can't tell."""
    try:
        fds = os.listdir(f"/proc/{pid}/fd")
    except OSError:
        return None
    inodes = set()
    for fd in fds:
        try:
            link = os.readlink(f"/proc/{pid}/fd/{fd}")
        except OSError:
            continue
        if link.startswith("socket:["):
            inodes.add(link[len("socket:["):-1])
    ports = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            with open(table) as f:
                rows = f.read().splitlines()[1:]
        except OSError:
            continue
        for row in rows:
            fields = row.split()
            if len(fields) > 9 and fields[3] == "0A" and fields[9] in inodes:  # 0A = LISTEN
                ports.add(int(fields[1].rsplit(":", 1)[1], 16))
    return ports


def tail(path: Path, lines: int = 60) -> str:
    try:
        text = path.read_text(errors="replace")
    except FileNotFoundError:
        return "(no log file)"
    return "\n".join(text.splitlines()[-lines:])


try:  # resolved in the parent: the child must not dlopen between fork and exec
    _prctl = ctypes.CDLL(None, use_errno=True).prctl
except (OSError, AttributeError):  # not Linux/glibc
    _prctl = None
_PR_SET_PDEATHSIG = 1


def _die_with_parent() -> None:  # runs in the child between fork and exec
    # Linux: the child gets SIGTERM if the thread that spawned it dies (e.g. pytest is killed),
    # so no stray Orthanc keeps ports and CPU. Hence: spawn from long-lived threads only.
    if _prctl is not None:
        _prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)


class _Process:
    """A child process with a log file, stopped by PID."""

    log_path: Path
    stop_timeout: float = 15.0

    def __init__(self) -> None:
        self._proc: subprocess.Popen[bytes] | None = None
        self._log_file = None

    def _start_retrying(self, attempts: int, choose_ports: Callable[[], bool]):
        """Start, retrying on a port collision: ``choose_ports()`` picks fresh free ports (True)
        or keeps fixed ones (False: then wait a moment before trying the same ports again)."""
        for attempt in range(attempts):
            if not choose_ports() and attempt:
                time.sleep(0.5)
            try:
                self._start_once()
                return self
            except PortInUse:
                if attempt == attempts - 1:
                    raise
        raise AssertionError("unreachable")

    @property
    def pid(self) -> int:
        if self._proc is None:
            raise ServerError(f"{self!r} is not running")
        return self._proc.pid

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def _spawn(self, argv: list[str], cwd: Path, env: Mapping[str, str] | None = None) -> None:
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        self._log_file = open(self.log_path, "ab")
        self._log_file.write(f"\n===== {time.strftime('%H:%M:%S')} $ {' '.join(argv)}\n".encode())
        self._log_file.flush()
        self._proc = subprocess.Popen(
            argv,
            cwd=cwd,
            env=dict(env) if env is not None else None,
            stdin=subprocess.DEVNULL,
            stdout=self._log_file,
            stderr=subprocess.STDOUT,
            preexec_fn=_die_with_parent,
        )
        _live.add(self)

    def terminate(self) -> None:
        """Send SIGTERM to the PID without waiting (``stop()`` then waits and reaps)."""
        if self._proc is not None and self._proc.poll() is None:
            try:
                os.kill(self._proc.pid, signal.SIGTERM)
            except ProcessLookupError:
                pass

    def stop(self, timeout: float | None = None) -> None:
        """SIGTERM the PID, wait, SIGKILL after ``timeout`` seconds. Idempotent."""
        self.terminate()
        proc, self._proc = self._proc, None
        if proc is not None:
            try:
                proc.wait(timeout=self.stop_timeout if timeout is None else timeout)
            except subprocess.TimeoutExpired:
                os.kill(proc.pid, signal.SIGKILL)
                proc.wait(timeout=10)
        if self._log_file is not None:
            self._log_file.close()
            self._log_file = None
        _live.discard(self)

    def log_tail(self, lines: int = 60) -> str:
        return tail(self.log_path, lines)

    def _log_since(self, offset: int) -> str:
        try:
            with open(self.log_path, "rb") as f:
                f.seek(offset)
                return f.read().decode(errors="replace")
        except FileNotFoundError:
            return ""

    def _log_size(self) -> int:
        try:
            return self.log_path.stat().st_size
        except FileNotFoundError:
            return 0

    def __enter__(self):
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def stop_all(processes: Iterable[_Process], timeout: float | None = None) -> None:
    """Stop several processes in parallel (Orthanc takes ~3.5 s to shut down gracefully)."""
    processes = list(processes)
    for p in processes:
        p.terminate()
    errors = []
    for p in processes:
        try:
            p.stop(timeout)
        except Exception as e:  # noqa: BLE001 - stop the others, then re-raise
            errors.append(e)
    if errors:
        raise errors[0]


@atexit.register
def _stop_leftovers() -> None:
    try:
        stop_all(list(_live), timeout=5)
    except Exception:  # noqa: BLE001 - best effort at interpreter exit
        pass


class OrthancServer(_Process):
    """A real Orthanc (Debian binary + Debian Python plugin + orthanc-gdpr entry script).

    ``workdir`` holds ``orthanc.json``, ``orthanc.log`` and the storage/index (``db/``), which
    survive ``restart()``. Ports are chosen at ``start()``; ``restart()`` reuses them so peers
    configured with this server's URL keep working.
    """

    def __init__(
        self,
        workdir: str | os.PathLike[str],
        *,
        aet: str | None = None,
        modalities: Mapping[str, Any] | None = None,
        peers: Mapping[str, Any] | None = None,
        stable_age: int = 2,
        extra: Mapping[str, Any] | None = None,
        gdpr: Mapping[str, Any] | None = None,
        plugin: bool = True,
        entry_script: str | os.PathLike[str] = ENTRY_SCRIPT,
        verbose: bool = False,
        username: str = "gdpr-test",
        password: str | None = None,
        env: Mapping[str, str] | None = None,
        start_timeout: float = 30.0,
    ) -> None:
        super().__init__()
        self.workdir = Path(workdir).resolve()
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.aet = aet or unique_aet()
        self.modalities = dict(modalities or {})
        self.peers = dict(peers or {})
        self.stable_age = stable_age
        self.extra = dict(extra or {})
        self.gdpr = dict(gdpr or {})
        self.plugin = plugin
        self.entry_script = Path(entry_script).resolve()
        self.verbose = verbose
        self.username = username
        self.password = password or secrets.token_hex(12)  # hex: never starts with "-" (an option to a CLI)
        self.env = dict(env or {})
        self.start_timeout = start_timeout
        self.config_path = self.workdir / "orthanc.json"
        self.log_path = self.workdir / "orthanc.log"
        self.storage_dir = self.workdir / "db"
        self.http_port: int | None = None
        self.dicom_port: int | None = None
        self.session = requests.Session()
        self.session.headers["Accept-Encoding"] = "identity"  # Orthanc would gzip every answer
        self.session.auth = (self.username, self.password)

    def __repr__(self) -> str:
        return f"<OrthancServer {self.aet} http={self.http_port} dicom={self.dicom_port}>"

    # ----------------------------------------------------------------- configuration
    @property
    def url(self) -> str:
        if self.http_port is None:
            raise ServerError("server has no port yet: call start()")
        return f"http://{LOOPBACK}:{self.http_port}"

    def config(self) -> dict[str, Any]:
        """The configuration written to ``orthanc.json`` (``extra`` is merged last, shallowly)."""
        cfg: dict[str, Any] = {
            "Name": self.aet,
            "StorageDirectory": str(self.storage_dir),
            "IndexDirectory": str(self.storage_dir),
            "RemoteAccessAllowed": False,  # HTTP answers loopback clients only
            "HttpServerEnabled": True,
            "HttpPort": self.http_port,
            "DicomServerEnabled": True,
            "DicomPort": self.dicom_port,
            "DicomAet": self.aet,
            "AuthenticationEnabled": True,
            "RegisteredUsers": {self.username: self.password},
            "DicomModalities": self.modalities,
            "OrthancPeers": self.peers,
            "StableAge": self.stable_age,
            "ExecuteLuaEnabled": False,
            "RestApiWriteToFileSystemEnabled": False,
            "Plugins": [PYTHON_PLUGIN] if self.plugin else [],
        }
        if self.plugin:
            # Plugin 4.0 (Debian 12) reads only "PythonScript"/"PythonVerbose"; plugin >= 4.1
            # also reads the "Python" section, whose "Path" is an alias of "PythonScript".
            # 4.0 ignores the section (verified: no error), so both are written, same value.
            cfg["PythonScript"] = str(self.entry_script)
            cfg["PythonVerbose"] = False
            cfg["Python"] = {"Path": str(self.entry_script), "Verbose": False}
            cfg["Gdpr"] = self.gdpr_section()
        cfg.update(self.extra)
        return cfg

    @property
    def key_file(self) -> Path:
        return self.workdir / "gdpr.key"

    @property
    def state_dir(self) -> Path:
        return self.workdir / "gdpr-state"

    def gdpr_section(self) -> dict[str, Any]:
        """The plugin's "Gdpr" section: a test key and a state directory, plus ``gdpr`` overrides."""
        if not self.key_file.exists():
            self.key_file.write_text(TEST_KEY_HEX + "\n")
            self.key_file.chmod(0o600)
        return {"KeyFile": str(self.key_file), "StateDirectory": str(self.state_dir), **self.gdpr}

    @property
    def audit_records(self) -> list[dict[str, Any]]:
        path = self.state_dir / "audit.jsonl"
        return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []

    def write_config(self) -> Path:
        self.config_path.write_text(json.dumps(self.config(), indent=2))
        return self.config_path

    def as_peer(self) -> dict[str, Any]:
        """This server as an entry of another server's ``OrthancPeers``."""
        return {"Url": self.url + "/", "Username": self.username, "Password": self.password}

    def as_modality(self) -> list[Any]:
        """This server as an entry of another server's ``DicomModalities``."""
        return [self.aet, LOOPBACK, self.dicom_port]

    # ----------------------------------------------------------------- lifecycle
    def start(self, attempts: int = 5) -> "OrthancServer":
        if self.running:
            return self
        keep_ports = self.http_port is not None

        def ports() -> bool:
            if keep_ports:  # restart(): the old socket may linger a moment
                return False
            self.http_port = free_port()
            self.dicom_port = free_port()
            while self.dicom_port == self.http_port:
                self.dicom_port = free_port()
            return True

        return self._start_retrying(attempts, ports)

    def _environment(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if k not in _SCRUBBED_ENV}
        env.update(self.env)
        return env

    def _start_once(self) -> None:
        self.write_config()
        offset = self._log_size()
        argv = [ORTHANC_BINARY, str(self.config_path)]
        if self.verbose:
            argv.append("--verbose")
        self._spawn(argv, cwd=self.workdir, env=self._environment())
        deadline = time.monotonic() + self.start_timeout
        while time.monotonic() < deadline:
            if not self.running:
                code = self._proc.returncode if self._proc else None
                log = self._log_since(offset)
                self.stop()
                if any(m in log for m in PORT_IN_USE_MARKERS):
                    raise PortInUse(f"{self!r}: port taken\n{log[-3000:]}")
                raise ServerError(
                    f"Orthanc exited with code {code} during start-up; log {self.log_path}:\n"
                    f"{self.log_tail()}"
                )
            try:
                r = self.session.get(self.url + "/system", timeout=2)
                if r.status_code == 200:
                    return
            except requests.RequestException:
                pass
            time.sleep(0.1)
        self.stop()
        raise ServerError(
            f"Orthanc did not answer GET /system within {self.start_timeout:.0f} s; "
            f"log {self.log_path}:\n{self.log_tail()}"
        )

    def restart(self) -> "OrthancServer":
        """Stop and start again: same configuration, ports and storage."""
        self.stop()
        return self.start()

    # ----------------------------------------------------------------- REST helpers
    def _check(self, r: requests.Response) -> requests.Response:
        if r.status_code >= 400:
            raise ServerError(f"{r.request.method} {r.url} -> {r.status_code}: {r.text[:2000]}")
        return r

    def get(self, path: str, **kwargs: Any) -> requests.Response:
        kwargs.setdefault("timeout", 30)
        return self.session.get(self.url + path, **kwargs)

    def post(self, path: str, **kwargs: Any) -> requests.Response:
        kwargs.setdefault("timeout", 60)
        return self.session.post(self.url + path, **kwargs)

    def get_json(self, path: str, **kwargs: Any) -> Any:
        return self._check(self.get(path, **kwargs)).json()

    def post_json(self, path: str, body: Any = None, **kwargs: Any) -> Any:
        return self._check(self.post(path, json=body, **kwargs)).json()

    def upload(self, dicom: str | os.PathLike[str] | bytes) -> str:
        """POST one DICOM file (a path or its bytes) to ``/instances``; returns the instance id."""
        data = dicom if isinstance(dicom, (bytes, bytearray)) else Path(dicom).read_bytes()
        answer = self._check(
            self.post("/instances", data=data, headers={"Content-Type": "application/dicom"})
        ).json()
        if answer.get("Status") not in ("Success", "AlreadyStored"):
            raise ServerError(f"upload refused: {answer}")
        return answer["ID"]


class StoreScp(_Process):
    """DCMTK ``storescp`` receiving into ``directory`` (files written exactly as received).

    Use ``as_modality()`` in an Orthanc's ``DicomModalities``.
    """

    def __init__(
        self,
        directory: str | os.PathLike[str],
        *,
        aet: str | None = None,
        extra_args: Iterable[str] = (),
        start_timeout: float = 15.0,
    ) -> None:
        super().__init__()
        self.directory = Path(directory).resolve()
        self.directory.mkdir(parents=True, exist_ok=True)
        self.aet = aet or unique_aet("SCP")
        self.extra_args = list(extra_args)
        self.start_timeout = start_timeout
        self.port: int | None = None
        self.log_path = self.directory.parent / f"storescp-{self.aet}.log"
        self.stop_timeout = 5.0

    def __repr__(self) -> str:
        return f"<StoreScp {self.aet} port={self.port} dir={self.directory}>"

    def as_modality(self) -> list[Any]:
        return [self.aet, LOOPBACK, self.port]

    def reserve_port(self) -> int:
        """Choose the port now, before ``start()`` (to declare a destination that is still down);
        ``start()`` then keeps it."""
        if self.port is None:
            self.port = free_port()
        self._fixed_port = True
        return self.port

    def start(self, attempts: int = 5) -> "StoreScp":
        if self.running:
            return self
        fixed = getattr(self, "_fixed_port", False)

        def ports() -> bool:
            if fixed and self.port is not None:
                return False
            self.port = free_port()
            return True

        return self._start_retrying(attempts, ports)

    def _start_once(self) -> None:
        offset = self._log_size()
        argv = [
            STORESCP_BINARY,
            "--verbose",
            "--aetitle", self.aet,
            "--output-directory", str(self.directory),
            "--promiscuous",  # accept any SOP class, including private ones
            "--accept-all",  # any transfer syntax dcmtk knows
            "--bit-preserving",  # write exactly the bytes that were sent
            "--filename-extension", ".dcm",
            *self.extra_args,
            str(self.port),
        ]
        self._spawn(argv, cwd=self.directory.parent)
        deadline = time.monotonic() + self.start_timeout
        while time.monotonic() < deadline:
            if not self.running:
                log = self._log_since(offset)
                self.stop()
                if any(m in log for m in PORT_IN_USE_MARKERS):
                    raise PortInUse(f"{self!r}: port taken\n{log[-2000:]}")
                raise ServerError(f"storescp exited during start-up:\n{log[-3000:]}")
            # A bare connect() could reach whoever else holds the port: check that *our* PID
            # listens on it (falls back to connect() where /proc is unavailable).
            ports = listening_ports(self.pid)
            if ports is not None:
                if self.port in ports:
                    return
            else:
                try:
                    with socket.create_connection((LOOPBACK, self.port), timeout=1):
                        return
                except OSError:
                    pass
            time.sleep(0.05)
        self.stop()
        raise ServerError(f"storescp not listening after {self.start_timeout} s:\n{self.log_tail()}")

    def received_files(self) -> list[Path]:
        """Files received so far, sorted by name."""
        return sorted(p for p in self.directory.iterdir() if p.is_file())

    def wait_for_files(self, count: int, timeout: float = 30.0, settle: float = 0.3) -> list[Path]:
        """Wait until at least ``count`` files arrived and the directory stopped changing."""
        deadline = time.monotonic() + timeout
        last: list[tuple[str, int]] | None = None
        while time.monotonic() < deadline:
            files = self.received_files()
            state = [(p.name, p.stat().st_size) for p in files]
            if len(files) >= count and state == last:
                return files
            last = state
            time.sleep(settle)
        raise ServerError(
            f"{self!r}: expected {count} file(s), got {len(self.received_files())} "
            f"within {timeout} s\n{self.log_tail()}"
        )


# =================================================================== test data and waiting
# Helpers shared by the integration tests (routing, downloads, audit): synthetic studies built
# from pydicom's CT_small.dcm, and polling with a deadline.

#: PHI of the synthetic patient: distinctive enough to grep for in raw bytes.
PHI_NAME = "Zyxwvut^Qwertyuiop"
PHI_ID = "PHI-77881234"


def make_ct_study(
    count: int = 4,
    *,
    patient_name: str = PHI_NAME,
    patient_id: str = PHI_ID,
    series: int = 2,
    rows: int | None = None,
    modality: str = "CT",
) -> list[bytes]:
    """``count`` CT instances (Part 10 bytes) of one new study of one patient, spread over
    ``series`` series, with fresh Study/Series/SOP UIDs. The patient's name is also typed into a
    nested sequence (OtherPatientIDsSequence > item > PatientName-like free text). With ``rows``,
    the pixel data is a ``rows`` x ``rows`` 16-bit image (for benchmarks)."""
    import io

    import pydicom
    from pydicom.data import get_testdata_file
    from pydicom.dataset import Dataset
    from pydicom.uid import generate_uid

    template = pydicom.dcmread(get_testdata_file("CT_small.dcm"))
    study_uid = generate_uid()
    frame_uid = generate_uid()
    series_uids = [generate_uid() for _ in range(series)]
    pixels = None
    if rows:  # 12-bit noise: compresses about as poorly as real CT, unlike a repeated pattern
        import numpy as np

        pixels = np.random.default_rng(1).integers(0, 4096, size=rows * rows, dtype=np.uint16).tobytes()
    out = []
    for i in range(count):
        ds = template.copy()
        ds.file_meta = template.file_meta.copy()
        ds.PatientName = patient_name
        ds.PatientID = patient_id
        ds.Modality = modality
        ds.StudyInstanceUID = study_uid
        ds.FrameOfReferenceUID = frame_uid
        ds.SeriesInstanceUID = series_uids[i % series]
        ds.SeriesNumber = i % series + 1
        ds.InstanceNumber = i + 1
        ds.SOPInstanceUID = generate_uid()
        ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
        ds.StudyDescription = "GDPR routing test"
        item = Dataset()
        item.PatientID = patient_id
        item.IssuerOfPatientID = "HOSPITAL"
        nested = Dataset()
        nested.PatientName = patient_name  # the name again, two levels down
        item.ReferencedPatientSequence = [nested]
        ds.OtherPatientIDsSequence = [item]
        if pixels is not None:
            ds.Rows = ds.Columns = rows
            ds.PixelData = pixels
        buf = io.BytesIO()
        ds.save_as(buf, enforce_file_format=True)
        out.append(buf.getvalue())
    return out


def deep_sequence_instance(depth: int, template: bytes) -> bytes:
    """``template`` with sequences nested ``depth`` levels deep (fresh SOP Instance UID)."""
    import io

    import pydicom
    from pydicom.dataset import Dataset
    from pydicom.uid import generate_uid

    ds = pydicom.dcmread(io.BytesIO(template))
    ds.SOPInstanceUID = generate_uid()
    ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    inner = Dataset()
    inner.CodeMeaning = "innermost"
    for _ in range(depth - 1):
        outer = Dataset()
        outer.ContentSequence = [inner]
        inner = outer
    ds.ContentSequence = [inner]
    buf = io.BytesIO()
    ds.save_as(buf, enforce_file_format=True)
    return buf.getvalue()


def wait_for(predicate, timeout: float = 30.0, interval: float = 0.2, message: str = "condition"):
    """Poll ``predicate`` until it returns something truthy; return that, or raise after ``timeout``."""
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        last = predicate()
        if last:
            return last
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout} s waiting for {message} (last: {last!r})")


def write_rules(path: str | os.PathLike[str], *rules: Mapping[str, Any]) -> Path:
    """Write a routing rules file (``{"rules": [...]}``) and return its path."""
    path = Path(path)
    path.write_text(json.dumps({"rules": list(rules)}, indent=2))
    return path


DCMCONV_BINARY = os.environ.get("DCMCONV_BINARY") or shutil.which("dcmconv") or "/usr/bin/dcmconv"


def big_endian(data: bytes, workdir: str | os.PathLike[str]) -> bytes:
    """``data`` re-encoded by DCMTK in the retired Explicit VR Big Endian transfer syntax
    (Orthanc stores it; the engine refuses it)."""
    src, dst = Path(workdir) / "le.dcm", Path(workdir) / "be.dcm"
    src.write_bytes(data)
    subprocess.run([DCMCONV_BINARY, "+tb", str(src), str(dst)], check=True, capture_output=True)
    return dst.read_bytes()
