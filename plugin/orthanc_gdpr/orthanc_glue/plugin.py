"""Registration of orthanc-gdpr's callbacks in Orthanc (plugin 4.0 API)."""
from __future__ import annotations

import json
import sys
from typing import Any

import orthanc_gdpr

PLUGIN_NAME = "orthanc-gdpr"
HEALTH_URI = "/gdpr/health"


def health_payload() -> dict[str, Any]:
    """Body of ``GET /gdpr/health``."""
    return {
        "status": "ok",
        "plugin": PLUGIN_NAME,
        "version": orthanc_gdpr.__version__,
        "python": sys.version,
    }


def _answer_json(output: Any, body: Any) -> None:
    output.AnswerBuffer(json.dumps(body), "application/json")


def register(orthanc: Any) -> None:
    """Register every orthanc-gdpr callback with the given ``orthanc`` module."""

    def on_health(output: Any, uri: str, **request: Any) -> None:
        if request.get("method") != "GET":
            output.SendMethodNotAllowed("GET")
            return
        _answer_json(output, health_payload())

    orthanc.RegisterRestCallback(HEALTH_URI, on_health)

    orthanc.LogWarning(
        f"{PLUGIN_NAME} {orthanc_gdpr.__version__} registered {HEALTH_URI} "
        f"(Python {sys.version.split()[0]})"
    )
