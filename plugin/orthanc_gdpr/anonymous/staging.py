"""All or nothing: an export's files appear in OUT only once every check has passed.

Files are written into a private staging directory beside OUT (same file system, mode 0700),
with random names; :meth:`Staging.release` renames it to OUT in one step and then records the
decision, removing OUT again when the record cannot be written. Leaving the ``with`` block
without a release (a refusal, a crash) removes the staging directory, so no partial output is
ever left behind, and no output stays without its record.
"""

from __future__ import annotations

import hashlib
import os
import secrets
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

from .refusal import Refused

T = TypeVar("T")


class Staging:
    def __init__(self, out: str | os.PathLike) -> None:
        self.out = Path(out)
        if self.out.exists() and (not self.out.is_dir() or any(self.out.iterdir())):
            raise Refused("--out", "exists", "the output directory exists and is not empty")
        self.out.parent.mkdir(parents=True, exist_ok=True)
        self.dir: Path | None = None
        self.files: list[dict[str, str]] = []

    def __enter__(self) -> "Staging":
        self.dir = Path(tempfile.mkdtemp(prefix=".anonymous-", suffix=".partial", dir=self.out.parent))
        return self

    def __exit__(self, *exc: object) -> None:
        if self.dir is not None and self.dir.exists():
            shutil.rmtree(self.dir, ignore_errors=True)

    def write(self, data: bytes, suffix: str) -> dict[str, str]:
        """Write ``data`` under a random name; returns ``{"file": name, "sha256": digest}``."""
        assert self.dir is not None, "use Staging as a context manager"
        name = secrets.token_hex(8) + suffix
        fd = os.open(self.dir / name, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        entry = {"file": name, "sha256": hashlib.sha256(data).hexdigest()}
        self.files.append(entry)
        return entry

    def release(self, record: Callable[[], T]) -> tuple[Path, T]:
        """Move the staged files to OUT (an empty OUT is replaced), then ``record()`` the
        decision; OUT is removed again when the record fails. Returns OUT and the record."""
        assert self.dir is not None
        if self.out.is_dir():
            self.out.rmdir()  # empty, checked on creation
        try:
            os.rename(self.dir, self.out)
        except OSError:
            raise Refused("--out", "exists", "the output directory appeared meanwhile") from None
        self.dir = None
        try:
            return self.out, record()
        except BaseException:
            shutil.rmtree(self.out, ignore_errors=True)
            raise
