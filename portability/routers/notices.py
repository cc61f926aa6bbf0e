"""Art. 19 notices to earlier recipients: list (by state, overdue), mark sent, close with a reason.

Routes (staff): ``GET /api/notices?state=&overdue=&right=&ref_id=``, ``GET /api/notices/{id}``,
``POST /api/notices/{id}/sent``, ``POST /api/notices/{id}/close``.
"""
from __future__ import annotations

from datetime import datetime
from typing import Literal

from fastapi import APIRouter, Depends
from pydantic import BaseModel, ConfigDict, Field

from .. import notices
from ..auth import Staff, require
from ..models import RecipientNotice, aware
from .deps import db as get_db

router = APIRouter(prefix="/api/notices", tags=["notices"])

State = Literal[notices.STATES]
Channel = Literal[notices.CHANNELS]
Right = Literal["rectification", "erasure"]


class NoticeOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)
    id: int
    right: Right
    ref_id: int = Field(..., description="the rectification or erasure this notice belongs to")
    recipient_kind: str = Field(..., description="dicom, peer, dicomweb, user-download, patient-bundle")
    recipient: str = Field(..., description="e.g. modality:RESEARCH, user:bob, request:12")
    action: str = Field(..., description="corrected-copy, rejection-note-<code>, notice")
    state: State
    overdue: bool
    detail: dict | None
    created_at: datetime
    due_at: datetime | None
    sent_at: datetime | None
    sent_by: str | None
    channel: str | None
    evidence: str | None
    closed_at: datetime | None
    closed_by: str | None
    close_reason: str | None


class NoticeSent(BaseModel):
    channel: Channel
    evidence: str = Field(..., min_length=3, max_length=2000,
                          description="what proves it: letter reference, e-mail message id, call note")
    sent_at: datetime | None = Field(None, description="when it was sent (default: now)")


class NoticeClose(BaseModel):
    reason: str = Field(..., min_length=3, max_length=2000,
                        description="why it will not be sent, e.g. impossible: the recipient no longer exists")


def out(n: RecipientNotice) -> NoticeOut:
    data = {k: getattr(n, k, None) for k in NoticeOut.model_fields}
    data.update({k: aware(data[k]) for k in ("created_at", "due_at", "sent_at", "closed_at")})
    return NoticeOut(**data | {"state": n.status, "overdue": notices.is_overdue(n)})


@router.get("", response_model=list[NoticeOut])
def list_notices(state: State | None = None, overdue: bool | None = None,
                 right: Right | None = None, ref_id: int | None = None,
                 staff: Staff = Depends(require("staff")), db=Depends(get_db)) -> list[NoticeOut]:
    """Art. 19 notices, oldest first. ``overdue=true``: still to send (or failed) past their due date."""
    return [out(n) for n in notices.listing(db, state=state, overdue=overdue, right=right, ref_id=ref_id)]


@router.get("/{notice_id}", response_model=NoticeOut)
def get_notice(notice_id: int, staff: Staff = Depends(require("staff")), db=Depends(get_db)) -> NoticeOut:
    with db.session() as s:
        return out(notices.get(s, notice_id))


@router.post("/{notice_id}/sent", response_model=NoticeOut)
def mark_sent(notice_id: int, body: NoticeSent, staff: Staff = Depends(require("staff")),
              db=Depends(get_db)) -> NoticeOut:
    """Record that the recipient was told (who: the caller; when; channel; evidence)."""
    return out(notices.mark_sent(db, notice_id, staff.name, body.channel, body.evidence, body.sent_at))


@router.post("/{notice_id}/close", response_model=NoticeOut)
def close_notice(notice_id: int, body: NoticeClose, staff: Staff = Depends(require("staff")),
                 db=Depends(get_db)) -> NoticeOut:
    """Close a notice that will not be sent, with the reason."""
    return out(notices.close(db, notice_id, staff.name, body.reason))
