"""``orthanc-gdpr check-config``: the JSON-with-comments reader, the checks on good and bad sample
configurations (tests/configs/), exit codes, the --json document, directory input, and live
checks against real Orthanc servers started by the test."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from orthanc_server import REPO

sys.path.insert(0, str(REPO / "plugin"))

from orthanc_gdpr.config_check import CHECKS, audit, load_config, loads  # noqa: E402
from orthanc_gdpr.config_check.jsonc import ConfigSyntaxError  # noqa: E402

CONFIGS = Path(__file__).parent / "configs"
PRODUCTION = REPO / "orthanc-config" / "orthanc.production.json"
CLI = [str(REPO / ".venv" / "bin" / "python"), "-m", "orthanc_gdpr.cli", "check-config"]


def run_cli(*args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(REPO / "plugin")}
    return subprocess.run([*CLI, *args], capture_output=True, text=True, env=env, timeout=60)


def ids(report: dict, severity: str | None = None) -> set[str]:
    return {f["id"] for f in report["findings"] if severity in (None, f["severity"])}


# ------------------------------------------------------------------ JSON with comments
def test_comments_are_removed_but_not_inside_strings():
    text = '{\n // line\n "a": "x // y", /* block\n over lines */ "b": "/* z */", "c": "q\\"//"\n}'
    assert loads(text) == {"a": "x // y", "b": "/* z */", "c": 'q"//'}
    with pytest.raises(ConfigSyntaxError, match="line 3"):
        loads('{\n "a": 1,\n "b": }')  # the line number of the original text
    with pytest.raises(ConfigSyntaxError, match="unterminated"):
        loads('{ /* never closed }')


def test_the_table_of_checks_is_complete():
    for check in CHECKS.values():
        assert check.severity in ("critical", "high", "medium", "low", "info")
        assert check.title and check.fix
    # every risk named in the issue has at least one check
    for risk in ("remote-access-without-auth", "default-credentials", "weak-password", "cstore-open",
                 "cfind-open", "cmove-open", "http-no-tls", "dicom-no-tls", "script-writable",
                 "script-in-storage", "logs-not-deidentified", "live-anonymous-access",
                 "live-verbose-logging"):
        assert risk in CHECKS


# ------------------------------------------------------------------ sample configurations
def test_production_template_has_no_critical_or_high_finding():
    report = audit(PRODUCTION)
    assert report["exit_code"] == 0
    assert ids(report, "critical") == set() and ids(report, "high") == set()
    # what the template leaves to the operator is said honestly
    assert {"dicom-no-tls", "http-listens-all-interfaces", "password-from-environment"} <= ids(report)


def test_good_loopback_config():
    report = audit(CONFIGS / "good-loopback.json")
    assert report["exit_code"] == 0
    assert ids(report, "critical") == set() and ids(report, "high") == set()
    assert load_config(CONFIGS / "good-loopback.json").values["Name"].startswith("good // not")


def test_bad_open_config_finds_every_risk():
    report = audit(CONFIGS / "bad-open.json")
    assert report["exit_code"] == 1
    assert {"remote-access-without-auth", "cfind-open", "cget-open"} <= ids(report, "critical")
    assert {"cstore-open", "cmove-open", "http-no-tls", "execute-lua-enabled",
            "rest-write-filesystem"} <= ids(report, "high")
    assert {"logs-not-deidentified", "https-peers-unverified", "called-aet-unchecked"} <= ids(report, "medium")
    assert "log-exported-resources" in ids(report, "low")
    for f in report["findings"]:
        assert f["fix"] == CHECKS[f["id"]].fix and f["source"].endswith("bad-open.json")


def test_default_and_weak_credentials(tmp_path):
    report = audit(CONFIGS / "bad-default-credentials.json")
    details = {f["detail"] for f in report["findings"] if f["id"] == "default-credentials"}
    assert any("'orthanc'" in d for d in details)  # orthanc/orthanc
    assert any("'radiology'" in d and "own name" in d for d in details)
    assert any("'alice'" in d for d in ids_detail(report, "weak-password"))
    assert any("GOOD_PASSWORD" in d for d in ids_detail(report, "password-from-environment"))
    assert "tls-certificate-missing" in ids(report)
    assert report["exit_code"] == 1
    # a literal password in a world-readable file; fixed by chmod 600
    copy = tmp_path / "c.json"
    copy.write_text((CONFIGS / "bad-default-credentials.json").read_text())
    copy.chmod(0o644)
    assert "config-readable-by-others" in ids(audit(copy))
    copy.chmod(0o600)
    assert "config-readable-by-others" not in ids(audit(copy))


def ids_detail(report: dict, check_id: str) -> list[str]:
    return [f["detail"] for f in report["findings"] if f["id"] == check_id]


def test_implicit_default_user_is_critical():
    report = audit(CONFIGS / "bad-implicit-default-user.json")
    assert "default-credentials" in ids(report, "critical")
    assert "remote-access-without-auth" not in ids(report)  # Orthanc does enable auth
    assert "cstore-open" in ids(report)  # absent key: Orthanc's default is to accept from anyone


def test_directory_input_merges_and_finds_duplicates():
    good = audit(CONFIGS / "good-directory")
    assert [Path(f).name for f in good["config_files"]] == ["10-security.json", "20-site.json"]
    assert good["exit_code"] == 0 and not ids(good, "high")
    dup = audit(CONFIGS / "duplicate-directory")
    assert "duplicate-key" in ids(dup, "high")


def test_scripts_the_server_can_rewrite(tmp_path):
    storage = tmp_path / "storage"
    storage.mkdir()
    inside = storage / "route.lua"
    inside.write_text("-- lua")
    shared = tmp_path / "shared"
    shared.mkdir()
    writable = shared / "plugin.py"
    writable.write_text("# python")
    writable.chmod(0o666)
    cfg = tmp_path / "orthanc.json"
    cfg.write_text(json.dumps({"StorageDirectory": "storage", "LuaScripts": [str(inside)],
                               "PythonScript": "shared/plugin.py", "DicomAlwaysAllowStore": False}))
    report = audit(cfg)
    assert any("plugin.py" in d for d in ids_detail(report, "script-writable"))
    assert any("route.lua" in d for d in ids_detail(report, "script-in-storage"))
    assert report["exit_code"] == 1
    writable.chmod(0o644)
    report = audit(cfg)
    assert "script-writable" not in ids(report)
    # still owned by the account that owns the storage: flagged, less severely
    assert "script-writable-by-server" in ids(report, "medium")


# ------------------------------------------------------------------ command line
def test_cli_exit_codes_and_json_schema():
    ok = run_cli(str(PRODUCTION))
    assert ok.returncode == 0, ok.stdout + ok.stderr
    assert "[MEDIUM] dicom-no-tls" in ok.stdout and "fix:" in ok.stdout
    bad = run_cli(str(CONFIGS / "bad-open.json"), "--json")
    assert bad.returncode == 1
    doc = json.loads(bad.stdout)
    assert doc["format"] == 1 and doc["exit_code"] == 1 and doc["url"] is None
    assert set(doc["counts"]) == {"critical", "high", "medium", "low", "info"}
    assert sum(doc["counts"].values()) == len(doc["findings"])
    for f in doc["findings"]:
        assert set(f) == {"id", "severity", "title", "detail", "fix", "source"}
    # --fail-on medium makes the production template fail (DICOM without TLS)
    assert run_cli(str(PRODUCTION), "--fail-on", "medium").returncode == 1
    broken = run_cli(str(CONFIGS / "bad-syntax.json"), "--json")
    assert broken.returncode == 2 and "unterminated" in json.loads(broken.stdout)["error"]
    assert run_cli(str(CONFIGS / "no-such-file.json")).returncode == 2


# ------------------------------------------------------------------ live servers
def test_live_servers(orthanc_factory, tmp_path):
    open_server = orthanc_factory(extra={"AuthenticationEnabled": False})
    default_creds = orthanc_factory(username="orthanc", password="orthanc")
    good = orthanc_factory()

    bad = audit(open_server.config_path, url=open_server.url)
    assert "live-anonymous-access" in ids(bad, "critical") and "auth-disabled" in ids(bad)
    assert "live-crash-prone-version" in ids(bad)  # anonymous access: /system tells 1.10.1
    assert bad["exit_code"] == 1
    cli = run_cli(str(open_server.config_path), "--url", open_server.url, "--json")
    assert cli.returncode == 1 and "live-anonymous-access" in cli.stdout

    weak = audit(None, url=default_creds.url)
    assert any("orthanc/orthanc" in d for d in ids_detail(weak, "live-default-credentials"))
    assert weak["exit_code"] == 1

    report = audit(good.config_path, url=good.url)
    assert not ids(report, "critical"), report["findings"]
    assert report["exit_code"] == 0
    assert report["not_checked"]  # no credentials: the authenticated checks are named as skipped
    password_file = tmp_path / "pw"
    password_file.write_text(good.password)
    cli = run_cli(str(good.config_path), "--url", good.url, "--user", good.username,
                  "--password-file", str(password_file), "--json")
    doc = json.loads(cli.stdout)
    assert cli.returncode == 0, cli.stdout
    assert "live-crash-prone-version" in ids(doc) and doc["not_checked"] == []
    # verbose logging switched on at run time is found
    good.session.put(good.url + "/tools/log-level", data="verbose").raise_for_status()
    doc = json.loads(run_cli("--url", good.url, "--user", good.username, "--password-file",
                             str(password_file), "--json").stdout)
    assert "live-verbose-logging" in ids(doc)
    unreachable = run_cli("--url", "http://127.0.0.1:9/")
    assert unreachable.returncode == 2
