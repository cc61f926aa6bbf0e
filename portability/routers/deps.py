"""Small dependencies shared by the routers."""
from __future__ import annotations

from typing import TypeVar

from fastapi import Request

from ..errors import NotFound

Row = TypeVar("Row")


def db(request: Request):
    return request.app.state.db


def settings(request: Request):
    return request.app.state.settings


def get_or_404(s, model: type[Row], key: int, what: str) -> Row:
    """The row ``key`` of ``model`` in session ``s``, or a 404 naming ``what`` is missing."""
    row = s.get(model, key)
    if row is None:
        raise NotFound(f"no {what} {key}")
    return row
