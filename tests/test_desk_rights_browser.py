"""Rectification, erasure and Art. 19 notices at the desk, in headless Chromium against a real
Orthanc that had routed the study to a DICOM destination: the front desk files, the reviewer (or
the DPO) decides with a reason, the job finishes, and the notice to the earlier recipient is sent.
Bad input gets messages next to the fields; a refusal needs its retention ground."""
from __future__ import annotations

from selenium.webdriver.common.by import By

from desk_helpers import live_desk, select, sign_in_as, wait_text
from orthanc_server import make_ct_study, wait_for, write_rules
from portability.models import ConsentSigning, Erasure, Rectification

OLD, NEW = "Wrongname^Agatha", "Rightname^Agatha"


def route_and_wait(orthanc, study_id, rule_name):
    job = orthanc.post_json("/gdpr/route", {"level": "study", "id": study_id, "rule": rule_name})
    return wait_for(lambda: (j := orthanc.get_json(f"/gdpr/jobs/{job['id']}"))["status"] in ("done", "failed", "refused")
                    and j, 30, message="route job")


def test_rectification_and_erasure_filed_decided_applied_and_recipients_told(orthanc_factory, storescp, browser, tmp_path):
    rules = write_rules(tmp_path / "rules.json", {
        "name": "research-scp", "match": {"Modality": ["NO-SUCH-MODALITY"]},
        "destination": {"type": "modality", "name": "scp"}, "profile": "research", "purpose": "research",
        "lawful_basis": "research"})
    orthanc = orthanc_factory(modalities={"scp": storescp.as_modality()},
                              gdpr={"RoutingRules": str(rules), "DownloadProfiles": ["basic", "research"]})
    ids = [orthanc.upload(f) for f in make_ct_study(3, patient_id="RECT-W", patient_name=OLD, series=1)]
    study = orthanc.get_json(f"/instances/{ids[0]}/study")["ID"]
    assert route_and_wait(orthanc, study, "research-scp")["status"] == "done"
    storescp.wait_for_files(3)
    gone = [orthanc.upload(f) for f in make_ct_study(2, patient_id="ERASE-W", patient_name="Gone^Gina", series=1)]
    # An earlier recipient a person must tell: someone downloaded the study (de-identified) through the plugin.
    gone_study = orthanc.get_json(f"/instances/{gone[0]}/study")["ID"]
    assert orthanc.get(f"/gdpr/studies/{gone_study}/archive", params={"profile": "research"}).status_code == 200
    for f in make_ct_study(1, patient_id="KEEP-W", patient_name="Kept^Karl", series=1):
        orthanc.upload(f)

    service, app = live_desk(orthanc, tmp_path)
    with service as url:
        browser.base = url
        # ---------------------------------------------------------------- rectification
        sign_in_as(browser, "alice")
        browser.visit("/ui/desk/rectifications/new", "rectification-new")
        browser.fill("patient_id", "RECT-W")
        select(browser, "attribute", "PatientBirthDate")
        browser.fill("proposed", "1990-13-45")
        browser.press("File the rectification")
        browser.check("rectification-bad-date")
        assert "must be a date written YYYYMMDD" in browser.text() and "1990-13-45" not in browser.text()
        with app.state.db.session() as s:
            assert s.query(Rectification).count() == 0
        select(browser, "attribute", "PatientName")
        browser.fill("proposed", NEW)
        browser.press("File the rectification")
        browser.check("rectification-filed")
        diff = browser.driver.find_element(By.ID, "diff").text
        assert OLD in diff and NEW in diff and "A reviewer decides" in browser.text()

        rect_page = browser.driver.current_url.removeprefix(url)
        sign_in_as(browser, "rita")
        browser.visit(rect_page, "rectification-to-decide")
        browser.press("Record the decision")  # nothing chosen
        browser.check("rectification-decision-errors")
        assert "Decision: choose approve or reject" in browser.text()
        browser.choose("approve")
        browser.fill("reason", "passport seen, name corrected")
        browser.press("Record the decision")
        wait_text(browser, "applied", 120)
        browser.check("rectification-applied")
        assert "sent" in browser.text()
        browser.visit("/ui/desk/notices?show=all", "notices")
        notices = browser.driver.find_element(By.ID, "notices").text
        assert "modality:scp" in notices and "rejection-note-113038" in notices and "sent" in notices
        tags = [orthanc.get_json(f"/instances/{i}/simplified-tags") for i in orthanc.get_json("/instances")]
        assert NEW in {t["PatientName"] for t in tags} and OLD not in {t["PatientName"] for t in tags}

        # ---------------------------------------------------------------- erasure
        from portability import consent_forms
        from test_desk_api import FORM, strokes

        db = app.state.db  # the patient to erase had signed a consent on screen
        form = consent_forms.publish(db, by="dora", **FORM)
        signing = consent_forms.prepare(db, form_id=form, patient_id="ERASE-W", issuer="", by="alice")
        consent_forms.sign(db, signing, strokes(), by="alice", issuer_label="St. Example Hospital")
        sign_in_as(browser, "alice")
        browser.visit("/ui/desk/erasures/new", "erasure-new")
        browser.fill("patient_id", "ERASE-W")
        browser.fill("grounds", "consent withdrawn, Art. 17(1)(b)")
        browser.press("File the erasure request")
        browser.check("erasure-filed")
        erasure_page = browser.driver.current_url.removeprefix(url)
        assert "The data protection officer decides" in browser.text()
        browser.visit("/ui/desk/erasures/new", "erasure-new-2")
        browser.fill("patient_id", "KEEP-W")
        browser.press("File the erasure request")
        keep_page = browser.driver.current_url.removeprefix(url)

        sign_in_as(browser, "rita")  # a reviewer may not erase
        browser.driver.get(url + erasure_page)
        assert "The data protection officer decides" in browser.text()

        sign_in_as(browser, "dora")
        browser.visit(keep_page, "erasure-to-refuse")
        browser.choose("grant-2")  # refuse
        browser.fill("reason", "treatment still running")
        browser.press("Record the decision")
        browser.check("erasure-refusal-needs-ground")
        assert "Retention ground: a refusal must name the ground" in browser.text()
        select(browser, "retention_ground", "medical-record-retention")
        browser.press("Record the decision")
        browser.check("erasure-refused")
        assert "refused" in browser.text() and "retention of the medical record" in browser.text()

        browser.visit(erasure_page, "erasure-to-grant")
        assert "Gone" not in browser.driver.title
        browser.choose("grant")
        browser.fill("reason", "no reason to keep the images")
        browser.press("Record the decision")
        wait_text(browser, "erased", 120)
        browser.check("erasure-done")
        assert not orthanc.post_json("/tools/find", {"Level": "Patient", "Query": {"PatientID": "ERASE-W"}})
        assert orthanc.post_json("/tools/find", {"Level": "Patient", "Query": {"PatientID": "KEEP-W"}})
        with app.state.db.session() as s:
            assert {e.status for e in s.query(Erasure)} == {"erased", "refused"}
            signed = s.get(ConsentSigning, signing)  # the signature and the document naming the patient are gone
            assert (signed.patient_id, signed.signature, signed.fhir) == ("erased:1", None, None)

        # The notice to the person who downloaded: marked sent with channel and evidence.
        browser.visit("/ui/desk/notices", "notices-open")
        row = browser.driver.find_element(By.CSS_SELECTOR, "#notices tbody tr")
        assert "user-download" in row.text and "to-send" in row.text
        notice_id = row.get_attribute("id").removeprefix("notice-")
        browser.driver.find_element(By.XPATH, f"//summary[normalize-space()='Mark sent notice {notice_id}']").click()
        browser.press(f"Mark sent notice {notice_id}")  # no channel, no evidence
        browser.check("notice-mark-errors")
        assert "Channel" in browser.driver.find_element(By.CLASS_NAME, "error-summary").text
        select(browser, f"channel-{notice_id}", "email")
        browser.fill(f"evidence-{notice_id}", "mail 2026-12-01 to the research office")
        browser.press(f"Mark sent notice {notice_id}")
        browser.check("notice-sent")
        assert "mail 2026-12-01 to the research office" in browser.driver.find_element(By.ID, f"notice-{notice_id}").text

        browser.visit("/ui/desk", "dashboard-after")
        assert "No open request matches." in browser.text()
