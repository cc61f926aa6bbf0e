"""Bundle jobs: progress, retry."""
from __future__ import annotations

from fastapi import APIRouter, Depends, Request

from .. import audit, jobs
from ..auth import Staff, require
from ..errors import Conflict
from ..models import Job
from ..schemas import JobOut
from .deps import db as get_db, get_or_404

router = APIRouter(prefix="/jobs", tags=["jobs"])


@router.get("/{job_id}", response_model=JobOut)
def get(job_id: int, staff: Staff = Depends(require("staff")), db=Depends(get_db)) -> JobOut:
    with db.session() as s:
        return JobOut.model_validate(get_or_404(s, Job, job_id, "job"))


@router.post("/{job_id}/retry", status_code=202, response_model=JobOut)
def retry(job_id: int, request: Request, staff: Staff = Depends(require("staff")),
          db=Depends(get_db)) -> JobOut:
    with db.session() as s:
        job = get_or_404(s, Job, job_id, "job")
        if job.status != "failed":
            raise Conflict(f"job {job_id} is {job.status}: only failed jobs can be retried")
        request_id = job.request_id
    new_id = jobs.enqueue(db, request_id)
    if request.app.state.worker:
        request.app.state.worker.wake.set()
    audit.record("bundle.retried", actor=staff.name, request_id=request_id, job_id=new_id, previous=job_id)
    with db.session() as s:
        return JobOut.model_validate(s.get(Job, new_id))
