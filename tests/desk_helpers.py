"""Shared set-up of the rights desk's browser tests: the service on a live port beside a real
Orthanc, staff accounts, and a few page actions. Holds no tests itself."""
from __future__ import annotations

import time

from browser import LiveService
from portability.app import create_app
from test_rights_common import settings_for

PASSWORDS = {"alice": "alice-pw", "rita": "rita-pw", "dora": "dora-pw"}


def live_desk(orthanc, tmp_path, port: int | None = None, **overrides) -> tuple[LiveService, object]:
    """The service (SQLite) for ``orthanc``, ready to be entered as ``with service as url``."""
    app = create_app(settings_for(orthanc, f"sqlite:///{tmp_path / 'desk.sqlite'}", tmp_path, **overrides))
    return LiveService(app, port), app


def sign_in_as(browser, name: str) -> None:
    browser.driver.delete_all_cookies()
    browser.sign_in(name, PASSWORDS[name])


def wait_text(browser, text: str, timeout: float = 60, reload: bool = False) -> None:
    """Wait until the page shows ``text`` (the desk's own script reloads working pages)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if text in browser.text():
            return
        if reload:
            browser.driver.refresh()
        time.sleep(0.5)
    raise AssertionError(f"the page never showed {text!r}: {browser.text()[:800]}")


def field_value(browser, field_id: str) -> str:
    from selenium.webdriver.common.by import By

    return browser.driver.find_element(By.ID, field_id).get_attribute("value")


def select(browser, field_id: str, value: str) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import Select

    Select(browser.driver.find_element(By.ID, field_id)).select_by_value(value)
