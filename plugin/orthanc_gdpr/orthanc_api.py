"""The few Orthanc REST calls the routing and download code needs, behind one small interface.

The plugin glue implements it with ``orthanc.RestApi*`` (:mod:`orthanc_gdpr.orthanc_glue.api`);
routing and downloads are written against :class:`OrthancApi` only, so they run unchanged on any
implementation of it.
"""

from __future__ import annotations

import json
from typing import Any, Protocol



class OrthancApiError(Exception):
    """A REST call to Orthanc failed (resource missing, destination refused, server down...)."""


class OrthancApi(Protocol):
    def get(self, uri: str) -> bytes: ...

    def post(self, uri: str, body: bytes | str) -> bytes: ...


def get_json(api: OrthancApi, uri: str) -> Any:
    return json.loads(api.get(uri))


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
