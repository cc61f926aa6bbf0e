"""``orthanc-gdpr export-slices`` and ``export-aggregate``: anonymous image data from local files,
each export's decision recorded in the audit chain.

The decision record goes to the service's audit store (the one chain that also imports the
plugin's log, and that ``orthanc-gdpr audit anonymity-report`` reads): ``--data-dir`` (the data
directory of ``orthanc-gdpr serve``), ``--database-url`` or ``$ORTHANC_GDPR_SERVICE_DATABASE_URL``.
With none of them the export is refused: a decision that cannot be recorded is not released.
Refusals met once the data is read are recorded too (``anonymity.refused``).

Exit codes: 0 exported, 2 refused (the message names the option and the rule; nothing written).
"""
from __future__ import annotations

import argparse
import getpass
import sys
from collections.abc import Callable
from pathlib import Path

from orthanc_gdpr.anonymous import Limits, Refused, aggregate
from orthanc_gdpr.anonymous.decision import ATTESTATION, EVENT, REFUSED_EVENT, Decision
from orthanc_gdpr.anonymous.selection import parse_slices
from orthanc_gdpr.anonymous.series import Series, series_from_files
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


def _run(args, criterion: int, check: Callable[[], None], export: Callable[[list[Series], Callable], object]):
    """Check the options, open the store, read the series, export: the export's result, or the
    exit code 2 after a refusal (recorded when the series were read)."""
    db = None
    source: list[str] = []
    try:
        check()
        db = _store(args)
        found = series_from_files(args.inputs)
        source = [s.orthanc_id for s in found]
        from . import chain

        def record(d: Decision) -> dict:
            return chain.append(db, EVENT, actor=d.decided_by, **d.fields())

        return export(found, record)
    except Refused as e:
        print(f"refused: {e}", file=sys.stderr)
        if db is not None and source:
            from . import chain

            chain.append(db, REFUSED_EVENT, actor=args.decided_by, criterion=criterion, source_series=source,
                         **e.to_dict())
        return 2
    finally:
        if db is not None:
            db.dispose()


def cmd_export_slices(args) -> int:
    request = None

    def check() -> None:
        nonlocal request
        request = SliceRequest(slices=parse_slices(args.slices), decided_by=args.decided_by,
                               clinician=args.clinician or "", statement=args.statement or "",
                               format=args.format, window=parse_window(args.window), mask_text=args.mask_text)
        check_request(request)

    def export(found: list[Series], record):
        if len(found) != 1:
            raise Refused("inputs", "one-series", f"{len(found)} series found: export the slices of one series "
                          "at a time")
        return export_slices(found[0], request, args.out, Limits.load(args.limits), record)

    result = _run(args, 2, check, export)
    if result == 2:
        return 2
    for entry in result.decision.outputs:
        shows = (f"window {entry['window']}" if "window" in entry else
                 f"stored values + {entry['offset']}; modality value = (v - {entry['offset']}) x "
                 f"{entry['rescale_slope']:g} + {entry['rescale_intercept']:g}")
        print(f"slice {entry['slice']}: {entry['file']} ({entry['format']}, {shows})")
    print(f"{len(result.decision.outputs)} slice(s) exported to {result.out} as anonymous data (criterion 2); "
          f"decision record seq {result.audit['seq']} in the audit chain")
    return 0


def cmd_export_aggregate(args) -> int:
    request = aggregate.AggregateRequest(statistic=args.statistic, decided_by=args.decided_by, format=args.format,
                                         spacing=args.spacing, clinician=args.clinician, statement=args.statement)

    def check() -> None:
        nonlocal request
        if args.window:
            request = aggregate.AggregateRequest(**{**request.__dict__, "window": parse_window(args.window)})
        aggregate.check_request(request)

    result = _run(args, 1, check, lambda found, record: aggregate.export_aggregate(
        found, request, args.out, Limits.load(args.limits), record))
    if result == 2:
        return 2
    [entry] = result.decision.outputs
    print(f"{entry['statistic']} of {result.decision.checks['series']} series from "
          f"{result.decision.checks['patients']} patients: {result.out / entry['file']} ({entry['format']}, "
          f"shape {entry['shape']}, voxel {entry['spacing_mm']} mm); anonymous data (criterion 1); "
          f"decision record seq {result.audit['seq']} in the audit chain")
    return 0


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--decided-by", default=getpass.getuser(), help="who decides (default: the login name)")
    p.add_argument("--window", help="8-bit PNG window: default (the image's own), a CT preset (soft-tissue, "
                   "lung, bone, brain) or CENTER,WIDTH")
    p.add_argument("--limits", type=Path, metavar="FILE", help="the site's limits (JSON); default: 5 slices and "
                   "fewer than 10 %% of a series; aggregates over 10 patients")
    store_args(p)


def add_commands(sub) -> None:
    s = sub.add_parser("export-slices", help="a few slices of one series as anonymous PNG files (criterion 2), "
                       "with the decision recorded in the audit chain")
    s.add_argument("inputs", nargs="+", metavar="SERIES_DIR_OR_FILES")
    s.add_argument("--slices", required=True, help="instance numbers: 12,40,77 or 3,10-12; N:F for frame F "
                   "of a multi-frame instance")
    s.add_argument("--out", required=True, metavar="OUT_DIR", help="a new (or empty) directory")
    s.add_argument("--clinician", help="the clinician consulted (required)")
    s.add_argument("--statement", help=f"their statement: the slices show {ATTESTATION} (required)")
    s.add_argument("--format", choices=FORMATS, default="png8", help="png8: windowed; png16: stored values")
    s.add_argument("--mask-text", action="store_true", help="mask burned-in text found instead of refusing "
                   "the slice (the record says so)")
    _common(s)
    s.set_defaults(func=cmd_export_slices)

    a = sub.add_parser("export-aggregate", help="a mean, median, std image or template over at least k series "
                       "from k patients (criterion 1), with the decision recorded in the audit chain")
    a.add_argument("inputs", nargs="+", metavar="SERIES_DIRS_OR_FILES")
    a.add_argument("--statistic", required=True, choices=aggregate.STATISTICS)
    a.add_argument("--out", required=True, metavar="OUT_DIR", help="a new (or empty) directory")
    a.add_argument("--format", choices=aggregate.FORMATS, default="auto",
                   help="auto: NIfTI for volumes, 16-bit PNG for 2-D images")
    a.add_argument("--spacing", type=float, metavar="MM", help="template: voxel size in mm")
    a.add_argument("--clinician", help="a clinician consulted (optional for aggregates)")
    a.add_argument("--statement", help="the rationale or the clinician's statement (optional)")
    _common(a)
    a.set_defaults(func=cmd_export_aggregate)
