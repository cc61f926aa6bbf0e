"""One instance de-identified for review: the original, the result and the engine's report.

Results are cached per (profile, instance) for :data:`TTL` seconds so that the page, its images
and the JSON twin share one de-identification; the cache holds at most :data:`SIZE` instances.
"""
from __future__ import annotations

import io
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass, field

import pydicom
from pydicom.dataset import Dataset

from orthanc_gdpr.deid import DeidentificationError, Deidentifier, InstanceDropped, deidentify_bytes
from orthanc_gdpr.deid.report import InstanceReport

from ..orthanc import OrthancClient

TTL = 300.0
SIZE = 48


@dataclass
class Inspected:
    instance: str
    original: Dataset
    after: Dataset | None = None  #: None: held back or dropped
    report: InstanceReport | None = None
    outcome: str = "de-identified"  #: "de-identified", "held back" or "dropped by policy"
    reason: str = ""  #: why held back or dropped (the engine's words, no values)
    #: rendered pictures and decoded frames, kept with the instance while it is cached
    pictures: dict = field(default_factory=dict)


def _read(data: bytes) -> Dataset:
    return pydicom.dcmread(io.BytesIO(data), force=True)


def inspect(engine: Deidentifier, instance: str, data: bytes) -> Inspected:
    original = _read(data)
    try:
        _, dicom, report = deidentify_bytes(engine, data)
    except InstanceDropped as e:
        return Inspected(instance, original, outcome="dropped by policy", reason=str(e))
    except DeidentificationError as e:
        return Inspected(instance, original, outcome="held back", reason=str(e))
    return Inspected(instance, original, _read(dicom), report)


class InspectionCache:
    def __init__(self) -> None:
        self._items: OrderedDict[tuple[str, str], tuple[float, Inspected]] = OrderedDict()
        self._lock = threading.Lock()
        self._busy: dict[tuple[str, str], threading.Lock] = {}

    def get(self, client: OrthancClient, engine: Deidentifier, instance: str) -> Inspected:
        key = (engine.profile.name, instance)
        with self._lock:
            hit = self._items.get(key)
            if hit and time.monotonic() - hit[0] < TTL:
                self._items.move_to_end(key)
                return hit[1]
            busy = self._busy.setdefault(key, threading.Lock())
        with busy:  # two image requests for the same instance: one de-identification
            with self._lock:
                hit = self._items.get(key)
                if hit and time.monotonic() - hit[0] < TTL:
                    return hit[1]
            result = inspect(engine, instance, client.instance_file(instance))
            with self._lock:
                self._items[key] = (time.monotonic(), result)
                self._items.move_to_end(key)
                while len(self._items) > SIZE:
                    self._items.popitem(last=False)
                self._busy.pop(key, None)
            return result
