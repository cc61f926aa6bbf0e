"""Shared pytest fixtures: real Orthanc servers (with the orthanc-gdpr plugin) and DCMTK storescp.

Any test using ``orthanc``, ``orthanc_factory`` or ``storescp`` is marked ``integration``
automatically (``-m "not integration"`` runs the fast tests only).
"""
from __future__ import annotations

import os
import shutil
import sys
import tempfile
from pathlib import Path
from typing import Any, Callable, Iterator

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))

from orthanc_server import OrthancServer, StoreScp, stop_all  # noqa: E402

INTEGRATION_FIXTURES = {"orthanc", "orthanc_factory", "storescp", "browser"}


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "integration: starts real processes (Orthanc with the plugin, storescp, Chromium)"
    )
    config.addinivalue_line("markers", "slow: minutes, not seconds (e.g. a fresh venv and pip install)")
    # the fused text-detection graphs (pixels/graph_cache.py) go to a cache of this run's own,
    # inherited by every Orthanc and worker the tests start: never into the user's cache directory
    if "ORTHANC_GDPR_MODEL_CACHE" not in os.environ:
        os.environ["ORTHANC_GDPR_MODEL_CACHE"] = cache = tempfile.mkdtemp(prefix="orthanc-gdpr-models-")
        config.add_cleanup(lambda: shutil.rmtree(cache, ignore_errors=True))


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        if INTEGRATION_FIXTURES & set(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.integration)


def _report(server: Any) -> None:
    # Shown by pytest only when the test failed (captured teardown output).
    print(f"\n--- {server!r}: log {server.log_path} (tail) ---\n{server.log_tail(40)}")


@pytest.fixture
def orthanc_factory(tmp_path: Path) -> Iterator[Callable[..., OrthancServer]]:
    """Start Orthanc servers: ``orthanc_factory(**OrthancServer kwargs)``; all stopped at teardown.

    Pass ``start=False`` to get a configured, not yet started server.
    """
    servers: list[OrthancServer] = []

    def make(*, start: bool = True, **kwargs: Any) -> OrthancServer:
        server = OrthancServer(tmp_path / f"orthanc-{len(servers) + 1}", **kwargs)
        servers.append(server)
        return server.start() if start else server

    try:
        yield make
    finally:
        try:
            stop_all(servers)
        finally:
            for server in servers:
                _report(server)


@pytest.fixture
def orthanc(orthanc_factory: Callable[..., OrthancServer]) -> OrthancServer:
    """One started Orthanc with the orthanc-gdpr plugin (StableAge 2 s, auth on, loopback)."""
    return orthanc_factory()


@pytest.fixture
def storescp(tmp_path: Path) -> Iterator[StoreScp]:
    """A started DCMTK storescp writing into ``tmp_path/storescp``; ``.as_modality()`` for Orthanc."""
    scp = StoreScp(tmp_path / "storescp")
    try:
        yield scp.start()
    finally:
        try:
            scp.stop()
        finally:
            _report(scp)


@pytest.fixture
def browser(request: pytest.FixtureRequest) -> Iterator[Any]:
    """Headless Chromium (tests/browser.py); screenshots go to tests/artifacts/<test name>/.
    Set ``browser.base`` to the service's URL (``LiveService``)."""
    from browser import Browser

    b = Browser(request.node.name)
    try:
        yield b
    finally:
        b.quit()
