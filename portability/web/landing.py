"""The patient's landing page for a download link, in the patient's language.

It says what the copy holds (studies, dates, size, read from the bundle itself), until when the
link works, how to open the files, and offers the download button (``/download/{token}/
medical-images.zip``, which resumes with HTTP Range). An unknown, expired or revoked link gets a
clear page (404 / 410), never a trace. No identifier appears in the address or the title: the
address holds only the random token.

Language: ``?lang=xx`` when given (the page's language menu), else the patient's language
recorded on the request, else the browser's ``Accept-Language``, else English; texts come from
the ``landing`` message catalogs.
"""
from __future__ import annotations

from pathlib import Path

from babel.numbers import format_decimal
from fastapi import Request
from starlette.responses import Response

from .. import audit, landing
from ..errors import NotFound
from ..i18n import LANGUAGES, translator
from ..models import DownloadLink, Job, PortabilityRequest, aware
from ..routers.bundle_view import view_href
from .pages import templates


def language(request: Request, preferred: str | None = None) -> str:
    chosen = request.query_params.get("lang", "")
    if chosen in LANGUAGES:
        return chosen
    if preferred in LANGUAGES:
        return preferred
    for part in request.headers.get("accept-language", "").split(","):
        code = part.split(";")[0].strip().lower()[:2]
        if code in LANGUAGES:
            return code
    return "en"


def _size(n: int, lang: str) -> str:
    mb = n / (1024 * 1024)
    return f"{format_decimal(round(mb, 1), locale=lang)} MB" if mb >= 0.1 else f"{format_decimal(round(n / 1024), locale=lang)} KB"


def landing_page(request: Request, token: str) -> Response:
    from ..routers.downloads import LinkGone, _resolve

    db = request.app.state.db
    issuer = request.app.state.settings.issuer
    client = request.client.host if request.client else None

    def context(lang: str) -> dict:
        return {"t": translator(lang, "landing"), "lang": lang, "issuer": issuer, "token": token,
                "languages": [translator(code, "landing") for code in LANGUAGES]}

    try:
        link_id, request_id, path, encrypted = _resolve(db, token, client)
    except NotFound:
        return templates.TemplateResponse(request, "landing.html", {**context(language(request)), "gone": "unknown"},
                                          status_code=404)
    except LinkGone as e:
        return templates.TemplateResponse(request, "landing.html", {**context(language(request)), "gone": e.reason},
                                          status_code=410)
    with db.session() as s:
        link = s.get(DownloadLink, link_id)
        expires = aware(link.expires_at)
        bundle = s.get(Job, link.job_id).result_path
        preferred = s.get(PortabilityRequest, request_id).language
    lang = language(request, preferred)
    t = translator(lang, "landing")
    audit.record("download.page", request_id=request_id, link_id=link_id, lang=lang, client=client)
    size = path.stat().st_size
    return templates.TemplateResponse(request, "landing.html", {
        **context(lang), "gone": None, "studies": landing.studies_in(Path(bundle)) if bundle else [],
        "size": _size(size, lang), "expires_date": t.date(expires), "expires_time": expires.strftime("%H:%M"),
        "encrypted": encrypted, "href": f"/download/{token}/medical-images.zip",
        "view_href": None if encrypted else view_href(token)})
