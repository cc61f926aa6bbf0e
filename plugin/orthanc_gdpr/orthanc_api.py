"""The few Orthanc REST calls the routing and download code needs, behind one small interface.

Inside Orthanc the plugin glue implements it with ``orthanc.RestApi*``; outside (tests, the
command line, the service) :class:`RestClient` implements it over HTTP. Features are written
against :class:`OrthancApi` and never see which one they got.
"""

from __future__ import annotations

import json
from typing import Any, Protocol

import requests


class OrthancApiError(Exception):
    """A REST call to Orthanc failed (resource missing, destination refused, server down...)."""


class OrthancApi(Protocol):
    def get(self, uri: str) -> bytes: ...

    def post(self, uri: str, body: bytes | str) -> bytes: ...


def get_json(api: OrthancApi, uri: str) -> Any:
    return json.loads(api.get(uri))


def post_json(api: OrthancApi, uri: str, payload: Any) -> Any:
    answer = api.post(uri, json.dumps(payload))
    return json.loads(answer) if answer else None


def patient_identity(api: OrthancApi, level: str, resource: str) -> tuple[str, str]:
    """PatientID and IssuerOfPatientID of a study, series or instance: what the consent
    registry is keyed by. The issuer is not among Orthanc's main patient tags, so it is read
    from the data itself. Raises OrthancApiError for a missing resource."""
    tags = get_json(api, f"/{level}/{resource}/patient").get("MainDicomTags") or {}
    patient_id, issuer = tags.get("PatientID", ""), tags.get("IssuerOfPatientID")
    if issuer is None:
        if level != "instances":
            first = get_json(api, f"/{level}/{resource}/instances")
            resource = first[0]["ID"] if first else ""
        if resource:
            issuer = get_json(api, f"/instances/{resource}/simplified-tags").get("IssuerOfPatientID")
    return str(patient_id or ""), issuer if isinstance(issuer, str) else ""


class RestClient:
    """:class:`OrthancApi` over HTTP with ``requests``."""

    def __init__(self, url: str, username: str | None = None, password: str | None = None,
                 timeout: float = 60):
        self.url = url.rstrip("/")
        self.session = requests.Session()
        # Orthanc gzips answers for clients that accept it: ~10x slower for DICOM files.
        self.session.headers["Accept-Encoding"] = "identity"
        if username is not None:
            self.session.auth = (username, password or "")
        self.timeout = timeout

    def _call(self, method: str, uri: str, body: bytes | str | None = None) -> bytes:
        try:
            r = self.session.request(method, self.url + uri, data=body, timeout=self.timeout)
        except requests.RequestException as e:
            raise OrthancApiError(f"{method} {uri}: {type(e).__name__}") from None
        if r.status_code >= 400:
            raise OrthancApiError(f"{method} {uri}: HTTP {r.status_code}")
        return r.content

    def get(self, uri: str) -> bytes:
        return self._call("GET", uri)

    def post(self, uri: str, body: bytes | str) -> bytes:
        return self._call("POST", uri, body)
