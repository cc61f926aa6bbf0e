"""The dashboard in headless Chromium: every open request with its due date, overdue ones
standing out, filters, a case assigned and its deadline extended (Art. 12(3)) with the reason and
the notice to the patient; a double click on a form creates one record."""
from __future__ import annotations

from datetime import timedelta

from selenium.webdriver.common.action_chains import ActionChains
from selenium.webdriver.common.by import By

from desk_helpers import live_desk, select, sign_in_as
from portability.models import PatientFlag, utcnow


def test_dashboard_filters_overdue_assign_extend_and_one_record_per_double_click(browser, tmp_path):
    service, app = live_desk(None, tmp_path)
    with service as url:
        browser.base = url
        sign_in_as(browser, "alice")
        browser.visit("/ui/desk/flags", "flags-empty")
        browser.fill("patient_id", "DASH-1")
        browser.choose("kind-2")  # objection
        browser.fill("reason", "objects to research use, Art. 21(1)")
        ActionChains(browser.driver).double_click(
            browser.driver.find_element(By.XPATH, "//button[normalize-space()='Place the flag']")).perform()
        browser.driver.get(url + "/ui/desk/flags")
        browser.check("flags-after-double-click")
        with app.state.db.session() as s:
            assert s.query(PatientFlag).count() == 1  # one record for one form, however often it is sent
        browser.fill("patient_id", "DASH-2")
        browser.fill("reason", "accuracy contested, Art. 18(1)(a)")
        browser.press("Place the flag")
        with app.state.db.session() as s:  # the first request was received 40 days ago
            s.query(PatientFlag).filter_by(patient_id="DASH-1").one().recorded_at = utcnow() - timedelta(days=40)

        browser.visit("/ui/desk", "dashboard")
        rows = browser.driver.find_elements(By.CSS_SELECTOR, "#cases tbody tr")
        assert [r.text.split()[0] for r in rows] == ["DASH-1", "DASH-2"]  # soonest due first
        assert "row--overdue" in rows[0].get_attribute("class") and "Overdue" in rows[0].text
        assert "Overdue" not in rows[1].text
        select(browser, "overdue", "yes")
        browser.press("Filter")
        browser.check("dashboard-overdue")
        assert len(browser.driver.find_elements(By.CSS_SELECTOR, "#cases tbody tr")) == 1
        select(browser, "overdue", "")
        select(browser, "right", "restriction")
        browser.press("Filter")
        assert [r.text.split()[0] for r in browser.driver.find_elements(By.CSS_SELECTOR, "#cases tbody tr")] == ["DASH-2"]
        browser.driver.get(url + "/ui/desk?right=gossip")
        browser.check("dashboard-bad-filter")
        assert "Type: choose one of the listed rights" in browser.text()

        browser.visit("/ui/desk", "dashboard-again")
        browser.driver.find_element(By.CSS_SELECTOR, "a[href=\"/ui/desk/cases/flag/2\"]").click()
        browser.check("case")
        assert "A reviewer or the data protection officer can extend" in browser.text()
        browser.fill("assignee", "rita")
        browser.press("Save assignee")
        assert "rita" in browser.driver.find_element(By.CLASS_NAME, "summary-list").text

        sign_in_as(browser, "rita")
        browser.visit("/ui/desk/cases/flag/2", "case-reviewer")
        browser.fill("reason", "short")
        browser.press("Extend by two months")
        browser.check("case-extension-errors")
        summary = browser.driver.find_element(By.CLASS_NAME, "error-summary").text
        assert "Reason" in summary and "How the patient was told" in summary and "Reference of the notice" in summary
        browser.fill("reason", "three archives to search, two of them offline this month")
        select(browser, "channel", "letter")
        browser.fill("evidence", "letter 2026/4411")
        browser.press("Extend by two months")
        browser.check("case-extended")
        assert "Extended by two months" in browser.text()
        assert "The deadline was extended once" in browser.text()
        browser.visit("/ui/desk/cases/flag/1", "case-overdue")
        browser.fill("reason", "too late to extend this one, try anyway")
        select(browser, "channel", "email")
        browser.fill("evidence", "mail 1")
        browser.press("Extend by two months")
        assert "the first month has passed" in browser.text()
