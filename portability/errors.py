"""Known errors of the service, each mapped to a clear 4xx answer by :func:`install_handlers`."""
from __future__ import annotations

import logging

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse

from .bundle import BundleError
from .orthanc import OrthancError, PatientNotFound

log = logging.getLogger("portability.errors")


class ServiceError(Exception):
    status = 400
    code = "bad-request"

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class NotFound(ServiceError):
    status, code = 404, "not-found"


class Conflict(ServiceError):
    status, code = 409, "conflict"


class Gone(ServiceError):
    status, code = 410, "gone"


def invalid_request(exc: RequestValidationError) -> JSONResponse:
    """The 422 answer of the API: each problem as the field (dotted path, ``body.changes.0.proposed``)
    and the rule it broke.

    Pydantic's own messages state the rule, never the value; its ``input`` and ``ctx`` (which do
    carry the submitted value) are left out, so no answer repeats what was submitted. (Pages under
    ``/ui/`` answer with an HTML error page instead: ``portability.web.pages``.)"""
    fields = [{"field": ".".join(str(part) for part in e["loc"]), "rule": e["msg"]} for e in exc.errors()]
    return JSONResponse({"error": "invalid-request", "detail": "; ".join(f"{f['field']}: {f['rule']}" for f in fields),
                         "fields": fields}, status_code=422)


def install_handlers(app: FastAPI) -> None:
    def answer(request: Request, status: int, code: str, message: str, page_message: str | None = None):
        page = getattr(app.state, "error_page", None)  # set by portability.web for /ui/ pages
        if page is not None and request.url.path.startswith("/ui/"):
            return page(request, status, page_message)
        return JSONResponse({"error": code, "detail": message}, status_code=status)

    @app.exception_handler(ServiceError)
    async def _service(request: Request, exc: ServiceError):
        return answer(request, exc.status, exc.code, exc.message, exc.message)

    @app.exception_handler(PatientNotFound)
    async def _patient(request: Request, exc: PatientNotFound):
        return answer(request, 404, "unknown-patient", str(exc))

    @app.exception_handler(OrthancError)
    async def _orthanc(request: Request, exc: OrthancError):
        # Orthanc's own answer may quote what was asked of it: the service log keeps it, the client
        # gets the fact only.
        log.warning("Orthanc error on %s %s: %s", request.method, getattr(request.scope.get("route"), "path", "?"), exc)
        return answer(request, 502, "orthanc-unavailable", "Orthanc is unreachable or did not answer as expected; "
                                                            "try again later")

    @app.exception_handler(BundleError)
    async def _bundle(request: Request, exc: BundleError):
        return answer(request, 409, "bundle-failed", str(exc))
