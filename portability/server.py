"""Run the service with uvicorn: ``portability.server.run(settings)``."""
from __future__ import annotations

from .settings import Settings


def run(settings: Settings | None = None) -> None:
    import uvicorn

    from .app import create_app

    settings = settings or Settings.from_env()
    config = uvicorn.config.LOGGING_CONFIG | {"loggers": {
        **uvicorn.config.LOGGING_CONFIG["loggers"],
        "portability": {"handlers": ["default"], "level": "INFO", "propagate": False}}}
    # uvicorn's access log would write paths and query strings (patient IDs): portability.access_log instead
    uvicorn.run(create_app(settings), host=settings.host, port=settings.port, log_level="info",
                access_log=False, log_config=config)


if __name__ == "__main__":  # ``python -m portability.server``: what ``orthanc-gdpr serve`` starts
    run()
