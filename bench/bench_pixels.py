"""Pixel-cleaning throughput with burned-in text detection on.

Run on demand (not part of pytest)::

    .venv/bin/python bench/bench_pixels.py [--rounds 3] [--files 72] [--only batch|serial]

Single caller (one ``clean_pixel_data`` after another in this process, onnxruntime on all the
cores: the latency a review page or a one-off call sees):

(a) single-frame 512 x 512 images/s: ``clean_pixel_data`` (decode, text detection and
    recognition, mask, re-encode) over the rendered corpus' CT cases (12- and 16-bit, with and
    without text);
(b) 1024 x 1024 DX frames/s, the same over the corpus' DX cases;
(c) frames/s on pydicom-data's ``color3d_jpeg_baseline.dcm`` (US, 120 RGB frames, JPEG
    baseline), with detection (first/middle/last frame + static layer) and without.

Batch (the product's own path for many instances):

(d) ``orthanc-gdpr deidentify --profile basic --option clean-pixel-data`` (one worker process
    per core) over the same CT images written as ``--files`` files with distinct SOP Instance
    UIDs in /dev/shm: wall-clock frames/s and CPU ms per frame of the whole command (start-up,
    model loading and report included), and the same without start-up and model loading: the
    difference between that run and a run over the first 8 files (the fewest the command hands
    to its worker pool). Every file's report must show the text detector read it.

Each figure is the median of ``--rounds`` rounds, with the CPU milliseconds per frame (the
steadier figure on a shared machine); the load average is printed with it.
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pydicom
from pydicom.uid import generate_uid

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "tests"))

from pixel_corpus import LAYOUTS, rendered_cases  # noqa: E402

from orthanc_gdpr.pixels import MaskRules, clean_pixel_data  # noqa: E402
from orthanc_gdpr.pixels.text_detection import load_models  # noqa: E402

NO_RULES = MaskRules(())


def _rate(datasets: list, rounds: int, ocr: bool = True) -> tuple[float, list[float], float]:
    """Median frames/s over ``rounds`` passes of cleaning copies of ``datasets``, the rates, and
    the median CPU milliseconds per frame (all threads of this process)."""
    rates, cpu = [], []
    for _ in range(rounds):
        copies = [copy.deepcopy(ds) for ds in datasets]
        frames = sum(int(ds.get("NumberOfFrames") or 1) for ds in copies)
        start, start_cpu = time.perf_counter(), time.process_time()
        for ds in copies:
            clean_pixel_data(ds, masks=NO_RULES, ocr=ocr)
        rates.append(frames / (time.perf_counter() - start))
        cpu.append((time.process_time() - start_cpu) * 1000 / frames)
    return statistics.median(rates), rates, statistics.median(cpu)


def _report(label: str, result: tuple[float, list[float], float]) -> None:
    median, rates, cpu = result
    load = ", ".join(f"{v:.2f}" for v in os.getloadavg())
    print(f"{label}: {median:.1f} frames/s (rounds: {', '.join(f'{r:.1f}' for r in rates)}), "
          f"{cpu:.0f} CPU ms/frame; load average {load}")


#: The fewest inputs ``deidentify`` hands to its worker pool (fewer are done in-process).
POOL_MINIMUM = 8
CLI = [str(Path(sys.executable).with_name("orthanc-gdpr")), "deidentify", "--profile", "basic",
       "--option", "clean-pixel-data", "--quiet"]


def _write_copies(datasets: list, count: int, folder: Path) -> None:
    """``count`` files cycling through ``datasets``, each with its own SOP Instance UID."""
    folder.mkdir(parents=True)
    for i in range(count):
        ds = copy.deepcopy(datasets[i % len(datasets)])
        ds.SOPInstanceUID = generate_uid()
        ds.save_as(folder / f"{i:04d}.dcm", enforce_file_format=True)


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def _cli_run(inputs: Path, out: Path, key: Path, frames: int) -> tuple[float, float]:
    """Wall and CPU seconds (all processes) of one ``deidentify`` run; checks that every input
    was written and read by the text detector."""
    start, start_cpu = time.perf_counter(), _children_cpu()
    subprocess.run([*CLI, "--key-file", str(key), str(inputs), str(out)], check=True, stdout=subprocess.DEVNULL)
    wall, cpu = time.perf_counter() - start, _children_cpu() - start_cpu
    instances = json.loads((out / "deidentification-report.json").read_text())["instances"]
    read = [i for i in instances if ((i.get("pixels") or {}).get("text_detection") or {}).get("images_read")]
    if len(instances) != frames or len(read) != frames:
        raise SystemExit(f"deidentify wrote {len(instances)} of {frames} files, {len(read)} read for text")
    return wall, cpu


def _batch(datasets: list, files: int, rounds: int) -> None:
    """(d): the ``deidentify`` command over ``files`` files, and over the first 8 of them."""
    with tempfile.TemporaryDirectory(prefix="orthanc-gdpr-bench-pixels-", dir="/dev/shm") as tmp:
        work = Path(tmp)
        key = work / "key"
        key.write_text(os.urandom(32).hex())
        _write_copies(datasets, files, work / "all")
        (work / "first").mkdir()
        for f in sorted((work / "all").iterdir())[:POOL_MINIMUM]:
            (work / "first" / f.name).hardlink_to(f)
        whole, steady, load = [], [], []
        for r in range(rounds):
            load.append(os.getloadavg()[0])
            w_all, c_all = _cli_run(work / "all", work / f"out-all-{r}", key, files)
            w_first, c_first = _cli_run(work / "first", work / f"out-first-{r}", key, POOL_MINIMUM)
            load.append(os.getloadavg()[0])
            whole.append((files / w_all, c_all * 1000 / files))
            rest = files - POOL_MINIMUM
            steady.append((rest / (w_all - w_first), (c_all - c_first) * 1000 / rest))
            print(f"  round {r + 1}: {files} files {w_all:.1f} s wall, {c_all:.1f} s CPU; "
                  f"{POOL_MINIMUM} files {w_first:.1f} s wall, {c_first:.1f} s CPU")
    loads = f"load average (1 min) {min(load):.2f}-{max(load):.2f}"
    for label, figures in ((f"whole command, {files} files", whole),
                           ("without start-up and model loading", steady)):
        rates = [f[0] for f in figures]
        print(f"(d) deidentify, 512x512 CT, {label}: {statistics.median(rates):.1f} frames/s "
              f"(rounds: {', '.join(f'{x:.1f}' for x in rates)}), "
              f"{statistics.median(f[1] for f in figures):.0f} CPU ms/frame; {loads}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--files", type=int, default=72, help="files in the batch figure (d)")
    parser.add_argument("--only", choices=("serial", "batch"), help="only the single-caller figures, or only (d)")
    args = parser.parse_args()
    by_name = {layout[0]: layout for layout in LAYOUTS}
    ct = [c.ds for c in rendered_cases(3, 1, layouts=(by_name["ct"], by_name["ct16"]))]
    print(f"{os.cpu_count()} cores")
    if args.only != "serial":
        print("Batch: the deidentify command, one worker process per core")
        _batch(ct, args.files, args.rounds)
    if args.only == "batch":
        return
    print(f"Single caller, one image after another in this process; models: {load_models().version}")
    _report(f"(a) 512x512 CT, {len(ct)} images, detection on", _rate(ct, args.rounds))
    dx = [c.ds for c in rendered_cases(3, 1, layouts=(by_name["dx"],))]
    _report(f"(b) 1024x1024 DX, {len(dx)} images, detection on", _rate(dx, args.rounds))
    import data_store
    cine = pydicom.dcmread(Path(data_store.__file__).parent / "data" / "color3d_jpeg_baseline.dcm")
    for ocr in (True, False):
        _report(f"(c) US cine, 120 RGB frames, detection {'on' if ocr else 'off'}", _rate([cine], args.rounds, ocr))


if __name__ == "__main__":
    main()
