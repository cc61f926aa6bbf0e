"""The desk's JSON twin: every open request of every right, with its Art. 12(3) deadline.

``GET /api/desk/cases`` lists them (filters: right, state, assignee, overdue); a case is addressed
as ``{case_kind}/{ref_id}`` (``request/3``, ``erasure/1``, ``flag/2``, ``signing/5``, ...).
"""
from __future__ import annotations

from fastapi import APIRouter, Depends, Query
from pydantic import BaseModel, Field

from .. import audit, deadlines
from ..auth import Staff, require
from .deps import db as get_db

router = APIRouter(prefix="/api/desk", tags=["desk"])


class Assignment(BaseModel):
    assignee: str | None = Field(None, max_length=128, description="user name; empty to unassign")


class Extension(BaseModel):
    reason: str = Field(..., min_length=10, max_length=2000,
                        description="why more time is needed (complexity, number of requests)")
    channel: str = Field(..., pattern="^(" + "|".join(deadlines.NOTICE_CHANNELS) + ")$",
                         description="how the patient was told of the extension")
    evidence: str = Field(..., min_length=3, max_length=2000, description="reference of the notice sent")


@router.get("/cases", response_model=list[deadlines.Case])
def cases(right: str | None = Query(None, pattern="^(" + "|".join(deadlines.RIGHTS) + ")$"),
          state: str | None = Query(None, max_length=32), assignee: str | None = Query(None, max_length=128),
          overdue: bool | None = None, staff: Staff = Depends(require("staff")), db=Depends(get_db)) -> list[deadlines.Case]:
    return deadlines.open_cases(db, right=right, state=state, assignee=assignee, overdue=overdue)


@router.get("/cases/{case_kind}/{ref_id}", response_model=deadlines.Case)
def case(case_kind: str, ref_id: int, staff: Staff = Depends(require("staff")), db=Depends(get_db)) -> deadlines.Case:
    return deadlines.get_case(db, case_kind, ref_id)


@router.post("/cases/{case_kind}/{ref_id}/assignee", response_model=deadlines.Case)
def assign(case_kind: str, ref_id: int, body: Assignment, staff: Staff = Depends(require("staff")),
           db=Depends(get_db)) -> deadlines.Case:
    result = deadlines.assign(db, case_kind, ref_id, body.assignee)
    audit.record("case.assigned", actor=staff.name, case=f"{case_kind}/{ref_id}", assignee=body.assignee)
    return result


@router.post("/cases/{case_kind}/{ref_id}/extension", response_model=deadlines.Case)
def extend(case_kind: str, ref_id: int, body: Extension, staff: Staff = Depends(require("reviewer")),
           db=Depends(get_db)) -> deadlines.Case:
    """Art. 12(3): two more months, with the reason and the notice to the patient recorded."""
    result = deadlines.extend(db, case_kind, ref_id, reason=body.reason, channel=body.channel,
                              evidence=body.evidence, by=staff.name)
    audit.record("case.extended", actor=staff.name, case=f"{case_kind}/{ref_id}", due_at=result.due_at,
                 reason=body.reason, channel=body.channel, evidence=body.evidence)
    return result
