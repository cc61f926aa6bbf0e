"""Hostile DICOM input, built byte by byte here: ~100,000 nested sequences, absurd lengths,
truncated data. Our engine refuses each with a DeidentificationError (never another exception,
never a crash); the Orthanc run by ``orthanc-gdpr serve`` stays available (Debian's 1.10.1
segfaults on the deep file: serve restarts it, audits the incident, and keeps what was stored).
"""
from __future__ import annotations

import io
import struct
import sys

import pytest
import requests

from orthanc_server import REPO, make_ct_study
from test_serve import ServeProcess

sys.path.insert(0, str(REPO / "plugin"))

from orthanc_gdpr import audit  # noqa: E402
from orthanc_gdpr.deid import DeidentificationError, Deidentifier, Keyring, load_profile  # noqa: E402
from orthanc_gdpr.deid.files import deidentify_bytes, read  # noqa: E402

UNDEFINED = 0xFFFFFFFF
_LONG_VRS = {b"OB", b"OW", b"OF", b"OD", b"OL", b"OV", b"SQ", b"UN", b"UT", b"UC", b"UR", b"SV", b"UV"}
SC_CLASS = b"1.2.840.10008.5.1.4.1.1.7"  # Secondary Capture


def element(group: int, elem: int, vr: bytes, value: bytes, length: int | None = None) -> bytes:
    """One explicit-VR little-endian element; ``length`` overrides the (true) value length."""
    n = len(value) if length is None else length
    if vr in _LONG_VRS:
        return struct.pack("<HH2sHI", group, elem, vr, 0, n) + value
    return struct.pack("<HH2sH", group, elem, vr, n) + value


def _even(value: bytes, pad: bytes = b" ") -> bytes:
    return value + pad if len(value) % 2 else value


def header(uid: str) -> bytes:
    """Preamble, file meta and a minimal Secondary Capture data set (no sequences)."""
    u = _even(uid.encode(), b"\0")
    meta = (element(2, 1, b"OB", b"\0\1") + element(2, 2, b"UI", _even(SC_CLASS, b"\0"))
            + element(2, 3, b"UI", u) + element(2, 0x10, b"UI", _even(b"1.2.840.10008.1.2.1", b"\0")))
    out = b"\0" * 128 + b"DICM" + element(2, 0, b"UL", struct.pack("<I", len(meta))) + meta
    return out + (element(8, 0x16, b"UI", _even(SC_CLASS, b"\0")) + element(8, 0x18, b"UI", u)
                  + element(0x10, 0x10, b"PN", _even(b"Hostile^Input")) + element(0x10, 0x20, b"LO", b"HOSTILE1")
                  + element(0x20, 0xD, b"UI", _even((uid + ".1").encode(), b"\0"))
                  + element(0x20, 0xE, b"UI", _even((uid + ".2").encode(), b"\0")))


def deeply_nested(depth: int, uid: str = "1.2.826.0.1.3680043.8.498.77001") -> bytes:
    """ContentSequence > item > ContentSequence > ... ``depth`` levels, undefined lengths;
    written iteratively (3.6 MB for 100,000 levels)."""
    out = io.BytesIO()
    out.write(header(uid))
    opening = struct.pack("<HH2sHI", 0x40, 0xA730, b"SQ", 0, UNDEFINED) + struct.pack("<HHI", 0xFFFE, 0xE000, UNDEFINED)
    closing = struct.pack("<HHI", 0xFFFE, 0xE00D, 0) + struct.pack("<HHI", 0xFFFE, 0xE0DD, 0)
    for _ in range(depth):
        out.write(opening)
    out.write(element(8, 0x104, b"LO", b"innermost "))
    for _ in range(depth):
        out.write(closing)
    return out.getvalue()


UID = "1.2.826.0.1.3680043.8.498.77002"
HOSTILE = {
    "deep-100000": lambda: deeply_nested(100_000),
    "deep-100000-unterminated": lambda: deeply_nested(100_000)[:-800_000],
    "pixel-length-beyond-end": lambda: header(UID) + element(0x7FE0, 0x10, b"OB", b"\0" * 16, 0xFFFFFFF0),
    "text-length-beyond-end": lambda: header(UID) + element(0x10, 0x1000, b"LO", b"AB", 0xFFFF),
    "sequence-length-beyond-end": lambda: header(UID) + element(0x40, 0xA730, b"SQ", b"\0" * 8, 0x7FFFFFF0),
    "item-length-absurd": lambda: (header(UID) + struct.pack("<HH2sHI", 0x40, 0xA730, b"SQ", 0, UNDEFINED)
                                   + struct.pack("<HHI", 0xFFFE, 0xE000, 0xFFFFFFF0) + b"\0" * 8),
    "truncated-in-meta": lambda: header(UID)[:150],
    "truncated-in-element-header": lambda: header(UID) + b"\x10\x00\x10",
    "garbage": lambda: bytes(range(256)) * 16,
}


@pytest.fixture(scope="module")
def engine() -> Deidentifier:
    return Deidentifier(load_profile("basic"), Keyring(b"\x07" * 32))


def test_generator_is_iterative_and_well_formed():
    data = deeply_nested(100_000)
    assert 3_500_000 < len(data) < 3_700_000
    ds = read(deeply_nested(5))  # the same bytes at a parseable depth are valid DICOM
    item, depth = ds, 0
    while "ContentSequence" in item:
        item, depth = item.ContentSequence[0], depth + 1
    assert depth == 5 and item.CodeMeaning == "innermost"


@pytest.mark.parametrize("name", sorted(HOSTILE))
def test_engine_refuses_hostile_input(engine, name):
    data = HOSTILE[name]()
    with pytest.raises(DeidentificationError) as e:
        deidentify_bytes(engine, data)
    assert str(e.value)  # a reason, for the report and the audit trail
    try:  # parsing alone may accept a partial header (refused later, no SOP UIDs): no other error
        read(data)
    except DeidentificationError:
        pass


def test_serve_survives_hostile_uploads(tmp_path):
    server = ServeProcess(tmp_path / "data").start()
    try:
        session = requests.Session()
        session.auth = server.auth
        before = make_ct_study(2)
        for data in before:
            r = session.post(server.url + "/instances", data=data, timeout=30)
            assert r.status_code == 200, r.text
        for name in ("truncated-in-element-header", "item-length-absurd", "garbage", "deep-100000"):
            pid = server.orthanc_pid()
            try:
                r = session.post(server.url + "/instances", data=HOSTILE[name](),
                                 headers={"Content-Type": "application/dicom"}, timeout=60)
                crashed = False
                assert r.status_code in (200, 400), (name, r.status_code, r.text[:300])
            except requests.ConnectionError:  # Orthanc died while answering
                crashed = True
            downtime = server.wait_available(timeout=30)
            assert downtime < 15, (name, downtime)
            died = [x for x in server.audit_records() if x["event"] == "security.orthanc-died"]
            if crashed or server.orthanc_pid() != pid:
                assert died and died[-1]["pid"] == pid, (name, died)
        # Debian's Orthanc 1.10.1 does die on the deep file (SIGSEGV): recorded as an incident
        died = [x for x in server.audit_records() if x["event"] == "security.orthanc-died"]
        version = session.get(server.url + "/system", timeout=5).json()["Version"]
        if version == "1.10.1":
            assert died and died[-1]["cause"] == "signal SIGSEGV"
        assert audit.verify(server.data_dir / "gdpr-state" / "audit.jsonl") == []
        # nothing stored before the crash is lost, and the server still takes normal uploads
        assert len(session.get(server.url + "/instances", timeout=5).json()) == 2
        r = session.post(server.url + "/instances", data=make_ct_study(1)[0], timeout=30)
        assert r.status_code == 200
        assert session.get(server.url + "/gdpr/health", timeout=5).status_code == 200
    finally:
        assert server.stop() == 0
