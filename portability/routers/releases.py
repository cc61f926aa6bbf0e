"""Release decisions over the API (issue 11).

=============================================  ===============================================
``POST /api/releases``                         decide (reviewer+): approve or reject a study
                                               de-identified with a profile, optionally for a rule
``GET /api/releases[?study=]``                 list decisions (reviewer+)
``GET /api/releases/{id}``                     one decision (reviewer+)
``GET /api/releases/{id}/evidence``            the decision as a self-contained HTML document
``GET /api/releases/standing?study=&rule=&profile=``  what the plugin's release gate asks (staff+,
                                               e.g. the plugin's bearer token): the decision in force
``POST /api/releases/{id}/void``               the gate found the stored study changed (staff+)
=============================================  ===============================================
"""
from __future__ import annotations

from fastapi import APIRouter, Depends, Query, Request
from pydantic import BaseModel, Field

from .. import releases
from ..auth import Staff, machine_or_staff, require
from ..web.evidence import evidence_response
from .deps import db as get_db

router = APIRouter(prefix="/api", tags=["releases"])


class ReleaseIn(BaseModel):
    study: str = Field(..., min_length=1, max_length=64, description="Orthanc study ID")
    profile: str = Field(..., min_length=1, max_length=64)
    rule: str | None = Field(None, max_length=128, description="the routing rule this release opens")
    decision: str = Field(..., description="approve | reject")
    rationale: str = Field(..., max_length=4000)
    classification: str = Field(..., description=", ".join(releases.CLASSIFICATIONS))
    clinician_name: str | None = Field(None, max_length=128)
    clinician_statement: str | None = Field(None, max_length=4000)


class VoidIn(BaseModel):
    reason: str = Field(..., min_length=1, max_length=500)


@router.post("/releases", status_code=201)
def decide(request: Request, body: ReleaseIn, staff: Staff = Depends(require("reviewer")), db=Depends(get_db)) -> dict:
    release = releases.decide(db, request.app.state.make_client(), request.app.state.engines,
                              releases.ReleaseRequest(**body.model_dump()), staff.name)
    return releases.to_dict(release)


@router.get("/releases")
def listing(study: str | None = None, staff: Staff = Depends(require("reviewer")), db=Depends(get_db)) -> list[dict]:
    return [releases.to_dict(r) for r in releases.listing(db, study)]


@router.get("/releases/standing")
def standing(study: str = Query(...), rule: str = Query(...), profile: str = Query(...),
             staff: Staff = Depends(machine_or_staff("staff")), db=Depends(get_db)) -> dict:
    release = releases.standing(db, study, rule, profile)
    if release is None:
        return {"decision": "none"}
    return {"decision": release.decision, "id": release.id, "manifest_sha256": release.manifest_sha256,
            "key_fingerprint": release.key_fingerprint, "instances": release.instance_count,
            "rationale": release.rationale, "decided_by": release.decided_by}


@router.get("/releases/{release_id}")
def one(release_id: int, staff: Staff = Depends(require("reviewer")), db=Depends(get_db)) -> dict:
    return releases.to_dict(releases.get(db, release_id))


@router.get("/releases/{release_id}/evidence")
def evidence(request: Request, release_id: int, staff: Staff = Depends(require("reviewer")), db=Depends(get_db)):
    return evidence_response(request, releases.get(db, release_id))


@router.post("/releases/{release_id}/void")
def void(release_id: int, body: VoidIn, staff: Staff = Depends(machine_or_staff("staff")), db=Depends(get_db)) -> dict:
    return releases.to_dict(releases.void(db, release_id, body.reason, staff.name))
