"""Art. 19 notices: the recipients to inform of a rectification or an erasure; overdue ones stand out."""
from __future__ import annotations

from datetime import timedelta

from fastapi import APIRouter, Depends, Request

from ...auth import Staff
from ...models import utcnow
from ...routers import rectifications as api
from ..session import web_user
from . import page

router = APIRouter(prefix="/ui/desk", include_in_schema=False)


@router.get("/notices")
def notices(request: Request, staff: Staff = Depends(web_user("staff"))):
    rows = api.list_notices(None, None, None, staff, request.app.state.db)
    month_ago = utcnow() - timedelta(days=30)
    for n in rows:
        n["overdue"] = n["status"] in ("to-send", "failed") and n["created_at"] < month_ago
    return page(request, "desk/notices.html", notices=rows)
