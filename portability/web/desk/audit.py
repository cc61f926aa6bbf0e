"""The audit trail for the DPO: the chain's state, search by patient, user, event and date, and
the breach query (by destination or user, in a time window) as a table and as CSV. Searches are
POSTed: a patient's ID never sits in an address or an access log."""
from __future__ import annotations

from datetime import datetime, time, timedelta, timezone

from fastapi import APIRouter, Depends, Request
from pydantic import BaseModel, Field, model_validator

from ... import audit, chain
from ...auth import Staff
from ...routers import audit as api
from ..pages import NAV
from ..session import web_user
from . import attempt, form_data, page, parse

router = APIRouter(prefix="/ui/desk/audit", include_in_schema=False)
NAV.append(("/ui/desk/audit", "Audit", "dpo"))
LABELS = {"patient": "Patient ID", "user": "User", "event": "Event", "since": "From", "until": "To",
          "destination": "Destination"}
SHOWN = 500  #: records shown on the page at most (the newest)


class Search(BaseModel):
    patient: str | None = Field(None, max_length=64)
    user: str | None = Field(None, max_length=128)
    event: str | None = Field(None, max_length=64, pattern=r"^[a-z0-9.*_-]+$")
    since: datetime | None = None
    until: datetime | None = None

    @model_validator(mode="after")
    def _window(self):
        if self.since and self.until and self.until < self.since:
            raise ValueError("the end of the window must not be before its start")
        return self


class Breach(BaseModel):
    destination: str | None = Field(None, max_length=200)
    user: str | None = Field(None, max_length=128)
    since: datetime
    until: datetime

    @model_validator(mode="after")
    def _one(self):
        if not (self.destination or self.user):
            raise ValueError("give a destination or a user")
        if self.until < self.since:
            raise ValueError("the end of the window must not be before its start")
        return self


def _day(value: str, end: bool) -> str:
    """A date from a date field as the window's first or last moment (UTC)."""
    if value and len(value) == 10:
        return datetime.combine(datetime.fromisoformat(value).date(), time.max if end else time.min,
                                tzinfo=timezone.utc).isoformat()
    return value


def _dates(data: dict) -> dict:
    out = dict(data)
    for key, end in (("since", False), ("until", True)):
        try:
            out[key] = _day(data.get(key, ""), end)
        except ValueError:
            pass  # left as typed: the model names the field and the rule
    return out


def _matches(rec: dict, q: Search) -> bool:
    f = chain.fields_of(rec)
    if q.patient and q.patient not in (f.get("patient_id"), f.get("patient"), f.get("PatientID")):
        return False
    if q.user and q.user not in (rec.get("actor"), f.get("user")):
        return False
    if q.event:
        return rec["event"] == q.event or (q.event.endswith("*") and rec["event"].startswith(q.event[:-1]))
    return True


def _audit_page(request: Request, staff: Staff, errors=None, values=None, results=None, breach=None, status=None):
    state = api.verify(request, staff, request.app.state.db)
    today = datetime.now(timezone.utc).date()
    values = {"b_since": (today - timedelta(days=30)).isoformat(), "b_until": today.isoformat(), **(values or {})}
    return page(request, "desk/audit.html", status=status, errors=errors, values=values, chain=state,
                checked_at=datetime.now(timezone.utc), results=results, breach=breach, shown=SHOWN)


@router.get("")
def audit_home(request: Request, staff: Staff = Depends(web_user("dpo"))):
    return _audit_page(request, staff)


@router.post("/search")
def search(request: Request, data: dict = Depends(form_data), staff: Staff = Depends(web_user("dpo"))):
    q, errors = parse(Search, _dates({k: data.get(k, "") for k in ("patient", "user", "event", "since", "until")}),
                      LABELS)
    if errors:
        return _audit_page(request, staff, [(f if f in LABELS else "since", m) for f, m in errors], data)
    db = request.app.state.db
    found = [r for r in audit.readable(db, chain.records(db, q.since, q.until)) if _matches(r, q)]
    api.audit.record("audit.searched", actor=staff.name, matches=len(found), event_searched=q.event, user=q.user,
                     patient_id=q.patient, since=q.since, until=q.until)
    rows = [{"seq": r["seq"], "when": chain.effective_ts(r), "event": r["event"], "actor": r.get("actor", ""),
             "source": r.get("source", ""),
             "fields": {k: v for k, v in chain.fields_of(r).items() if k not in ("actor", "event")}}
            for r in found[-SHOWN:][::-1]]
    return _audit_page(request, staff, values=data, results={"rows": rows, "total": len(found)})


@router.post("/breach")
def breach(request: Request, data: dict = Depends(form_data), staff: Staff = Depends(web_user("dpo"))):
    body, errors = parse(Breach, _dates({k: data.get(f"b_{k}", "") for k in ("destination", "user", "since", "until")}),
                         LABELS)
    if errors:
        return _audit_page(request, staff, [(f"b_{f}" if f in LABELS else "b_destination", m) for f, m in errors], data)
    fmt = "csv" if data.get("format") == "csv" else "json"
    answer, errors = attempt(lambda: api.breach(request, body.since, body.until, body.destination, body.user, fmt,
                                                staff, request.app.state.db), "b_destination")
    if errors:
        return _audit_page(request, staff, errors, data)
    if fmt == "csv":
        return answer
    return _audit_page(request, staff, values=data, breach=answer)
