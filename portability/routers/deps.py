"""Small dependencies shared by the routers."""
from __future__ import annotations

from fastapi import Request


def db(request: Request):
    return request.app.state.db


def settings(request: Request):
    return request.app.state.settings
