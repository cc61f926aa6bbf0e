"""Download links: expiring, revocable, single-purpose tokens for one finished bundle.

Only the token's SHA-256 is stored. With ``password_protected`` the bundle is re-packed as an
AES-256 ZIP (pyzipper) whose password is shown once, to be given to the patient by another channel.
"""
from __future__ import annotations

import hashlib
import secrets
import shutil
import tempfile
import zipfile
from datetime import timedelta
from pathlib import Path

from fastapi import APIRouter, Depends, Request

from .. import audit
from ..auth import Staff, require
from ..errors import Conflict
from ..models import DownloadLink, Job, PortabilityRequest, utcnow
from ..schemas import LinkCreate, LinkInfo, LinkOut
from .deps import db as get_db, get_or_404

router = APIRouter(tags=["links"])
PURPOSE = "portability-bundle"


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def encrypt_copy(src: Path, dest: Path, password: str) -> None:
    """Re-pack ``src`` as an AES ZIP, entry by entry through a temporary file (memory stays flat)."""
    import pyzipper

    partial = dest.with_name(dest.name + ".partial")
    try:
        with zipfile.ZipFile(src) as zin, pyzipper.AESZipFile(
                partial, "w", compression=pyzipper.ZIP_STORED, encryption=pyzipper.WZ_AES) as zout:
            zout.setpassword(password.encode())
            with tempfile.TemporaryDirectory(dir=dest.parent) as tmp:
                for info in zin.infolist():
                    t = Path(tmp) / "entry"
                    with zin.open(info) as f, open(t, "wb") as g:
                        shutil.copyfileobj(f, g, 1 << 20)
                    zout.write(t, info.filename)
                    t.unlink()
        partial.replace(dest)
    finally:
        partial.unlink(missing_ok=True)


@router.post("/jobs/{job_id}/links", status_code=201, response_model=LinkOut)
def create_link(job_id: int, body: LinkCreate, request: Request, staff: Staff = Depends(require("staff")),
                db=Depends(get_db)) -> LinkOut:
    settings = request.app.state.settings
    with db.session() as s:
        job = get_or_404(s, Job, job_id, "job")
        if job.status != "done" or not job.result_path or not Path(job.result_path).exists():
            raise Conflict(f"job {job_id} has no finished bundle (status {job.status})")
        request_id, path = job.request_id, Path(job.result_path)
    token = secrets.token_urlsafe(32)
    password = None
    if body.password_protected:
        password = secrets.token_urlsafe(12)
        enc = path.with_name(f"{path.stem}-aes-{token_hash(token)[:12]}.zip")
        encrypt_copy(path, enc, password)
        path = enc
    ttl = body.ttl_hours if body.ttl_hours is not None else settings.token_ttl_hours
    with db.session() as s:
        req = s.get(PortabilityRequest, request_id)
        if req.status == "ready":  # the copy is handed over: the request is answered (Art. 12(3))
            req.status, req.closed_at = "delivered", utcnow()
        link = DownloadLink(token_sha256=token_hash(token), purpose=PURPOSE, job_id=job_id,
                            file_path=str(path), encrypted=int(body.password_protected),
                            created_by=staff.name, expires_at=utcnow() + timedelta(hours=ttl), downloads=0)
        s.add(link)
        s.flush()
        link_id, expires = link.id, link.expires_at
    audit.record("link.created", actor=staff.name, request_id=request_id, link_id=link_id, job_id=job_id,
                 encrypted=body.password_protected, expires_at=expires.isoformat())
    return LinkOut(id=link_id, url=f"/download/{token}", token=token, expires_at=expires, password=password)


@router.get("/jobs/{job_id}/links", response_model=list[LinkInfo])
def list_links(job_id: int, staff: Staff = Depends(require("staff")), db=Depends(get_db)) -> list[LinkInfo]:
    from sqlalchemy import select

    with db.session() as s:
        return [LinkInfo.model_validate(l) for l in
                s.scalars(select(DownloadLink).where(DownloadLink.job_id == job_id).order_by(DownloadLink.id))]


@router.post("/links/{link_id}/revoke", response_model=LinkInfo)
def revoke(link_id: int, staff: Staff = Depends(require("staff")), db=Depends(get_db)) -> LinkInfo:
    with db.session() as s:
        link = get_or_404(s, DownloadLink, link_id, "link")
        if link.revoked_at is None:
            link.revoked_at, link.revoked_by = utcnow(), staff.name
        request_id = s.get(Job, link.job_id).request_id
        info = LinkInfo.model_validate(link)
    audit.record("link.revoked", actor=staff.name, request_id=request_id, link_id=link_id)
    return info
