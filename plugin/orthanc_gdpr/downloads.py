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
from collections.abc import Callable, Iterator

from .deid import DeidentificationError, Deidentifier, InstanceDropped, RunReport, deidentify_bytes
from .deid.files import output_path
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


def stream_archive(api: OrthancApi, instances: list[str], engine: Deidentifier, compression: str = "stored",
                   on_done: Callable[[RunReport], None] | None = None) -> Iterator[bytes]:
    """Yield a ZIP of the de-identified instances, chunk by chunk.

    ``on_done`` receives the run report once the archive is complete (for the audit trail).
    """
    method, level = COMPRESSION[compression]
    run = RunReport(profile=engine.profile.name, options=[o.cli for o in engine.profile.options])
    sink = _Sink()
    with zipfile.ZipFile(sink, "w", compression=method, compresslevel=level, allowZip64=True) as zf:
        for index, instance in enumerate(instances):
            try:
                ds, dicom, report = deidentify_bytes(engine, api.get(f"/instances/{instance}/file"))
            except InstanceDropped as e:
                run.add_dropped(index, instance, str(e))
                continue
            except DeidentificationError as e:
                run.add_held_back(index, instance, str(e))
                continue
            name = output_path(ds, report).as_posix()
            zf.writestr(name, dicom)
            run.add_instance(index, name, report.to_dict())
            if sink.size >= CHUNK:
                yield sink.take()
        if run.held_back or run.dropped:
            lines = ([f"instance {h['input'] + 1}: {h['error']}" for h in run.held_back]
                     + [f"instance {d['input'] + 1}: {d['reason']}" for d in run.dropped])
            zf.writestr("HELD_BACK.txt", "These instances were left out (not de-identifiable, or dropped by "
                        "the profile's policy):\n" + "\n".join(lines) + "\n")
        zf.writestr("deidentification-report.json", json.dumps(run.to_dict(), indent=1))
    yield sink.take()
    if on_done:
        on_done(run)
