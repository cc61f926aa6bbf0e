"""The audit trail written by a real Orthanc verifies, survives a restart, and shows tampering."""
from __future__ import annotations

import json

from orthanc_gdpr.audit import verify
from orthanc_server import make_ct_study


def test_audit_chain_verifies_across_restart_and_an_edited_line_is_detected_at_that_line(orthanc_factory, tmp_path):
    server = orthanc_factory(gdpr={"DownloadProfiles": ["basic", "research"]})
    ids = [server.upload(f) for f in make_ct_study(2, series=1)]
    study = server.get_json(f"/instances/{ids[0]}/study")["ID"]
    assert server.get(f"/gdpr/studies/{study}/archive").status_code == 200
    assert server.get(f"/gdpr/instances/{ids[0]}/file").status_code == 200
    assert server.get(f"/gdpr/studies/{study}/archive", params={"profile": "nope"}).status_code == 400

    server.restart()  # the chain continues from the last record on disk
    assert server.get(f"/gdpr/instances/{ids[1]}/file", params={"profile": "research"}).status_code == 200
    assert server.get(f"/gdpr/studies/{study}/archive", params={"profile": "research"}).status_code == 200

    path = server.state_dir / "audit.jsonl"
    records = server.audit_records
    assert [r["seq"] for r in records] == list(range(1, 6))
    assert [r["event"] for r in records] == ["download", "download", "download.refused", "download", "download"]
    assert verify(path) == []

    # Tampering: change one field of line 2 (without fixing its hash) -> flagged at line 2 only.
    lines = path.read_text().splitlines(keepends=True)
    edited = json.loads(lines[1])
    edited["user"] = "someone-else"
    tampered = tmp_path / "tampered.jsonl"
    tampered.write_text("".join([lines[0], json.dumps(edited, separators=(",", ":")) + "\n", *lines[2:]]))
    breaks = verify(tampered)
    assert [b.line for b in breaks] == [2] and "edited" in breaks[0].reason

    # Deleting a line breaks the link of the record that followed it.
    deleted = tmp_path / "deleted.jsonl"
    deleted.write_text("".join([*lines[:2], *lines[3:]]))
    assert {b.line for b in verify(deleted)} == {3}


def test_writers_in_several_processes_extend_one_chain(tmp_path):
    """Each append links to the record really last in the file, under a file lock."""
    import multiprocessing

    from orthanc_gdpr.audit import AuditLog, verify

    path = tmp_path / "audit.jsonl"
    AuditLog(path).append("first")
    ctx = multiprocessing.get_context("spawn")
    writers = [ctx.Process(target=_append_many, args=(str(path), n)) for n in range(3)]
    for w in writers:
        w.start()
    for w in writers:
        w.join(60)
    assert [w.exitcode for w in writers] == [0, 0, 0]
    lines = path.read_text().splitlines()
    assert len(lines) == 1 + 3 * 20
    assert verify(path) == []


def _append_many(path: str, writer: int) -> None:
    from orthanc_gdpr.audit import AuditLog

    log = AuditLog(path)
    for i in range(20):
        log.append("test.event", writer=writer, n=i)
