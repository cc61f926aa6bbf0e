"""Who is asking Orthanc: every HTTP request's credentials, checked against the service's accounts.

With ``"AuthenticateWithService": true`` the plugin checks each request's HTTP Basic credentials
with the portability service (``POST /api/logins/verify``, with the plugin's own machine token):
the same accounts, roles, throttling and audit as the service itself. A verified credential is
remembered for ``LoginCacheSeconds`` (default 30) under a keyed hash of the whole header, so
Orthanc Explorer's many requests cost one password check; a disabled account or a new password
takes effect within that time. A service that does not answer means "no": the request is refused
(fail closed), never let through.

Machines have their own credentials: the service logs into Orthanc as ``orthanc-gdpr-service``
with a generated secret (``ServiceCredentialFile``); the plugin's de-identification processes
use Orthanc's own REST token for the plugin. No ``orthanc`` import here.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import secrets
import threading
import time
from dataclasses import dataclass

import requests

SERVICE_USER = "orthanc-gdpr-service"  #: the portability service's machine login into Orthanc
MACHINE = "machine"
CARE_ROLES = ("clinician", "dpo")


@dataclass(frozen=True)
class Identity:
    name: str
    role: str  #: staff, clinician, reviewer, dpo, or machine

    @property
    def may_act_for_care(self) -> bool:
        return self.role in CARE_ROLES


class AccountsUnavailable(Exception):
    """The account store did not answer: refuse, never guess."""


def basic_credentials(authorization: str) -> tuple[str, str] | None:
    """(name, password) of an HTTP Basic "Authorization" header, else None."""
    scheme, _, value = authorization.partition(" ")
    if scheme.lower() != "basic":
        return None
    try:
        name, sep, password = base64.b64decode(value.strip(), validate=True).decode("utf-8").partition(":")
    except (binascii.Error, UnicodeDecodeError, ValueError):
        return None
    return (name, password) if sep and name else None


class AccountGate:
    """Verifies "Authorization" headers against the service, caching successes briefly."""

    def __init__(self, service_url: str, token: str, service_credential: str = "",
                 cache_seconds: float = 30.0, timeout: float = 5.0):
        self.url, self.token = service_url.rstrip("/"), token
        self.service_credential, self.cache_seconds, self.timeout = service_credential, cache_seconds, timeout
        self._key = secrets.token_bytes(32)
        self._lock = threading.Lock()
        self._cache: dict[bytes, tuple[Identity, float]] = {}
        self._session = requests.Session()

    def _digest(self, authorization: str) -> bytes:
        return hmac.new(self._key, authorization.encode(), hashlib.sha256).digest()

    def cached(self, authorization: str) -> Identity | None:
        """The identity of a recently verified header, without asking anyone."""
        if not authorization:
            return None
        with self._lock:
            entry = self._cache.get(self._digest(authorization))
        return entry[0] if entry is not None and entry[1] > time.monotonic() else None

    def identify(self, authorization: str, client: str) -> Identity | None:
        """The person or machine behind ``authorization``, or None (no, wrong or locked login).

        Raises :class:`AccountsUnavailable` when the service cannot say."""
        found = self.cached(authorization)
        if found is not None:
            return found
        credentials = basic_credentials(authorization)
        if credentials is None:
            return None
        name, password = credentials
        if name == SERVICE_USER:
            ok = bool(self.service_credential) and hmac.compare_digest(password.encode(), self.service_credential.encode())
            return self._remember(authorization, Identity(SERVICE_USER, MACHINE)) if ok else None
        try:
            r = self._session.post(f"{self.url}/api/logins/verify", timeout=self.timeout,
                                   headers={"Authorization": f"Bearer {self.token}"},
                                   json={"name": name, "password": password, "client": client})
        except requests.RequestException as e:
            raise AccountsUnavailable(type(e).__name__) from None
        if r.status_code in (401, 429):
            return None
        if r.status_code != 200:
            raise AccountsUnavailable(f"account service answered {r.status_code}")
        try:
            doc = r.json()
            identity = Identity(str(doc["name"]), str(doc["role"]))
        except (ValueError, KeyError, TypeError):
            raise AccountsUnavailable("malformed answer from the account service") from None
        return self._remember(authorization, identity)

    def _remember(self, authorization: str, identity: Identity) -> Identity:
        now = time.monotonic()
        with self._lock:
            if len(self._cache) > 10_000:
                self._cache = {k: v for k, v in self._cache.items() if v[1] > now}
            self._cache[self._digest(authorization)] = (identity, now + self.cache_seconds)
        return identity
