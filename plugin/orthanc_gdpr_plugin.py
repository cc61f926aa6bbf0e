"""Entry script loaded by Orthanc's Python plugin ("PythonScript" in the Orthanc configuration).

Kept deliberately tiny: it only makes the project importable from the interpreter embedded in
Orthanc, then hands the ``orthanc`` module to the glue package. Everything else lives in
``orthanc_gdpr`` and is testable without a server.

Only ``sys``, ``os`` and ``pathlib`` may be imported before the path wiring (see
tests/test_plugin_smoke.py).
"""
import os
import sys
from pathlib import Path

_PLUGIN_DIR = Path(__file__).resolve().parent  # <repo>/plugin
_REPO = _PLUGIN_DIR.parent
_SITE_PACKAGES = os.environ.get("ORTHANC_GDPR_SITE_PACKAGES") or str(
    _REPO / ".venv" / "lib" / f"python{sys.version_info[0]}.{sys.version_info[1]}" / "site-packages"
)

# Inserted in front, so the venv's pinned packages win over Debian's dist-packages; the plugin
# directory comes first so the working tree is what runs (not a stale copy).
for _entry in (_SITE_PACKAGES, str(_PLUGIN_DIR)):
    if _entry in sys.path:
        sys.path.remove(_entry)
    sys.path.insert(0, _entry)

import orthanc  # noqa: E402  (only available inside Orthanc)

from orthanc_gdpr.orthanc_glue import plugin as _glue  # noqa: E402

_glue.register(orthanc)
