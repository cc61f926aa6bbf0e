"""docker/: no Docker engine here, so the images are NOT built. This checks what can be checked:
every file the compose file and the Dockerfiles reference exists, the image tags are pinned,
the secrets script produces exactly the secret files compose mounts (owner-only), and the
configuration the Orthanc image runs with passes ``check-config``."""
from __future__ import annotations

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


def test_init_secrets_generates_what_compose_mounts(tmp_path):
    copy = tmp_path / "docker"
    (copy / "secrets").mkdir(parents=True)
    shutil.copy(DOCKER / "init-secrets.sh", copy)
    first = subprocess.run(["sh", str(copy / "init-secrets.sh")], capture_output=True, text=True, check=True)
    wanted = re.findall(r"file:\s*\./secrets/(\S+)", COMPOSE)
    assert sorted(wanted) == ["admin-password", "db-password", "gdpr-key", "service-token"]
    for name in wanted:
        secret = copy / "secrets" / name
        assert secret.stat().st_size >= 24 and secret.stat().st_mode & 0o777 == 0o600, name
    password = (copy / "secrets" / "admin-password").read_text()
    assert password in first.stdout  # shown once ...
    second = subprocess.run(["sh", str(copy / "init-secrets.sh")], capture_output=True, text=True, check=True)
    assert password not in second.stdout  # ... and never again, nor regenerated
    assert (copy / "secrets" / "admin-password").read_text() == password


def test_the_mounted_configuration_passes_check_config(tmp_path):
    # the directory Orthanc is given in the image: the production template + the site file
    etc = tmp_path / "etc-orthanc-gdpr"
    etc.mkdir()
    shutil.copy(REPO / "orthanc-config" / "orthanc.production.json", etc)
    shutil.copy(DOCKER / "orthanc" / "site.json", etc)
    text = DOCKERFILES[0].read_text()
    assert "COPY orthanc-config/orthanc.production.json /etc/orthanc-gdpr/" in text
    assert "COPY docker/orthanc/site.json /etc/orthanc-gdpr/" in text
    report = audit(etc)
    assert report["exit_code"] == 0
    severe = [f for f in report["findings"] if f["severity"] in ("critical", "high")]
    assert severe == [], severe  # includes: no key defined in both files
    entrypoint = (DOCKER / "orthanc" / "entrypoint.sh").read_text()
    for variable in re.findall(r"\$\{(\w+)\}", "".join(p.read_text() for p in etc.iterdir())):
        assert f"read_secret {variable} " in entrypoint, variable
