"""One record per form, however often it is submitted (a double click, a reload after a slow answer).

Every desk form carries a one-time token. :func:`once` claims the token (its primary key makes a
second claim fail, also across processes), runs ``create`` and notes the record's id on the token.
A second submission waits for the first and gets the same id. When ``create`` fails, the claim
is dropped, so the corrected form can be sent again with the same token.
"""
from __future__ import annotations

import re
import secrets
import time
from typing import Callable

from sqlalchemy.exc import IntegrityError

from .errors import ServiceError
from .models import IdempotencyKey

TOKEN = re.compile(r"^[A-Za-z0-9_-]{16,64}$")


class BadToken(ServiceError):
    status, code = 422, "invalid-form-token"


def new_token() -> str:
    return secrets.token_urlsafe(24)


def once(db, key: str, kind: str, create: Callable[[], int], wait_seconds: float = 15.0) -> tuple[int, bool]:
    """``(record id, created now)``: ``create()`` runs at most once per ``key`` that succeeds."""
    if not TOKEN.match(key or ""):
        raise BadToken("form_token: missing or malformed; reload the form")
    deadline = time.monotonic() + wait_seconds
    while True:
        try:
            with db.session() as s:
                s.add(IdempotencyKey(key=key, kind=kind))
        except IntegrityError:
            with db.session() as s:
                row = s.get(IdempotencyKey, key)
                if row is not None and row.kind != kind:
                    raise BadToken("form_token: already used by another form; reload the form") from None
                if row is not None and row.ref_id is not None:
                    return row.ref_id, False
            if time.monotonic() > deadline:
                raise BadToken("form_token: the first submission of this form is still running") from None
            time.sleep(0.1)  # the first submission is still running (or failed and dropped its claim)
            continue
        break
    try:
        ref_id = create()
    except BaseException:
        with db.session() as s:
            row = s.get(IdempotencyKey, key)
            if row is not None:
                s.delete(row)
        raise
    with db.session() as s:
        s.get(IdempotencyKey, key).ref_id = ref_id
    return ref_id, True
