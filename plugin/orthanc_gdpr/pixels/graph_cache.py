"""The fused model graphs (:mod:`.model_graph`) kept on disk, so that a process loads them
without importing ``onnx`` and rewriting them again (about 1 s of CPU per process).

One file per shipped model file and version of the rewrite rules, named by the SHA-256 of both
(the rules' version is the SHA-256 of :mod:`.model_graph`'s source, so that any change to them
makes new files), in :func:`directory`: ``ORTHANC_GDPR_MODEL_CACHE`` when set, else
``orthanc-gdpr/models`` in the user's cache directory (``$XDG_CACHE_HOME`` or ``~/.cache``;
``~/Library/Caches`` on macOS, ``%LOCALAPPDATA%`` on Windows).

The directory is owner-only (0700) and one that another user owns is not used. A file is written
owner-only (0600) under a temporary name, then renamed into place, and starts with the SHA-256 of
the rest: a file that does not match it is not used, but fused again and replaced. When nothing
can be read or written, the graphs are fused in memory as before: the cache only saves time.
Only graphs computed here from the shipped weights are stored; nothing is fetched.
"""

from __future__ import annotations

import hashlib
import os
import stat
import sys
import tempfile
from pathlib import Path

from . import model_graph

CACHE_ENV = "ORTHANC_GDPR_MODEL_CACHE"
_DIGEST_SIZE = hashlib.sha256().digest_size


def directory() -> Path:
    """Where fused graphs are kept (see the module docstring)."""
    override = os.environ.get(CACHE_ENV)
    if override:
        return Path(override)
    if sys.platform == "win32":
        base = Path(os.environ.get("LOCALAPPDATA") or Path.home() / "AppData" / "Local")
    elif sys.platform == "darwin":
        base = Path.home() / "Library" / "Caches"
    else:
        base = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return base / "orthanc-gdpr" / "models"


def fused_model(model: bytes, model_sha256: str) -> bytes:
    """The fused graph of the ONNX model ``model`` (whose hex SHA-256 is ``model_sha256``): the
    cached one when it is intact, else :func:`.model_graph.fused`, then cached."""
    folder = _owned_directory()
    entry = folder / f"{model_sha256}-{_rules_version()}.onnx" if folder is not None else None
    cached = _read(entry) if entry is not None else None
    if cached is not None:
        return cached
    graph = model_graph.fused(model)
    if entry is not None:
        _write(entry, graph)
    return graph


def _rules_version() -> str:
    return hashlib.sha256(Path(model_graph.__file__).read_bytes()).hexdigest()[:16]


def _owned_directory() -> Path | None:
    """The cache directory, made if missing and owner-only; ``None`` when it cannot be, or when
    another user owns it."""
    folder = directory()
    try:
        folder.mkdir(mode=0o700, parents=True, exist_ok=True)
        if os.name == "posix":
            if folder.stat().st_uid != os.getuid():
                return None
            if stat.S_IMODE(folder.stat().st_mode) != 0o700:
                folder.chmod(0o700)
    except OSError:
        return None
    return folder


def _read(entry: Path) -> bytes | None:
    """The graph in ``entry`` when it is there, ours and intact."""
    try:
        with open(entry, "rb") as f:
            if os.name == "posix" and os.fstat(f.fileno()).st_uid != os.getuid():
                return None
            data = f.read()
    except OSError:
        return None
    digest, graph = data[:_DIGEST_SIZE], data[_DIGEST_SIZE:]
    return graph if graph and hashlib.sha256(graph).digest() == digest else None


def _write(entry: Path, graph: bytes) -> None:
    """Store ``graph`` at ``entry`` atomically, owner-only; a failure leaves no file behind."""
    try:
        fd, temporary = tempfile.mkstemp(dir=entry.parent, prefix=".", suffix=".part")  # mode 0600
    except OSError:
        return
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(hashlib.sha256(graph).digest())
            f.write(graph)
        os.replace(temporary, entry)
    except OSError:
        Path(temporary).unlink(missing_ok=True)
