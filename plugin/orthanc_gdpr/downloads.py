"""De-identified downloads: a study or series as a ZIP built while it streams.

Each instance is read from Orthanc, de-identified and written into the archive one at a time, so
memory does not grow with study size. An instance that cannot be de-identified is left out
(never sent half-cleaned) and listed in ``HELD_BACK.txt``, as are report-bearing objects the
profile drops; the de-identification report travels in the archive as
``deidentification-report.json``.

Compression is a deliberate choice: DICOM pixel data compresses poorly and deflate is the slow
step of Orthanc's own archives, so ``stored`` is the default; ``deflate-fast`` (level 1) trades
time for size where the network is the bottleneck.
"""

from __future__ import annotations

import json
import zipfile
from collections.abc import Callable, Iterable, Iterator
from typing import BinaryIO

from .deid import Profile, RunReport
from .deid.parallel import Outcome
from .orthanc_api import OrthancApi, get_json

COMPRESSION = {"stored": (zipfile.ZIP_STORED, None), "deflate-fast": (zipfile.ZIP_DEFLATED, 1)}
CHUNK = 1 << 20


class _Sink:
    """A write-only, unseekable file for zipfile: collects bytes for the stream."""

    def __init__(self) -> None:
        self.parts: list[bytes] = []
        self.size = 0

    def write(self, data: bytes) -> int:
        self.parts.append(bytes(data))
        self.size += len(data)
        return len(data)

    def flush(self) -> None:
        pass

    def take(self) -> bytes:
        data = b"".join(self.parts)
        self.parts.clear()
        self.size = 0
        return data


def instance_ids(api: OrthancApi, level: str, resource: str) -> list[str]:
    """Orthanc instance IDs of a study or series, in Orthanc's order."""
    return [i["ID"] for i in get_json(api, f"/{level}/{resource}/instances")]


def _build(fp, outcomes: Iterable[Outcome], profile: Profile, compression: str) -> Iterator[RunReport | None]:
    """Write the ZIP into ``fp``; yields None after each instance, then the run report."""
    method, level = COMPRESSION[compression]
    run = RunReport(profile=profile.name, options=[o.cli for o in profile.options])
    with zipfile.ZipFile(fp, "w", compression=method, compresslevel=level, allowZip64=True) as zf:
        for index, (kind, detail) in enumerate(outcomes):
            if kind == "written":
                name, dicom, report = detail  # type: ignore[misc]
                zf.writestr(name, dicom)
                del dicom, detail
                run.add_instance(index, name, report)
            elif kind == "dropped":
                run.add_dropped(index, f"instance {index + 1}", str(detail))
            else:
                run.add_held_back(index, f"instance {index + 1}", str(detail))
            yield None
        if run.held_back or run.dropped:
            lines = ([f"instance {h['input'] + 1}: {h['error']}" for h in run.held_back]
                     + [f"instance {d['input'] + 1}: {d['reason']}" for d in run.dropped])
            zf.writestr("HELD_BACK.txt", "These instances were left out (not de-identifiable, or dropped by "
                        "the profile's policy):\n" + "\n".join(lines) + "\n")
        zf.writestr("deidentification-report.json", json.dumps(run.to_dict(), indent=1))
    yield run


def stream_archive(outcomes: Iterable[Outcome], profile: Profile, compression: str = "stored",
                   on_done: Callable[[RunReport], None] | None = None) -> Iterator[bytes]:
    """Yield a ZIP of de-identified instances, chunk by chunk, from their outcomes in order
    (:func:`~orthanc_gdpr.deid.parallel.outcome`, locally or from a worker pool).

    ``on_done`` receives the run report once the archive is complete (for the audit trail).
    """
    sink = _Sink()
    run = None
    for run in _build(sink, outcomes, profile, compression):
        if sink.size >= CHUNK:
            yield sink.take()
    yield sink.take()
    if on_done and run is not None:
        on_done(run)


def write_archive(fp: BinaryIO, outcomes: Iterable[Outcome], profile: Profile, compression: str = "stored",
                  on_done: Callable[[RunReport], None] | None = None) -> RunReport:
    """The same ZIP as :func:`stream_archive`, written straight into a seekable binary file
    (no intermediate chunks: one copy fewer per instance)."""
    run = None
    for run in _build(fp, outcomes, profile, compression):
        pass
    assert run is not None
    if on_done:
        on_done(run)
    return run
