"""Consent signed on screen drives the plugin's consent gate, in headless Chromium against a real
Orthanc: the DPO publishes a form, the front desk opens it for a patient, an empty pad is refused,
the patient signs with synthetic pen events, and a routing rule with basis ``consent`` delivers;
after withdrawal (one action) it refuses. The signed consent prints on one page and exports as
FHIR; restriction placed and lifted at the desk blocks and frees routing; the user administration
and the audit pages (chain, search, breach query with CSV) are visited too."""
from __future__ import annotations

import base64
import re

import requests
from selenium.webdriver.common.actions import interaction
from selenium.webdriver.common.actions.action_builder import ActionBuilder
from selenium.webdriver.common.actions.pointer_input import PointerInput
from selenium.webdriver.common.by import By

from desk_helpers import field_value, live_desk, select, sign_in_as
from orthanc_server import free_port, make_ct_study, wait_for, write_rules
from portability.models import ConsentSigning
from test_rights_common import PLUGIN_TOKEN

FORM_TEXT = ("I agree that my images, with my name and identifiers removed, may be used for research "
             "at St. Example Hospital. I can withdraw at any time at the front desk.")


def route(orthanc, study, rule_name):
    job = orthanc.post_json("/gdpr/route", {"level": "study", "id": study, "rule": rule_name})
    return wait_for(lambda: (j := orthanc.get_json(f"/gdpr/jobs/{job['id']}"))["status"] in ("done", "refused", "failed")
                    and j, 30, message="route job")


def draw_signature(browser) -> None:
    """Three pen strokes across the pad, as a tablet would send them (pointer events)."""
    pad = browser.driver.find_element(By.ID, "signature")
    actions = ActionBuilder(browser.driver, mouse=PointerInput(interaction.POINTER_PEN, "pen"))
    pen = actions.pointer_action
    for row in (-40, 0, 40):
        pen.move_to(pad, -200, row).pointer_down()
        for step in range(1, 11):
            pen.move_to(pad, -200 + 40 * step, row + (12 if step % 2 else -12))
        pen.pointer_up()
    actions.perform()


def test_consent_signed_on_screen_opens_the_gate_and_withdrawal_closes_it(orthanc_factory, storescp, browser, tmp_path):
    port = free_port()
    token_file = tmp_path / "service.token"
    token_file.write_text(PLUGIN_TOKEN)
    never = {"Modality": ["NO-SUCH-MODALITY"]}
    rules = write_rules(tmp_path / "rules.json",
                        {"name": "research-consent", "match": never, "destination": {"type": "modality", "name": "scp"},
                         "profile": "research", "purpose": "research", "lawful_basis": "consent"})
    orthanc = orthanc_factory(modalities={"scp": storescp.as_modality()},
                              gdpr={"RoutingRules": str(rules), "ConsentServiceUrl": f"http://127.0.0.1:{port}",
                                    "ConsentServiceTokenFile": str(token_file)})
    ids = [orthanc.upload(f) for f in make_ct_study(2, patient_id="GATE-W", series=1)]
    study = orthanc.get_json(f"/instances/{ids[0]}/study")["ID"]
    service, app = live_desk(orthanc, tmp_path, port)
    with service as url:
        browser.base = url
        assert route(orthanc, study, "research-consent")["status"] == "refused"

        sign_in_as(browser, "dora")
        browser.visit("/ui/desk/consent", "consent-home")
        browser.fill("slug", "Research Imaging!")
        browser.press("Publish")
        browser.check("consent-publish-errors")
        assert "Form name" in browser.driver.find_element(By.CLASS_NAME, "error-summary").text
        for field_id, value in (("slug", "research-imaging"), ("language", "en"), ("title", "Research with your images"),
                                ("text", FORM_TEXT), ("purpose", "research")):
            browser.fill(field_id, value)
        browser.press("Publish")
        browser.check("consent-form-v1")
        assert "version 1" in browser.text()

        sign_in_as(browser, "alice")
        browser.visit("/ui/desk/consent", "consent-home-staff")
        select(browser, "form_id", "1")
        browser.fill("patient_id", "GATE-W")
        browser.press("Open the form for signing")
        browser.check("signing-pad")
        signing_page = browser.driver.current_url.removeprefix(url)
        assert "GATE-W" not in signing_page and FORM_TEXT in browser.text()

        browser.press("Sign")  # an empty pad
        browser.check("signing-empty-refused")
        assert "The signature box is empty" in browser.text() and "Rights desk" not in browser.text()
        with app.state.db.session() as s:
            assert s.get(ConsentSigning, 1).status == "pending"

        draw_signature(browser)
        browser.screenshot("signing-drawn")
        browser.press("Sign")
        browser.check("signing-signed")
        assert "Signed" in browser.text() and "The consent is active" in browser.text()
        with app.state.db.session() as s:
            signature = s.get(ConsentSigning, 1).signature
        assert len(signature["strokes"]) == 3 and {st["pointer"] for st in signature["strokes"]} == {"pen"}
        times = [p[2] for st in signature["strokes"] for p in st["points"]]
        assert times == sorted(times) and times[-1] > 0

        delivered = route(orthanc, study, "research-consent")
        assert delivered["status"] == "done" and delivered["sent"] == 2, delivered
        storescp.wait_for_files(2)

        browser.visit(signing_page + "/print", "signing-print")
        img = browser.driver.find_element(By.CLASS_NAME, "signature-image")
        assert browser.driver.execute_script("return arguments[0].naturalWidth", img) > 0
        browser.driver.execute_cdp_cmd("Emulation.setEmulatedMedia", {"media": "print"})
        pdf = browser.driver.execute_cdp_cmd("Page.printToPDF", {"paperWidth": 8.27, "paperHeight": 11.69})
        browser.driver.execute_cdp_cmd("Emulation.setEmulatedMedia", {"media": ""})
        pdf = base64.b64decode(pdf["data"])
        (browser.artifacts / "signed-consent.pdf").write_bytes(pdf)
        assert len(re.findall(rb"/Type\s*/Page(?!s)", pdf)) == 1  # one page

        cookies = {c["name"]: c["value"] for c in browser.driver.get_cookies()}
        fhir = requests.get(url + signing_page + "/fhir", cookies=cookies, timeout=30).json()
        from fhir.resources.consent import Consent

        assert Consent.model_validate(fhir).decision == "permit"

        browser.visit(signing_page, "signing-before-withdrawal")
        browser.press("Withdraw consent")
        browser.check("signing-withdrawn")
        assert "The consent is withdrawn" in browser.text()
        refused = route(orthanc, study, "research-consent")
        assert refused["status"] == "refused" and "no recorded consent" in refused["reason"], refused

        # Restriction at the desk: care only; a reviewer lifts it.
        browser.visit("/ui/desk/flags", "flags")
        browser.fill("patient_id", "GATE-W")
        browser.press("Place the flag")
        browser.check("flags-missing-ground")
        assert "Ground: say why" in browser.text()
        browser.fill("reason", "accuracy contested, Art. 18(1)(a)")
        browser.press("Place the flag")
        browser.check("flags-placed")
        assert "GATE-W" in browser.driver.find_element(By.ID, "flags").text
        assert "a reviewer lifts it" in browser.text()
        standing = requests.get(url + "/api/consents/standing", params={"patient_id": "GATE-W", "purpose": "research"},
                                headers={"Authorization": f"Bearer {PLUGIN_TOKEN}"}, timeout=30).json()
        assert standing["restricted"] is True
        sign_in_as(browser, "rita")
        browser.visit("/ui/desk/flags", "flags-reviewer")
        browser.press("Lift flag 1")
        browser.check("flags-lifted")
        assert "Nobody is flagged." in browser.text()

        # The DPO's pages: users and the audit trail.
        sign_in_as(browser, "dora")
        browser.visit("/ui/desk/users", "users")
        browser.fill("name", "bob")
        browser.press("Add the user")
        browser.check("users-added")
        password = field_value(browser, "shown-password")
        assert len(password) >= 12
        select(browser, "role-bob", "reviewer")
        browser.press("Change role of bob")
        browser.press("Disable bob")
        browser.check("users-changed")
        row = [r for r in browser.driver.find_elements(By.CSS_SELECTOR, "#users tbody tr") if r.text.startswith("bob")][0]
        assert "disabled" in row.text and field_value(browser, "role-bob") == "reviewer"

        browser.visit("/ui/desk/audit", "audit")
        assert "Intact" in browser.text()
        browser.fill("patient", "GATE-W")
        browser.fill("event", "consent.*")
        browser.press("Search")
        browser.check("audit-search")
        results = browser.driver.find_element(By.ID, "results").text
        assert "consent.signed" in results and "consent.withdrawn" in results and "route.done" not in results
        browser.fill("b_destination", "scp")
        browser.press("Show")
        browser.check("audit-breach")
        assert "GATE-W" in browser.driver.find_element(By.ID, "breach").text
        cookies = {c["name"]: c["value"] for c in browser.driver.get_cookies()}
        token = re.search(r'name="csrf_token" value="([^"]+)"', browser.driver.page_source).group(1)
        csv = requests.post(url + "/ui/desk/audit/breach", cookies=cookies, timeout=30,
                            data={"csrf_token": token, "b_destination": "scp", "format": "csv",
                                  "b_since": field_value(browser, "b_since"), "b_until": field_value(browser, "b_until")})
        assert csv.headers["content-type"].startswith("text/csv") and "GATE-W" in csv.text
