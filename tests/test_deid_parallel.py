"""The worker pool the plugin uses: same outcomes as the engine in-process, in order, and a
dead worker fails the stream closed and is replaced."""

from __future__ import annotations

import os
import signal
import sys

import pytest

from corpus import make_instance, sample_file, to_bytes
from orthanc_gdpr.deid import DeidentificationError, Deidentifier, Keyring, load_profile
from orthanc_gdpr.deid.parallel import WorkerPool, outcome

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
