"""Exporting anonymous slices from the review workspace, in a real browser against a real Orthanc:
review page -> export form -> refusal with an error summary -> export -> decision shown ->
one-time download of the ZIP."""
from __future__ import annotations

import io
import zipfile

import pytest
import requests

from anonymous_data import write_series
from browser import LiveService
from orthanc_gdpr.anonymous.png import chunks
from portability import chain
from portability.app import create_app
from portability.settings import Settings
from test_anonymous_slices import CLINICIAN, STATEMENT

USERS = {"rita": ("rita-pw-1", "reviewer")}


@pytest.fixture
def study(orthanc, tmp_path):
    for path in sorted(write_series(tmp_path / "ct", 60, text_on=(30,)).iterdir()):
        orthanc.upload(path)
    [study] = orthanc.get_json("/studies")
    return study


@pytest.fixture
def app(orthanc, tmp_path):
    return create_app(Settings(data_dir=tmp_path / "service", orthanc_url=orthanc.url,
                               orthanc_username=orthanc.username, orthanc_password=orthanc.password,
                               staff_users=dict(USERS), worker=False, plugin_key_file=orthanc.key_file))


def test_reviewer_exports_anonymous_slices_from_the_review_page(app, study, browser):
    with LiveService(app) as url:
        browser.base = url
        browser.sign_in("rita", "rita-pw-1")
        browser.visit(f"/ui/studies/{study}/review?profile=basic", "review")
        browser.driver.find_element("link text", "Export anonymous slices").click()
        browser.check("export-form")
        assert "Export anonymous slices" in browser.driver.title

        browser.fill("slices", "12,30")
        browser.press("Export slices")
        browser.check("refused-no-clinician")
        summary = browser.driver.find_element("css selector", ".error-summary")
        assert "clinician" in summary.text
        assert summary.find_element("tag name", "a").get_attribute("href").endswith("#clinician")

        browser.fill("clinician", CLINICIAN)
        browser.fill("statement", STATEMENT)
        browser.press("Export slices")
        browser.check("refused-burned-in")
        assert "slice 30: burned-in text found" in browser.driver.find_element("css selector", ".error-summary").text
        assert browser.driver.find_element("id", "slices").get_attribute("value") == "12,30"  # the form is kept

        browser.fill("slices", "12,40")
        browser.press("Export slices")
        browser.check("exported")
        assert "Anonymous slices exported" in browser.driver.title
        rows = browser.driver.find_elements("css selector", "#files tbody tr")
        assert [r.find_elements("tag name", "td")[0].text for r in rows] == ["12", "40"]

        [record] = [r for r in chain.records(app.state.db) if r["event"] == "anonymity.decision"]
        assert (record["actor"], record["clinician"], record["statement"]) == ("rita", CLINICIAN, STATEMENT)
        link = browser.driver.find_element("link text", "Download the slices (ZIP)").get_attribute("href")
        cookies = {c["name"]: c["value"] for c in browser.driver.get_cookies()}
        first = requests.get(link, cookies=cookies, timeout=30)
        assert first.status_code == 200 and first.headers["content-type"] == "application/zip"
        archive = zipfile.ZipFile(io.BytesIO(first.content))
        assert sorted(archive.namelist()) == sorted(o["file"] for o in record["outputs"])
        assert all(set(chunks(archive.read(n))) == {"IHDR", "IDAT", "IEND"} for n in archive.namelist())
        assert requests.get(link, cookies=cookies, timeout=30).status_code == 404  # one download only
        browser.driver.get(link)
        browser.check("download-taken")
        assert "Download not found" in browser.text()


def test_dpo_reads_the_anonymity_report_in_the_browser(orthanc, tmp_path, browser):
    app = create_app(Settings(data_dir=tmp_path / "service", orthanc_url=orthanc.url,
                              orthanc_username=orthanc.username, orthanc_password=orthanc.password,
                              staff_users={"dora": ("dora-pw-1", "dpo")}, worker=False))
    with LiveService(app) as url:
        chain.append(app.state.db, "anonymity.decision", actor="rita", criterion=2,
                     classification="anonymous-slices", decided_by="rita", clinician=CLINICIAN,
                     statement=STATEMENT, rationale="2 of 60 slices of one series", source_series=["s-1"],
                     outputs=[{"file": "a.png", "sha256": "ab" * 32}], limits={"max_slices_per_series": 5})
        chain.append(app.state.db, "release.approved", actor="rita", study="st-1", profile="research",
                     classification="anonymous-aggregate")
        browser.base = url
        browser.sign_in("dora", "dora-pw-1")
        browser.visit("/ui/anonymity", "report")
        decisions = browser.driver.find_element("id", "decision-table").text
        assert CLINICIAN in decisions and "anonymous-slices (criterion 2)" in decisions and "ab" * 32 in decisions
        others = browser.driver.find_element("id", "other-table").text
        assert "pseudonymised" in others and "recorded as anonymous-aggregate" in others
        browser.visit("/ui/anonymity?since=2026-13-01", "bad-date")
        assert "Enter the first day as a date" in browser.driver.find_element("css selector", ".error-summary").text
        cookies = {c["name"]: c["value"] for c in browser.driver.get_cookies()}
        csv_text = requests.get(f"{url}/ui/anonymity/report.csv", cookies=cookies, timeout=30).text
        assert csv_text.startswith("when,audit_seq,classification") and CLINICIAN in csv_text
        assert [r for r in chain.records(app.state.db) if r["event"] == "anonymity.report"]
