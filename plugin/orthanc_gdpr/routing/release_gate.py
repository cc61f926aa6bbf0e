"""The release gate of rules with ``"review": "required"``: nothing leaves before a person
released exactly this study, for this rule and profile.

The plugin asks the portability service (``GET {url}/api/releases/standing``, bearer token) at
send time; the service never pushes. Fail closed: a service that does not answer means "wait",
never "send". An approval carries the key fingerprint and the manifest hash of what the reviewer
saw; :meth:`ReleaseGate.check` compares them with the study as stored now, de-identified again
with this plugin's key. A difference voids the release (reported to the service) and the job
waits for a new review.
"""

from __future__ import annotations

from dataclasses import dataclass

import requests

from ..deid.keys import fingerprint
from ..deid.manifest import Manifest


class ReleaseUnavailable(Exception):
    """The release service did not answer (the job keeps waiting)."""


@dataclass(frozen=True)
class Standing:
    decision: str  #: "approve", "reject" or "none"
    release: int | None = None
    manifest_sha256: str | None = None
    key_fingerprint: str | None = None
    rationale: str = ""
    decided_by: str = ""


class ReleaseService:
    """The portability service's release records."""

    def __init__(self, url: str, token: str = "", timeout: float = 10):
        self.url, self.token, self.timeout = url.rstrip("/"), token, timeout

    def _headers(self) -> dict:
        return {"Authorization": f"Bearer {self.token}"} if self.token else {}

    def standing(self, study: str, rule: str, profile: str) -> Standing:
        try:
            r = requests.get(f"{self.url}/api/releases/standing", timeout=self.timeout, headers=self._headers(),
                             params={"study": study, "rule": rule, "profile": profile})
            r.raise_for_status()
            doc = r.json()
            decision = doc["decision"]
            if decision not in ("approve", "reject", "none"):
                raise ValueError(decision)
            return Standing(decision=decision, release=doc.get("id"), manifest_sha256=doc.get("manifest_sha256"),
                            key_fingerprint=doc.get("key_fingerprint"), rationale=str(doc.get("rationale") or ""),
                            decided_by=str(doc.get("decided_by") or ""))
        except (requests.RequestException, ValueError, KeyError, TypeError) as e:
            raise ReleaseUnavailable(type(e).__name__) from None

    def void(self, release: int, reason: str) -> bool:
        """Tell the service the release no longer applies; False when it could not be told
        (the job waits either way)."""
        try:
            r = requests.post(f"{self.url}/api/releases/{release}/void", timeout=self.timeout,
                              headers=self._headers(), json={"reason": reason})
            return r.status_code in (200, 409)
        except requests.RequestException:
            return False


class ReleaseGate:
    def __init__(self, service: ReleaseService, key: bytes, expiry_days: float, poll_seconds: float):
        self.service = service
        self.key_fingerprint = fingerprint(key)
        self.expiry_seconds = expiry_days * 86400.0
        self.poll_seconds = poll_seconds

    def mismatch(self, standing: Standing, manifest: Manifest) -> str | None:
        """Why an approval does not cover what would be sent now (None: it does)."""
        if standing.key_fingerprint != self.key_fingerprint:
            return "the release was made with another key"
        if standing.manifest_sha256 != manifest.hash:
            return "the stored study changed since the review (manifest hash differs)"
        return None
