"""Helpers of the bundle page tests: read a copy's HTML, walk its viewer in a browser."""
from __future__ import annotations

import re
from html.parser import HTMLParser
from pathlib import Path


class Links(HTMLParser):
    """Every ``<a>`` (href, rel, accesskey, text), every ``<img>`` (src, alt) and table rows."""

    def __init__(self) -> None:
        super().__init__()
        self.links: list[dict] = []
        self.images: list[dict] = []
        self.rows: list[list[str]] = []
        self._a: dict | None = None
        self._cell: list[str] | None = None

    def handle_starttag(self, tag, attrs):
        a = {k: v or "" for k, v in attrs}
        if tag == "a":
            self._a = {**a, "text": ""}
        elif tag == "img":
            self.images.append(a)
        elif tag == "tr":
            self.rows.append([])
        elif tag in ("td", "th"):
            self._cell = []

    def handle_endtag(self, tag):
        if tag == "a" and self._a is not None:
            self.links.append(self._a)
            self._a = None
        elif tag in ("td", "th") and self._cell is not None:
            self.rows[-1].append(" ".join("".join(self._cell).split()))
            self._cell = None

    def handle_data(self, data):
        if self._a is not None:
            self._a["text"] += data
        if self._cell is not None:
            self._cell.append(data)


def parse(path: Path) -> Links:
    p = Links()
    p.feed(path.read_text(encoding="utf-8"))
    return p


def built_copy(work: Path, files: list[bytes], patient_id: str, **build_args):
    """Store ``files`` in a fresh real Orthanc, build the patient's copy, stop Orthanc; returns
    (BundleResult, the extracted copy's folder)."""
    import zipfile

    from orthanc_server import OrthancServer
    from portability.bundle import build_bundle
    from portability.orthanc import OrthancClient

    server = OrthancServer(work / "orthanc").start()
    try:
        for data in files:
            server.upload(data)
        client = OrthancClient(server.url, (server.username, server.password))
        result = build_bundle(client, work / "copy.zip", patient_id=patient_id, **build_args)
    finally:
        server.stop()
    root = work / "x"
    with zipfile.ZipFile(result.path) as zf:
        zf.extractall(root)
    return result, root


def viewer_folders(root: Path) -> list[Path]:
    return sorted(p for p in (root / "IHE_PDI").glob("V*") if p.is_dir())


def walk_by_next_links(browser, first: Path | None) -> list[str]:
    """Open ``first`` from file:// in the browser (None: start on the current page), then follow
    rel=next until the last page; every page is checked (screenshot, CSP, mini a11y). Returns the
    visited file names."""
    from selenium.webdriver.common.by import By

    if first is not None:
        browser.driver.get(first.as_uri())
    seen = []
    while True:
        name = Path(browser.driver.current_url).name
        assert name not in seen, f"the next links loop at {name}"
        seen.append(name)
        browser.check(f"{Path(browser.driver.current_url).parent.name}-{name}")
        nxt = browser.driver.find_elements(By.CSS_SELECTOR, "a[rel=next]")
        if not nxt:
            return seen
        assert nxt[0].get_attribute("accesskey") == "n"
        nxt[0].click()


def positions(names: list[str]) -> list[int]:
    return [int(re.sub(r"\D", "", n)) for n in names]
