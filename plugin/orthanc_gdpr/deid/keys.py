"""The secret key behind pseudonyms, UID remapping and date shifts.

The key lives apart from the data: in a key file (owner-only permissions) or in the environment
variable ``ORTHANC_GDPR_KEY``. It never appears in output, reports or logs.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import secrets
from pathlib import Path

KEY_ENV = "ORTHANC_GDPR_KEY"
MIN_KEY_BYTES = 16


class KeyFileError(ValueError):
    """A key that is missing, unreadable or too short."""


def _decode(text: bytes, where: str) -> bytes:
    text = text.strip()
    try:
        key = bytes.fromhex(text.decode("ascii"))
    except (UnicodeDecodeError, ValueError):
        key = text
    if len(key) < MIN_KEY_BYTES:
        raise KeyFileError(f"the key from {where} is shorter than {MIN_KEY_BYTES} bytes")
    return key


def load_key(key_file: str | os.PathLike | None = None) -> bytes | None:
    """Read the key from ``key_file``, else from ``$ORTHANC_GDPR_KEY``; None when neither is set."""
    if key_file is not None:
        try:
            return _decode(Path(key_file).read_bytes(), f"key file {key_file}")
        except OSError as e:
            raise KeyFileError(f"cannot read key file {key_file}: {e.strerror}") from None
    env = os.environ.get(KEY_ENV)
    if env:
        return _decode(env.encode(), f"${KEY_ENV}")
    return None


def create_key_file(path: str | os.PathLike) -> bytes:
    """Write a fresh random 256-bit key as hex, readable by its owner only."""
    key = secrets.token_bytes(32)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(key.hex() + "\n")
    return key


def fingerprint(key: bytes) -> str:
    """A short public name for a key, for release records: equal keys give equal fingerprints,
    and the key cannot be recovered from it (HMAC-SHA256 under the key, truncated)."""
    digest = hmac.new(key, b"orthanc-gdpr key fingerprint v1", hashlib.sha256).hexdigest()
    return f"hmac-sha256:{digest[:32]}"


class Keyring:
    """Keyed, deterministic digests: the same input and key always give the same output."""

    def __init__(self, secret: bytes):
        if len(secret) < MIN_KEY_BYTES:
            raise KeyFileError(f"key shorter than {MIN_KEY_BYTES} bytes")
        self._secret = secret

    def digest(self, purpose: str, value: str) -> bytes:
        """HMAC-SHA256 of ``value``, domain-separated by ``purpose``."""
        message = purpose.encode() + b"\x00" + value.encode("utf-8", "surrogateescape")
        return hmac.new(self._secret, message, hashlib.sha256).digest()

    def __repr__(self) -> str:  # never show the secret
        return "Keyring(<secret>)"
