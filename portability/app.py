"""The FastAPI application factory: ``create_app(settings)``.

Everything with state (database, Orthanc client factory, worker thread, audit sink) is created
here, never at import time. Routers live in ``portability.routers`` (one per resource).
"""
from __future__ import annotations

from contextlib import asynccontextmanager

from fastapi import FastAPI

from . import accounts, apidocs, audit, web
from .access_log import AccessLog
from .db import Database
from .errors import install_handlers
from .jobs import bundle_worker
from .rights import rights_worker
from .orthanc import OrthancClient
from .review.engines import Engines
from .review.inspection import InspectionCache
from .routers import anonymous
from .routers import audit as audit_router
from .routers import (bundle_view, consent_forms, consents, desk, downloads, jobs, links, notices, rectifications,
                      releases, requests, review, users)
from .settings import Settings


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or Settings.from_env()

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        settings.bundles_dir.mkdir(parents=True, exist_ok=True)
        db = Database(settings.database_url)
        db.migrate()
        app.state.db = db
        audit.configure(audit.AuditSink(db))
        accounts.seed(db, settings.staff_users)
        workers = ([bundle_worker(db, settings, app.state.make_client),
                    rights_worker(db, settings, app.state.make_client)] if settings.worker else [])
        app.state.worker, app.state.rights_worker = workers or (None, None)
        for worker in workers:
            worker.start()
        try:
            yield
        finally:
            for worker in workers:
                worker.stop()
            db.dispose()

    app = FastAPI(title="orthanc-gdpr portability service", version="0.1.0", lifespan=lifespan,
                  docs_url=None, redoc_url=None, openapi_url=None)
    app.state.settings = settings
    app.state.make_client = lambda: OrthancClient(settings.orthanc_url, settings.orthanc_auth)
    app.state.engines = Engines(settings.plugin_key_file)
    app.state.inspections = InspectionCache()
    install_handlers(app)
    web.install(app)
    app.add_middleware(AccessLog)
    for module in (requests, jobs, links, downloads, bundle_view, audit_router, consents, rectifications, desk,
                   consent_forms, anonymous, review, releases, users, notices):
        app.include_router(module.router)
    apidocs.install(app)

    @app.get("/health", tags=["service"])
    def health() -> dict:
        return {"status": "ok"}

    return app
