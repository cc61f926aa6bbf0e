"""Entry script loaded by Orthanc's Python plugin ("PythonScript" in the Orthanc configuration).

It ships inside the ``orthanc_gdpr`` package, so every install has it: a checkout
(``plugin/orthanc_gdpr/plugin_entry.py``) and a wheel (``site-packages/orthanc_gdpr/plugin_entry.py``).
Kept deliberately tiny: it only makes the project and its dependencies importable from the
interpreter embedded in Orthanc, then hands the ``orthanc`` module to the glue package.
Everything else lives in ``orthanc_gdpr`` and is testable without a server.

Dependencies come from ``$ORTHANC_GDPR_SITE_PACKAGES`` (``orthanc-gdpr serve`` sets it to the
site-packages of the interpreter that runs it), else from a checkout's ``.venv``, else from the
directory this package is installed in.

Only ``sys``, ``os`` and ``pathlib`` may be imported before the path wiring (see
tests/test_plugin_smoke.py). This file is run by Orthanc, never imported.
"""
import os
import sys
from pathlib import Path

_PACKAGE_ROOT = Path(__file__).resolve().parents[1]  # <checkout>/plugin, or site-packages
_CHECKOUT_VENV = (_PACKAGE_ROOT.parent / ".venv" / "lib" / f"python{sys.version_info[0]}.{sys.version_info[1]}"
                  / "site-packages")
_SITE_PACKAGES = os.environ.get("ORTHANC_GDPR_SITE_PACKAGES") or str(
    _CHECKOUT_VENV if _CHECKOUT_VENV.is_dir() else _PACKAGE_ROOT)

# Inserted in front, so the venv's pinned packages win over Debian's dist-packages; the package
# root comes first so this very tree is what runs (not a stale copy).
for _entry in (_SITE_PACKAGES, str(_PACKAGE_ROOT)):
    if _entry in sys.path:
        sys.path.remove(_entry)
    sys.path.insert(0, _entry)

import orthanc  # noqa: E402  (only available inside Orthanc)

from orthanc_gdpr.orthanc_glue import plugin as _glue  # noqa: E402

_glue.register(orthanc)
