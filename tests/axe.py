"""The automated WCAG 2.1 AA check: axe-core (npm, pinned in tests/js/package-lock.json and
installed by scripts/setup.sh) injected into the page a selenium driver shows.

DevTools evaluation is not subject to the page's Content-Security-Policy, so pages that allow no
script at all are checked as they are. axe's stylesheet preloading (an XHR, which such a CSP
refuses) is off: it only serves rules about CSS orientation locks.
"""
from __future__ import annotations

import json
from pathlib import Path

AXE = Path(__file__).resolve().parent / "js" / "node_modules" / "axe-core" / "axe.min.js"
TAGS = ("wcag2a", "wcag2aa", "wcag21a", "wcag21aa")


def axe_violations(driver) -> list[dict]:
    """The current page's WCAG 2.0/2.1 A and AA violations (rule id, impact, help, first targets)."""
    assert AXE.exists(), f"{AXE} is missing: run scripts/setup.sh (npm ci in tests/js)"
    driver.set_script_timeout(120)
    driver.execute_script(AXE.read_text())
    return driver.execute_async_script(
        "const done = arguments[arguments.length - 1];"
        f"axe.run(document, {{runOnly: {{type: 'tag', values: {json.dumps(list(TAGS))}}}, preload: false}})"
        ".then(r => done(r.violations.map(v => ({id: v.id, impact: v.impact, help: v.help,"
        " nodes: v.nodes.slice(0, 3).map(n => n.target.join(' '))}))))"
        ".catch(e => done([{id: 'axe-error', help: String(e)}]));")
