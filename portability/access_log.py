"""One access-log line per request, naming the route template, never the path or query string.

Paths and query strings can carry a patient's identifier (``?patient_id=``) or a download token;
uvicorn's own access log would write them out, so it is switched off (:func:`portability.server.run`)
and this middleware logs ``client METHOD /route/{template} status duration`` instead.
"""
from __future__ import annotations

import logging
import time

log = logging.getLogger("portability.access")


class AccessLog:
    def __init__(self, app) -> None:
        self.app = app

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        status = {"code": 500}
        start = time.perf_counter()

        async def sending(message) -> None:
            if message["type"] == "http.response.start":
                status["code"] = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, sending)
        finally:
            route = scope.get("route")
            template = getattr(route, "path", None) or "(no route)"
            client = scope.get("client") or ("-", 0)
            log.info('%s "%s %s" %d %.1f ms', client[0], scope["method"], template, status["code"],
                     (time.perf_counter() - start) * 1000)
