"""A release record as a self-contained HTML evidence document (for a DPIA or an SOP file).

One file, no script, no external resource: its stylesheet is embedded and allowed by hash in
the document's own Content-Security-Policy (and its ``<meta>`` twin, for when it is opened from
disk).
"""
from __future__ import annotations

import base64
import hashlib

from fastapi import Request
from starlette.responses import Response

from ..models import Release
from ..releases import CLASSIFICATIONS
from .pages import HERE, templates

STYLE = (HERE / "static" / "evidence.css").read_text(encoding="utf-8")
STYLE_HASH = "sha256-" + base64.b64encode(hashlib.sha256(STYLE.encode()).digest()).decode()
CSP = f"default-src 'none'; style-src '{STYLE_HASH}'; base-uri 'none'; form-action 'none'"


def evidence_html(release: Release, issuer: str) -> str:
    return templates.get_template("evidence.html").render(
        r=release, style=STYLE, csp=CSP, classification=CLASSIFICATIONS.get(release.classification, ""),
        issuer=issuer)


def evidence_response(request: Request, release: Release) -> Response:
    html = evidence_html(release, request.app.state.settings.issuer)
    return Response(html, media_type="text/html; charset=utf-8", headers={
        "Content-Security-Policy": CSP,
        "Content-Disposition": f'attachment; filename="release-{release.id}-evidence.html"'})
