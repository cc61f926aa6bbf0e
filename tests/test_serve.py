"""``orthanc-gdpr serve`` as a real subprocess: production defaults on loopback, a generated
password shown once, supervision (kill -9 Orthanc -> restarted, audited), clean shutdown; the
portability service beside Orthanc (generated DPO password, the plugin's consent token, its own
supervision and audit, stopped with serve).

``ServeProcess`` is also used by tests/test_hostile.py.
"""
from __future__ import annotations

import json
import os
import signal
import stat
import subprocess
import sys
import time
from pathlib import Path

import pytest
import requests

from orthanc_server import REPO, free_port, make_ct_study

sys.path.insert(0, str(REPO / "plugin"))

from orthanc_gdpr import audit  # noqa: E402
from orthanc_gdpr.config_check import audit as check_config  # noqa: E402
from orthanc_gdpr.config_check.jsonc import loads  # noqa: E402

CLI = [str(REPO / ".venv" / "bin" / "python"), "-m", "orthanc_gdpr.cli"]
pytestmark = pytest.mark.integration


def children(pid: int) -> list[int]:
    """PIDs whose parent is ``pid`` (Linux /proc)."""
    out = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as f:
                    fields = f.read().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(fields[1]) == pid:
                out.append(int(entry))
    return out


def command_line(pid: int) -> list[str]:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            return [a.decode(errors="replace") for a in f.read().split(b"\0") if a]
    except OSError:
        return []


def alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


class ServeProcess:
    """``orthanc-gdpr serve`` on free ports with its own data directory."""

    def __init__(self, data_dir: Path, env: dict[str, str] | None = None, command: list[str] = CLI,
                 cwd: Path = REPO, service: bool = True):
        self.data_dir, self.command, self.cwd, self.service = data_dir, command, cwd, service
        self.http_port, self.dicom_port, self.service_port = free_port(), free_port(), free_port()
        self.url = f"http://127.0.0.1:{self.http_port}"
        self.service_url = f"http://127.0.0.1:{self.service_port}"
        self.env = {k: v for k, v in os.environ.items() if k != "ORTHANC_GDPR_ADMIN_PASSWORD"}
        self.env.update(env or {})
        self.env["PYTHONPATH"] = str(REPO / "plugin")
        self.proc: subprocess.Popen | None = None
        self.stdout_path = data_dir.parent / f"{data_dir.name}-serve.out"

    def start(self, timeout: float = 40.0) -> "ServeProcess":
        self.out = open(self.stdout_path, "ab")
        self.offset = self.stdout_path.stat().st_size
        self.proc = subprocess.Popen(
            [*self.command, "serve", "--data-dir", str(self.data_dir), "--orthanc-http-port", str(self.http_port),
             "--orthanc-dicom-port", str(self.dicom_port),
             *(["--service-port", str(self.service_port)] if self.service else ["--no-service"])],
            env=self.env, stdout=self.out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, cwd=self.cwd)
        self.wait_available(timeout)
        return self

    @property
    def output(self) -> str:
        with open(self.stdout_path, "rb") as f:
            f.seek(self.offset)
            return f.read().decode(errors="replace")

    @property
    def password(self) -> str:
        return (self.data_dir / "admin-password").read_text().strip()

    @property
    def auth(self) -> tuple[str, str]:
        """A login into Orthanc: the first dpo account with the service, else Orthanc's admin."""
        if self.service:
            return self.dpo_auth
        return ("admin", self.env.get("ORTHANC_GDPR_ADMIN_PASSWORD") or self.password)

    @property
    def dpo_auth(self) -> tuple[str, str]:
        return ("dpo", (self.data_dir / "dpo-password").read_text().strip())

    def _child(self, is_it) -> int | None:
        assert self.proc is not None
        kids = [p for p in children(self.proc.pid) if alive(p) and is_it(command_line(p))]
        return kids[0] if kids else None

    def orthanc_pid(self) -> int | None:
        return self._child(lambda argv: bool(argv) and Path(argv[0]).name == "Orthanc")

    def service_pid(self) -> int | None:
        return self._child(lambda argv: "portability.server" in argv)

    def wait_service(self, timeout: float = 30.0) -> float:
        """Seconds until the service's GET /health answers 200."""
        start = time.monotonic()
        while time.monotonic() - start < timeout:
            assert self.proc is not None and self.proc.poll() is None, f"serve exited:\n{self.output}"
            try:
                if requests.get(self.service_url + "/health", timeout=2).status_code == 200:
                    return time.monotonic() - start
            except requests.RequestException:
                pass
            time.sleep(0.1)
        log = self.data_dir / "service.log"
        raise AssertionError(f"service not available within {timeout} s:\n{self.output}\n"
                             f"{log.read_text()[-3000:] if log.exists() else ''}")

    def wait_available(self, timeout: float = 40.0) -> float:
        """Seconds until GET /system answers 200 with :attr:`auth`."""
        start = time.monotonic()
        while time.monotonic() - start < timeout:
            assert self.proc is not None and self.proc.poll() is None, f"serve exited:\n{self.output}"
            try:
                secret = self.data_dir / ("dpo-password" if self.service else "admin-password")
                if secret.exists() or "ORTHANC_GDPR_ADMIN_PASSWORD" in self.env:
                    if requests.get(self.url + "/system", auth=self.auth, timeout=2).status_code == 200:
                        return time.monotonic() - start
            except requests.RequestException:
                pass
            time.sleep(0.1)
        raise AssertionError(f"serve not available within {timeout} s:\n{self.output}\n"
                             f"{(self.data_dir / 'orthanc.log').read_text()[-3000:]}")

    def audit_records(self) -> list[dict]:
        path = self.data_dir / "gdpr-state" / "audit.jsonl"
        return [json.loads(x) for x in path.read_text().splitlines()] if path.exists() else []

    def stop(self, timeout: float = 30.0) -> int | None:
        if self.proc is None:
            return None
        orthanc, service = self.orthanc_pid(), self.service_pid()
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            code = self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            code = self.proc.wait()
        for pid in filter(None, (orthanc, service)):  # never leave one behind, even when the test failed
            deadline = time.monotonic() + 10
            while alive(pid) and time.monotonic() < deadline:
                time.sleep(0.1)
            if alive(pid):
                os.kill(pid, signal.SIGKILL)
        self.proc = None
        self.out.close()
        return code


def group_or_other_access(root: Path) -> list[str]:
    """Paths under ``root`` (itself included) that anyone but the owner may read, write or
    enter, with their modes (a file that vanishes while walking, e.g. a SQLite journal, is skipped)."""
    found = []
    for dirpath, dirnames, filenames in os.walk(root):
        for name in [".", *dirnames, *filenames]:
            path = Path(dirpath, name)
            try:
                mode = path.lstat().st_mode
            except FileNotFoundError:
                continue
            if mode & 0o077 and not stat.S_ISLNK(mode):
                found.append(f"{path.relative_to(root)} {mode & 0o777:o}")
    return found


@pytest.fixture
def served(tmp_path):
    server = ServeProcess(tmp_path / "data")
    try:
        yield server.start()
    finally:
        server.stop()


def test_serve_config_is_the_production_template_on_loopback(tmp_path):
    """orthanc.defaults.json only relaxes what loopback makes unnecessary; everything else is
    the production template; serve's generated file passes check-config (no critical/high)."""
    production = loads((REPO / "orthanc-config" / "orthanc.production.json").read_text())
    overrides = json.loads((REPO / "orthanc-config" / "orthanc.defaults.json").read_text())
    overrides.pop("_comment")
    assert overrides == {"RemoteAccessAllowed": False, "SslEnabled": False}
    from orthanc_gdpr import serve

    data = tmp_path / "d"
    data.mkdir()
    path = serve.write_config(serve.ServeOptions(data_dir=data, http_port=18042, dicom_port=14242), "x" * 24)
    written = json.loads(path.read_text())
    assert path.stat().st_mode & 0o777 == 0o600
    runtime = {"HttpPort", "DicomPort", "StorageDirectory", "IndexDirectory", "RegisteredUsers",
               "Plugins", "PythonScript", "Gdpr", "AuthenticationEnabled"}
    # the plugin's consent gate asks the service beside Orthanc, with the generated token, and
    # checks every request against the service's accounts: Orthanc's own user list is off
    assert written["Gdpr"]["ConsentServiceUrl"] == "http://127.0.0.1:8000"
    assert written["Gdpr"]["ConsentServiceTokenFile"] == str(data.resolve() / "service-token")
    assert written["Gdpr"]["AuthenticateWithService"] is True and written["AuthenticationEnabled"] is False
    assert "RegisteredUsers" not in written
    alone = serve.write_config(serve.ServeOptions(data_dir=data, service_port=None), "x" * 24)
    assert json.loads(alone.read_text())["RegisteredUsers"] == {"admin": "x" * 24}  # without the service
    path = serve.write_config(serve.ServeOptions(data_dir=data, http_port=18042, dicom_port=14242), "x" * 24)
    for key, value in production.items():
        if key not in runtime:
            assert written[key] == overrides.get(key, value), key
    # Orthanc reads a missing or empty HttpsCACertificates as the configuration's directory,
    # which makes every outgoing HTTPS request (peers) fail: it names Debian's CA bundle
    assert Path(written["HttpsCACertificates"]).is_file()
    report = check_config(path)
    severe = [f for f in report["findings"] if f["severity"] in ("critical", "high")]
    assert severe == [], severe
    assert report["exit_code"] == 0


def test_serve_password_health_restart_audit_and_stop(served: ServeProcess):
    out = served.output
    # URLs printed; the first dpo's generated password stored owner-only and, stdout not being a
    # terminal, not shown (it would land in whatever log stdout is redirected to)
    assert f"http://127.0.0.1:{served.http_port}/gdpr-login" in out and "/gdpr/health" in out
    password_file = served.data_dir / "dpo-password"
    assert password_file.stat().st_mode & 0o777 == 0o600
    assert served.dpo_auth[1] not in out and len(served.dpo_auth[1]) >= 20
    assert f"stored owner-only in {password_file} (not shown: standard output is not a terminal)" in out
    assert not (served.data_dir / "admin-password").exists()  # no shared Orthanc admin any more
    for name in ("orthanc.json", "orthanc.log", "service.log", "orthanc-credential"):
        assert (served.data_dir / name).stat().st_mode & 0o777 == 0o600, name

    # every Orthanc request needs an account: refused without one, 200 with the dpo's
    assert requests.get(served.url + "/gdpr/health", timeout=5).status_code == 403
    assert requests.get(served.url + "/system", auth=("orthanc", "orthanc"), timeout=5).status_code == 403
    r = requests.get(served.url + "/gdpr/health", auth=served.auth, timeout=5)
    assert r.status_code == 200, r.text

    # kill -9 Orthanc: restarted within seconds, audited, chain intact
    victim = served.orthanc_pid()
    assert victim is not None
    os.kill(victim, signal.SIGKILL)
    downtime = served.wait_available(timeout=20)
    assert downtime < 10, downtime
    assert served.orthanc_pid() not in (None, victim)
    died = [r for r in served.audit_records() if r["event"] == "security.orthanc-died"]
    assert len(died) == 1 and died[0]["pid"] == victim and died[0]["cause"] == "signal SIGKILL"
    assert audit.verify(served.data_dir / "gdpr-state" / "audit.jsonl") == []
    assert requests.get(served.url + "/gdpr/health", auth=served.auth, timeout=5).status_code == 200

    # SIGTERM: serve exits 0 and no Orthanc is left
    orthanc = served.orthanc_pid()
    assert served.stop() == 0
    assert orthanc is not None and not alive(orthanc)


def test_accounts_persist_across_restarts_and_the_dpo_is_created_once(tmp_path):
    first = ServeProcess(tmp_path / "data").start()
    dpo = first.dpo_auth
    first.stop()
    added = subprocess.run([*CLI, "users", "add", "carl", "--role", "clinician", "--data-dir", str(first.data_dir),
                            "--password-stdin"], input="Quiet-harbour-lantern-47", capture_output=True, text=True,
                           env=first.env, cwd=REPO)
    assert added.returncode == 0, added.stderr
    second = ServeProcess(tmp_path / "data")
    second.http_port, second.url = first.http_port, first.url
    try:
        second.start()
        assert dpo[1] not in second.output and "generated" not in second.output
        assert requests.get(second.url + "/system", auth=dpo, timeout=5).status_code == 200
        assert requests.get(second.url + "/system", auth=("carl", "Quiet-harbour-lantern-47"), timeout=5).status_code == 200
        second.wait_service()
        users = requests.get(second.service_url + "/api/users", auth=dpo, timeout=10).json()
        assert sorted((u["name"], u["role"]) for u in users) == [("carl", "clinician"), ("dpo", "dpo")]
    finally:
        second.stop()


def test_without_the_service_orthanc_keeps_its_admin_and_the_env_password_wins(tmp_path):
    alone = ServeProcess(tmp_path / "alone", service=False).start()
    try:
        assert alone.password not in alone.output and "generated admin password, stored owner-only" in alone.output
        assert requests.get(alone.url + "/system", auth=alone.auth, timeout=5).status_code == 200
    finally:
        alone.stop()
    third = ServeProcess(tmp_path / "env", env={"ORTHANC_GDPR_ADMIN_PASSWORD": "from-env-" + "k" * 20}, service=False)
    try:
        third.start()
        assert not (tmp_path / "env" / "admin-password").exists()
        assert "from-env-" not in third.output
    finally:
        third.stop()


def test_serve_runs_the_portability_service_beside_orthanc(served: ServeProcess):
    """The service answers on loopback with the first dpo's account, reaches the local Orthanc
    with its own machine credential (a bundle of a stored study gets built), accepts the plugin's
    token on the consent route only, is restarted and audited after kill -9, and stops with serve."""
    served.wait_service()
    out, data = served.output, served.data_dir
    assert f"{served.service_url}/" in out and "/docs" in out
    dpo = served.dpo_auth[1]
    assert dpo not in out and len(dpo) >= 20 and "first dpo account 'dpo'" in out
    for name in ("dpo-password", "service-token", "orthanc-credential"):
        assert (data / name).stat().st_mode & 0o777 == 0o600, name
        assert (data / name).read_text().strip() not in out
    assert (data / "service").stat().st_mode & 0o777 == 0o700
    assert (data / "service" / "portability.sqlite").exists()  # its SQLite database in the data dir
    gdpr = json.loads((data / "orthanc.json").read_text())["Gdpr"]
    assert gdpr["ConsentServiceUrl"] == served.service_url
    token = (data / "service-token").read_text().strip()
    assert token not in out  # the plugin's token is never printed

    # bound to loopback only; staff auth on every route but /health
    pid = served.service_pid()
    assert pid is not None
    assert requests.get(served.service_url + "/health", timeout=5).json() == {"status": "ok"}
    assert requests.get(served.service_url + "/requests", timeout=5).status_code == 401
    assert requests.get(served.service_url + "/requests", auth=("dpo", "wrong"), timeout=5).status_code == 401
    assert requests.get(served.service_url + "/requests", auth=served.dpo_auth, timeout=5).status_code == 200
    # the plugin's consent gate: its machine token gets an answer from the registry, nothing else
    assert requests.get(served.service_url + "/requests", headers={"Authorization": f"Bearer {token}"},
                        timeout=5).status_code == 403
    r = requests.get(served.service_url + "/api/consents/standing", timeout=5,
                     headers={"Authorization": f"Bearer {token}"},
                     params={"patient_id": "SERVE-1", "purpose": "research"})
    assert r.status_code == 200 and r.json() == {"consent": False, "restricted": False, "objected": False}

    # the service reaches the local Orthanc with its own credential (from the owner-only file)
    for dicom in make_ct_study(2, patient_id="SERVE-1", series=1):
        assert requests.post(served.url + "/instances", data=dicom, auth=served.auth, timeout=10).ok
    req = requests.post(served.service_url + "/requests", json={"patient_id": "SERVE-1"},
                        auth=served.dpo_auth, timeout=10).json()
    assert requests.post(f"{served.service_url}/requests/{req['id']}/identity", json={"method": "known-to-staff"},
                         auth=served.dpo_auth, timeout=10).ok
    job = requests.post(f"{served.service_url}/requests/{req['id']}/bundle", auth=served.dpo_auth, timeout=10).json()
    deadline = time.monotonic() + 30
    while job["status"] not in ("done", "failed") and time.monotonic() < deadline:
        time.sleep(0.2)
        job = requests.get(f"{served.service_url}/jobs/{job['id']}", auth=served.dpo_auth, timeout=10).json()
    assert job["status"] == "done" and job["done"] == 2, job
    # PHI and secrets at rest: Orthanc's storage and index, the plugin's queue, the bundles, the
    # service's database are all owner-only (serve's umask, inherited by Orthanc and the service)
    assert group_or_other_access(data) == []

    # kill -9 the service: restarted within seconds, audited in the service's store; Orthanc untouched
    orthanc = served.orthanc_pid()
    os.kill(pid, signal.SIGKILL)
    deadline = time.monotonic() + 20
    while served.service_pid() in (None, pid) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert served.wait_service(timeout=20) < 15
    assert served.service_pid() not in (None, pid) and served.orthanc_pid() == orthanc
    died = requests.get(served.service_url + "/api/audit/records", params={"event": "security.service-died"},
                        auth=served.dpo_auth, timeout=10).json()
    assert len(died) == 1 and died[0]["pid"] == pid and died[0]["cause"] == "signal SIGKILL", died
    assert requests.get(served.service_url + "/api/audit/verify", auth=served.dpo_auth, timeout=10).json()["intact"]
    assert "portability service" in served.output and "died (signal SIGKILL)" in served.output

    # SIGTERM: serve exits 0, neither Orthanc nor the service is left
    service = served.service_pid()
    assert served.stop() == 0
    assert not alive(orthanc) and not alive(service)


def test_orthanc_that_cannot_start_is_reported_and_serve_gives_up(tmp_path):
    """Port in use: Orthanc dies before it has started. Restarting cannot help, so serve prints
    Orthanc's own error lines and exits non-zero after a few attempts (no endless restart loop)."""
    import socket

    server = ServeProcess(tmp_path / "data")
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", server.http_port))
        taken.listen()
        server.out = open(server.stdout_path, "ab")
        server.offset = 0
        server.proc = subprocess.Popen(
            [*CLI, "serve", "--data-dir", str(server.data_dir), "--orthanc-http-port", str(server.http_port),
             "--orthanc-dicom-port", str(server.dicom_port), "--no-service"],
            env=server.env, stdout=server.out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, cwd=REPO)
        try:
            code = server.proc.wait(timeout=60)
        finally:
            server.stop()
    out = server.output
    assert code == 3, out
    assert out.count("Orthanc failed to start (") == 3 and "giving up" in out, out
    assert str(server.http_port) in out, out  # Orthanc's own line about the port it could not bind
