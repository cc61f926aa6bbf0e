"""The rights desk under ``/ui/desk``: one page group per right, on the workspace's layout.

Pages call the same functions as the JSON API (``portability.routers.*``), so a rule is checked
in one place. A form is validated by the API's own Pydantic model; a broken rule is shown next to
its field and in the error summary, naming the field and the rule, never the value typed. Every
form that creates something carries a one-time ``form_token`` (:mod:`portability.idempotency`):
a double click creates one record.

Modules: :mod:`.cases` (dashboard, deadlines), :mod:`.access` (access/portability, links),
:mod:`.decisions` (rectification, erasure), :mod:`.notices` (Art. 19), :mod:`.flags`
(restriction, objection), :mod:`.consent` (forms, signing on screen), :mod:`.audit` (chain,
search, breach query), :mod:`.users` (the DPO's account administration).
"""
from __future__ import annotations

from typing import Any, Callable, TypeVar

from fastapi import Request
from pydantic import BaseModel, ValidationError

from ...errors import ServiceError
from ...idempotency import new_token, once
from ...orthanc import OrthancError, PatientNotFound
from ..pages import render

Model = TypeVar("Model", bound=BaseModel)
Problems = list[tuple[str, str]]


async def form_data(request: Request) -> dict[str, str]:
    """The submitted form's text fields (a page dependency; handlers stay synchronous)."""
    form = await request.form()
    return {k: v.strip() if k != "text" else v for k, v in form.items() if isinstance(v, str)}


def problems_of(exc: ValidationError, labels: dict[str, str] | None = None) -> Problems:
    """Pydantic's complaints as (field, message): the field's label and the rule, never the input."""
    labels = labels or {}
    out: Problems = []
    for e in exc.errors(include_input=False, include_url=False):
        loc = [str(x) for x in e.get("loc", ()) if not isinstance(x, int)]
        name = loc[-1] if loc else "form"
        message = e.get("msg", "is not valid").removeprefix("Value error, ")
        message = "this is required" if e.get("type") == "missing" else message
        out.append((name, f"{labels.get(name, name.replace('_', ' ').capitalize())}: {message}"))
    return out


def parse(model: type[Model], data: dict[str, Any],
          labels: dict[str, str] | None = None) -> tuple[Model | None, Problems]:
    """``model`` built from form ``data`` (empty strings as missing), or the problems found."""
    try:
        return model.model_validate({k: v for k, v in data.items() if v not in ("", None)}), []
    except ValidationError as e:
        return None, problems_of(e, labels)


def attempt(action: Callable[[], Any], field: str = "form") -> tuple[Any, Problems]:
    """Run ``action``; a known refusal of the service becomes a problem on ``field``."""
    try:
        return action(), []
    except PatientNotFound:
        return None, [(field, "No patient with this ID is in the image archive. Check the ID and the issuer.")]
    except OrthancError:
        return None, [(field, "The image archive (Orthanc) did not answer. Nothing was saved; try again.")]
    except ServiceError as e:
        return None, [(field, e.message)]


def create_once(request: Request, data: dict, kind: str, create: Callable[[], int], field: str = "patient_id"):
    """``(record id, problems)``: ``create()`` run once per form token (a double click finds the first record)."""
    result, errors = attempt(lambda: once(request.app.state.db, data.get("form_token", ""), kind, create), field)
    return (result[0] if result else None), errors


def page(request: Request, template: str, status: int | None = None, errors: Problems | None = None, **context):
    """Render a desk page; with errors, status 422 unless given, and a fresh form token."""
    errors = errors or []
    return render(request, template, status=status or (422 if errors else 200), errors=errors,
                  form_token=context.pop("form_token", None) or new_token(), **context)
