"""``fullUrl`` of FHIR resources the service exports: ``urn:uuid:`` and a name-based UUID (RFC 9562
version 5), so the same resource gets the same, valid UUID in every export."""
from __future__ import annotations

import uuid

NAMESPACE = uuid.uuid5(uuid.NAMESPACE_URL, "urn:orthanc-gdpr:portability-service")


def urn_uuid(*parts: object) -> str:
    """``urn:uuid:`` of the resource named by ``parts`` (e.g. ``"consent", id, recorded_at``)."""
    return f"urn:uuid:{uuid.uuid5(NAMESPACE, '|'.join(str(p) for p in parts))}"
