"""A non-editable install runs on its own: ``python -m venv X && X/bin/pip install .``, then
``X/bin/orthanc-gdpr serve`` (Orthanc's embedded Python imports the plugin and its dependencies
from X) and ``X/bin/orthanc-gdpr deidentify`` from a directory with no checkout beside it.

Slow but real: one venv per test session, built with pip's cache (the dependencies' wheels are
downloaded once per machine).
"""
from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest
import requests

from orthanc_server import REPO, make_ct_study
from test_serve import ServeProcess

pytestmark = [pytest.mark.integration, pytest.mark.slow]

#: The interpreter Orthanc's Python plugin embeds (as scripts/setup.sh uses it).
SYSTEM_PYTHON = "/usr/bin/python3"


@pytest.fixture(scope="module")
def installed(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("install")
    source = root / "source"  # a copy: the build never writes into the checkout (egg-info, build/)
    shutil.copytree(REPO, source, symlinks=True, ignore=shutil.ignore_patterns(
        ".venv", ".git", "build", "*.egg-info", "__pycache__", "tests", "bench", "docs", "data"))
    venv = root / "X"
    subprocess.run([SYSTEM_PYTHON, "-m", "venv", str(venv)], check=True, timeout=120)
    result = subprocess.run([str(venv / "bin" / "pip"), "install", "-q", "--disable-pip-version-check", str(source)],
                            capture_output=True, text=True, timeout=1800)
    assert result.returncode == 0, result.stderr[-3000:]
    shutil.rmtree(source)  # nothing may refer back to the tree it was built from
    return venv


def test_wheel_carries_the_entry_script_profiles_masks_and_templates(installed: Path):
    package = next((installed / "lib").glob("python3*/site-packages/orthanc_gdpr"))
    for name in ("plugin_entry.py", "orthanc_config/orthanc.production.json", "orthanc_config/orthanc.defaults.json",
                 "orthanc_config/profiles/research.json", "orthanc_config/pixel-masks/ctp-burned-in-library.json"):
        assert (package / name).is_file(), name
    assert not (package / "orthanc_config").is_symlink()  # a copy, not a link into a checkout


def test_wheel_carries_every_data_file_of_its_packages(installed: Path):
    """Templates, stylesheets, scripts, gettext catalogs, JSON tables, migrations: every file the
    packages hold in the checkout is installed (a file left out of pyproject's package data would
    only show as a broken page or a missing language on a real install)."""
    site = next((installed / "lib").glob("python3*/site-packages"))
    # script.py.mako is Alembic's template for writing new migrations, a developer's tool
    skipped = {"portability/migrations/script.py.mako"}
    missing = []
    for package, source in (("orthanc_gdpr", REPO / "plugin" / "orthanc_gdpr"), ("portability", REPO / "portability")):
        for folder, _, files in os.walk(source, followlinks=True):  # orthanc_config is a link in a checkout
            for path in (Path(folder, f) for f in files):
                name = f"{package}/{path.relative_to(source)}"
                if path.suffix not in (".py", ".pyc") and name not in skipped and not (site / name).is_file():
                    missing.append(name)
    assert missing == []


def test_installed_serve_answers_health(installed: Path, tmp_path: Path):
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    server = ServeProcess(elsewhere / "data", command=[str(installed / "bin" / "orthanc-gdpr")], cwd=elsewhere)
    server.env.pop("PYTHONPATH", None)
    server.env.pop("ORTHANC_GDPR_SITE_PACKAGES", None)
    try:
        server.start(timeout=90)
        r = requests.get(server.url + "/gdpr/health", auth=server.auth, timeout=10)
        assert r.status_code == 200, r.text
        config = json.loads((elsewhere / "data" / "orthanc.json").read_text())
        assert config["PythonScript"].startswith(str(installed))
    finally:
        server.stop()


def test_installed_deidentify_works_from_another_directory(installed: Path, tmp_path: Path):
    inputs = tmp_path / "in"
    inputs.mkdir()
    for i, data in enumerate(make_ct_study(2, series=1)):
        (inputs / f"{i}.dcm").write_bytes(data)
    result = subprocess.run([str(installed / "bin" / "orthanc-gdpr"), "deidentify", "--profile", "research",
                             "--quiet", "in", "out"], cwd=tmp_path, capture_output=True, text=True, timeout=300,
                            env={"PATH": "/usr/bin:/bin", "HOME": str(tmp_path)})
    assert result.returncode == 0, result.stderr
    report = json.loads((tmp_path / "out" / "deidentification-report.json").read_text())
    assert report["profile"] == "research" and report["summary"]["instances_written"] == 2
