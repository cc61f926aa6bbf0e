"""Known errors of the service, each mapped to a clear 4xx answer by :func:`install_handlers`."""
from __future__ import annotations

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

from .bundle import BundleError
from .orthanc import OrthancError, PatientNotFound


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
        return answer(request, 502, "orthanc-unavailable", str(exc))

    @app.exception_handler(BundleError)
    async def _bundle(request: Request, exc: BundleError):
        return answer(request, 409, "bundle-failed", str(exc))
