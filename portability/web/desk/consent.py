"""Consent: forms the DPO publishes (versioned), a form put before a patient and signed on the
screen's signature pad (``static/signature-pad.js``) or declined, withdrawal in one action, the
printed consent and the FHIR export."""
from __future__ import annotations

import json

from fastapi import APIRouter, Depends, Request
from starlette.responses import RedirectResponse, Response

from ... import consent_forms as forms
from ... import signatures
from ...auth import Staff, has_role
from ...i18n import LANGUAGES, translator
from ...routers import consent_forms as api
from ...routers import consents as registry
from ..session import web_user
from . import attempt, create_once, form_data, page, parse

router = APIRouter(prefix="/ui/desk/consent", include_in_schema=False)
LABELS = {"slug": "Form name", "language": "Language", "title": "Title", "text": "Text of the form",
          "purpose": "Purpose", "lawful_basis": "Lawful basis", "form_id": "Form", "patient_id": "Patient ID",
          "issuer": "Issuer of the patient ID", "signature": "Signature", "reason": "Reason"}


def _home(request: Request, staff: Staff, errors=None, values=None, patient=None):
    db = request.app.state.db
    newest = forms.forms(db)
    return page(request, "desk/consent.html", errors=errors, values=values or {"lawful_basis": "consent"},
                forms=newest, form_options=[(str(f.id), f"{f.title} (v{f.version}, {f.language})") for f in newest],
                bases=list(forms.lawful_bases().items()), may_publish=has_role(staff, "dpo"), patient=patient,
                form_token=(values or {}).get("form_token"))


@router.get("")
def consent_home(request: Request, staff: Staff = Depends(web_user("staff"))):
    return _home(request, staff)


@router.post("/forms")
def publish(request: Request, data: dict = Depends(form_data), staff: Staff = Depends(web_user("dpo"))):
    db = request.app.state.db
    body, errors = parse(api.FormCreate, data, LABELS)
    if not errors:
        form_id, errors = create_once(request, data, "consent-form", lambda: api.publish(body, staff, db).id,
                                      "lawful_basis")
    if errors:
        return _home(request, staff, errors, data)
    return RedirectResponse(f"/ui/desk/consent/forms/{form_id}", status_code=303)


@router.get("/forms/{form_id}")
def show_form(request: Request, form_id: int, staff: Staff = Depends(web_user("staff"))):
    db = request.app.state.db
    form = forms.get_form(db, form_id)
    versions = [f for f in forms.forms(db, every_version=True) if (f.slug, f.language) == (form.slug, form.language)]
    return page(request, "desk/consent_form.html", form=form, versions=versions,
                basis=forms.lawful_bases().get(form.lawful_basis, form.lawful_basis))


@router.post("/signings")
def prepare(request: Request, data: dict = Depends(form_data), staff: Staff = Depends(web_user("staff"))):
    db = request.app.state.db
    body, errors = parse(api.SigningCreate, {k: data.get(k, "") for k in ("form_id", "patient_id", "issuer")}, LABELS)
    if not errors:
        signing_id, errors = create_once(request, data, "signing",
                                         lambda: forms.prepare(db, by=staff.name, **body.model_dump()), "form_id")
    if errors:
        return _home(request, staff, errors, data)
    return RedirectResponse(f"/ui/desk/consent/signings/{signing_id}", status_code=303)


def _signing_page(request: Request, signing_id: int, errors=None, status=None):
    """While pending, the page is the patient's (kiosk: no staff navigation), in the form's language."""
    row, form, consent = forms.get_signing(request.app.state.db, signing_id)
    lang = form.language[:2] if form.language[:2] in LANGUAGES else "en"
    t = translator(lang, "consent")
    errors = [(f, t("consent.empty") if m == "empty" else m) for f, m in errors or []]
    return page(request, "desk/signing.html", status=status, errors=errors, signing=row, form=form, consent=consent,
                consent_state=registry.consent_status(consent) if consent else None, kiosk=row.status == "pending",
                t=t, issuer=request.app.state.settings.issuer)


@router.get("/signings/{signing_id}")
def signing(request: Request, signing_id: int, staff: Staff = Depends(web_user("staff"))):
    return _signing_page(request, signing_id)


@router.post("/signings/{signing_id}/sign")
def sign(request: Request, signing_id: int, data: dict = Depends(form_data), staff: Staff = Depends(web_user("staff"))):
    settings = request.app.state.settings
    _, errors = attempt(lambda: forms.sign(request.app.state.db, signing_id, data.get("signature", ""),
                                           by=staff.name, issuer_label=settings.issuer), "signature")
    if errors:
        return _signing_page(request, signing_id, [("signature", "empty" if "empty" in errors[0][1]
                                                    else errors[0][1].capitalize())])
    return RedirectResponse(f"/ui/desk/consent/signings/{signing_id}", status_code=303)


@router.post("/signings/{signing_id}/decline")
def decline(request: Request, signing_id: int, staff: Staff = Depends(web_user("staff"))):
    settings = request.app.state.settings
    _, errors = attempt(lambda: forms.decline(request.app.state.db, signing_id, by=staff.name,
                                              issuer_label=settings.issuer))
    if errors:
        return _signing_page(request, signing_id, errors)
    return RedirectResponse(f"/ui/desk/consent/signings/{signing_id}", status_code=303)


@router.post("/signings/{signing_id}/withdraw")
def withdraw(request: Request, signing_id: int, data: dict = Depends(form_data),
             staff: Staff = Depends(web_user("staff"))):
    """Art. 7(3): one action; the consent gate refuses from the next routing decision on."""
    row, _, _ = forms.get_signing(request.app.state.db, signing_id)
    body, errors = parse(registry.Withdrawal, {"reason": data.get("reason", "")}, LABELS)
    if not errors and row.consent_id is None:
        errors = [("reason", "There is no signed consent to withdraw")]
    if not errors:
        _, errors = attempt(lambda: registry.withdraw(row.consent_id, body, request, staff, request.app.state.db),
                            "reason")
    if errors:
        return _signing_page(request, signing_id, errors)
    return RedirectResponse(f"/ui/desk/consent/signings/{signing_id}", status_code=303)


@router.get("/signings/{signing_id}/print")
def print_page(request: Request, signing_id: int, staff: Staff = Depends(web_user("staff"))):
    row, form, consent = forms.get_signing(request.app.state.db, signing_id)
    return page(request, "desk/signing_print.html", signing=row, form=form, consent=consent,
                issuer=request.app.state.settings.issuer,
                basis=forms.lawful_bases().get(form.lawful_basis, form.lawful_basis))


@router.get("/signings/{signing_id}/signature.svg")
def signature_svg(request: Request, signing_id: int, staff: Staff = Depends(web_user("staff"))):
    row, _, _ = forms.get_signing(request.app.state.db, signing_id)
    if not row.signature:
        return Response(status_code=404)
    return Response(signatures.svg(row.signature), media_type="image/svg+xml")


def _json_download(doc: dict, filename: str) -> Response:
    return Response(json.dumps(doc, indent=1, ensure_ascii=False), media_type="application/fhir+json",
                    headers={"Content-Disposition": f'attachment; filename="{filename}"'})


@router.get("/signings/{signing_id}/fhir")
def signing_fhir(request: Request, signing_id: int, staff: Staff = Depends(web_user("staff"))):
    return _json_download(forms.current_fhir(request.app.state.db, signing_id), f"consent-{signing_id}.json")


@router.post("/patient")
def patient_consents(request: Request, data: dict = Depends(form_data), staff: Staff = Depends(web_user("staff"))):
    """A patient's consents (signed on screen, declined, or recorded otherwise); POST keeps the
    patient's ID out of the address bar and the logs."""
    db = request.app.state.db
    body, errors = parse(api.SigningCreate, {"form_id": 0, "patient_id": data.get("lookup_patient_id", ""),
                                             "issuer": data.get("lookup_issuer", "")}, LABELS)
    if errors:
        return _home(request, staff, [("lookup_patient_id", m) for _, m in errors], data)
    if data.get("format") == "fhir":
        return _json_download(forms.patient_bundle(db, body.patient_id, body.issuer), "consents.json")
    patient = {"patient_id": body.patient_id, "issuer": body.issuer,
               "signings": forms.signings(db, patient_id=body.patient_id, issuer=body.issuer),
               "consents": registry.list_consents(request, body.patient_id, body.issuer, None, staff, db)}
    return _home(request, staff, values=data, patient=patient)
