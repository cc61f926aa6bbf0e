"""Access (Art. 15) and portability (Art. 20): file the request with how identity was verified,
prepare the copy (a bundle job with a progress bar), issue, copy and revoke the patient's link,
and see the link's downloads."""
from __future__ import annotations

from fastapi import APIRouter, Depends, Request
from sqlalchemy import select
from starlette.responses import RedirectResponse

from ...auth import Staff
from ...i18n import LANGUAGES, translator
from ...models import AuditEvent, DownloadLink, Job, PortabilityRequest, aware, utcnow
from ...routers import jobs as jobs_api
from ...routers import links as links_api
from ...routers import requests as requests_api
from ...routers.deps import get_or_404
from ...schemas import IdentityVerification, LinkCreate, RequestCreate
from ..pages import PageError
from ..session import web_user
from . import attempt, create_once, form_data, page, parse

router = APIRouter(prefix="/ui/desk", include_in_schema=False)
IDENTITY_METHODS = [("id-card-in-person", "Identity card or passport, in person"),
                    ("eid", "Electronic identity (eID)"),
                    ("known-to-staff", "Known to the staff, in person"),
                    ("video-call", "Video call with an identity document")]
LABELS = {"kind": "Type of request", "patient_id": "Patient ID", "issuer": "Issuer of the patient ID",
          "language": "The patient's language for the copy",
          "method": "How identity was verified", "notes": "Notes on the identity check",
          "ttl_hours": "Link valid for", "form_token": "Form"}
#: the copy's languages a patient can choose (each in its own name)
LANGUAGE_CHOICES = [(code, translator(code).name) for code in LANGUAGES]
TTL_CHOICES = [("24", "1 day"), ("72", "3 days"), ("168", "7 days"), ("336", "14 days")]


@router.get("/requests/new")
def new_request(request: Request, staff: Staff = Depends(web_user("staff"))):
    return page(request, "desk/request_new.html", values={"kind": "portability"}, methods=IDENTITY_METHODS,
                languages=LANGUAGE_CHOICES)


@router.post("/requests/new")
def file_request(request: Request, data: dict = Depends(form_data), staff: Staff = Depends(web_user("staff"))):
    db = request.app.state.db
    fields = {k: data.get(k, "") for k in ("kind", "patient_id", "issuer")}
    if data.get("language"):  # none chosen: the site's languages only
        fields["language"] = data["language"]
    body, errors = parse(RequestCreate, fields, LABELS)
    identity, more = parse(IdentityVerification, {"method": data.get("method", ""), "notes": data.get("notes", "")},
                           LABELS)
    errors += more
    if not data.get("patient_id"):
        errors = [e for e in errors if e[0] != "form"] + [("patient_id", "Patient ID: enter the patient's ID")]
    if not errors:
        def create() -> int:
            req = requests_api.create(body, request, staff, db)
            requests_api.verify_identity(req.id, identity, staff, db)
            return req.id
        request_id, errors = create_once(request, data, "request", create)
    if errors:
        return page(request, "desk/request_new.html", errors=errors, values=data, methods=IDENTITY_METHODS,
                    languages=LANGUAGE_CHOICES, form_token=data.get("form_token"))
    return RedirectResponse(f"/ui/desk/requests/{request_id}", status_code=303)


def _request_page(request: Request, request_id: int, errors=None, new_link=None, status=None):
    db = request.app.state.db
    with db.session() as s:
        req = get_or_404(s, PortabilityRequest, request_id, "request")
        jobs = list(s.scalars(select(Job).where(Job.request_id == request_id).order_by(Job.id.desc())))
        job = jobs[0] if jobs else None
        links = list(s.scalars(select(DownloadLink).where(DownloadLink.job_id.in_([j.id for j in jobs]))
                               .order_by(DownloadLink.id.desc()))) if jobs else []
        downloads = list(s.scalars(select(AuditEvent).where(
            AuditEvent.request_id == request_id,
            AuditEvent.event.in_(("bundle.download", "download.refused"))).order_by(AuditEvent.seq.desc())))
    now = utcnow()
    link_rows = [{"link": link, "state": "revoked" if link.revoked_at else
                  "expired" if aware(link.expires_at) <= now else "active"} for link in links]
    return page(request, "desk/request.html", status=status, errors=errors, req=requests_api.out(req), job=job,
                links=link_rows, downloads=downloads, new_link=new_link, ttl_choices=TTL_CHOICES,
                methods=dict(IDENTITY_METHODS))


@router.get("/requests/{request_id}")
def show_request(request: Request, request_id: int, staff: Staff = Depends(web_user("staff"))):
    return _request_page(request, request_id)


@router.post("/requests/{request_id}/bundle")
def start_bundle(request: Request, request_id: int, staff: Staff = Depends(web_user("staff"))):
    _, errors = attempt(lambda: requests_api.start_bundle(request_id, request, staff, request.app.state.db))
    if errors:
        return _request_page(request, request_id, errors=errors)
    return RedirectResponse(f"/ui/desk/requests/{request_id}", status_code=303)


@router.post("/jobs/{job_id}/retry")
def retry_bundle(request: Request, job_id: int, staff: Staff = Depends(web_user("staff"))):
    job, errors = attempt(lambda: jobs_api.retry(job_id, request, staff, request.app.state.db))
    if errors:
        raise PageError(409, "The copy cannot be prepared again", errors[0][1])
    return RedirectResponse(f"/ui/desk/requests/{job.request_id}", status_code=303)


@router.get("/jobs/{job_id}/progress")
def progress(request: Request, job_id: int, staff: Staff = Depends(web_user("staff"))) -> dict:
    """What the progress bar shows (polled by ``static/desk.js``)."""
    job = jobs_api.get(job_id, staff, request.app.state.db)
    return {"status": job.status, "phase": job.phase, "done": job.done, "total": job.total}


@router.post("/jobs/{job_id}/links")
def issue_link(request: Request, job_id: int, data: dict = Depends(form_data),
               staff: Staff = Depends(web_user("staff"))):
    db = request.app.state.db
    with db.session() as s:
        request_id = get_or_404(s, Job, job_id, "job").request_id
    body, errors = parse(LinkCreate, {"ttl_hours": data.get("ttl_hours", ""),
                                      "password_protected": data.get("password_protected") == "yes"}, LABELS)
    if data.get("ttl_hours") not in dict(TTL_CHOICES):
        errors = [("ttl_hours", "Link valid for: choose one of the listed durations")]
    link = None
    if not errors:
        link, errors = attempt(lambda: links_api.create_link(job_id, body, request, staff, db), "ttl_hours")
    if errors:
        return _request_page(request, request_id, errors=errors)
    url = str(request.base_url).rstrip("/") + link.url
    # The token is shown once, on this answer only (never stored, never in a redirect).
    return _request_page(request, request_id, new_link={"url": url, "password": link.password,
                                                        "expires_at": link.expires_at}, status=201)


@router.post("/links/{link_id}/revoke")
def revoke_link(request: Request, link_id: int, staff: Staff = Depends(web_user("staff"))):
    db = request.app.state.db
    links_api.revoke(link_id, staff, db)
    with db.session() as s:
        request_id = s.get(Job, s.get(DownloadLink, link_id).job_id).request_id
    return RedirectResponse(f"/ui/desk/requests/{request_id}", status_code=303)
