"""De-identification in worker processes, for callers that share one interpreter lock.

Inside Orthanc every Python callback shares one GIL (and ``sys.executable`` is Orthanc itself),
so the plugin runs the engine in a pool of ``spawn`` processes started with a real Python 3.11.
Results come back in input order, and only a few instances are in flight, so memory does not
grow with study size.
"""

from __future__ import annotations

import multiprocessing
import threading
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


def _serve(conn, profiles: list[Profile], key: bytes) -> None:
    """A worker process: answer (profile name, DICOM bytes) with an outcome, until EOF."""
    quiet_pydicom()
    keyring = Keyring(key)
    engines = {p.name: Deidentifier(p, keyring) for p in profiles}
    while True:
        try:
            name, data = conn.recv()
        except EOFError:
            return
        conn.send(outcome(engines[name], data))


class WorkerPool:
    """Worker processes for the given profiles and key, each on its own pipe.

    The calling thread talks to the pipes itself (no helper threads): inside Orthanc every
    thread hand-off waits for the shared GIL, which would cost more than the work. One stream
    uses the pool at a time; a concurrent caller gets None from :meth:`acquire` and works
    in-process instead.
    """

    def __init__(self, profiles: list[Profile], key: bytes, workers: int, python: str | None = None):
        self._context = multiprocessing.get_context("spawn")
        if python:
            self._context.set_executable(python)
        self._args = (profiles, key)
        self._lock = threading.Lock()
        self._workers: list[tuple] = [self._start() for _ in range(workers)]

    def _start(self) -> tuple:
        parent, child = self._context.Pipe()
        process = self._context.Process(target=_serve, args=(child, *self._args), daemon=True)
        process.start()
        child.close()
        return process, parent

    def acquire(self) -> bool:
        return self._lock.acquire(blocking=False)

    def outcomes(self, profile: str, datas: Iterable[bytes]) -> Iterator[Outcome]:
        """Outcomes for ``datas`` in order, one instance in flight per worker (more would let a
        full pipe each way block both ends).

        The caller must hold the pool (:meth:`acquire`); it is released when the stream ends.
        """
        pending: deque = deque()
        try:
            turn = 0
            for data in datas:
                conn = self._workers[turn % len(self._workers)][1]
                conn.send((profile, data))
                pending.append(conn)
                turn += 1
                if len(pending) == len(self._workers):
                    yield pending.popleft().recv()
            while pending:
                yield pending.popleft().recv()
        except (EOFError, OSError) as e:  # a worker died: start afresh, fail this stream closed
            pending.clear()
            self._restart()
            raise DeidentificationError(f"a de-identification worker stopped: {type(e).__name__}") from None
        finally:
            try:
                for conn in pending:  # the consumer stopped early: drain, keep the pipes in step
                    conn.recv()
            except (EOFError, OSError):
                self._restart()
            finally:
                self._lock.release()

    def _restart(self) -> None:
        self.close()
        self._workers = [self._start() for _ in self._workers]

    def close(self) -> None:
        for process, conn in self._workers:
            conn.close()
            process.terminate()
        for process, _ in self._workers:
            process.join(5)
