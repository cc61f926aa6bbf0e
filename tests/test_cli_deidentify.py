"""The ``orthanc-gdpr`` command line: output tree, summary, exit codes, ``inspect``."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pydicom
import pytest

from corpus import make_instance, quiet_pydicom_in_test, sample_file, to_bytes  # noqa: F401
from orthanc_gdpr.cli import main

ORTHANC_GDPR = Path(sys.executable).parent / "orthanc-gdpr"


@pytest.fixture
def key_file(tmp_path):
    path = tmp_path / "key"
    path.write_text("00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff\n")
    return str(path)


@pytest.fixture
def inputs(tmp_path):
    folder = tmp_path / "Doe_John"
    folder.mkdir()
    study = pydicom.uid.generate_uid()
    for i in range(3):
        (folder / f"Doe_John_{i}.dcm").write_bytes(to_bytes(make_instance(study_uid=study)))
    (folder / "Roe_Jane.dcm").write_bytes(to_bytes(make_instance(patient_name="Roe^Jane", patient_id="JR555")))
    return folder


def test_output_tree_groups_by_patient_study_series_without_identifiers(inputs, tmp_path, key_file, capsys):
    out = tmp_path / "out"
    assert main(["deidentify", "--profile", "research", "--key-file", key_file, "--quiet", str(inputs), str(out)]) == 0
    files = sorted(out.rglob("*.dcm"))
    assert len(files) == 4
    assert len({f.parts[-4] for f in files}) == 2  # two patients
    for f in files:
        relative = f.relative_to(out)
        assert len(relative.parts) == 4
        ds = pydicom.dcmread(f)
        assert relative.parts == (ds.PatientID, ds.StudyInstanceUID, ds.SeriesInstanceUID, f"{ds.SOPInstanceUID}.dcm")
        for token in ("Doe", "John", "Roe", "Jane", "PID4711", "JR555"):
            assert token not in str(relative)
    summary = capsys.readouterr().out
    assert "4 of 4 instances de-identified with profile 'research'" in summary and "0 held back" in summary
    report = json.loads((out / "deidentification-report.json").read_text())
    assert report["summary"]["instances_written"] == 4 and report["options"]


def test_same_key_same_output_names(inputs, tmp_path, key_file):
    for run in ("a", "b"):
        assert main(["deidentify", "--key-file", key_file, "--quiet", str(inputs), str(tmp_path / run)]) == 0
    names = [sorted(p.relative_to(tmp_path / run) for p in (tmp_path / run).rglob("*.dcm")) for run in "ab"]
    assert names[0] == names[1]


def test_held_back_input_makes_exit_code_1(inputs, tmp_path, key_file, capsys):
    (inputs / "broken.dcm").write_bytes(b"not dicom at all")
    out = tmp_path / "out"
    assert main(["deidentify", "--key-file", key_file, "--quiet", str(inputs), str(out)]) == 1
    captured = capsys.readouterr()
    assert "held back:" in captured.err and "broken.dcm" in captured.err and "not a DICOM file" in captured.err
    assert "4 of 5 instances" in captured.out and "1 held back" in captured.out
    assert len(list(out.rglob("*.dcm"))) == 4


@pytest.mark.parametrize("args, message", [
    (["--profile", "nope"], "unknown profile 'nope'"),
    (["--option", "retain-everything"], "unknown de-identification option"),
    (["--key-file", "/nonexistent/key"], "cannot read key file"),
])
def test_bad_setup_exits_2_before_touching_data(inputs, tmp_path, args, message, capsys):
    out = tmp_path / "out"
    assert main(["deidentify", *args, str(inputs), str(out)]) == 2
    assert message in capsys.readouterr().err
    assert not out.exists()


def test_malformed_profile_file_exits_2(inputs, tmp_path, capsys):
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"name": "bad", "overrides": [{"keyword": "PatientName", "action": "K"}]}))
    out = tmp_path / "out"
    assert main(["deidentify", "--profile", str(bad), str(inputs), str(out)]) == 2
    assert "every override needs a purpose" in capsys.readouterr().err
    assert not out.exists()


def test_missing_input_exits_2(tmp_path, capsys):
    assert main(["deidentify", str(tmp_path / "absent"), str(tmp_path / "out")]) == 2
    assert "no such input" in capsys.readouterr().err


@pytest.mark.parametrize("option", ["retain-device-identity", "Retain Device Identity Option"])
def test_option_on_the_command_line(inputs, tmp_path, key_file, option):
    out = tmp_path / "out"
    assert main(["deidentify", "--option", option, "--key-file", key_file, "--quiet", str(inputs), str(out)]) == 0
    report = json.loads((out / "deidentification-report.json").read_text())
    assert report["options"] == ["retain-device-identity"]
    ds = pydicom.dcmread(next(out.rglob("*.dcm")))
    assert "113109" in [item.CodeValue for item in ds.DeidentificationMethodCodeSequence]


def test_inspect_prints_action_and_rule_per_attribute(tmp_path, capsys):
    path = tmp_path / "one.dcm"
    path.write_bytes(to_bytes(make_instance()))
    assert main(["inspect", "--profile", "research", str(path)]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].startswith("profile 'research'")
    by_name = {line.split()[2]: line for line in lines[2:] if len(line.split()) > 3}
    assert " D  keyed pseudonym" in by_name["PatientName"]
    assert " U  U (E.1-1 basic)" in by_name["StudyInstanceUID"]
    assert " C  " in by_name["StudyDate"]
    assert " K  " in by_name["PatientSex"]


def test_inspect_unreadable_file_exits_2(tmp_path, capsys):
    path = tmp_path / "x.dcm"
    path.write_text("hello")
    assert main(["inspect", str(path)]) == 2
    assert "not a DICOM file" in capsys.readouterr().err


def test_console_stays_readable_on_odd_files(tmp_path, key_file):
    """A real process over pydicom's odd test files: one line per held-back or dropped file, no warnings."""
    folder = sample_file("CT_small.dcm").parent
    done = subprocess.run([str(ORTHANC_GDPR), "deidentify", "--quiet", "--key-file", key_file, str(folder),
                           str(tmp_path / "out")], capture_output=True, text=True, timeout=300)
    assert done.returncode == 1
    assert "Warning" not in done.stderr and "warn_and_log" not in done.stderr
    assert all(line.startswith(("held back: ", "dropped: ", "note: ")) for line in done.stderr.splitlines())
    assert "instances de-identified" in done.stdout
