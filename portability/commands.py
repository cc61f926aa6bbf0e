"""``orthanc-gdpr bundle``, ``import-bundle`` and ``portability-serve`` sub-commands.

Secrets never go on the command line (where ``ps`` and shell histories show them):
Orthanc's password comes from ``--password-file`` or ``$ORTHANC_GDPR_ORTHANC_PASSWORD`` (the user
from ``--username`` or ``$ORTHANC_GDPR_ORTHANC_USERNAME``), else from the URL itself
(``http://user:password@host:port``); an encrypted bundle's password from ``--zip-password-file``
or ``$ORTHANC_GDPR_ZIP_PASSWORD``.
"""
from __future__ import annotations

import argparse
import os
import sys
import time

from .bundle import BundleError, ImportError_, build_bundle, import_bundle
from .bundle.notice import SiteNotice
from .bundle.viewer import ViewerOptions
from .i18n import LANGUAGES
from .settings import Settings, SettingsError
from .orthanc import OrthancClient, OrthancError, PatientNotFound, split_credentials

USER_ENV, PASSWORD_ENV = "ORTHANC_GDPR_ORTHANC_USERNAME", "ORTHANC_GDPR_ORTHANC_PASSWORD"
ZIP_PASSWORD_ENV = "ORTHANC_GDPR_ZIP_PASSWORD"


def _secret(path: str | None, env: str) -> str | None:
    """A secret from a file (first line, surrounding white space stripped), else the environment."""
    if path:
        with open(path, encoding="utf-8") as f:
            return f.readline().strip()
    return os.environ.get(env)


def _client(args) -> OrthancClient:
    _, url_auth = split_credentials(args.orthanc)
    user = args.username or os.environ.get(USER_ENV)
    password = _secret(args.password_file, PASSWORD_ENV)
    auth = (user, password or "") if user else url_auth
    return OrthancClient(args.orthanc, auth)


class _Progress:
    def __init__(self, quiet: bool) -> None:
        self.quiet, self.last = quiet, 0.0

    def __call__(self, phase: str, done: int, total: int) -> None:
        now = time.monotonic()
        if self.quiet or (now - self.last < 0.2 and done != total):
            return
        self.last = now
        print(f"\r{phase:12} {done}/{total}   ", end="" if done != total else "\n", file=sys.stderr, flush=True)


def cmd_bundle(args) -> int:
    """The Art. 15 site facts and the viewer settings come from ``$ORTHANC_GDPR_SERVICE_*`` (see
    :mod:`portability.settings`); without the audit store the copy says so instead of listing
    recipients (the service's bundle jobs list them)."""
    try:
        settings = Settings.from_env(issuer=args.issuer)
    except SettingsError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    viewer = ViewerOptions(0) if args.no_viewer else ViewerOptions.from_settings(settings)
    try:
        result = build_bundle(_client(args), args.output, patient_id=args.patient, issuer=args.issuer,
                              issuer_of_patient_id=args.patient_issuer, study_uids=args.study or None,
                              progress=_Progress(args.quiet), site=SiteNotice.from_settings(settings, args.language),
                              viewer=viewer)
    except PatientNotFound as e:
        print(f"error: unknown patient: {e}", file=sys.stderr)
        return 3
    except (OrthancError, BundleError) as e:
        print(f"error: {e} (no bundle written)", file=sys.stderr)
        return 4
    print(f"{result.path}: {result.instances} instances in {result.studies} study/studies, "
          f"{result.size} bytes, sha256 {result.sha256}")
    return 0


def cmd_import(args) -> int:
    try:
        result = import_bundle(args.bundle, _client(args), password=_secret(args.zip_password_file, ZIP_PASSWORD_ENV),
                               progress=_Progress(args.quiet))
    except ImportError_ as e:
        print(f"error: {e} (nothing uploaded)", file=sys.stderr)
        return 5
    except OrthancError as e:
        print(f"error: {e}", file=sys.stderr)
        return 4
    print(f"checksums verified; {result.uploaded} instances uploaded, {result.already_stored} already stored")
    return 0


def cmd_serve(args) -> int:
    from .server import run
    from .settings import Settings

    run(Settings.from_env())
    return 0


def add_commands(sub) -> None:
    def orthanc_args(p: argparse.ArgumentParser) -> None:
        p.add_argument("--orthanc", required=True, metavar="URL",
                       help="Orthanc REST API, e.g. http://user:password@127.0.0.1:8042")
        p.add_argument("--username", help=f"Orthanc user (default: ${USER_ENV} or the URL's)")
        p.add_argument("--password-file", metavar="FILE",
                       help=f"file holding the Orthanc password (default: ${PASSWORD_ENV} or the URL's)")
        p.add_argument("--quiet", action="store_true", help="no progress on stderr")

    b = sub.add_parser("bundle", help="build a patient's portability bundle (DICOM + FHIR + INDEX.HTM) as a ZIP")
    orthanc_args(b)
    b.add_argument("--patient", required=True, metavar="PATIENT_ID", help="the DICOM PatientID")
    b.add_argument("--patient-issuer", help="IssuerOfPatientID, to tell patients with the same ID apart")
    b.add_argument("--study", action="append", default=[], metavar="STUDY_UID", help="only this study (repeatable)")
    b.add_argument("--issuer", default="Orthanc GDPR", help="who issues the copy (shown to the patient)")
    b.add_argument("--language", choices=LANGUAGES, help="the patient's preferred language (comes first; then "
                   "$ORTHANC_GDPR_SERVICE_BUNDLE_LANGUAGES)")
    b.add_argument("--no-viewer", action="store_true", help="leave out the offline viewer's images and pages")
    b.add_argument("output", metavar="OUT.zip")
    b.set_defaults(func=cmd_bundle)

    i = sub.add_parser("import-bundle", help="verify a bundle's checksums and upload its DICOM into Orthanc")
    orthanc_args(i)
    i.add_argument("--zip-password-file", metavar="FILE",
                   help=f"file holding the password of an AES-encrypted bundle (default: ${ZIP_PASSWORD_ENV})")
    i.add_argument("bundle", metavar="BUNDLE")
    i.set_defaults(func=cmd_import)

    s = sub.add_parser("portability-serve", help="run the portability service (settings: $ORTHANC_GDPR_SERVICE_*)")
    s.set_defaults(func=cmd_serve)
