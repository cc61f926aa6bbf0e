"""Desk pages without a browser, on SQLite and PostgreSQL: one record for a form sent twice at
once, oversized and malformed fields named next to the field (never echoed, nothing saved), and a
patient's consents exported as FHIR from the page."""
from __future__ import annotations

import json
import re
import threading

from portability.models import ConsentSigning, PatientFlag
from test_rights_common import DPO, client_for, rights_db, rights_pg_url  # noqa: F401
from test_desk_api import FORM, strokes


def csrf(page: str) -> str:
    return re.search(r'name="csrf_token" value="([^"]+)"', page).group(1)


def form_token(page: str) -> str:
    return re.search(r'name="form_token" value="([^"]+)"', page).group(1)


def signed_in(c, name="dora", password="dora-pw"):
    r = c.post("/ui/login", data={"name": name, "password": password, "csrf_token": csrf(c.get("/ui/login").text)})
    assert r.status_code == 200 and name in r.text
    return c


def test_a_form_sent_twice_at_once_creates_one_record(rights_db, tmp_path):
    with client_for(None, rights_db, tmp_path) as c:
        page = signed_in(c).get("/ui/desk/flags").text
        data = {"csrf_token": csrf(page), "form_token": form_token(page), "patient_id": "TWICE-1",
                "kind": "restriction", "reason": "accuracy contested"}
        answers = []
        threads = [threading.Thread(target=lambda: answers.append(c.post("/ui/desk/flags", data=data,
                                                                        follow_redirects=False)))
                   for _ in range(2)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert sorted(a.status_code for a in answers) == [303, 303]
        with c.app.state.db.session() as s:
            assert s.query(PatientFlag).count() == 1


def test_bad_fields_are_named_next_to_the_field_never_echoed_and_nothing_is_saved(rights_db, tmp_path):
    with client_for(None, rights_db, tmp_path) as c:
        page = signed_in(c).get("/ui/desk/flags").text
        long_id = "PATIENT-" + "X" * 200
        r = c.post("/ui/desk/flags", data={"csrf_token": csrf(page), "form_token": form_token(page),
                                           "patient_id": long_id, "kind": "sideways", "reason": "r" * 3000})
        assert r.status_code == 422
        assert 'id="patient_id-error"' in r.text and 'id="kind-error"' in r.text and 'id="reason-error"' in r.text
        assert "at most 64 characters" in r.text and long_id not in r.text.replace(f'value="{long_id}"', "")
        r = c.post("/ui/desk/flags", data={"csrf_token": csrf(page), "form_token": "short", "patient_id": "P-1",
                                           "kind": "restriction", "reason": "accuracy contested"})
        assert r.status_code == 422 and "form_token" in r.text
        with c.app.state.db.session() as s:
            assert s.query(PatientFlag).count() == 0

        page = c.get("/ui/desk/consent").text
        r = c.post("/ui/desk/consent/forms", data={"csrf_token": csrf(page), "form_token": form_token(page),
                                                   **FORM, "language": "english", "text": "too short"})
        assert r.status_code == 422 and 'id="language-error"' in r.text and 'id="text-error"' in r.text
        assert c.get("/api/consent-forms", headers=DPO).json() == []


def test_a_patients_consents_export_as_fhir_r5_from_the_page(rights_db, tmp_path):
    from fhir.resources.bundle import Bundle

    with client_for(None, rights_db, tmp_path) as c:
        form = c.post("/api/consent-forms", headers=DPO, json=FORM).json()
        page = signed_in(c).get("/ui/desk/consent").text
        r = c.post("/ui/desk/consent/signings", data={"csrf_token": csrf(page), "form_token": form_token(page),
                                                      "form_id": str(form["id"]), "patient_id": "FHIR-1"})
        signing = int(r.url.path.rsplit("/", 1)[1])
        oversized = {**strokes(), "strokes": [{"points": [[1, 1, 0], [99, 1, 5]]}] * 201}
        r = c.post(f"/ui/desk/consent/signings/{signing}/sign",
                   data={"csrf_token": csrf(page), "signature": json.dumps(oversized)})
        assert r.status_code == 422 and 'id="signature-error"' in r.text and "at most 200 strokes" in r.text
        r = c.post(f"/ui/desk/consent/signings/{signing}/sign",
                   data={"csrf_token": csrf(page), "signature": json.dumps(strokes())})
        assert "Signed" in r.text
        with c.app.state.db.session() as s:
            assert s.get(ConsentSigning, signing).status == "signed"
        r = c.post("/ui/desk/consent/patient", data={"csrf_token": csrf(page), "lookup_patient_id": "FHIR-1",
                                                     "format": "fhir"})
        assert r.headers["content-disposition"].startswith("attachment")
        bundle = Bundle.model_validate(r.json())
        assert bundle.total == 1 and bundle.entry[0].resource.decision == "permit"
        r = c.post("/ui/desk/consent/patient", data={"csrf_token": csrf(page), "lookup_patient_id": "FHIR-1",
                                                     "format": "page"})
        assert "FHIR-1" in r.text and "signed on screen" in r.text and "FHIR-1" not in str(r.url)


def test_the_signing_screen_speaks_the_forms_language_and_hides_the_staff_workspace(rights_db, tmp_path):
    with client_for(None, rights_db, tmp_path) as c:
        form = c.post("/api/consent-forms", headers=DPO, json={
            **FORM, "language": "de", "title": "Forschung mit Ihren Bildern",
            "text": "Ich bin einverstanden, dass meine Bilder ohne Namen für die Forschung genutzt werden."}).json()
        page = signed_in(c).get("/ui/desk/consent").text
        r = c.post("/ui/desk/consent/signings", data={"csrf_token": csrf(page), "form_token": form_token(page),
                                                      "form_id": str(form["id"]), "patient_id": "DE-1"})
        assert '<html lang="de">' in r.text and "Unterschreiben" in r.text and "Ablehnen" in r.text
        assert "Rights desk" not in r.text and "Sign out" not in r.text and "/ui/desk/audit" not in r.text
        r = c.post(r.url.path + "/sign", data={"csrf_token": csrf(page), "signature": ""})
        assert r.status_code == 422 and "Das Unterschriftsfeld ist leer" in r.text
