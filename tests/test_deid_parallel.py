"""The worker pool the plugin uses: same outcomes as the engine in-process, in order, and a
dead worker fails the stream closed and is replaced."""

from __future__ import annotations

import os
import signal
import sys

import pytest

from corpus import make_instance, sample_file, to_bytes
from orthanc_gdpr.deid import DeidentificationError, Deidentifier, Keyring, deidentify_tree, files, load_profile
from orthanc_gdpr.deid.parallel import FetchError, Source, WorkerPool, _serve, outcome
from orthanc_gdpr.pixels import cores

KEY = b"parallel-test-key-0123456789abcd"


@pytest.fixture(scope="module")
def pool():
    pool = WorkerPool([load_profile("basic"), load_profile("research")], KEY, workers=2, python=sys.executable)
    yield pool
    pool.close()


def inputs() -> list[bytes]:
    good = [to_bytes(make_instance(f"Doe^Jane{i}", f"ID{i:05d}")) for i in range(5)]
    return good[:2] + [b"not dicom"] + good[2:] + [sample_file("CT_small.dcm").read_bytes()]


def test_pool_gives_the_in_process_outcomes_in_order(pool):
    engine = Deidentifier(load_profile("research"), Keyring(KEY))
    datas = inputs()
    expected = [outcome(engine, data) for data in datas]
    assert pool.acquire()
    got = list(pool.outcomes("research", datas))
    assert [kind for kind, _ in got] == [kind for kind, _ in expected] == ["written"] * 2 + ["held"] + ["written"] * 4
    assert got == expected  # same archive names, bytes and reports


def test_one_stream_at_a_time(pool):
    assert pool.acquire()
    assert not pool.acquire()  # a concurrent download works in-process instead
    assert len(list(pool.outcomes("basic", inputs()[:1]))) == 1  # the stream releases the pool
    assert pool.acquire()
    list(pool.outcomes("basic", []))


def test_a_dead_worker_fails_the_stream_closed_and_is_replaced(pool):
    os.kill(pool._workers[0][0].pid, signal.SIGKILL)
    assert pool.acquire()
    with pytest.raises(DeidentificationError, match="worker stopped"):
        list(pool.outcomes("basic", inputs()))
    assert pool.acquire()
    assert [k for k, _ in pool.outcomes("basic", inputs())].count("written") == 6


# ------------------------------------------------------- workers reading the files themselves
TOKEN = "Bearer test-token-0123"


@pytest.fixture(scope="module")
def store():
    """A loopback HTTP server answering GET /instances/{id}/file like Orthanc, for one token."""
    import threading
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    files = {f"id-{i}": data for i, data in enumerate(inputs())}
    seen: list[str] = []

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_GET(self):  # noqa: N802
            seen.append(self.headers.get("Authorization", ""))
            parts = self.path.split("/")
            body = files.get(parts[2]) if len(parts) == 4 and parts[1] == "instances" and parts[3] == "file" else None
            status = 401 if self.headers.get("Authorization") != TOKEN else 404 if body is None else 200
            body = body if status == 200 else b"{}"
            self.send_response(status)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}", files, seen
    server.shutdown()
    server.server_close()


@pytest.fixture(scope="module")
def fetching_pool(store):
    url, _, _ = store
    pool = WorkerPool([load_profile("research")], KEY, workers=2, python=sys.executable, source=Source(url, TOKEN))
    yield pool
    pool.close()


def test_workers_reading_from_orthanc_give_the_in_process_outcomes_in_order(fetching_pool, store):
    _, files, seen = store
    engine = Deidentifier(load_profile("research"), Keyring(KEY))
    ids = list(files) * 3  # more than workers x depth: answers wait in their pipes, in order
    expected = [outcome(engine, files[i]) for i in ids]
    assert fetching_pool.acquire()
    assert list(fetching_pool.fetched_outcomes("research", ids)) == expected
    assert set(seen) == {TOKEN}


def test_an_instance_the_workers_cannot_read_fails_the_stream_closed(fetching_pool, store):
    ids = list(store[1])
    assert fetching_pool.acquire()
    got = []
    with pytest.raises(FetchError, match="HTTP 404"):
        for o in fetching_pool.fetched_outcomes("research", ids[:2] + ["missing"] + ids[2:]):
            got.append(o)
    assert len(got) == 2  # nothing after the missing instance is handed out
    assert fetching_pool.acquire()  # released, pipes in step: the next stream is whole
    assert len(list(fetching_pool.fetched_outcomes("research", ids))) == len(ids)


def test_a_stream_stopped_early_keeps_the_pipes_in_step(fetching_pool, store):
    ids = list(store[1])
    assert fetching_pool.acquire()
    stream = fetching_pool.fetched_outcomes("research", ids)
    next(stream)
    stream.close()
    assert fetching_pool.acquire()
    assert [k for k, _ in fetching_pool.fetched_outcomes("research", ids)].count("written") == 6


def test_a_wrong_token_is_refused_and_a_dead_fetching_worker_fails_closed(store):
    url, files, _ = store
    pool = WorkerPool([load_profile("basic")], KEY, workers=2, python=sys.executable,
                      source=Source(url, "Bearer wrong"))
    try:
        assert pool.acquire()
        with pytest.raises(FetchError, match="HTTP 401"):
            list(pool.fetched_outcomes("basic", list(files)))
        os.kill(pool._workers[0][0].pid, signal.SIGKILL)
        assert pool.acquire()
        with pytest.raises(DeidentificationError, match="worker stopped"):
            list(pool.fetched_outcomes("basic", list(files)))
    finally:
        pool.close()
    assert "wrong" not in repr(pool.source)


# ------------------------------------------------------- threads: pool workers share the cores


def _threads_of_this_worker(item: tuple[int, str, bool]) -> files.Outcome:
    return item[0], "held", f"threads {cores.threads()}"


def test_deidentify_workers_each_take_their_share_of_the_cores(tmp_path, monkeypatch):
    monkeypatch.setattr(os, "cpu_count", lambda: 4)  # inherited by the forked workers
    monkeypatch.setattr(files, "_process", _threads_of_this_worker)  # what each worker would run with
    for i in range(8):
        (tmp_path / f"{i}.dcm").write_bytes(b"")
    try:
        seen = {workers: {h["error"] for h in deidentify_tree([tmp_path], tmp_path / "out", load_profile("basic"),
                                                               KEY, workers=workers).held_back}
                for workers in (2, 1)}
    finally:
        cores.share_cores(1)
    assert seen == {2: {"threads 2"}, 1: {"threads 4"}}  # 4 cores: two workers of 2, or one caller with 4


def test_plugin_workers_take_their_share_of_the_cores(monkeypatch):
    import multiprocessing
    monkeypatch.setattr(os, "cpu_count", lambda: 2)
    ours, theirs = multiprocessing.Pipe()
    ours.close()  # the worker reads EOF at once: it only sets itself up
    try:
        _serve(theirs, [load_profile("basic")], KEY, None, workers=2)
        assert cores.threads() == 1
    finally:
        cores.share_cores(1)
