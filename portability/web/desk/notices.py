"""Art. 19 notices: the recipients to inform of a rectification or an erasure. Mark one sent
(channel, evidence) or close it with a reason; overdue ones stand out."""
from __future__ import annotations

from fastapi import APIRouter, Depends, Request
from starlette.responses import RedirectResponse

from ... import notices as lifecycle
from ...auth import Staff
from ...routers import notices as api
from ..session import web_user
from . import attempt, form_data, page, parse

router = APIRouter(prefix="/ui/desk/notices", include_in_schema=False)
LABELS = {"channel": "Channel", "evidence": "Evidence", "reason": "Reason"}
FILTERS = [("open", "To send or failed"), ("overdue", "Overdue"), ("all", "All")]


def _notices_page(request: Request, staff: Staff, show: str = "open", errors=None, values=None, focus=None):
    overdue = True if show == "overdue" else None
    rows = api.list_notices(None, overdue, None, None, staff, request.app.state.db)
    if show == "open":
        rows = [n for n in rows if n.state in lifecycle.OPEN]
    return page(request, "desk/notices.html", errors=errors, values=values or {}, notices=rows, show=show,
                filters=FILTERS, channels=[(c, c) for c in lifecycle.CHANNELS], focus=focus)


@router.get("")
def notices(request: Request, show: str = "open", staff: Staff = Depends(web_user("staff"))):
    return _notices_page(request, staff, show if show in dict(FILTERS) else "open")


@router.post("/{notice_id}/sent")
def mark_sent(request: Request, notice_id: int, data: dict = Depends(form_data),
              staff: Staff = Depends(web_user("staff"))):
    values = {"channel": data.get(f"channel-{notice_id}", ""), "evidence": data.get(f"evidence-{notice_id}", "")}
    body, errors = parse(api.NoticeSent, values, LABELS)
    if not errors:
        _, errors = attempt(lambda: api.mark_sent(notice_id, body, staff, request.app.state.db), "evidence")
    if errors:
        return _notices_page(request, staff, "all", [(f"{f}-{notice_id}", m) for f, m in errors], data, notice_id)
    return RedirectResponse("/ui/desk/notices?show=all", status_code=303)


@router.post("/{notice_id}/close")
def close(request: Request, notice_id: int, data: dict = Depends(form_data),
          staff: Staff = Depends(web_user("staff"))):
    body, errors = parse(api.NoticeClose, {"reason": data.get(f"reason-{notice_id}", "")}, LABELS)
    if not errors:
        _, errors = attempt(lambda: api.close_notice(notice_id, body, staff, request.app.state.db), "reason")
    if errors:
        return _notices_page(request, staff, "all", [(f"{f}-{notice_id}", m) for f, m in errors], data, notice_id)
    return RedirectResponse("/ui/desk/notices?show=all", status_code=303)
