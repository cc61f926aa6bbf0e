"""Access and portability at the desk, in headless Chromium against a real Orthanc: the front desk
files the request with the identity check, prepares the copy (progress bar fed by the job), issues
and copies the link; the patient's landing page (EN and DE) downloads the bundle, a download is
resumed with Range, and an expired or revoked link gets a clear page."""
from __future__ import annotations

import io
import time
import zipfile
from datetime import timedelta

import requests
from selenium.webdriver.common.by import By

from desk_helpers import field_value, live_desk, select, sign_in_as, wait_text
from orthanc_server import make_ct_study
from portability.models import DownloadLink, PortabilityRequest, utcnow


def test_front_desk_files_prepares_and_links_a_copy_and_the_patient_downloads_it(orthanc, browser, tmp_path):
    for data in make_ct_study(4, patient_id="DESK-A", patient_name="Doe^Jane", series=2):
        orthanc.upload(data)
    service, app = live_desk(orthanc, tmp_path)
    with service as url:
        browser.base = url
        sign_in_as(browser, "alice")
        browser.visit("/ui/desk", "dashboard-empty")
        browser.visit("/ui/desk/requests/new", "request-new")
        browser.press("File the request")  # nothing filled in: messages next to the fields
        browser.check("request-new-errors")
        assert "Patient ID: enter the patient's ID" in browser.text()
        assert "How identity was verified" in browser.driver.find_element(By.CLASS_NAME, "error-summary").text
        browser.fill("patient_id", "NO-SUCH-PATIENT")
        select(browser, "method", "id-card-in-person")
        browser.press("File the request")
        assert "No patient with this ID" in browser.text() and "NO-SUCH-PATIENT" not in browser.text()
        with app.state.db.session() as s:
            assert s.query(PortabilityRequest).count() == 0  # nothing half-saved
        browser.fill("patient_id", "DESK-A")
        select(browser, "language", "en")
        browser.press("File the request")
        browser.check("request-filed")
        with app.state.db.session() as s:
            assert s.query(PortabilityRequest).one().language == "en"
        assert "/ui/desk/requests/" in browser.driver.current_url and "DESK-A" not in browser.driver.current_url
        assert "Identity card or passport, in person" in browser.text()

        browser.press("Prepare the copy")
        wait_text(browser, "Ready", 90)
        browser.check("request-copy-ready")
        progress = browser.driver.find_element(By.ID, "job-progress")
        assert progress.get_attribute("value") == progress.get_attribute("max") == "4"

        browser.press("Issue link")
        browser.check("request-link-issued")
        link = field_value(browser, "new-link")
        assert link.startswith(url + "/download/") and "DESK" not in link
        browser.driver.find_element(By.XPATH, "//button[normalize-space()='Copy link']").click()
        wait_text(browser, "Copied", 5)

        # The patient opens the link: the landing page, in English, then in German.
        browser.driver.delete_all_cookies()
        browser.driver.get(link)
        browser.check("landing-en")
        assert "Your medical images" in browser.driver.title and "DESK-A" not in browser.driver.page_source
        assert "Doe" not in browser.driver.page_source
        text = browser.text()
        assert "CT" in text and "How to open the files" in text and "INDEX.HTM" in text
        browser.driver.find_element(By.LINK_TEXT, "Deutsch").click()
        browser.check("landing-de")
        assert "Ihre medizinischen Bilder" in browser.driver.title and "herunterladen" in browser.text()

        # The button downloads the bundle in the browser.
        downloads = tmp_path / "downloads"
        downloads.mkdir()
        browser.driver.execute_cdp_cmd("Page.setDownloadBehavior", {"behavior": "allow", "downloadPath": str(downloads)})
        browser.driver.find_element(By.ID, "download").click()
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and not [p for p in downloads.iterdir() if p.suffix == ".zip"]:
            time.sleep(0.2)
        got = downloads / "medical-images.zip"
        assert got.exists(), list(downloads.iterdir())
        whole = got.read_bytes()
        assert zipfile.ZipFile(io.BytesIO(whole)).testzip() is None

        # A broken download resumes where it stopped (HTTP Range on the button's address).
        href = browser.driver.find_element(By.ID, "download").get_attribute("href")
        first = requests.get(href, headers={"Range": "bytes=0-999"}, timeout=30)
        rest = requests.get(href, headers={"Range": "bytes=1000-"}, timeout=30)
        assert (first.status_code, rest.status_code) == (206, 206) and first.content + rest.content == whole
        assert requests.get(link, timeout=30).content == whole  # a download tool gets the ZIP at the link itself

        # The desk sees the downloads; a revoked link and an expired one get a clear page.
        sign_in_as(browser, "alice")
        request_page = "/ui/desk/requests/1"
        browser.visit(request_page, "request-downloads")
        table = browser.driver.find_element(By.ID, "downloads").text
        assert "200" in table and "206 (resumed part)" in table
        browser.press("Revoke link 1")
        browser.check("request-link-revoked")
        browser.driver.delete_all_cookies()
        browser.driver.get(link)
        browser.check("landing-revoked")
        assert "no longer works" in browser.text() and "withdrawn" in browser.text()
        assert requests.get(href, timeout=30).status_code == 410

        sign_in_as(browser, "alice")
        browser.visit(request_page, "request-second-link")
        browser.press("Issue link")
        second = field_value(browser, "new-link")
        with app.state.db.session() as s:
            for row in s.query(DownloadLink).filter(DownloadLink.revoked_at.is_(None)):
                row.expires_at = utcnow() - timedelta(minutes=1)
        browser.driver.get(second + "?lang=de")
        browser.check("landing-expired-de")
        assert "abgelaufen" in browser.text()
        browser.driver.get(url + "/download/not-a-real-token")
        browser.check("landing-unknown")
        assert "not a valid download link" in browser.text()
