"""Browser tests: Debian's headless Chromium driven by selenium, plus the service on a real port.

- :class:`LiveService` runs a FastAPI app with uvicorn on a free loopback port, in a thread.
- :class:`Browser` drives ``/usr/bin/chromium`` through ``/usr/bin/chromedriver`` (the Debian
  packages ``chromium`` and ``chromium-driver``, same version), with a fresh profile and no
  network chatter. :meth:`Browser.visit` / :meth:`Browser.check` save a full-page screenshot of
  every page to ``tests/artifacts/<test>/`` and check it is not blank, run a small accessibility
  check (every input has a label, every image has alt text, no heading level skipped), check the
  page obeys the CSP (no inline script or style attribute) and that Chromium logged no CSP
  violation.

The ``browser`` fixture (tests/conftest.py) gives one :class:`Browser` per test.
"""
from __future__ import annotations

import base64
import io
import re
import shutil
import socket
import tempfile
import threading
import time
from html.parser import HTMLParser
from pathlib import Path

ARTIFACTS = Path(__file__).resolve().parent / "artifacts"
CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"
FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--disable-dev-shm-usage", "--window-size=1280,1000")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class LiveService:
    """``with LiveService(app) as url:`` serves ``app`` (lifespan included) on ``127.0.0.1``
    (on ``port`` when given: e.g. one already written into Orthanc's configuration)."""

    def __init__(self, app, port: int | None = None) -> None:
        import uvicorn

        self.port = port or free_port()
        self.server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=self.port,
                                                    log_level="warning", lifespan="on"))
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def __enter__(self) -> str:
        self.thread.start()
        deadline = time.monotonic() + 30
        while not self.server.started:
            if not self.thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("the service did not start")
            time.sleep(0.05)
        return self.url

    def __exit__(self, *exc) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=30)


class PageProblems(AssertionError):
    pass


class _Audit(HTMLParser):
    """Collects what the mini accessibility and CSP checks need from a page's HTML."""

    LABELLED = {"input", "select", "textarea"}
    NO_LABEL_TYPES = {"hidden", "submit", "button", "reset", "image"}

    def __init__(self) -> None:
        super().__init__()
        self.label_for: set[str] = set()
        self.controls: list[tuple[str, dict]] = []
        self.images: list[dict] = []
        self.headings: list[int] = []
        self.inline: list[str] = []
        self.open_labels = 0
        self.ids: list[str] = []
        self.title = ""
        self._in_title = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = {k: (v or "") for k, v in attrs}
        if a.get("id"):
            self.ids.append(a["id"])
        if tag == "label":
            self.open_labels += 1
            if a.get("for"):
                self.label_for.add(a["for"])
        if tag in self.LABELLED and a.get("type", "text") not in self.NO_LABEL_TYPES:
            self.controls.append((tag, {**a, "_wrapped": str(self.open_labels > 0)}))
        if tag == "img":
            self.images.append(a)
        if re.fullmatch(r"h[1-6]", tag):
            self.headings.append(int(tag[1]))
        if tag == "title":
            self._in_title = True
        if "style" in a:
            self.inline.append(f"<{tag} style=...>")
        for name in a:
            if name.startswith("on"):
                self.inline.append(f"<{tag} {name}=...>")
        if tag == "script" and not a.get("src"):
            self.inline.append("<script> without src")
        if tag == "style":
            self.inline.append("<style> element")
        if tag in ("a", "form") and re.match(r"\s*javascript:", a.get("href", "") + a.get("action", ""), re.I):
            self.inline.append(f"<{tag}> javascript: URL")

    def handle_endtag(self, tag: str) -> None:
        if tag == "label":
            self.open_labels = max(0, self.open_labels - 1)
        if tag == "title":
            self._in_title = False

    def handle_data(self, data: str) -> None:
        if self._in_title:
            self.title += data


def audit_html(html: str) -> list[str]:
    """Problems of one page: unlabelled controls, images without alt, skipped heading levels,
    inline script/style (which the CSP would block), a missing title or h1, duplicate ids (a label
    or error link would point at the wrong element)."""
    p = _Audit()
    p.feed(html)
    problems = []
    for tag, a in p.controls:
        labelled = (a.get("id") in p.label_for or a["_wrapped"] == "True"
                    or a.get("aria-label") or a.get("aria-labelledby"))
        if not labelled:
            problems.append(f"<{tag} name={a.get('name')!r}> has no label")
    for a in p.images:
        if "alt" not in a:
            problems.append(f"<img src={a.get('src', '')[:60]!r}> has no alt text")
    previous = 0
    for level in p.headings:
        if level > previous + 1:
            problems.append(f"heading h{level} follows h{previous or '(none)'}: a level is skipped")
        previous = level
    if not p.headings or p.headings[0] != 1:
        problems.append("the page does not start with an h1")
    if not p.title.strip():
        problems.append("the page has no title")
    problems += [f"inline code the CSP blocks: {what}" for what in p.inline]
    problems += [f"id {i!r} is used more than once" for i in sorted({i for i in p.ids if p.ids.count(i) > 1})]
    return problems


def is_blank(png: bytes) -> bool:
    """A screenshot with (almost) one colour only: nothing rendered."""
    from PIL import Image, ImageStat

    img = Image.open(io.BytesIO(png)).convert("L")
    return max(ImageStat.Stat(img).stddev) < 2.0


class Browser:
    def __init__(self, name: str) -> None:
        from selenium import webdriver
        from selenium.webdriver.chrome.service import Service

        safe = re.sub(r"[^A-Za-z0-9_.-]+", "_", name)[:120]
        self.artifacts = ARTIFACTS / safe
        shutil.rmtree(self.artifacts, ignore_errors=True)
        self.artifacts.mkdir(parents=True)
        self.profile = tempfile.mkdtemp(prefix="gdpr-chromium-")
        options = webdriver.ChromeOptions()
        options.binary_location = CHROMIUM
        for flag in FLAGS:
            options.add_argument(flag)
        options.add_argument(f"--user-data-dir={self.profile}")
        options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
        self.driver = webdriver.Chrome(options=options, service=Service(CHROMEDRIVER))
        self.driver.set_page_load_timeout(60)
        self.base = ""
        self.shots: list[Path] = []

    # ------------------------------------------------------------------ navigation
    def visit(self, path: str, name: str) -> None:
        """Open ``base + path`` and :meth:`check` the page."""
        self.driver.get(self.base + path)
        self.check(name)

    def check(self, name: str, allow_problems: bool = False) -> Path:
        """Screenshot the current page (full height), assert it is not blank, run the a11y/CSP
        checks. Returns the PNG's path."""
        path = self.screenshot(name)
        if is_blank(path.read_bytes()):
            raise PageProblems(f"{name}: the screenshot {path} is blank")
        problems = audit_html(self.driver.page_source)
        problems += [f"console: {e['message'][:200]}" for e in self.driver.get_log("browser")
                     if "Content Security Policy" in e.get("message", "")]
        if problems and not allow_problems:
            raise PageProblems(f"{name} ({self.driver.current_url}): " + "; ".join(problems))
        return path

    def screenshot(self, name: str) -> Path:
        shot = self.driver.execute_cdp_cmd("Page.captureScreenshot",
                                           {"format": "png", "captureBeyondViewport": True})
        path = self.artifacts / f"{len(self.shots) + 1:02d}-{re.sub(r'[^A-Za-z0-9_-]+', '-', name)}.png"
        path.write_bytes(base64.b64decode(shot["data"]))
        self.shots.append(path)
        return path

    # ------------------------------------------------------------------ forms
    def fill(self, field_id: str, value: str) -> None:
        from selenium.webdriver.common.by import By

        el = self.driver.find_element(By.ID, field_id)
        el.clear()
        el.send_keys(value)

    def choose(self, field_id: str) -> None:
        """Click a radio button or checkbox by id."""
        from selenium.webdriver.common.by import By

        self.driver.find_element(By.ID, field_id).click()

    def press(self, button_text: str) -> None:
        """Click the (first) button whose visible text is ``button_text``, wait for the next page."""
        from selenium.webdriver.common.by import By

        button = self.driver.find_element(By.XPATH, f"//button[normalize-space()='{button_text}']")
        self._navigate(button, f"pressing {button_text!r}")

    def follow(self, link_text: str) -> None:
        """Click the link whose text is ``link_text``, wait for the next page."""
        from selenium.webdriver.common.by import By

        self._navigate(self.driver.find_element(By.LINK_TEXT, link_text), f"following {link_text!r}")

    def _navigate(self, element, what: str) -> None:
        from selenium.webdriver.common.by import By

        old = self.driver.find_element(By.TAG_NAME, "html")
        element.click()
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                old.tag_name  # raises once the old document is gone
            except Exception:  # noqa: BLE001 - StaleElementReferenceException: navigation done
                self.wait_loaded(deadline)
                return
            time.sleep(0.05)
        raise PageProblems(f"{what} did not load a new page")

    def wait_loaded(self, deadline: float | None = None) -> None:
        """Wait until the page and everything it loads (pictures, stylesheet) have arrived."""
        deadline = deadline or time.monotonic() + 30
        while self.driver.execute_script("return document.readyState") != "complete":
            if time.monotonic() > deadline:
                raise PageProblems(f"{self.driver.current_url} did not finish loading")
            time.sleep(0.05)

    def text(self) -> str:
        from selenium.webdriver.common.by import By

        return self.driver.find_element(By.TAG_NAME, "body").text

    def sign_in(self, name: str, password: str) -> None:
        self.visit("/ui/login", "sign-in")
        self.fill("name", name)
        self.fill("password", password)
        self.press("Sign in")

    def quit(self) -> None:
        try:
            self.driver.quit()
        finally:
            shutil.rmtree(self.profile, ignore_errors=True)
