"""The copy's own pages, straight from the bundle: ``GET /download/{token}/view/{path}``.

The landing page of a download link offers "look at your images in this browser": the copy's
INDEX.HTM, its language pages, stylesheet, thumbnails and offline viewer are served from the ZIP
as they are (the same files the patient gets, relative links unchanged). Only those files: DICOM,
FHIR and checksums are reachable through the download alone. The link's token is checked as for
the download (unknown: 404; expired or revoked: 410); an encrypted ZIP cannot be read without its
password, so it has no online view (404). Opening an overview page is audited (``bundle.view``).
"""
from __future__ import annotations

import re
import zipfile

from fastapi import APIRouter, Depends, Request
from fastapi.responses import Response

from .. import audit
from ..bundle.pages import CSP
from ..errors import NotFound
from .deps import db as get_db
from .downloads import _resolve

router = APIRouter(tags=["downloads"])
#: what the view serves: the overview, the language pages, the stylesheet, thumbnails, viewer
VIEWABLE = re.compile(r"^(INDEX\.HTM|IHE_PDI/(?:[A-Z]{2}\.HTM|STYLE\.CSS|S\d{4}\.PNG|V\d{4}/[A-Z0-9]{1,8}\.(?:HTM|JPG)))$")
TYPES = {".HTM": "text/html; charset=utf-8", ".CSS": "text/css", ".PNG": "image/png", ".JPG": "image/jpeg"}


def view_href(token: str) -> str:
    return f"/download/{token}/view/INDEX.HTM"


@router.get("/download/{token}/view/{path:path}", include_in_schema=False)
def view(token: str, path: str, request: Request, db=Depends(get_db)) -> Response:
    client = request.client.host if request.client else None
    link_id, request_id, bundle, encrypted = _resolve(db, token, client)
    if encrypted or not VIEWABLE.match(path):
        raise NotFound("no such page in this copy")
    try:
        with zipfile.ZipFile(bundle) as zf:
            data = zf.read(path)
    except KeyError:
        raise NotFound("no such page in this copy") from None
    if path.endswith(".HTM") and "/V" not in path:
        audit.record("bundle.view", request_id=request_id, link_id=link_id, page=path, client=client)
    # the pages' own policy (files of the copy only, no script), also as a header
    return Response(data, media_type=TYPES[path[-4:]],
                    headers={"content-security-policy": CSP + "; frame-ancestors 'none'", "cache-control": "no-store"})
