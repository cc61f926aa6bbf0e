"""Review before release, in the browser and as JSON, against a real Orthanc and the service:
search, study, review page (tags with action and purpose, filters, residual risk, images),
role rules for identified data, hostile names escaped, bad input answered with clear pages."""
from __future__ import annotations

import base64
import re

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import text

from browser import LiveService
from orthanc_server import make_ct_study
from portability.app import create_app
from portability.settings import Settings

XSS_NAME = "<script>alert(1)</script>^Evil"
PATIENT_ID = "REVIEW-PID-7781"
USERS = {"sam": ("sam-pw-1", "staff"), "rita": ("rita-pw-1", "reviewer")}


def basic(user: str) -> dict:
    return {"Authorization": "Basic " + base64.b64encode(f"{user}:{USERS[user][0]}".encode()).decode()}


@pytest.fixture
def study(orthanc):
    ids = {orthanc.upload(d) for d in make_ct_study(6, patient_name=XSS_NAME, patient_id=PATIENT_ID, series=2)}
    studies = orthanc.get_json("/studies")
    assert len(studies) == 1 and ids
    return studies[0]


@pytest.fixture
def app(orthanc, tmp_path):
    settings = Settings(data_dir=tmp_path / "service", orthanc_url=orthanc.url, orthanc_username=orthanc.username,
                        orthanc_password=orthanc.password, staff_users=dict(USERS), worker=False,
                        plugin_key_file=orthanc.key_file)
    return create_app(settings)


def test_json_twin_shows_action_rule_purpose_and_hides_originals_from_staff(app, study):
    with TestClient(app) as c:
        r = c.get(f"/api/studies/{study}/review", params={"profile": "research"}, headers=basic("rita"))
        assert r.status_code == 200, r.text
        doc = r.json()
        rows = {row["path"]: row for row in doc["tags"]["rows"]}
        name = rows["PatientName"]
        assert name["original"] == XSS_NAME and name["action"] == "D" and name["purpose"]
        assert PATIENT_ID not in (rows["PatientID"]["after"] or "")
        nested = rows["OtherPatientIDsSequence[0]/ReferencedPatientSequence[0]/PatientName"]
        assert nested["depth"] == 2
        assert "Clean Descriptors" in rows["StudyDescription"]["rule"]
        assert rows["StudyDescription"]["purpose"].startswith("Study and series descriptions")
        assert doc["residual_risk"] and doc["key_fingerprint"].startswith("hmac-sha256:")
        assert all(PATIENT_ID not in (row["after"] or "") and "Evil" not in (row["after"] or "")
                   for row in doc["tags"]["rows"])
        staff = c.get(f"/api/studies/{study}/review", params={"profile": "research"}, headers=basic("sam")).json()
        assert all(row["original"] is None for row in staff["tags"]["rows"])
        assert PATIENT_ID not in str(staff) and "Evil" not in str(staff)
        assert all(s["images"]["before"] is None for s in staff["series"])
        after = c.get(staff["series"][0]["images"]["after"], headers=basic("sam"))
        assert after.status_code == 200 and after.content[:3] == b"\xff\xd8\xff"
        before = c.get(doc["series"][0]["images"]["before"], headers=basic("sam"))
        assert before.status_code == 403
        assert c.get(doc["series"][0]["images"]["before"], headers=basic("rita")).status_code == 200
        with app.state.db.engine.connect() as conn:
            events = [row[0] for row in conn.execute(text("SELECT event FROM portability_audit"))]
        assert {"review.viewed", "review.picture", "access.refused"} <= set(events)


def test_filters_and_bad_input(app, study):
    with TestClient(app) as c:
        url = f"/api/studies/{study}/review"
        changed = c.get(url, params={"profile": "basic", "show": "changed"}, headers=basic("rita")).json()
        assert changed["tags"]["rows"] and all(r["changed"] for r in changed["tags"]["rows"])
        remains = c.get(url, params={"profile": "basic", "show": "remains"}, headers=basic("rita")).json()
        assert all(r["original"] == r["after"] for r in remains["tags"]["rows"])
        # A table longer than a page is paged, never cut: every row is on exactly one page.
        first = c.get(url, params={"profile": "basic"}, headers=basic("rita")).json()["tags"]
        assert first["pages"] == 2 and len(first["rows"]) == 200
        second = c.get(url, params={"profile": "basic", "page": 2}, headers=basic("rita")).json()["tags"]
        assert len(first["rows"]) + len(second["rows"]) == first["total"]
        assert c.get(url, params={"profile": "basic", "page": 3}, headers=basic("rita")).status_code == 422
        r = c.get(url, params={"profile": "no-such-profile"}, headers=basic("rita"))
        assert r.status_code == 422 and "no-such-profile" not in r.text and "profile" in r.text
        assert c.get("/api/studies/0000-unknown/review", params={"profile": "basic"},
                     headers=basic("rita")).status_code == 404
        assert c.get(url, params={"profile": "basic", "show": "everything"}, headers=basic("rita")).status_code == 422


def test_search_review_and_pictures_in_the_browser(app, study, browser):
    with LiveService(app) as url:
        browser.base = url
        browser.sign_in("rita", "rita-pw-1")
        browser.check("home")
        browser.visit("/ui/studies", "search")
        browser.fill("patient", PATIENT_ID)
        browser.press("Search")
        browser.check("results")
        page = browser.driver.page_source
        assert "<script>alert(1)</script>" not in page and "&lt;script&gt;" in page
        assert PATIENT_ID not in browser.driver.current_url
        browser.follow(XSS_NAME)
        browser.check("study")
        browser.press("Review")
        browser.check("review")
        assert "Review before release" in browser.driver.title and PATIENT_ID not in browser.driver.title
        table = browser.driver.find_element("id", "tag-table").text
        assert "keyed pseudonym" in table and "PatientName" in table
        afters = " ".join(e.text for e in browser.driver.find_elements("css selector", ".after-value"))
        assert PATIENT_ID not in afters and "Evil" not in afters
        images = browser.driver.find_elements("css selector", "img")
        assert len(images) == 4 and all(browser.driver.execute_script(
            "return arguments[0].complete && arguments[0].naturalWidth > 0", img) for img in images)
        browser.follow("Changed (%d)" % int(re.search(r"Changed \((\d+)\)", browser.text()).group(1)))
        browser.check("review-changed")
        browser.visit(f"/ui/studies/{study}/review?profile=nope", "unknown-profile")
        assert "no profile of that name" in browser.text()
        browser.visit("/ui/studies/does-not-exist/review?profile=basic", "unknown-study")
        assert "Page not found" in browser.text()


def test_a_multi_frame_series_gets_a_frame_slider_and_ct_window_presets_change_the_picture(app, orthanc, study):
    from pydicom.data import get_testdata_file

    orthanc.upload(get_testdata_file("emri_small.dcm"))  # one MR instance of 10 frames, its own study
    mr = next(s for s in orthanc.get_json("/studies") if s != study)
    with TestClient(app) as c:
        url = f"/api/studies/{mr}/review"
        doc = c.get(url, params={"profile": "basic"}, headers=basic("rita")).json()
        series = doc["series"][0]
        assert series["positions"] == 10 and series["position"] == 6 and series["frame"] == 5
        last = c.get(url, params={"profile": "basic", "focus": series["id"], "slice": 10}, headers=basic("rita")).json()
        assert last["series"][0]["frame"] == 9
        frames = {c.get(last["series"][0]["images"]["after"], headers=basic("rita")).content,
                  c.get(series["images"]["after"], headers=basic("rita")).content}
        assert len(frames) == 2  # two different frames
        ct = c.get(f"/api/studies/{study}/review", params={"profile": "basic"}, headers=basic("rita")).json()
        after = ct["series"][0]["images"]["after"]
        pictures = {c.get(after.replace("window=default", f"window={w}"), headers=basic("rita")).content
                    for w in ("default", "lung", "bone")}
        assert len(pictures) == 3
        assert c.get(after.replace("window=default", "window=rainbow"), headers=basic("rita")).status_code == 400


def test_masked_boxes_are_outlined_on_the_after_picture(app, orthanc, tmp_path, monkeypatch):
    import io
    import json
    import shutil

    from PIL import Image
    from pydicom.data import get_testdata_file

    from orthanc_gdpr.deid.profile import DEFAULT_PROFILES_DIR, PROFILES_ENV

    profiles = tmp_path / "profiles"
    shutil.copytree(DEFAULT_PROFILES_DIR, profiles)
    (profiles / "pixels.json").write_text(json.dumps({
        "name": "pixels", "description": "Basic profile with burned-in text masked",
        "options": {"clean-pixel-data": "Ultrasound carries names and dates in the image."}}))
    monkeypatch.setenv(PROFILES_ENV, str(profiles))
    orthanc.upload(get_testdata_file("US1_UNCR.dcm"))  # an ultrasound with burned-in annotations
    study = orthanc.get_json("/studies")[0]
    with TestClient(app) as c:
        doc = c.get(f"/api/studies/{study}/review", params={"profile": "pixels"}, headers=basic("rita")).json()
        series = doc["series"][0]
        assert len(series["masked_boxes"]) >= 5
        assert any(k.startswith("burned-in text") for k in doc["residual_risk"])
        picture = Image.open(io.BytesIO(c.get(series["images"]["after"], headers=basic("rita")).content)).convert("RGB")
        red = sum(1 for r, g, b in picture.getdata() if r > 200 and g < 90 and b < 90)
        assert red > 500  # the outlines
