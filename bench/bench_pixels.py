"""Pixel-cleaning throughput: frames/s on an ultrasound cine, and OCR time per image.

Run on demand (not part of pytest)::

    .venv/bin/python bench/bench_pixels.py [--cases 12]

(a) ``clean_pixel_data`` on pydicom-data's ``color3d_jpeg_baseline.dcm`` (US, 120 RGB frames,
    JPEG baseline): decode, OCR (first/middle/last frame + static layer), mask, RLE re-encode;
(b) the same without OCR (rules + ultrasound regions only);
(c) OCR milliseconds per single-frame image over the rendered-text corpus.
"""

from __future__ import annotations

import argparse
import copy
import sys
import time
from pathlib import Path

import pydicom

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "tests"))

from pixel_corpus import rendered_cases  # noqa: E402

from orthanc_gdpr.pixels import clean_pixel_data  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cases", type=int, default=12)
    args = parser.parse_args()
    import data_store
    cine = pydicom.dcmread(Path(data_store.__file__).parent / "data" / "color3d_jpeg_baseline.dcm")
    for ocr in (True, False):
        ds = copy.deepcopy(cine)
        start = time.perf_counter()
        report = clean_pixel_data(ds, ocr=ocr)
        seconds = time.perf_counter() - start
        print(f"US cine {report.frames} frames, ocr={ocr}: {report.frames / seconds:.1f} frames/s "
              f"({seconds:.2f} s; OCR {report.ocr_ms:.0f} ms over {report.ocr_images} images)")
    times = [clean_pixel_data(c.ds).ocr_ms for c in rendered_cases(args.cases) if c.frames == 1]
    print(f"OCR per single-frame image: mean {sum(times) / len(times):.0f} ms, max {max(times):.0f} ms "
          f"over {len(times)} images")


if __name__ == "__main__":
    main()
