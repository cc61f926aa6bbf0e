"""Pixel-cleaning throughput with burned-in text detection on.

Run on demand (not part of pytest)::

    .venv/bin/python bench/bench_pixels.py [--rounds 3]

(a) single-frame 512 x 512 images/s: ``clean_pixel_data`` (decode, text detection and
    recognition, mask, re-encode) over the rendered corpus' CT cases (12- and 16-bit, with and
    without text);
(b) 1024 x 1024 DX frames/s, the same over the corpus' DX cases;
(c) frames/s on pydicom-data's ``color3d_jpeg_baseline.dcm`` (US, 120 RGB frames, JPEG
    baseline), with detection (first/middle/last frame + static layer) and without.

Each figure is the median of ``--rounds`` rounds, with the CPU milliseconds per frame (the
steadier figure on a shared machine); the load average is printed with it.
"""

from __future__ import annotations

import argparse
import copy
import os
import statistics
import sys
import time
from pathlib import Path

import pydicom

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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    print(f"{os.cpu_count()} cores; models: {load_models().version}")
    by_name = {layout[0]: layout for layout in LAYOUTS}
    ct = [c.ds for c in rendered_cases(3, 1, layouts=(by_name["ct"], by_name["ct16"]))]
    _report(f"(a) 512x512 CT, {len(ct)} images, detection on", _rate(ct, args.rounds))
    dx = [c.ds for c in rendered_cases(3, 1, layouts=(by_name["dx"],))]
    _report(f"(b) 1024x1024 DX, {len(dx)} images, detection on", _rate(dx, args.rounds))
    import data_store
    cine = pydicom.dcmread(Path(data_store.__file__).parent / "data" / "color3d_jpeg_baseline.dcm")
    for ocr in (True, False):
        _report(f"(c) US cine, 120 RGB frames, detection {'on' if ocr else 'off'}", _rate([cine], args.rounds, ocr))


if __name__ == "__main__":
    main()
