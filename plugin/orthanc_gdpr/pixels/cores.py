"""How many cores the pixel work of this process may use (text detection's onnxruntime threads).

A single caller (the review page, a one-off :func:`~orthanc_gdpr.pixels.clean_pixel_data`) has
the machine to itself: each onnxruntime session runs on the cores, at most :data:`MAX_THREADS`.
Where instances are cleaned side by side by a pool of worker processes (the ``deidentify``
command, the plugin's ``Workers``), each worker calls :func:`share_cores` first and gets its
share, ``cores // workers`` (at least 1): two workers on two cores then run one thread each,
instead of four threads competing for two cores.
"""

from __future__ import annotations

import os

#: More intra-op threads than this no longer pay off for one 512² to 2048² image.
MAX_THREADS = 4

_workers = 1


def share_cores(workers: int) -> None:
    """Declare this process one of ``workers`` processes cleaning instances in parallel
    (1: a single caller, the default). Takes effect on the next text detection (the models are
    loaded again when their thread count no longer fits)."""
    global _workers
    _workers = max(1, workers)


def threads() -> int:
    """The threads this process's pixel work may use: its share of the cores, at least 1."""
    return max(1, min(MAX_THREADS, os.cpu_count() or 1) // _workers)
