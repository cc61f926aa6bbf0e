""":class:`~orthanc_gdpr.orthanc_api.OrthancApi` on top of the ``orthanc`` module (in-process)."""

from __future__ import annotations

from typing import Any

from ..orthanc_api import OrthancApiError


class PluginApi:
    def __init__(self, orthanc: Any):
        self._orthanc = orthanc

    def get(self, uri: str) -> bytes:
        try:
            return self._orthanc.RestApiGet(uri)
        except self._orthanc.OrthancException as e:
            raise OrthancApiError(f"GET {uri}: {e}") from None

    def post(self, uri: str, body: bytes | str) -> bytes:
        try:
            return self._orthanc.RestApiPost(uri, body)
        except self._orthanc.OrthancException as e:
            raise OrthancApiError(f"POST {uri}: {e}") from None
