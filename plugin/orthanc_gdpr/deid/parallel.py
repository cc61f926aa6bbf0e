"""De-identification in worker processes, for callers that share one interpreter lock.

Inside Orthanc every Python callback shares one GIL (and ``sys.executable`` is Orthanc itself),
so the plugin runs the engine in a pool of ``spawn`` processes started with a real Python 3.11.
Results come back in input order, and only a few instances are in flight, so memory does not
grow with study size.

Given a :class:`Source` (Orthanc's loopback URL and a REST token from
``orthanc.GenerateRestApiAuthorizationToken()``), the workers also read the stored files
themselves over HTTP: the caller then sends instance IDs only, and the one thread inside Orthanc
that holds the GIL no longer copies every file in.
"""

from __future__ import annotations

import http.client
import multiprocessing
import threading
import urllib.parse
from collections import deque
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

from ..pixels.cores import share_cores
from .engine import Deidentifier, DeidentificationError, InstanceDropped
from .files import deidentify_bytes, deidentify_raw, output_path, quiet_pydicom
from .keys import Keyring
from .profile import Profile

#: ("written", (archive path, DICOM bytes, report dict)), ("dropped", reason) or ("held", reason)
Outcome = tuple[str, object]

#: Instances in flight per worker when workers fetch (requests are a few bytes, so the pipe toward
#: a worker never fills; each answer waits in its own pipe until read, so memory stays bounded).
DEPTH = 2


class FetchError(Exception):
    """A worker could not read an instance from Orthanc (it is not sent half-processed)."""


@dataclass(frozen=True)
class Source:
    """Where workers read stored instances: Orthanc's REST API over plain HTTP on loopback."""

    url: str  #: e.g. ``http://127.0.0.1:8042``
    authorization: str  #: the value of the "Authorization" header (a plugin REST token)

    def __repr__(self) -> str:  # never print the token
        return f"Source({self.url!r}, authorization=<hidden>)"


def outcome(engine: Deidentifier, data: bytes) -> Outcome:
    """De-identify one instance and say what became of it (through the engine's raw-element
    fast path where it applies: the same bytes and report)."""
    fast = deidentify_raw(engine, data)
    if fast is not None:
        path, head, pixels, report = fast
        return "written", (path.as_posix(), head + pixels, report.to_dict())
    try:
        ds, dicom, report = deidentify_bytes(engine, data)
    except InstanceDropped as e:
        return "dropped", str(e)
    except DeidentificationError as e:
        return "held", str(e)
    return "written", (output_path(ds, report).as_posix(), dicom, report.to_dict())


class _Fetcher:
    """A worker's keep-alive HTTP connection to Orthanc."""

    def __init__(self, source: Source, timeout: float = 300):
        parts = urllib.parse.urlsplit(source.url)
        if parts.scheme != "http" or not parts.hostname:
            raise ValueError(f"workers read from plain http:// URLs only, not {source.url!r}")
        self._host, self._port, self._timeout = parts.hostname, parts.port or 80, timeout
        self._headers = {"Authorization": source.authorization, "Accept-Encoding": "identity"}
        self._conn: http.client.HTTPConnection | None = None

    def get(self, uri: str) -> bytes:
        for attempt in (1, 2):  # a kept-alive connection the server closed meanwhile: once more
            if self._conn is None:
                self._conn = http.client.HTTPConnection(self._host, self._port, timeout=self._timeout)
            try:
                self._conn.request("GET", uri, headers=self._headers)
                response = self._conn.getresponse()
                body = response.read()
            except (OSError, http.client.HTTPException) as e:
                self._conn.close()
                self._conn = None
                if attempt == 2 or isinstance(e, TimeoutError):
                    raise FetchError(f"GET {uri}: {type(e).__name__}") from None
                continue
            if response.will_close:
                self._conn.close()
                self._conn = None
            if response.status != 200:
                raise FetchError(f"GET {uri}: HTTP {response.status}")
            return body
        raise AssertionError("unreachable")


def _serve(conn, profiles: list[Profile], key: bytes, source: Source | None, workers: int) -> None:
    """A worker process, one of ``workers``: answer ("data", profile, DICOM bytes) or ("fetch",
    profile, instance ID) with an outcome, until EOF. A written instance's bytes follow its header
    as a raw message (no pickling of the payload)."""
    quiet_pydicom()
    share_cores(workers)
    keyring = Keyring(key)
    engines = {p.name: Deidentifier(p, keyring) for p in profiles}
    fetcher = _Fetcher(source) if source is not None else None
    while True:
        try:
            how, name, what = conn.recv()
        except EOFError:
            return
        if how == "fetch":
            if fetcher is None:
                conn.send(("error", "this worker has no Orthanc source to read from"))
                continue
            try:
                data = fetcher.get(f"/instances/{urllib.parse.quote(what, safe='')}/file")
            except FetchError as e:
                conn.send(("error", str(e)))
                continue
        else:
            data = what
        kind, detail = outcome(engines[name], data)
        del data
        if kind == "written":
            path, dicom, report = detail  # type: ignore[misc]
            conn.send(("written", (path, report)))
            conn.send_bytes(dicom)
        else:
            conn.send((kind, detail))


def _receive(conn) -> Outcome:
    kind, detail = conn.recv()
    if kind == "written":
        path, report = detail
        return "written", (path, conn.recv_bytes(), report)
    if kind == "error":
        raise FetchError(detail)
    return kind, detail


class WorkerPool:
    """Worker processes for the given profiles and key, each on its own pipe.

    The calling thread talks to the pipes itself (no helper threads): inside Orthanc every
    thread hand-off waits for the shared GIL, which would cost more than the work. One stream
    uses the pool at a time; a concurrent caller gets None from :meth:`acquire` and works
    in-process instead.
    """

    def __init__(self, profiles: list[Profile], key: bytes, workers: int, python: str | None = None,
                 source: Source | None = None):
        self._context = multiprocessing.get_context("spawn")
        if python:
            self._context.set_executable(python)
        self._args = (profiles, key, source, workers)
        self.source = source
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
        return self._stream((("data", profile, data) for data in datas), 1)

    def fetched_outcomes(self, profile: str, instances: Iterable[str]) -> Iterator[Outcome]:
        """Outcomes for the Orthanc instances ``instances``, in order, read by the workers
        themselves from :attr:`source`. An instance they cannot read ends the stream with
        :class:`FetchError` (nothing is skipped silently).

        The caller must hold the pool (:meth:`acquire`); it is released when the stream ends.
        """
        if self.source is None:
            self._lock.release()
            raise ValueError("this pool has no Orthanc source: use outcomes()")
        return self._stream((("fetch", profile, str(i)) for i in instances), DEPTH)

    def _stream(self, requests: Iterator[tuple], depth: int) -> Iterator[Outcome]:
        pending: deque = deque()
        try:
            turn = 0
            for request in requests:
                conn = self._workers[turn % len(self._workers)][1]
                conn.send(request)
                pending.append(conn)
                turn += 1
                if len(pending) == depth * len(self._workers):
                    yield _receive(pending.popleft())
            while pending:
                yield _receive(pending.popleft())
        except (EOFError, OSError) as e:  # a worker died: start afresh, fail this stream closed
            pending.clear()
            self._restart()
            raise DeidentificationError(f"a de-identification worker stopped: {type(e).__name__}") from None
        finally:
            try:
                for conn in pending:  # the consumer stopped early: drain, keep the pipes in step
                    try:
                        _receive(conn)
                    except FetchError:
                        pass
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
