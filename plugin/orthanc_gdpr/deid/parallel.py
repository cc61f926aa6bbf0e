"""De-identification in worker processes, for callers that share one interpreter lock.

Inside Orthanc every Python callback shares one GIL (and ``sys.executable`` is Orthanc itself),
so the plugin runs the engine in a pool of ``spawn`` processes started with a real Python 3.11.
Results come back in input order, and at most ``window`` instances are in flight, so memory
does not grow with study size.
"""

from __future__ import annotations

import multiprocessing
from collections import deque
from collections.abc import Iterable, Iterator

from .engine import Deidentifier, DeidentificationError, InstanceDropped
from .files import deidentify_bytes, output_path, quiet_pydicom
from .keys import Keyring
from .profile import Profile

#: ("written", (archive path, DICOM bytes, report dict)), ("dropped", reason) or ("held", reason)
Outcome = tuple[str, object]


def outcome(engine: Deidentifier, data: bytes) -> Outcome:
    """De-identify one instance and say what became of it."""
    try:
        ds, dicom, report = deidentify_bytes(engine, data)
    except InstanceDropped as e:
        return "dropped", str(e)
    except DeidentificationError as e:
        return "held", str(e)
    return "written", (output_path(ds, report).as_posix(), dicom, report.to_dict())


_engines: dict[str, Deidentifier] = {}


def _init(profiles: list[Profile], key: bytes) -> None:
    quiet_pydicom()
    keyring = Keyring(key)
    _engines.update({p.name: Deidentifier(p, keyring) for p in profiles})


def _work(job: tuple[str, bytes]) -> Outcome:
    name, data = job
    return outcome(_engines[name], data)


class WorkerPool:
    """A fixed pool of de-identification processes for the given profiles and key."""

    def __init__(self, profiles: list[Profile], key: bytes, workers: int, python: str | None = None):
        context = multiprocessing.get_context("spawn")
        if python:
            context.set_executable(python)
        self.workers = workers
        self._pool = context.Pool(workers, initializer=_init, initargs=(profiles, key))

    def outcomes(self, profile: str, datas: Iterable[bytes], window: int | None = None) -> Iterator[Outcome]:
        """Outcomes for ``datas`` in order, reading ahead at most ``window`` instances."""
        window = window or 2 * self.workers
        pending: deque = deque()
        for data in datas:
            pending.append(self._pool.apply_async(_work, ((profile, data),)))
            if len(pending) >= window:
                yield pending.popleft().get()
        while pending:
            yield pending.popleft().get()

    def close(self) -> None:
        self._pool.terminate()
        self._pool.join()
