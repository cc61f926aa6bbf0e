"""The patient's copy tells everything Art. 15 promises, end to end against a real Orthanc with
the plugin, DCMTK storescp and the service: the study is first routed (one rule, de-identified)
and downloaded (one staff user), the patient downloads a first copy; the next copy lists all three
recipients (date, purpose, lawful basis, profile), in the patient's language first, and its
viewer works from file:// in headless Chromium with every slice reachable by links and no
WCAG 2.1 AA violation (axe-core)."""
from __future__ import annotations

import zipfile
from datetime import datetime, timezone
from pathlib import Path

from babel.dates import format_date

from axe import axe_violations
from bundle_pages import parse, positions, viewer_folders, walk_by_next_links
from orthanc_server import make_ct_study, wait_for, write_rules
from test_rights_common import STAFF, client_for, settings_for

EVIL = "<script>alert(1)</script>^Eve"
SITE = dict(recipient_names={"modality:scp": "University research archive"},
            retention_years=10, retention_law="§ 630f BGB", supervisory_authority="Data Protection Authority",
            supervisory_authority_contact="complaints@dpa.example", rights_contact="Data protection office, dpo@hospital.example",
            site_purposes=(("care", "care"),), bundle_languages=("en", "de"))


def _bundle(c, settings_dir: Path, language: str | None = None) -> tuple[int, Path]:
    body = {"patient_id": "ART15-1", "kind": "access"} | ({"language": language} if language else {})
    req = c.post("/requests", json=body, headers=STAFF)
    assert req.status_code == 201, req.text
    req = req.json()
    assert req["language"] == language
    assert c.post(f"/requests/{req['id']}/identity", json={"method": "id-card-in-person"}, headers=STAFF).status_code == 200
    job = c.post(f"/requests/{req['id']}/bundle", headers=STAFF).json()
    job = wait_for(lambda: (j := c.get(f"/jobs/{job['id']}", headers=STAFF).json())["status"] in ("done", "failed") and j,
                   120, message="bundle job")
    assert job["status"] == "done", job
    return job["id"], settings_dir / "bundles" / f"request-{req['id']}-job-{job['id']}.zip"


def test_copy_lists_every_recipient_and_its_viewer_works_offline(orthanc_factory, storescp, tmp_path, browser):
    rules = write_rules(tmp_path / "rules.json", {
        "name": "research-scp", "match": {"Modality": ["NO-SUCH-MODALITY"]},
        "destination": {"type": "modality", "name": "scp"}, "profile": "research", "purpose": "research",
        "lawful_basis": "research"})
    orthanc = orthanc_factory(modalities={"scp": storescp.as_modality()}, gdpr={"RoutingRules": str(rules)})
    ids = [orthanc.upload(f) for f in make_ct_study(4, patient_id="ART15-1", patient_name=EVIL, series=2)]
    study = orthanc.get_json(f"/instances/{ids[0]}/study")["ID"]
    job = orthanc.post_json("/gdpr/route", {"level": "study", "id": study, "rule": "research-scp"})
    wait_for(lambda: orthanc.get_json(f"/gdpr/jobs/{job['id']}")["status"] == "done", 30, message="route job")
    storescp.wait_for_files(4)
    assert orthanc.get(f"/gdpr/studies/{study}/archive", params={"purpose": "care"}).status_code == 200

    db = f"sqlite:///{tmp_path / 'service.sqlite'}"
    with client_for(orthanc, db, tmp_path, user_organisations={orthanc.username: "Radiology department"},
                    **SITE) as c:
        first_job, _ = _bundle(c, tmp_path / "service-data")
        link = c.post(f"/jobs/{first_job}/links", json={"ttl_hours": 1}, headers=STAFF).json()
        assert c.get(link["url"]).status_code == 200  # the patient downloads the first copy
        second_job, path = _bundle(c, tmp_path / "service-data", language="de")
        token = c.post(f"/jobs/{second_job}/links", json={"ttl_hours": 1}, headers=STAFF).json()["token"]
        assert c.get(f"/download/{token}/view/INDEX.HTM").headers["content-type"].startswith("text/html")
        assert c.get(f"/download/{token}/view/IHE_PDI/V0001/D00001.JPG").headers["content-type"] == "image/jpeg"
        for hidden in ("DICOMDIR", "FHIR/R5.JSON", "SHA256SUMS", "../../etc/passwd", "PT000000/ST000000/SE000000/IM000000"):
            assert c.get(f"/download/{token}/view/{hidden}").status_code == 404, hidden
        assert c.get("/download/not-a-token/view/INDEX.HTM").status_code == 404
    root = tmp_path / "copy"
    with zipfile.ZipFile(path) as zf:
        zf.extractall(root)

    today = datetime.now(timezone.utc).date()
    en = parse(root / "IHE_PDI" / "EN.HTM")
    recipients = {row[1]: row for row in en.rows if len(row) == 5}
    when = format_date(today, "long", locale="en")
    assert recipients["University research archive"] == [
        when, "University research archive", "Medical research",
        "Research: scientific research with safeguards, such as removing your name (GDPR Art. 9(2)(j) and Art. 89).",
        "No. Name and ID were removed (profile “research”)."]
    assert recipients["A member of staff of Radiology department"] == [
        when, "A member of staff of Radiology department", "Your diagnosis and treatment",
        "Health care: needed for your diagnosis and treatment (GDPR Art. 9(2)(h)).",
        "No. Name and ID were removed (profile “basic”)."]
    assert recipients["You (an earlier copy)"][4] == "Yes, with your name and ID."
    assert len([r for r in en.rows if len(r) == 5]) == 4  # header + three recipients
    purposes = {row[0]: row for row in en.rows if len(row) == 3}
    assert purposes["Medical research"][2] == "This was done with your images."
    assert purposes["Your diagnosis and treatment"][2] in ("We use data like yours for this.",
                                                             "This was done with your images.")
    text = (root / "IHE_PDI" / "EN.HTM").read_text()
    for fact in ("10 years", "§ 630f BGB", "Data Protection Authority, complaints@dpa.example",
                 "Data protection office, dpo@hospital.example", "No decision about you is made by a computer alone",
                 "GE MEDICAL SYSTEMS"):
        assert fact in text, fact

    de = parse(root / "INDEX.HTM")  # the patient asked for German: INDEX.HTM is German
    assert '<html lang="de"' in (root / "INDEX.HTM").read_text()
    de_recipients = {row[1]: row for row in de.rows if len(row) == 5}
    assert de_recipients["University research archive"][0] == format_date(today, "long", locale="de")
    assert de_recipients["University research archive"][2] == "Medizinische Forschung"
    assert "Sie selbst (eine frühere Kopie)" in de_recipients
    readme = (root / "README.TXT").read_text()
    assert "University research archive" in readme and "Medizinische Forschung" in readme
    for page in root.rglob("*.HTM"):
        assert EVIL not in page.read_text(), page

    # The viewer from file://: each series, each window, every slice by its next links.
    folders = viewer_folders(root)
    assert len(folders) == 2
    for folder in folders:
        total = len(list(folder.glob("D*.JPG")))
        assert total == 2
        for first in sorted(folder.glob("?00001.HTM")):
            assert positions(walk_by_next_links(browser, first)) == list(range(1, total + 1))
    for page in (root / "INDEX.HTM", root / "IHE_PDI" / "EN.HTM", folders[0] / "D00001.HTM",
                 folders[1] / "LINDEX.HTM"):
        browser.driver.get(page.as_uri())
        browser.check(f"axe-{page.name}")
        assert axe_violations(browser.driver) == [], page

    # ... and from the download landing page, served by the service out of the same ZIP.
    from selenium.webdriver.common.by import By

    from browser import LiveService
    from portability.app import create_app

    settings = settings_for(orthanc, db, tmp_path, user_organisations={orthanc.username: "Radiology department"}, **SITE)
    with LiveService(create_app(settings)) as url:
        browser.base = url
        browser.visit(f"/download/{token}?lang=en", "landing")
        browser.driver.find_element(By.ID, "view").click()
        browser.check("landing-view-index")
        assert "University research archive" in browser.text()
        browser.driver.find_element(By.PARTIAL_LINK_TEXT, "Standardansicht").click()
        assert positions(walk_by_next_links(browser, None)) == [1, 2]
        assert axe_violations(browser.driver) == []
