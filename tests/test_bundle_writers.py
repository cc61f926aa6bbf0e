"""The bundle's own writers, without Orthanc: the linear-time DICOMDIR (byte for byte what pydicom's
FileSet writes), the sequential ZIP writer (read back by zipfile and unzip, ZIP64 included), and
the Orthanc client's download path (never gzip; a truncated answer is an error)."""
from __future__ import annotations

import hashlib
import io
import random
import shutil
import subprocess
import threading
import zipfile
import zlib
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pydicom
import pytest
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.fileset import FileSet
from pydicom.uid import ExplicitVRLittleEndian, ImplicitVRLittleEndian, generate_uid

from portability.bundle.dicomdir import DicomDir
from portability.bundle.zipwriter import ZipWriter
from portability.orthanc import OrthancClient, OrthancError

CT = "1.2.840.10008.5.1.4.1.1.2"
COMPREHENSIVE_SR = "1.2.840.10008.5.1.4.1.1.88.33"


def _instances(seed: int = 7) -> list[Dataset]:
    """Two patients (one with a character set), CT images and SR documents, odd values."""
    rng = random.Random(seed)
    out = []
    for p, (name, charset) in enumerate((("Doe^John", None), ("Müller^Jürgen", "ISO_IR 100"))):
        for s in range(2):
            study = generate_uid()
            series = [generate_uid() for _ in range(3)]
            for i in range(7):
                ds = Dataset()
                if charset:
                    ds.SpecificCharacterSet = charset
                ds.PatientID, ds.PatientName = f"P-{p}", name
                ds.StudyInstanceUID, ds.StudyDate, ds.StudyTime, ds.StudyID = study, "20240102", "101500", str(s)
                ds.AccessionNumber = "" if s else "ACC1"
                ds.StudyDescription = "Thorax" if s else None
                ds.SeriesInstanceUID, ds.SeriesNumber = series[i % 3], i % 3 + 1
                ds.SOPInstanceUID = generate_uid()
                ds.InstanceNumber = ["5", "05 ", "12", "1", "7", "0", "123456"][i]
                if s == 1 and i % 3 == 2:  # an SR series
                    ds.Modality, ds.SOPClassUID = "SR", COMPREHENSIVE_SR
                    ds.CompletionFlag, ds.VerificationFlag = "COMPLETE", "UNVERIFIED"
                    ds.ContentDate, ds.ContentTime = "20240102", "101600"
                    code = Dataset()
                    code.CodeValue, code.CodingSchemeDesignator, code.CodeMeaning = "18748-4", "LN", "Report"
                    ds.ConceptNameCodeSequence = [code]
                else:
                    ds.Modality, ds.SOPClassUID = "CT", CT
                ds.file_meta = FileMetaDataset()
                ds.file_meta.MediaStorageSOPClassUID = ds.SOPClassUID
                ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
                ds.file_meta.TransferSyntaxUID = ImplicitVRLittleEndian if i % 2 else ExplicitVRLittleEndian
                out.append(ds)
    rng.shuffle(out)
    return out


def _reread(ds: Dataset) -> Dataset:
    """The header as the builder sees it: written to Part 10 and read back (raw elements)."""
    buf = io.BytesIO()
    ds.save_as(buf, enforce_file_format=True)
    return pydicom.dcmread(io.BytesIO(buf.getvalue()), stop_before_pixels=True)


@pytest.mark.parametrize("reread", [False, True])
def test_dicomdir_is_byte_for_byte_what_pydicom_fileset_writes(tmp_path, reread):
    instances = _instances()
    if reread:
        instances = [_reread(ds) for ds in instances]
    fs = FileSet()
    fs.ID = "GDPRCOPY"
    ours = DicomDir("GDPRCOPY", uid=fs.UID)
    for ds in instances:
        fs.add(ds)
        assert ours.add(ds)
    assert not ours.add(instances[0])  # the same SOP instance again: ignored
    fs.write(tmp_path)
    assert ours.to_bytes() == (tmp_path / "DICOMDIR").read_bytes()
    assert ours.file_ids() == {i.SOPInstanceUID: i.FileID.replace("\\", "/") for i in fs}
    assert all(ours.file_id(uid) == fid for uid, fid in ours.file_ids().items())


def test_dicomdir_refuses_what_pydicom_refuses():
    ds = _instances()[0]
    del ds.InstanceNumber
    with pytest.raises(ValueError):
        FileSet().add(ds)
    with pytest.raises(ValueError):
        DicomDir("X").add(ds)


@pytest.mark.parametrize("force_zip64", [False, True])
def test_zip_writer_round_trip(tmp_path, force_zip64):
    path = tmp_path / "t.zip"
    payload = random.Random(1).randbytes(300_000)
    with open(path, "wb") as f:
        zw = ZipWriter(f, (2024, 1, 2, 3, 4, 6), force_zip64=force_zip64)
        zw.add("PT000000/ST000000/SE000000/IM000000", len(payload), zlib.crc32(payload),
               [payload[:1000], memoryview(payload)[1000:]])
        zw.add_bytes("FHIR/R5.JSON", b'{"resourceType": "Bundle"}' * 500)
        zw.add_bytes("IHE_PDI/S0001.PNG", b"\x89PNG", compress=False)
        zw.add_bytes("EMPTY", b"")
        with pytest.raises(ValueError):
            zw.add_bytes("EMPTY", b"")
        zw.close()
    data = path.read_bytes()
    assert zw.size == len(data) and zw.sha256.hexdigest() == hashlib.sha256(data).hexdigest()
    with zipfile.ZipFile(path) as zf:
        assert zf.testzip() is None
        assert zf.read("PT000000/ST000000/SE000000/IM000000") == payload
        assert zf.read("FHIR/R5.JSON") == b'{"resourceType": "Bundle"}' * 500
        assert [i.compress_type for i in zf.infolist()] == [0, 8, 0, 8]
        assert not any(i.flag_bits & 0x08 for i in zf.infolist())  # no data descriptors
    if shutil.which("unzip"):
        r = subprocess.run(["unzip", "-t", str(path)], capture_output=True, text=True)
        assert r.returncode == 0 and "No errors" in r.stdout, r.stdout + r.stderr


def test_zip_writer_checks_the_announced_size(tmp_path):
    with open(tmp_path / "t.zip", "wb") as f:
        zw = ZipWriter(f, (2024, 1, 2, 3, 4, 6))
        with pytest.raises(ValueError):
            zw.add("A", 10, 0, [b"12345"])


class _Orthanc(BaseHTTPRequestHandler):
    """Answers like Orthanc, or not: ``/instances/short/file`` stops early, ``gzip`` gzips."""
    seen: list[tuple[str, str | None]] = []
    body = b"DICM" * 1000

    def do_GET(self):  # noqa: N802
        type(self).seen.append((self.path, self.headers.get("Accept-Encoding")))
        if self.path == "/instances/short/file":
            self.send_response(200)
            self.send_header("Content-Length", str(len(self.body) + 100))
            self.end_headers()
            self.wfile.write(self.body)
            self.close_connection = True
            return
        body = b'{"ok": true}' if self.path == "/system" else self.body
        self.send_response(200)
        if self.path == "/instances/gzip/file":
            body = zlib.compress(body)
            self.send_header("Content-Encoding", "gzip")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


@pytest.fixture
def fake_orthanc():
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Orthanc)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    _Orthanc.seen = []
    try:
        yield f"http://user:pw@127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def test_client_never_asks_for_gzip_and_refuses_truncated_or_encoded_files(fake_orthanc):
    client = OrthancClient(fake_orthanc)
    try:
        for _ in range(3):  # kept-alive connection reused
            assert b"".join(client.stream_instance("ok")) == _Orthanc.body
        assert b"".join(bytes(c) for c in client.stream_instance("ok", 1000, reuse=True)) == _Orthanc.body
        client.get_json("/system")
        client.preview_png("ok")
        with pytest.raises(OrthancError, match="mid-transfer"):
            b"".join(client.stream_instance("short"))
        with pytest.raises(OrthancError, match="Content-Encoding"):
            b"".join(client.stream_instance("gzip"))
        assert b"".join(client.stream_instance("ok")) == _Orthanc.body  # a fresh connection
    finally:
        client.close()
    assert _Orthanc.seen and all(enc == "identity" for _, enc in _Orthanc.seen), _Orthanc.seen
