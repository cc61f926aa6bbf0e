"""Art. 19 notices to earlier recipients, and their lifecycle.

A rectification or an erasure creates one notice per earlier recipient and action
(:func:`record_once`). A notice is in one of four states:

``sent``      done: automatically (a corrected copy routed, a rejection note stored), or marked
              by a person with the channel and evidence (:func:`mark_sent`);
``to-send``   a person must tell the recipient (a research peer, a user who downloaded data, the
              patient's own bundle);
``failed``    an automatic attempt failed: a person takes over (mark sent, or close);
``closed``    closed without sending, with a reason (:func:`close`), e.g. "impossible:
              recipient no longer exists" (Art. 19: "unless this proves impossible or involves
              disproportionate effort").

A notice is due one month after it was created (Art. 12(3)); ``to-send`` and ``failed`` notices
past that date are *overdue* (:func:`listing` with ``overdue=True``).

Notices name recipients, never the patient. Their ``evidence`` should name the recipient's
reference (letter number, message id): the notices of an erasure outlive the patient's key, so
what is typed there is not sealed once the erasure is carried out.
"""
from __future__ import annotations

from datetime import datetime
from typing import Callable

from sqlalchemy import select

from . import audit
from .errors import Conflict, NotFound
from .models import Erasure, RecipientNotice, Rectification, aware, one_month_after, utcnow

STATES = ("to-send", "sent", "failed", "closed")
OPEN = ("to-send", "failed")
CHANNELS = ("letter", "email", "phone", "in-person", "dicom", "portal", "other")
#: who marks the notices the rights worker itself sent (a corrected copy, a rejection note)
AUTOMATIC = "orthanc-gdpr rights worker"


def _find(s, right: str, ref_id: int, recipient: str, action: str) -> RecipientNotice | None:
    return s.scalars(select(RecipientNotice).where(
        RecipientNotice.right == right, RecipientNotice.ref_id == ref_id,
        RecipientNotice.recipient == recipient, RecipientNotice.action == action)).first()


def summary(n: RecipientNotice) -> dict:
    return {"recipient": n.recipient, "action": n.action, "status": n.status, **(n.detail or {})}


def record_once(db, right: str, ref_id: int, recipient: dict, action: str,
                send: Callable[[], tuple[str, dict]]) -> dict:
    """Run ``send()`` at most once per (right, ref, recipient, action) and store its outcome
    (``send`` returns the state, ``sent`` or ``to-send``, and details). A notice that is already
    sent, to send or closed is left as it is; a failed one is tried again."""
    with db.session() as s:
        done = _find(s, right, ref_id, recipient["recipient"], action)
        if done is not None and done.status != "failed":
            return summary(done)
    state, detail = send()
    now = utcnow()
    with db.session() as s:
        row = _find(s, right, ref_id, recipient["recipient"], action)
        if row is None:
            row = RecipientNotice(right=right, ref_id=ref_id, recipient_kind=recipient["kind"],
                                  recipient=recipient["recipient"], action=action, created_at=now,
                                  due_at=one_month_after(now))
            s.add(row)
        row.status, row.detail = state, detail
        if state == "sent":
            row.sent_at, row.sent_by, row.channel = now, AUTOMATIC, "dicom"
        s.flush()
        notice_id = row.id
    audit.record(f"{right}.notice", **{f"{right}_id": ref_id}, notice_id=notice_id, recipient=recipient["recipient"],
                 recipient_kind=recipient["kind"], action=action, status=state, **detail)
    return {"recipient": recipient["recipient"], "action": action, "status": state, **detail}


def get(s, notice_id: int) -> RecipientNotice:
    n = s.get(RecipientNotice, notice_id)
    if n is None:
        raise NotFound(f"no notice {notice_id}")
    return n


def patient_of(s, right: str, ref_id: int) -> tuple[str, str] | None:
    """(PatientID, issuer) of the rectification or erasure a notice belongs to."""
    row = s.get(Rectification if right == "rectification" else Erasure, ref_id)
    return (row.patient_id, row.issuer) if row is not None else None


def mark_sent(db, notice_id: int, by: str, channel: str, evidence: str, sent_at: datetime | None = None) -> RecipientNotice:
    """A person told the recipient: when, by which channel, and what proves it."""
    with db.session() as s:
        n = get(s, notice_id)
        if n.status not in OPEN:
            raise Conflict(f"notice {notice_id} is {n.status}: only notices to send or failed ones are marked sent")
        n.status, n.sent_by, n.channel, n.evidence = "sent", by, channel, evidence
        n.sent_at = sent_at or utcnow()
        patient = patient_of(s, n.right, n.ref_id)
        right, ref_id = n.right, n.ref_id
    _audit("notice.sent", by, notice_id, right, ref_id, patient, channel=channel, evidence=evidence,
           sent_at=aware(n.sent_at))
    return n


def close(db, notice_id: int, by: str, reason: str) -> RecipientNotice:
    """Close a notice that will not be sent, with the reason (impossible, disproportionate, ...)."""
    with db.session() as s:
        n = get(s, notice_id)
        if n.status not in OPEN:
            raise Conflict(f"notice {notice_id} is {n.status}: only notices to send or failed ones are closed")
        n.status, n.closed_by, n.closed_at, n.close_reason = "closed", by, utcnow(), reason
        patient = patient_of(s, n.right, n.ref_id)
        right, ref_id = n.right, n.ref_id
    _audit("notice.closed", by, notice_id, right, ref_id, patient, reason=reason)
    return n


def _audit(event: str, by: str, notice_id: int, right: str, ref_id: int, patient: tuple[str, str] | None,
           **fields) -> None:
    who = {"patient_id": patient[0], "issuer": patient[1]} if patient else {}
    audit.record(event, actor=by, notice_id=notice_id, right=right, **{f"{right}_id": ref_id}, **who, **fields)


def listing(db, *, state: str | None = None, overdue: bool | None = None, right: str | None = None,
            ref_id: int | None = None) -> list[RecipientNotice]:
    """Notices, oldest first; ``overdue=True``: open notices past their due date (``False``: the others)."""
    q = select(RecipientNotice).order_by(RecipientNotice.id)
    if state:
        q = q.where(RecipientNotice.status == state)
    if right:
        q = q.where(RecipientNotice.right == right)
    if ref_id is not None:
        q = q.where(RecipientNotice.ref_id == ref_id)
    with db.session() as s:
        rows = list(s.scalars(q))
    if overdue is not None:
        rows = [n for n in rows if is_overdue(n) == overdue]
    return rows


def is_overdue(n: RecipientNotice, now: datetime | None = None) -> bool:
    return n.status in OPEN and n.due_at is not None and aware(n.due_at) < (now or utcnow())
