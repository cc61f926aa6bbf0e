"""``orthanc-gdpr export-slices``: anonymous slices from local files, recorded in the audit chain.

The decision record goes to the service's audit store (the one chain that also imports the
plugin's log, and that ``orthanc-gdpr audit anonymity-report`` reads): ``--data-dir`` (the data
directory of ``orthanc-gdpr serve``), ``--database-url`` or ``$ORTHANC_GDPR_SERVICE_DATABASE_URL``.
With none of them the export is refused: a decision that cannot be recorded is not released.

Exit codes: 0 exported, 2 refused (the message names the option and the rule; nothing written).
"""
from __future__ import annotations

import argparse
import getpass
import sys
from pathlib import Path

from orthanc_gdpr.anonymous import Limits, Refused
from orthanc_gdpr.anonymous.decision import ATTESTATION, EVENT, REFUSED_EVENT
from orthanc_gdpr.anonymous.selection import parse_slices
from orthanc_gdpr.anonymous.series import series_from_files
from orthanc_gdpr.anonymous.slices import FORMATS, SliceRequest, check_request, export_slices, parse_window

from .audit_cli import named_store, store_args


def _store(args):
    from .db import Database

    url = named_store(args)
    if not url:
        raise Refused("--data-dir", "audit-store-required", "name the audit store that keeps the decision record "
                      "(--data-dir, --database-url or $ORTHANC_GDPR_SERVICE_DATABASE_URL)")
    db = Database(url)
    db.migrate()
    return db


def cmd_export_slices(args) -> int:
    db = None
    source: list[str] = []
    try:
        request = SliceRequest(slices=parse_slices(args.slices), decided_by=args.decided_by,
                               clinician=args.clinician or "", statement=args.statement or "",
                               format=args.format, window=parse_window(args.window), mask_text=args.mask_text)
        check_request(request)
        limits = Limits.load(args.limits)
        db = _store(args)
        found = series_from_files(args.inputs)
        if len(found) != 1:
            raise Refused("inputs", "one-series", f"{len(found)} series found: export the slices of one series "
                          "at a time")
        source = [found[0].orthanc_id]
        from . import chain

        result = export_slices(found[0], request, args.out, limits,
                               lambda d: chain.append(db, EVENT, actor=d.decided_by, **d.fields()))
    except Refused as e:
        print(f"refused: {e}", file=sys.stderr)
        if db is not None and source:
            from . import chain

            chain.append(db, REFUSED_EVENT, actor=args.decided_by, criterion=2, source_series=source, **e.to_dict())
        return 2
    finally:
        if db is not None:
            db.dispose()
    for entry in result.decision.outputs:
        shows = (f"window {entry['window']}" if "window" in entry else
                 f"stored values + {entry['offset']}; modality value = (v - {entry['offset']}) x "
                 f"{entry['rescale_slope']:g} + {entry['rescale_intercept']:g}")
        print(f"slice {entry['slice']}: {entry['file']} ({entry['format']}, {shows})")
    print(f"{len(result.decision.outputs)} slice(s) exported to {result.out} as anonymous data (criterion 2); "
          f"decision record seq {result.audit['seq']} in the audit chain")
    return 0


def add_commands(sub) -> None:
    s = sub.add_parser("export-slices", help="a few slices of one series as anonymous PNG files (criterion 2), "
                       "with the decision recorded in the audit chain")
    s.add_argument("inputs", nargs="+", metavar="SERIES_DIR_OR_FILES")
    s.add_argument("--slices", required=True, help="instance numbers: 12,40,77 or 3,10-12; N:F for frame F "
                   "of a multi-frame instance")
    s.add_argument("--out", required=True, metavar="OUT_DIR", help="a new (or empty) directory")
    s.add_argument("--clinician", help="the clinician consulted (required)")
    s.add_argument("--statement", help=f"their statement: the slices show {ATTESTATION} (required)")
    s.add_argument("--decided-by", default=getpass.getuser(), help="who decides (default: the login name)")
    s.add_argument("--format", choices=FORMATS, default="png8", help="png8: windowed; png16: stored values")
    s.add_argument("--window", help="png8 window: default (the image's own), a CT preset (soft-tissue, lung, "
                   "bone, brain) or CENTER,WIDTH")
    s.add_argument("--mask-text", action="store_true", help="mask burned-in text found instead of refusing "
                   "the slice (the record says so)")
    s.add_argument("--limits", type=Path, metavar="FILE", help="the site's limits (JSON); default: 5 slices and "
                   "fewer than 10 %% of a series")
    store_args(s)
    s.set_defaults(func=cmd_export_slices)
