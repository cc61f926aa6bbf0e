"""Every role walks the whole workspace in headless Chromium, against a real Orthanc holding a
patient whose name carries markup: the review pages, the rights desk and everything their links
reach. What the pieces must agree on, page after page:

- no link shown to a role leads to a refusal, a missing page or a server error;
- the browser's console stays empty (no CSP violation, no failed load: not even the favicon);
- no page title and no URL carries the patient's ID or name, and the name's markup is escaped;
- every form that posts carries the CSRF token.
"""
from __future__ import annotations

import re
import time
from urllib.parse import urlparse

from selenium.webdriver.common.by import By

from desk_helpers import live_desk
from orthanc_server import make_ct_study

PATIENT_ID = "WALK-7319"
PATIENT_NAME = "Walk^<script>alert(1)</script>Zorro"
ACCOUNTS = {"alice": ("alice-pw", "staff"), "carl": ("carl-pw", "clinician"), "rita": ("rita-pw", "reviewer"),
            "dora": ("dora-pw", "dpo")}
#: Links a walk does not follow: leaving, downloads and files rather than pages, and the review's
#: pictures (one de-identification per link; the review page itself is walked).
NOT_PAGES = re.compile(r"/logout$|\.(csv|svg)$|/(evidence|fhir|print)$|/images/|/static/|^/download/")


def _status(browser) -> int:
    return browser.driver.execute_script("return performance.getEntriesByType('navigation')[0].responseStatus")


def _walk(browser, base: str, study: str, name: str) -> dict[str, int]:
    """Sign in as ``name``, search the patient, then visit the start pages and every page their
    links reach (one visit per path: query variants of a page are the same page). Returns the
    status of each path; raises on the first page that breaks a rule."""
    browser.driver.delete_all_cookies()
    browser.sign_in(name, ACCOUNTS[name][0])
    browser.visit("/ui/studies", f"{name}-search")
    browser.fill("patient", PATIENT_ID)
    browser.press("Search")
    browser.check(f"{name}-search-results")
    assert PATIENT_ID in browser.text()  # found, shown escaped
    start = ["/ui/", f"/ui/studies/{study}", f"/ui/studies/{study}/review?profile=research",
             f"/ui/studies/{study}/anonymous-slices"]
    queue = [(base + path, True) for path in start]
    queue += [(a.get_attribute("href"), False) for a in browser.driver.find_elements(By.CSS_SELECTOR, "a[href]")]
    seen: dict[str, int] = {}
    while queue:
        url, started = queue.pop(0)
        parts = urlparse(url)
        if not url.startswith(base) or parts.path in seen or NOT_PAGES.search(parts.path):
            continue
        browser.driver.get(url)
        status = _status(browser)
        seen[parts.path] = status
        where = f"{name} at {parts.path} ({status})"
        # a start page may refuse a role (with its own page); a link shown to it may not
        assert status == 200 or (started and status == 403), where
        console = [e["message"] for e in browser.driver.get_log("browser")
                   if not (status == 403 and f"status of 403" in e["message"])]
        browser.check(re.sub(r"[^a-z0-9]+", "-", f"{name}-{parts.path}")[:80])  # screenshot, CSP, labels
        assert console == [], f"{where}: {console}"
        current = urlparse(browser.driver.current_url)
        for value in (PATIENT_ID, "Zorro"):
            assert value not in browser.driver.title and value not in current.path + current.query, where
        assert "<script>alert" not in browser.driver.page_source, where
        for form in browser.driver.find_elements(By.CSS_SELECTOR, "form[method=post]"):
            assert form.find_elements(By.CSS_SELECTOR, "input[type=hidden][name=csrf_token]"), \
                f"{where}: a form posting to {form.get_attribute('action')} has no CSRF token"
        queue += [(a.get_attribute("href"), False) for a in browser.driver.find_elements(By.CSS_SELECTOR, "a[href]")]
    return seen


def test_every_role_walks_every_page_it_is_shown(orthanc, browser, tmp_path):
    study = None
    for data in make_ct_study(2, patient_name=PATIENT_NAME, patient_id=PATIENT_ID, series=1):
        study = orthanc.get(f"/instances/{orthanc.upload(data)}/study").json()["ID"]
    service, _ = live_desk(orthanc, tmp_path, staff_users=ACCOUNTS)
    with service as url:
        browser.base = url
        walked = {name: _walk(browser, url, study, name) for name in ACCOUNTS}
    anonymous = f"/ui/studies/{study}/anonymous-slices"
    # the role gates, as walked: the export of anonymous slices and the DPO's pages
    assert walked["alice"][anonymous] == walked["carl"][anonymous] == 403
    assert walked["rita"][anonymous] == walked["dora"][anonymous] == 200
    for name in ("alice", "carl", "rita"):
        assert "/ui/desk/users" not in walked[name] and "/ui/anonymity" not in walked[name], name
    assert {"/ui/desk/users", "/ui/anonymity", "/ui/desk/audit", "/ui/releases", "/ui/desk/consent",
            "/ui/desk/notices"} <= set(walked["dora"])
    assert {"/ui/desk", "/ui/desk/requests/new", "/ui/desk/rectifications/new"} <= set(walked["alice"])


def test_api_docs_render_from_this_origin_only(browser, tmp_path):
    """Swagger UI and ReDoc, with a staff login, under a policy that admits their own start-up
    blocks by hash: both render, every resource comes from the service, and ReDoc's logo from a
    CDN is blocked by the policy rather than fetched (a hospital network is often offline, and
    must not tell a CDN who reads its API docs)."""
    import base64

    service, _ = live_desk(None, tmp_path)
    with service as url:
        login = base64.b64encode(b"alice:alice-pw").decode()
        browser.driver.execute_cdp_cmd("Network.enable", {})
        browser.driver.execute_cdp_cmd("Network.setExtraHTTPHeaders", {"headers": {"Authorization": f"Basic {login}"}})
        for path, shown in (("/docs", "/openapi.json"), ("/redoc", "consent forms")):
            browser.driver.get(url + path)
            deadline = time.monotonic() + 60
            while shown not in browser.text() and time.monotonic() < deadline:
                time.sleep(0.2)
            assert shown in browser.text(), path
            browser.screenshot(path.strip("/"))
            resources = browser.driver.execute_script(
                "return performance.getEntriesByType('resource').map(e => e.name)")
            console = [e["message"] for e in browser.driver.get_log("browser")]
            blocked = [m for m in console if "violates the following Content Security Policy" in m
                       and "has been blocked" in m]
            assert len(blocked) == len(console), console  # nothing failed but what the policy stopped
            assert all("https://cdn.redoc.ly/" in m for m in blocked), blocked
            assert (path == "/docs") == (blocked == []), path
            # Chromium lists a blocked load among the resources too: each foreign one was blocked
            foreign = [r for r in resources if not r.startswith(url + "/")]
            assert all(any(r in m for m in blocked) for r in foreign), (foreign, blocked)
