"""Profiles bound to the plugin's key: the service de-identifies exactly as the plugin does."""
from __future__ import annotations

import threading

from orthanc_gdpr.deid import Deidentifier, Keyring, Profile, ProfileError, available, load_key, load_profile
from orthanc_gdpr.deid.keys import KeyFileError, fingerprint

from ..errors import ServiceError


class UnknownProfile(ServiceError):
    status, code = 422, "unknown-profile"


class NoKey(ServiceError):
    status, code = 409, "no-key"


class Engines:
    """One :class:`Deidentifier` per profile, created on first use (thread-safe)."""

    def __init__(self, key_file) -> None:
        self.key_file = key_file
        self._key: bytes | None = None
        self._engines: dict[str, Deidentifier] = {}
        self._lock = threading.Lock()

    @staticmethod
    def profiles() -> list[str]:
        return available()

    def profile(self, name: str) -> Profile:
        if name not in available():
            raise UnknownProfile(f"profile: no profile of that name; choose one of {', '.join(available())}")
        try:
            return load_profile(name)
        except ProfileError as e:
            raise UnknownProfile(f"profile: {e}") from None

    @property
    def key(self) -> bytes:
        if self._key is None:
            if self.key_file is None:
                raise NoKey("the service has no de-identification key: set ORTHANC_GDPR_SERVICE_PLUGIN_KEY_FILE "
                            "to the plugin's key file so that reviews show what the plugin will send")
            try:
                self._key = load_key(self.key_file)
            except KeyFileError as e:
                raise NoKey(f"the plugin's key file cannot be used: {e}") from None
        return self._key  # type: ignore[return-value]

    @property
    def key_fingerprint(self) -> str:
        return fingerprint(self.key)

    def engine(self, name: str) -> Deidentifier:
        with self._lock:
            engine = self._engines.get(name)
            if engine is None:
                engine = self._engines[name] = Deidentifier(self.profile(name), Keyring(self.key))
            return engine
