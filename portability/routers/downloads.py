"""The patient's download: ``GET /download/{token}``, with HTTP Range; every attempt audited.

A browser opening the link (``Accept: text/html``, no ``Range``) gets the landing page
(:mod:`portability.web.landing`), whose button fetches ``/download/{token}/medical-images.zip``;
a download tool gets the ZIP at the link itself. Unknown token: 404; expired or revoked link:
410; unsatisfiable range: 416. Besides the ZIP, a download token reaches only the copy's own
pages (:mod:`.bundle_view`): the same copy, looked at in the browser (single purpose).
"""
from __future__ import annotations

import re
from pathlib import Path

from fastapi import APIRouter, Depends, Request
from fastapi.responses import Response, StreamingResponse

from .. import audit
from ..errors import Gone, NotFound
from ..models import DownloadLink, Job, aware, utcnow
from .deps import db as get_db
from .links import PURPOSE, token_hash

router = APIRouter(tags=["downloads"])
CHUNK = 1 << 20
RANGE = re.compile(r"^bytes=(\d*)-(\d*)$")


def _file_chunks(path: Path, start: int, length: int):
    with open(path, "rb") as f:
        f.seek(start)
        while length > 0:
            data = f.read(min(CHUNK, length))
            if not data:
                break
            length -= len(data)
            yield data


class LinkGone(Gone):
    """The link exists but no longer works: ``reason`` is revoked, expired or file-gone."""

    def __init__(self, reason: str) -> None:
        super().__init__({"revoked": "this download link was revoked",
                          "expired": "this download link has expired",
                          "file-gone": "this bundle is no longer available"}[reason])
        self.reason = reason


def _resolve(db, token: str, client: str):
    with db.session() as s:
        link = s.query(DownloadLink).filter_by(token_sha256=token_hash(token)).one_or_none()
        if link is None or link.purpose != PURPOSE:
            audit.record("download.refused", reason="unknown-token", client=client)
            raise NotFound("this download link is not valid")
        request_id = s.get(Job, link.job_id).request_id
        reason = None
        if link.revoked_at is not None:
            reason = "revoked"
        elif aware(link.expires_at) <= utcnow():
            reason = "expired"
        elif not Path(link.file_path).exists():
            reason = "file-gone"
        if reason:
            audit.record("download.refused", request_id=request_id, link_id=link.id, reason=reason, client=client)
            raise LinkGone(reason)
        return link.id, request_id, Path(link.file_path), bool(link.encrypted)


def wants_page(request: Request) -> bool:
    """A browser navigating to the link (not a download tool, not a resumed download)."""
    return (request.method == "GET" and "range" not in request.headers
            and "text/html" in request.headers.get("accept", ""))


@router.get("/download/{token}")
@router.head("/download/{token}", include_in_schema=False)  # one operation in the API docs
def link(token: str, request: Request, db=Depends(get_db)):
    if wants_page(request):
        from ..web.landing import landing_page

        return landing_page(request, token)
    return download(token, request, db)


@router.get("/download/{token}/medical-images.zip")
@router.head("/download/{token}/medical-images.zip", include_in_schema=False)  # one operation in the API docs
def download(token: str, request: Request, db=Depends(get_db)):
    client = request.client.host if request.client else None
    link_id, request_id, path, encrypted = _resolve(db, token, client)
    size = path.stat().st_size
    headers = {"Accept-Ranges": "bytes", "Content-Type": "application/zip",
               "Content-Disposition": 'attachment; filename="medical-images.zip"',
               "Cache-Control": "no-store"}
    start, end, status = 0, size - 1, 200
    spec = request.headers.get("range")
    if spec:
        m = RANGE.match(spec.strip())
        if m and (m.group(1) or m.group(2)):
            if m.group(1):
                start = int(m.group(1))
                end = min(int(m.group(2)), size - 1) if m.group(2) else size - 1
            else:  # suffix: the last N bytes
                start = max(size - int(m.group(2)), 0)
            if start > end or start >= size:
                audit.record("download.refused", request_id=request_id, link_id=link_id,
                             reason="bad-range", range=spec, client=client)
                return Response(status_code=416, headers={"Content-Range": f"bytes */{size}"})
            status = 206
            headers["Content-Range"] = f"bytes {start}-{end}/{size}"
    length = end - start + 1
    headers["Content-Length"] = str(length)
    if request.method == "GET":
        with db.session() as s:
            s.get(DownloadLink, link_id).downloads += 1
    audit.record("bundle.download", request_id=request_id, link_id=link_id, method=request.method,
                 range=spec, start=start, length=length, size=size, status=status, encrypted=encrypted,
                 client=client)
    if request.method == "HEAD":
        return Response(status_code=status, headers=headers)
    return StreamingResponse(_file_chunks(path, start, length), status_code=status, headers=headers)
