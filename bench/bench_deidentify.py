"""Throughput benchmark: orthanc-gdpr's CLI vs PixelMed vs dicognito (vs Orthanc's built-in
anonymization, on request).

Run on demand (not part of pytest)::

    .venv/bin/python bench/bench_deidentify.py [--instances 1000] [--sizes 128,512] [--runs 3]
                                               [--cache DIR] [--orthanc] [--skip-dicognito]
                                               [--skip-pixelmed] [--implicit]

It generates (once, cached) uncompressed CT instances with realistic headers (several patients,
studies and series, a few sequences, private attributes), 128x128 and 512x512, then times, in
one round per size:

(a) ``orthanc-gdpr deidentify --profile basic`` (process start-up included),
(b) PixelMed's ``com.pixelmed.apps.DeidentifyAndRedact`` (Debian ``libpixelmed-java``, run by
    the Debian ``java``; an empty redaction control file: de-identification only, JVM start-up
    included). Without the Debian package, the jar is fetched once with ``apt-get download``
    into the cache directory (its dependencies must be installed: see bench/README.md),
(c) dicognito's command line (``python -m dicognito --output-directory``),
(d) with ``--orthanc``: Orthanc's built-in ``POST /studies/{id}/anonymize`` (synchronous) plus
    downloading each new study as a ZIP archive, on a temporary loopback-only Orthanc.

With ``--implicit`` the instances are written in Implicit VR Little Endian (as most modalities
send them and Orthanc often stores them) instead of Explicit VR Little Endian.

It prints files/s for each, our speed ratio to each, medians over the rounds, and the load
average (the machine may be shared: say so next to every figure).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.sequence import Sequence
from pydicom.uid import CTImageStorage, ExplicitVRLittleEndian, ImplicitVRLittleEndian, generate_uid

REPO = Path(__file__).resolve().parent.parent
VENV_BIN = Path(sys.executable).parent
#: In memory when possible, so that the numbers measure the tools, not the disk.
SCRATCH = Path("/dev/shm") if Path("/dev/shm").is_dir() else Path(tempfile.gettempdir())
DEFAULT_CACHE = SCRATCH / "orthanc-gdpr-bench-corpus"
PATIENTS = (("DOE^JOHN", "PID10001", "19600101"), ("SMITH^ANNA", "PID10002", "19721231"),
            ("MUELLER^HANS", "PID10003", "19550505"), ("DUPONT^MARIE", "PID10004", "19880808"),
            ("ROSSI^MARIO", "PID10005", "19490214"))
STUDIES_PER_PATIENT, SERIES_PER_STUDY = 2, 2


def _instance(patient: tuple[str, str, str], study: dict, series: dict, number: int, pixels: bytes) -> Dataset:
    name, pid, birth = patient
    ds = Dataset()
    ds.file_meta = FileMetaDataset()
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.file_meta.MediaStorageSOPClassUID = CTImageStorage
    ds.file_meta.SourceApplicationEntityTitle = "CT_SCANNER_01"
    ds.SpecificCharacterSet = "ISO_IR 100"
    ds.ImageType = ["ORIGINAL", "PRIMARY", "AXIAL"]
    ds.SOPClassUID = CTImageStorage
    ds.SOPInstanceUID = generate_uid()
    ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    ds.StudyDate = ds.SeriesDate = ds.AcquisitionDate = ds.ContentDate = study["date"]
    ds.StudyTime = ds.SeriesTime = ds.AcquisitionTime = ds.ContentTime = "101010.123"
    ds.AccessionNumber = study["accession"]
    ds.Modality = "CT"
    ds.Manufacturer = "GE MEDICAL SYSTEMS"
    ds.InstitutionName = "St. Example Hospital"
    ds.InstitutionAddress = "1 Hospital Road, Exampletown"
    ds.ReferringPhysicianName = "WHO^REFERS"
    ds.StationName = "CTSTATION1"
    ds.StudyDescription = f"CT THORAX {name.split('^')[0]}"
    ds.SeriesDescription = series["description"]
    ds.OperatorsName = "TECH^NICIAN"
    ds.ManufacturerModelName = "LightSpeed VCT"
    ds.PatientName = name
    ds.PatientID = pid
    ds.PatientBirthDate = birth
    ds.PatientSex = "M"
    ds.PatientAge = "060Y"
    ds.PatientWeight = "80"
    ds.SliceThickness = "1.25"
    ds.KVP = "120"
    ds.DeviceSerialNumber = "SN123456"
    ds.SoftwareVersions = "gmp_vct.42"
    ds.ProtocolName = "THORAX ROUTINE"
    ds.PatientPosition = "HFS"
    ds.StudyInstanceUID = study["uid"]
    ds.SeriesInstanceUID = series["uid"]
    ds.StudyID = study["id"]
    ds.SeriesNumber = series["number"]
    ds.InstanceNumber = number
    ds.FrameOfReferenceUID = series["frame"]
    ds.ImagePositionPatient = [-250.0, -250.0, -1.25 * number]
    ds.ImageOrientationPatient = [1, 0, 0, 0, 1, 0]
    ds.SliceLocation = -1.25 * number
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.Rows = ds.Columns = int((len(pixels) // 2) ** 0.5)  # 16-bit square images
    ds.PixelSpacing = [0.976, 0.976]
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 12, 11, 1
    ds.WindowCenter, ds.WindowWidth = "40", "400"
    ds.RescaleIntercept, ds.RescaleSlope = "-1024", "1"
    ref = Dataset()
    ref.ReferencedSOPClassUID = "1.2.840.10008.3.1.2.3.3"
    ref.ReferencedSOPInstanceUID = study["pps"]
    ds.ReferencedPerformedProcedureStepSequence = Sequence([ref])
    request = Dataset()
    request.RequestedProcedureID = study["accession"]
    request.ScheduledProcedureStepID = study["id"]
    request.RequestedProcedureDescription = "CT THORAX"
    ds.RequestAttributesSequence = Sequence([request])
    code = Dataset()
    code.CodeValue, code.CodingSchemeDesignator, code.CodeMeaning = "ZA", "GEHC", "CT THORAX"
    ds.ProcedureCodeSequence = Sequence([code])
    block = ds.private_block(0x0009, "GEMS_IDEN_01", create=True)
    block.add_new(0x01, "LO", "CT_SCANNER_01")
    block.add_new(0x04, "SH", "VCT")
    block = ds.private_block(0x0043, "GEMS_PARM_01", create=True)
    block.add_new(0x27, "SH", "/1.0:1")
    block.add_new(0x6F, "DS", ["0", "0", "0"])
    ds.PixelData = pixels
    return ds


def generate(directory: Path, count: int, side: int = 512, implicit: bool = False) -> list[Path]:
    """Write ``count`` CT instances of ``side`` x ``side`` pixels under ``directory`` (reused
    when already there), in Explicit or (``implicit``) Implicit VR Little Endian."""
    marker = directory / f".complete-{count}"
    if marker.exists():
        return sorted(directory.rglob("*.dcm"))
    shutil.rmtree(directory, ignore_errors=True)
    directory.mkdir(parents=True)
    rng = np.random.default_rng(1)
    pixels = [rng.integers(-1024, 2000, (side, side), dtype=np.int16).tobytes() for _ in range(4)]
    series_count = len(PATIENTS) * STUDIES_PER_PATIENT * SERIES_PER_STUDY
    per_series = -(-count // series_count)
    written = 0
    for p, patient in enumerate(PATIENTS):
        for s in range(STUDIES_PER_PATIENT):
            study = {"uid": generate_uid(), "pps": generate_uid(), "date": f"20{20 + s}0{p + 1}15",
                     "accession": f"ACC{p}{s}7731", "id": f"S{p}{s}"}
            for r in range(SERIES_PER_STUDY):
                series = {"uid": generate_uid(), "frame": generate_uid(), "number": r + 1,
                          "description": f"AXIAL {r + 1}.25mm"}
                folder = directory / f"p{p}" / f"s{s}" / f"r{r}"
                folder.mkdir(parents=True)
                for n in range(per_series):
                    if written == count:
                        break
                    ds = _instance(patient, study, series, n + 1, pixels[n % len(pixels)])
                    if implicit:
                        ds.file_meta.TransferSyntaxUID = ImplicitVRLittleEndian
                    ds.save_as(folder / f"{n:04d}.dcm", enforce_file_format=True)
                    written += 1
    marker.touch()
    return sorted(directory.rglob("*.dcm"))


Timing = tuple[float, float]  #: (wall-clock seconds, CPU seconds of the tool's processes)


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def _process_cpu(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")  # utime + stime


def _timed(argv: list[str]) -> Timing:
    cpu, start = _children_cpu(), time.perf_counter()
    subprocess.run(argv, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    return time.perf_counter() - start, _children_cpu() - cpu


def bench_ours(corpus: Path, work: Path) -> Timing:
    key = work / "key"
    key.write_text(os.urandom(32).hex())
    return _timed([str(VENV_BIN / "orthanc-gdpr"), "deidentify", "--profile", "basic", "--quiet",
                   "--key-file", str(key), str(corpus), str(work / "ours")])


PIXELMED_MAIN = "com.pixelmed.apps.DeidentifyAndRedact"
PIXELMED_DEBIAN_JAR = Path("/usr/share/java/pixelmed.jar")


def pixelmed_jar(cache: Path) -> Path:
    """The Debian package's jar, else one fetched with ``apt-get download`` into ``cache``."""
    if PIXELMED_DEBIAN_JAR.is_file():
        return PIXELMED_DEBIAN_JAR
    fetched = cache / "pixelmed" / "usr" / "share" / "java" / "pixelmed.jar"
    if not fetched.is_file():
        download = cache / "pixelmed-deb"
        download.mkdir(parents=True, exist_ok=True)
        subprocess.run(["apt-get", "download", "libpixelmed-java"], cwd=download, check=True)
        deb = next(download.glob("libpixelmed-java_*.deb"))
        subprocess.run(["dpkg-deb", "-x", str(deb), str(cache / "pixelmed")], check=True)
    return fetched


def bench_pixelmed(corpus: Path, work: Path, jar: Path) -> Timing:
    """DeidentifyAndRedact with an empty redaction control file: de-identification only."""
    control = work / "no-redaction.txt"
    control.write_text("")
    (work / "pixelmed").mkdir()
    return _timed(["java", "-cp", str(jar), PIXELMED_MAIN, str(corpus), str(work / "pixelmed"), str(control)])


def bench_dicognito(corpus: Path, work: Path) -> Timing:
    return _timed([sys.executable, "-m", "dicognito", "--quiet", "--seed", "bench",
                   "--output-directory", str(work / "dicognito"), str(corpus)])


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def bench_orthanc(files: list[Path], work: Path) -> Timing:
    """Upload (untimed), then time per-study synchronous anonymization plus archive download."""
    import requests

    root = work / "orthanc"
    root.mkdir()
    http = _free_port()
    config = {"Name": "bench", "StorageDirectory": str(root / "db"), "IndexDirectory": str(root / "db"),
              "HttpPort": http, "DicomPort": _free_port(), "RemoteAccessAllowed": False,
              "AuthenticationEnabled": False, "DicomServerEnabled": False, "Plugins": [],
              "StorageCompression": False, "HttpServerThreads": 4, "ConcurrentJobs": 2}
    (root / "orthanc.json").write_text(json.dumps(config))
    log = open(root / "orthanc.log", "wb")
    proc = subprocess.Popen([shutil.which("Orthanc") or "/usr/sbin/Orthanc", str(root / "orthanc.json")],
                            stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{http}"
    session = requests.Session()
    try:
        for _ in range(200):
            try:
                session.get(f"{url}/system", timeout=1).raise_for_status()
                break
            except requests.RequestException:
                time.sleep(0.1)
        else:
            raise RuntimeError(f"Orthanc did not start; see {root / 'orthanc.log'}")
        for f in files:
            session.post(f"{url}/instances", data=f.read_bytes()).raise_for_status()
        studies = session.get(f"{url}/studies").json()
        cpu, start = _process_cpu(proc.pid), time.perf_counter()
        for study in studies:
            answer = session.post(f"{url}/studies/{study}/anonymize", json={"Synchronous": True})
            answer.raise_for_status()
            archive = session.get(f"{url}/studies/{answer.json()['ID']}/archive")
            archive.raise_for_status()
        return time.perf_counter() - start, _process_cpu(proc.pid) - cpu
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
        log.close()


def _median(values: list[float]) -> float:
    ordered = sorted(values)
    middle = len(ordered) // 2
    return ordered[middle] if len(ordered) % 2 else (ordered[middle - 1] + ordered[middle]) / 2


def _round(corpus: Path, files: list[Path], args: argparse.Namespace, jar: Path | None) -> dict[str, Timing]:
    timings: dict[str, Timing] = {}
    with tempfile.TemporaryDirectory(prefix="orthanc-gdpr-bench-", dir=SCRATCH) as tmp:
        work = Path(tmp)
        timings["orthanc-gdpr"] = bench_ours(corpus, work)
        if jar is not None:
            timings["PixelMed DeidentifyAndRedact"] = bench_pixelmed(corpus, work, jar)
        if not args.skip_dicognito:
            timings["dicognito"] = bench_dicognito(corpus, work)
        if args.orthanc:
            timings["Orthanc 1.10 anonymize"] = bench_orthanc(files, work)
    return timings


def _report(n: int, rounds: list[dict[str, Timing]], loads: list[tuple[float, float]]) -> None:
    low, high = min(min(pair) for pair in loads), max(max(pair) for pair in loads)
    print(f"  medians of {len(rounds)} round(s) [min-max], 1-minute load average {low:.1f}-{high:.1f} "
          f"on {os.cpu_count()} cores (shared machine: wall clock moves with other load)")
    for name in rounds[0]:
        speeds = [n / r[name][0] for r in rounds]
        cpus = [1000 * r[name][1] / n for r in rounds]
        line = (f"  {name:30} {_median(speeds):7.0f} files/s [{min(speeds):.0f}-{max(speeds):.0f}]  "
                f"{_median(cpus):5.1f} ms CPU/file [{min(cpus):.1f}-{max(cpus):.1f}]")
        if name != "orthanc-gdpr":
            ratios = [r[name][0] / r["orthanc-gdpr"][0] for r in rounds]
            line += f"   ours: {_median(ratios):.2f}x [{min(ratios):.2f}-{max(ratios):.2f}]"
        print(line, flush=True)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--instances", type=int, default=1000)
    parser.add_argument("--sizes", default="128,512", help="image sides to run, comma-separated (default: 128,512)")
    parser.add_argument("--cache", type=Path, default=DEFAULT_CACHE)
    parser.add_argument("--runs", type=int, default=3,
                        help="rounds of all tools, one after the other (ratios are taken within a round)")
    parser.add_argument("--orthanc", action="store_true", help="also time Orthanc's built-in anonymization (slow)")
    parser.add_argument("--skip-dicognito", action="store_true")
    parser.add_argument("--skip-pixelmed", action="store_true")
    parser.add_argument("--implicit", action="store_true", help="instances in Implicit VR Little Endian")
    args = parser.parse_args()
    jar = None if args.skip_pixelmed else pixelmed_jar(args.cache)
    for side in (int(s) for s in args.sizes.split(",")):
        corpus = args.cache / f"ct{side}{'-implicit' if args.implicit else ''}"
        files = generate(corpus, args.instances, side, args.implicit)
        n = len(files)
        print(f"corpus: {n} CT instances {side}x{side} in {corpus} ({sum(f.stat().st_size for f in files) >> 20} MiB)")
        rounds, loads = [], []
        for run in range(args.runs):
            before = os.getloadavg()[0]
            rounds.append(_round(corpus, files, args, jar))
            loads.append((before, os.getloadavg()[0]))
            print(f"  round {run + 1}: " + ", ".join(f"{name} {n / wall:.0f} files/s" for name, (wall, _) in
                                                     rounds[-1].items()) + f"; load {before:.1f}/{loads[-1][1]:.1f}",
                  flush=True)
        _report(n, rounds, loads)
    return 0


if __name__ == "__main__":
    sys.exit(main())
