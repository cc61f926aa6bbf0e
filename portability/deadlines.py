"""Art. 12(3) deadlines of every data-subject request, and the desk's list of open cases.

A request of any right lives in its own table (``portability_requests``, ``rectifications``,
``erasures``, ``patient_flags``, ``consent_signings``). Its answer is due one month after receipt;
the controller may extend that by two further months when it records why and tells the patient
within the first month. The extension and the person handling the case are kept in
``case_tracking``, one row per case, created when first needed.
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from pydantic import BaseModel
from sqlalchemy import select

from .errors import Conflict, NotFound
from .models import (CaseTracking, ConsentSigning, Erasure, PatientFlag, PortabilityRequest,
                     Rectification, aware, months_after, utcnow)

#: The extension Art. 12(3) allows, in months beyond the first.
EXTENSION_MONTHS = 2
#: How the patient was told of an extension.
NOTICE_CHANNELS = ("letter", "email", "patient-portal", "phone", "in-person")


@dataclass(frozen=True)
class CaseSource:
    """Where the requests of one kind of case live, and which of their states are still open."""
    case_kind: str
    model: type
    received: str  #: the column holding the date of receipt
    open_states: tuple[str, ...]


SOURCES = {
    "request": CaseSource("request", PortabilityRequest, "received_at",
                          ("received", "identity_verified", "in_progress", "ready", "failed")),
    "rectification": CaseSource("rectification", Rectification, "requested_at", ("requested", "applying", "failed")),
    "erasure": CaseSource("erasure", Erasure, "requested_at", ("requested", "erasing", "failed")),
    "flag": CaseSource("flag", PatientFlag, "recorded_at", ("in-force",)),
    "signing": CaseSource("signing", ConsentSigning, "prepared_at", ("pending",)),
}
#: The rights a case can be about (the dashboard's "type" filter).
RIGHTS = ("access", "portability", "rectification", "erasure", "restriction", "objection", "consent")


class Case(BaseModel):
    """One open (or just answered) request of any right, as the dashboard lists it."""
    case_kind: str
    ref_id: int
    right: str
    patient_id: str | None
    issuer: str | None
    state: str
    received_at: datetime
    due_at: datetime
    extended: bool
    assignee: str | None
    overdue: bool


def _right_and_state(kind: str, row) -> tuple[str, str]:
    if kind == "request":
        return row.kind, row.status
    if kind == "flag":
        return row.kind, "lifted" if row.lifted_at is not None else "in-force"
    if kind == "signing":
        return "consent", row.status
    return kind, row.status


def _case(kind: str, row, tracking: CaseTracking | None, now: datetime) -> Case:
    source = SOURCES[kind]
    right, state = _right_and_state(kind, row)
    received = aware(getattr(row, source.received))
    due = aware(tracking.extended_due_at) if tracking and tracking.extended_due_at else months_after(received, 1)
    return Case(case_kind=kind, ref_id=row.id, right=right, patient_id=row.patient_id, issuer=row.issuer,
                state=state, received_at=received, due_at=due, extended=bool(tracking and tracking.extended_due_at),
                assignee=tracking.assignee if tracking else None,
                overdue=state in source.open_states and due < now)


def open_cases(db, *, right: str | None = None, state: str | None = None, assignee: str | None = None,
               overdue: bool | None = None) -> list[Case]:
    """Every open request of every right, soonest due first, filtered."""
    now = utcnow()
    cases: list[Case] = []
    with db.session() as s:
        tracked = {(t.case_kind, t.ref_id): t for t in s.scalars(select(CaseTracking))}
        for kind, source in SOURCES.items():
            q = select(source.model)
            if kind == "flag":
                q = q.where(PatientFlag.lifted_at.is_(None))
            else:
                q = q.where(source.model.status.in_(source.open_states))
            cases += [_case(kind, row, tracked.get((kind, row.id)), now) for row in s.scalars(q)]
    cases = [c for c in cases
             if (right is None or c.right == right) and (state is None or c.state == state)
             and (assignee is None or (c.assignee or "") == assignee) and (overdue is None or c.overdue == overdue)]
    return sorted(cases, key=lambda c: (c.due_at, c.case_kind, c.ref_id))


def get_case(db, kind: str, ref_id: int) -> Case:
    if kind not in SOURCES:
        raise NotFound(f"no case kind {kind!r}")
    with db.session() as s:
        row = s.get(SOURCES[kind].model, ref_id)
        if row is None:
            raise NotFound(f"no {kind} {ref_id}")
        tracking = s.scalars(select(CaseTracking).where(CaseTracking.case_kind == kind,
                                                        CaseTracking.ref_id == ref_id)).first()
        return _case(kind, row, tracking, utcnow())


def _tracking(s, kind: str, ref_id: int) -> CaseTracking:
    row = s.scalars(select(CaseTracking).where(CaseTracking.case_kind == kind, CaseTracking.ref_id == ref_id)).first()
    if row is None:
        row = CaseTracking(case_kind=kind, ref_id=ref_id)
        s.add(row)
    return row


def assign(db, kind: str, ref_id: int, assignee: str | None) -> Case:
    get_case(db, kind, ref_id)  # 404 for an unknown case
    with db.session() as s:
        _tracking(s, kind, ref_id).assignee = assignee or None
    return get_case(db, kind, ref_id)


def extend(db, kind: str, ref_id: int, *, reason: str, channel: str, evidence: str, by: str) -> Case:
    """Art. 12(3): two more months, once, decided and told to the patient within the first month."""
    case = get_case(db, kind, ref_id)
    if case.extended:
        raise Conflict("the deadline was already extended; Art. 12(3) allows one extension of two months")
    if case.state not in SOURCES[kind].open_states:
        raise Conflict(f"the request is {case.state}: nothing left to extend")
    if utcnow() > case.due_at:
        raise Conflict("the first month has passed: Art. 12(3) requires the extension to be told within it")
    with db.session() as s:
        t = _tracking(s, kind, ref_id)
        t.extended_due_at = months_after(case.received_at, 1 + EXTENSION_MONTHS)
        t.extension_reason, t.extension_notice_channel, t.extension_notice_evidence = reason, channel, evidence
        t.extended_by, t.extended_at = by, utcnow()
    return get_case(db, kind, ref_id)
