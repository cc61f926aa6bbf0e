"""The API's documentation pages, for staff only and offline.

``/openapi.json``, ``/docs`` (Swagger UI) and ``/redoc`` need a staff login. Their scripts and
styles come from the ``fastapi-offline`` package and are served from ``/docs-assets``: a hospital
network without internet access shows the same pages. Each page carries a Content-Security-Policy
that admits its own inline start-up block by hash and nothing from another origin (ReDoc's bundle
would otherwise fetch its logo from a CDN; it also writes its styles inline and searches in a
``blob:`` worker, which its policy allows). The OpenAPI document declares how to log
in: HTTP Basic with a staff account, a bearer token (machines), a patient token header.
"""
from __future__ import annotations

import base64
import hashlib
import re
from pathlib import Path

import fastapi_offline
from fastapi import Depends, FastAPI
from fastapi.openapi.docs import get_redoc_html, get_swagger_ui_html
from fastapi.openapi.utils import get_openapi
from fastapi.responses import HTMLResponse, JSONResponse
from fastapi.staticfiles import StaticFiles

from .auth import Staff, require

ASSETS = Path(fastapi_offline.__file__).resolve().parent / "static"
ASSETS_URL = "/docs-assets"
SECURITY_SCHEMES = {
    "staffLogin": {"type": "http", "scheme": "basic", "description": "a staff account (orthanc-gdpr users)"},
    "machineToken": {"type": "http", "scheme": "bearer", "description": "a machine's token (the Orthanc plugin, integrations)"},
    "patientToken": {"type": "apiKey", "in": "header", "name": "X-Patient-Token",
                     "description": "a patient's token, issued by staff, for their own records"},
}


def _hashes(html: str, tag: str) -> str:
    """CSP sources for the inline ``<tag>`` blocks of ``html``, by their SHA-256."""
    blocks = re.findall(rf"<{tag}>(.*?)</{tag}>", html, re.S)
    return " ".join(f"'sha256-{base64.b64encode(hashlib.sha256(b.encode()).digest()).decode()}'" for b in blocks)


def _with_policy(page: HTMLResponse, **extra: str) -> HTMLResponse:
    """``page`` with a policy that lets its own inline start-up script and style run, loads
    everything else from this origin only (images also as ``data:``, as the bundles' CSS has
    them) and ``extra`` directives on top."""
    html = page.body.decode()
    directives = {"default-src": "'self'", "script-src": f"'self' {_hashes(html, 'script')}".strip(),
                  "style-src": f"'self' {_hashes(html, 'style')}".strip(), "img-src": "'self' data:",
                  "frame-ancestors": "'none'", "base-uri": "'none'", "form-action": "'self'", **extra}
    page.headers["content-security-policy"] = "; ".join(f"{k} {v}" for k, v in directives.items())
    return page


def openapi_document(app: FastAPI) -> dict:
    if app.openapi_schema is None:
        doc = get_openapi(title=app.title, version=app.version, routes=app.routes,
                          description="GDPR data-subject rights beside Orthanc. Every route needs a login "
                                      "except patients' download links.")
        doc.setdefault("components", {})["securitySchemes"] = SECURITY_SCHEMES
        doc["security"] = [{"staffLogin": []}, {"machineToken": []}, {"patientToken": []}]
        app.openapi_schema = doc
    return app.openapi_schema


def install(app: FastAPI) -> None:
    app.mount(ASSETS_URL, StaticFiles(directory=ASSETS), name="docs-assets")
    staff = Depends(require("staff"))

    @app.get("/openapi.json", include_in_schema=False)
    def openapi(_: Staff = staff) -> JSONResponse:
        return JSONResponse(openapi_document(app))

    @app.get("/docs", include_in_schema=False)
    def swagger(_: Staff = staff) -> HTMLResponse:
        return _with_policy(get_swagger_ui_html(openapi_url="/openapi.json", title=f"{app.title}: API",
                                   swagger_js_url=f"{ASSETS_URL}/swagger-ui-bundle.js",
                                   swagger_css_url=f"{ASSETS_URL}/swagger-ui.css",
                                   swagger_favicon_url=f"{ASSETS_URL}/favicon.png",
                                   swagger_ui_parameters={"validatorUrl": None}))  # no badge from the internet

    @app.get("/redoc", include_in_schema=False)
    def redoc(_: Staff = staff) -> HTMLResponse:
        page = get_redoc_html(openapi_url="/openapi.json", title=f"{app.title}: API",
                              redoc_js_url=f"{ASSETS_URL}/redoc.standalone.js",
                              redoc_favicon_url=f"{ASSETS_URL}/favicon.png", with_google_fonts=False)
        return _with_policy(page, **{"style-src": "'self' 'unsafe-inline'", "worker-src": "'self' blob:"})
