"""The staff workspace's foundation: login, sessions, CSRF, security headers, error pages, and
the pages passing the browser checks (screenshots, labels, alt text, headings, CSP)."""
from __future__ import annotations

import re

import pytest
from fastapi.testclient import TestClient

from browser import LiveService, audit_html
from portability import accounts
from portability.app import create_app
from portability.settings import Settings

USERS = {"sam": ("sam-pw-1", "staff"), "rita": ("rita-pw-1", "reviewer")}


@pytest.fixture
def app(tmp_path):
    return create_app(Settings(data_dir=tmp_path / "data", staff_users=dict(USERS), worker=False))


def csrf(page: str) -> str:
    return re.search(r'name="csrf_token" value="([^"]+)"', page).group(1)


def sign_in(client: TestClient, name="rita", password="rita-pw-1"):
    token = csrf(client.get("/ui/login").text)
    return client.post("/ui/login", data={"name": name, "password": password, "csrf_token": token},
                       follow_redirects=False)


def test_pages_send_a_strict_policy_and_no_store(app):
    with TestClient(app) as c:
        r = c.get("/ui/login")
        assert r.headers["content-security-policy"].startswith("default-src 'self'")
        assert "frame-ancestors 'none'" in r.headers["content-security-policy"]
        assert r.headers["x-content-type-options"] == "nosniff"
        assert r.headers["referrer-policy"] == "no-referrer"
        assert r.headers["cache-control"] == "no-store"
        assert audit_html(r.text) == []
        css = c.get("/ui/static/gdpr.css")
        assert css.status_code == 200 and "no-store" not in css.headers.get("cache-control", "")


def test_signed_out_pages_redirect_to_login_and_back(app):
    with TestClient(app) as c:
        r = c.get("/ui/", follow_redirects=False)
        assert r.status_code == 303 and r.headers["location"] == "/ui/login?next=/ui/"
        r = sign_in(c)
        assert r.status_code == 303 and r.headers["location"] == "/ui/"
        cookie = r.headers["set-cookie"]
        assert "HttpOnly" in cookie and "SameSite=strict" in cookie and "Path=/ui" in cookie
        assert "rita" in c.get("/ui/").text


def test_login_errors_link_to_their_fields_and_wrong_passwords_are_audited(app):
    with TestClient(app) as c:
        token = csrf(c.get("/ui/login").text)
        r = c.post("/ui/login", data={"name": "", "password": "", "csrf_token": token})
        assert r.status_code == 422
        assert 'href="#name"' in r.text and 'href="#password"' in r.text
        r = c.post("/ui/login", data={"name": "rita", "password": "wrong", "csrf_token": token})
        assert r.status_code == 401 and "not right" in r.text
        assert "wrong" not in r.text.replace("wrong user name", "")  # the typed password is not echoed
        from portability.models import Base  # noqa: F401 - tables exist once the app started
        from sqlalchemy import text

        with app.state.db.engine.connect() as conn:
            events = [row[0] for row in conn.execute(text("SELECT event FROM portability_audit"))]
        assert "access.refused" in events


def test_every_unsafe_form_needs_the_csrf_token(app):
    with TestClient(app) as c:
        c.get("/ui/login")
        r = c.post("/ui/login", data={"name": "rita", "password": "rita-pw-1"})
        assert r.status_code == 403 and "did not come from this site" in r.text
        assert sign_in(c).status_code == 303
        r = c.post("/ui/logout", data={"csrf_token": "0" * 64})
        assert r.status_code == 403
        token = csrf(c.get("/ui/").text)
        r = c.post("/ui/logout", data={"csrf_token": token}, follow_redirects=False)
        assert r.status_code == 303
        assert c.get("/ui/", follow_redirects=False).status_code == 303  # the session is gone


def test_a_removed_account_loses_its_session_at_once(app):
    with TestClient(app) as c:
        assert sign_in(c).status_code == 303
        accounts.set_enabled(app.state.db, "rita", False, "test")  # disabled in the account store
        assert c.get("/ui/", follow_redirects=False).status_code == 303


def test_error_pages_are_pages_without_internals(app):
    with TestClient(app) as c:
        sign_in(c)
        r = c.get("/ui/no-such-page/<script>alert(1)</script>")
        assert r.status_code == 404 and "Page not found" in r.text
        assert "<script>" not in r.text and "Traceback" not in r.text
        assert audit_html(r.text) == []
        assert c.get("/api/nothing").headers["content-type"] == "application/json"  # API stays JSON


def test_login_and_home_pass_the_browser_checks(app, browser):
    with LiveService(app) as url:
        browser.base = url
        browser.visit("/ui/", "redirected-to-sign-in")
        assert "Sign in" in browser.driver.title
        browser.fill("name", "sam")
        browser.fill("password", "not-it")
        browser.press("Sign in")
        browser.check("wrong-password")
        assert "There is a problem" in browser.text()
        browser.fill("name", "sam")
        browser.fill("password", "sam-pw-1")
        browser.press("Sign in")
        browser.check("home")
        assert "Signed in as sam" in browser.text()
        browser.visit("/ui/missing", "not-found")
        assert "Page not found" in browser.text()
        browser.press("Sign out")
        browser.check("signed-out")
        assert "Sign in" in browser.driver.title
