"""Read the audit trail (DPO only)."""
from __future__ import annotations

from fastapi import APIRouter, Depends
from sqlalchemy import select

from ..auth import Staff, require
from ..models import AuditEvent
from ..schemas import AuditOut
from .deps import db as get_db

router = APIRouter(prefix="/audit", tags=["audit"])


@router.get("", response_model=list[AuditOut])
def list_events(request_id: int | None = None, event: str | None = None,
                staff: Staff = Depends(require("dpo")), db=Depends(get_db)) -> list[AuditOut]:
    q = select(AuditEvent).order_by(AuditEvent.id)
    if request_id is not None:
        q = q.where(AuditEvent.request_id == request_id)
    if event:
        q = q.where(AuditEvent.event == event)
    with db.session() as s:
        return [AuditOut.model_validate(e) for e in s.scalars(q)]
