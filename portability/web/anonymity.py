"""Page: the anonymity report for an ethics audit (DPO role), as a table and as CSV.

Every export in a period with the kind of data it released: the anonymity decisions (criterion,
who decided, clinician and statement, rationale, source series, file hashes, limits) and every
other export, which is pseudonymised or identified data whatever its record claims
(:mod:`portability.anonymity_report`). The period is a pair of dates in the address (no patient
value ever is); each view is audited.
"""
from __future__ import annotations

from datetime import date, datetime, time, timezone

from fastapi import APIRouter, Depends, Request
from starlette.responses import Response

from .. import anonymity_report, audit, audit_integrity
from ..auth import Staff
from .pages import NAV, render
from .session import web_user

router = APIRouter(prefix="/ui", include_in_schema=False)
NAV.append(("/ui/anonymity", "Anonymity report", "dpo"))


def _period(since: str, until: str) -> tuple[datetime | None, datetime | None, list[tuple[str, str]]]:
    errors, bounds = [], []
    for name, text, end in (("since", since, False), ("until", until, True)):
        try:
            day = date.fromisoformat(text) if text else None
        except ValueError:
            errors.append((name, f"Enter the {'first' if not end else 'last'} day as a date, for example 2026-01-31"))
            day = None
        bounds.append(datetime.combine(day, time.max if end else time.min, tzinfo=timezone.utc) if day else None)
    if not errors and bounds[0] and bounds[1] and bounds[1] < bounds[0]:
        errors.append(("until", "The last day must not be before the first day"))
    return bounds[0], bounds[1], errors


def _rows(request: Request, staff: Staff, since, until, shown_as: str) -> list[dict]:
    settings, db = request.app.state.settings, request.app.state.db
    if settings.plugin_audit_log:
        audit_integrity.ingest(db, settings.plugin_audit_log, actor=staff.name)
    rows = anonymity_report.rows(db, since, until)
    audit.record("anonymity.report", actor=staff.name, since=since, until=until, rows=len(rows), shown_as=shown_as)
    return rows


@router.get("/anonymity")
def report_page(request: Request, staff: Staff = Depends(web_user("dpo")), since: str = "", until: str = ""):
    start, end, errors = _period(since, until)
    rows = [] if errors else _rows(request, staff, start, end, "page")
    return render(request, "anonymity_report.html", status=422 if errors else 200, errors=errors,
                  since=since, until=until, decisions=[r for r in rows if r["event"] == "anonymity.decision"],
                  others=[r for r in rows if r["event"] != "anonymity.decision"], shown=not errors)


@router.get("/anonymity/report.csv")
def report_csv(request: Request, staff: Staff = Depends(web_user("dpo")), since: str = "", until: str = ""):
    start, end, errors = _period(since, until)
    if errors:
        return report_page(request, staff, since, until)
    return Response(anonymity_report.to_csv(_rows(request, staff, start, end, "csv")), media_type="text/csv",
                    headers={"Content-Disposition": 'attachment; filename="anonymity-report.csv"'})
