"""docker/: no Docker engine here, so the images are NOT built. This checks what can be checked:
every file the compose file and the Dockerfiles reference exists, the image tags are pinned,
the secrets script produces exactly the secret files compose mounts (owner-only), and the
configuration the Orthanc image runs with passes ``check-config``."""
from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys

from orthanc_server import REPO

sys.path.insert(0, str(REPO / "plugin"))

from orthanc_gdpr.config_check import audit  # noqa: E402

DOCKER = REPO / "docker"
COMPOSE = (DOCKER / "compose.yml").read_text()
DOCKERFILES = [DOCKER / "orthanc" / "Dockerfile", DOCKER / "service" / "Dockerfile"]


def test_compose_references_existing_files_and_pinned_images():
    for dockerfile in re.findall(r"dockerfile:\s*(\S+)", COMPOSE):
        assert (REPO / dockerfile).is_file(), dockerfile  # context: ".." = the repository
    assert re.findall(r"context:\s*(\S+)", COMPOSE) == ["..", ".."]
    for source in re.findall(r"^\s*-\s*(\./[^:\s]+):", COMPOSE, re.M):  # bind mounts
        assert (DOCKER / source).exists(), source
    for image in re.findall(r"image:\s*(\S+)", COMPOSE):
        assert ":" in image and not image.endswith(":latest"), image
    assert "restart: unless-stopped" in COMPOSE
    assert "POSTGRES_PASSWORD_FILE" in COMPOSE and "PASSWORD:" not in COMPOSE.replace("PASSWORD_FILE:", "")


def test_dockerfiles_copy_existing_files_from_a_pinned_base():
    for dockerfile in DOCKERFILES:
        text = dockerfile.read_text()
        base = re.search(r"^FROM\s+(\S+)", text, re.M).group(1)
        assert re.search(r":\d", base), f"{dockerfile}: base image not pinned: {base}"
        for line in re.findall(r"^COPY\s+(.+)$", text, re.M):
            for source in line.split()[:-1]:
                assert (REPO / source).exists(), f"{dockerfile}: COPY {source}"
    assert "orthancteam/orthanc:" in DOCKERFILES[0].read_text()


def test_init_secrets_generates_what_compose_mounts_and_prints_none(tmp_path):
    copy = tmp_path / "docker"
    (copy / "secrets").mkdir(parents=True)
    shutil.copy(DOCKER / "init-secrets.sh", copy)
    first = subprocess.run(["sh", str(copy / "init-secrets.sh")], capture_output=True, text=True, check=True)
    wanted = re.findall(r"file:\s*\./secrets/(\S+)", COMPOSE)
    assert sorted(wanted) == ["db-password", "gdpr-key", "orthanc-credential", "service-token"]
    values = {}
    for name in wanted:
        secret = copy / "secrets" / name
        assert secret.stat().st_size >= 24 and secret.stat().st_mode & 0o777 == 0o600, name
        values[name] = secret.read_text()
        assert values[name].strip() not in first.stdout + first.stderr, name  # never printed
    assert "orthanc-gdpr users add NAME --role dpo" in first.stdout  # people get accounts instead
    subprocess.run(["sh", str(copy / "init-secrets.sh")], capture_output=True, text=True, check=True)
    assert {n: (copy / "secrets" / n).read_text() for n in wanted} == values  # never regenerated


def test_the_configuration_orthanc_runs_with_passes_check_config(tmp_path):
    """What the image's entrypoint builds: the production template + the site file, merged in
    accounts mode (Orthanc's user list off, the plugin checking the service's accounts)."""
    text = DOCKERFILES[0].read_text()
    assert "COPY orthanc-config/orthanc.production.json /etc/orthanc-gdpr/" in text
    assert "COPY docker/orthanc/site.json /etc/orthanc-gdpr/" in text
    entrypoint = (DOCKER / "orthanc" / "entrypoint.sh").read_text()
    assert ("-m orthanc_gdpr.accounts_config /etc/orthanc-gdpr/orthanc.production.json \\\n"
            "    /etc/orthanc-gdpr/site.json" in entrypoint)
    config = tmp_path / "orthanc.json"
    with open(config, "w") as out:
        subprocess.run([sys.executable, "-m", "orthanc_gdpr.accounts_config",
                        str(REPO / "orthanc-config" / "orthanc.production.json"), str(DOCKER / "orthanc" / "site.json")],
                       stdout=out, check=True, cwd=REPO / "plugin")
    config.chmod(0o600)
    written = json.loads(config.read_text())
    assert written["AuthenticationEnabled"] is False and "RegisteredUsers" not in written
    assert written["Gdpr"]["AuthenticateWithService"] is True
    assert written["Gdpr"]["ServiceCredentialFile"] == "/run/secrets/orthanc-credential"
    assert written["SslEnabled"] is True and written["RemoteAccessAllowed"] is True  # the template's
    report = audit(config)
    assert report["exit_code"] == 0
    severe = [f for f in report["findings"] if f["severity"] in ("critical", "high")]
    assert severe == [], severe
    for variable in re.findall(r"\$\{(\w+)\}", config.read_text()):
        assert f"read_secret {variable} " in entrypoint, variable
    # a key in both files is refused, as Orthanc refuses it
    twice = tmp_path / "twice.json"
    twice.write_text('{"HttpPort": 1}')
    r = subprocess.run([sys.executable, "-m", "orthanc_gdpr.accounts_config",
                        str(REPO / "orthanc-config" / "orthanc.production.json"), str(twice)],
                       capture_output=True, text=True, cwd=REPO / "plugin")
    assert r.returncode != 0 and "HttpPort already set" in r.stderr
