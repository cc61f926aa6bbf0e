"""``orthanc-gdpr audit verify|ingest|export|breach|anonymity-report``: the one audit store, from the command line.

The database is ``--database-url``, else the one of ``--data-dir DIR`` (the data directory of
``orthanc-gdpr serve``: ``DIR/service``), else ``$ORTHANC_GDPR_SERVICE_DATABASE_URL`` (else the
service's default SQLite); ``--plugin-log`` defaults to ``DIR/gdpr-state/audit.jsonl`` with
``--data-dir``, else to ``$ORTHANC_GDPR_SERVICE_PLUGIN_AUDIT_LOG``.

Exit codes: 0 intact / done, 1 the chain is broken (first break printed with its seq and reason),
2 bad arguments or unreadable store.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
from datetime import datetime
from pathlib import Path


def named_store(args) -> str | None:
    """The audit store the arguments or the environment name (None: nothing named)."""
    from .settings import PREFIX, Settings

    if args.database_url:
        return args.database_url
    if getattr(args, "data_dir", None):
        return Settings(data_dir=Path(args.data_dir) / "service").database_url
    return Settings.from_env().database_url if os.environ.get(PREFIX + "DATABASE_URL") else None


def _db(args):
    from .db import Database
    from .settings import Settings

    settings = Settings.from_env()
    db = Database(named_store(args) or settings.database_url)
    db.migrate()
    return db, settings


def _plugin_log(args, settings) -> Path | None:
    if args.plugin_log:
        return Path(args.plugin_log)
    if getattr(args, "data_dir", None):
        return Path(args.data_dir) / "gdpr-state" / "audit.jsonl"
    return settings.plugin_audit_log


def cmd_verify(args) -> int:
    from orthanc_gdpr.audit import verify as verify_file

    from . import chain

    broken = False
    db, settings = _db(args)
    log = _plugin_log(args, settings)
    if log:
        if not log.exists():
            print(f"plugin log {log}: not found", file=sys.stderr)
            return 2
        breaks = verify_file(log)
        if breaks:
            broken = True
            print(f"plugin log {log}: BROKEN at line {breaks[0].line} (seq {breaks[0].line}): {breaks[0].reason}")
            for b in breaks[1:5]:
                print(f"  also line {b.line}: {b.reason}")
        else:
            print(f"plugin log {log}: intact ({sum(1 for _ in open(log, encoding='utf-8'))} records)")
    breaks = chain.verify(db)
    if breaks:
        broken = True
        print(f"audit store: BROKEN at entry seq {breaks[0].seq}: {breaks[0].reason}")
        for b in breaks[1:5]:
            print(f"  also {b}")
    else:
        from .models import AuditEvent

        with db.session() as s:
            print(f"audit store: intact ({s.query(AuditEvent).count()} entries)")
    db.dispose()
    return 1 if broken else 0


def cmd_ingest(args) -> int:
    from . import chain

    db, settings = _db(args)
    log = _plugin_log(args, settings)
    if not log:
        print("error: give --plugin-log FILE", file=sys.stderr)
        return 2
    try:
        result = chain.ingest_plugin_log(db, log)
    except chain.AuditChainError as e:
        print(f"error: {e} (nothing imported)", file=sys.stderr)
        return 1
    print(f"{result['imported']} plugin records imported, {result['already']} already in the store")
    return 0


def _with_plugin_records(args):
    """The store with the plugin's log imported; None (the error printed) when the log's chain is broken."""
    from . import chain

    db, settings = _db(args)
    log = _plugin_log(args, settings)
    if log:
        try:
            chain.ingest_plugin_log(db, log)
        except chain.AuditChainError as e:
            print(f"error: {e}", file=sys.stderr)
            return None
    return db


def _when(text: str | None) -> datetime | None:
    return datetime.fromisoformat(text) if text else None


def cmd_export(args) -> int:
    from . import audit_reports, chain

    db, settings = _db(args)
    log = _plugin_log(args, settings)
    if log:
        chain.ingest_plugin_log(db, log)
    bundle = audit_reports.export_bundle(db, _when(args.since), _when(args.until))
    text = json.dumps(bundle, indent=1, default=str)
    if args.output and args.output != "-":
        Path(args.output).write_text(text)
        print(f"{bundle['total']} AuditEvents written to {args.output}", file=sys.stderr)
    else:
        print(text)
    return 0


def cmd_breach(args) -> int:
    from . import audit_reports
    from .orthanc import OrthancClient

    if not args.destination and not args.user:
        print("error: give --destination D and/or --user U", file=sys.stderr)
        return 2
    db = _with_plugin_records(args)
    if db is None:
        return 1
    client = OrthancClient(args.orthanc) if args.orthanc else None
    rows = audit_reports.breach(db, client, _when(args.since), _when(args.until), args.destination, args.user)
    text = audit_reports.breach_csv(rows) if args.format == "csv" else \
        json.dumps(audit_reports.breach_summary(rows), indent=1, default=str)
    if args.output and args.output != "-":
        Path(args.output).write_text(text)
    else:
        sys.stdout.write(text if text.endswith("\n") else text + "\n")
    return 0


def cmd_anonymity_report(args) -> int:
    from . import anonymity_report

    db = _with_plugin_records(args)
    if db is None:
        return 1
    since, until = _when(args.since), _when(args.until)
    report = anonymity_report.rows(db, since, until)
    text = anonymity_report.to_csv(report) if args.format == "csv" else anonymity_report.to_html(report, since, until)
    if args.output and args.output != "-":
        Path(args.output).write_text(text)
        print(f"{sum(r['event'] == 'anonymity.decision' for r in report)} anonymity decision(s), "
              f"{len(report)} export(s) written to {args.output}", file=sys.stderr)
    else:
        sys.stdout.write(text)
    return 0


def store_args(p: argparse.ArgumentParser) -> None:
    """``--database-url`` and ``--data-dir``: which audit store (see the module docstring)."""
    p.add_argument("--database-url", help="the service database (default: $ORTHANC_GDPR_SERVICE_DATABASE_URL)")
    p.add_argument("--data-dir", metavar="DIR", help="the data directory of 'orthanc-gdpr serve' (its store "
                   "and plugin log)")


def add_commands(sub) -> None:
    a = sub.add_parser("audit", help="the hash-chained audit store: verify, ingest, export (FHIR), breach query")
    asub = a.add_subparsers(dest="audit_command", required=True)

    def common(p: argparse.ArgumentParser) -> None:
        store_args(p)
        p.add_argument("--plugin-log", metavar="FILE", help="the plugin's audit.jsonl (verified / imported)")

    v = asub.add_parser("verify", help="check the chain; report the first edited, inserted or deleted entry")
    common(v)
    v.set_defaults(func=cmd_verify)
    i = asub.add_parser("ingest", help="import the plugin's audit log into the store (verified first)")
    common(i)
    i.set_defaults(func=cmd_ingest)
    e = asub.add_parser("export", help="export as a FHIR Bundle of AuditEvents (IHE BALP shape)")
    common(e)
    e.add_argument("--since")
    e.add_argument("--until")
    e.add_argument("-o", "--output", help="file (default: stdout)")
    e.set_defaults(func=cmd_export)
    b = asub.add_parser("breach", help="patients whose data went to a destination / were downloaded by a user")
    common(b)
    b.add_argument("--destination", help="e.g. modality:RESEARCH or RESEARCH")
    b.add_argument("--user", help="Orthanc user name of de-identified downloads")
    b.add_argument("--since", required=True, help="ISO 8601 start")
    b.add_argument("--until", required=True, help="ISO 8601 end")
    b.add_argument("--format", choices=("csv", "json"), default="csv")
    b.add_argument("--orthanc", metavar="URL", help="Orthanc (http://user:pw@host:port) to name the patients")
    b.add_argument("-o", "--output", help="file (default: stdout)")
    b.set_defaults(func=cmd_breach)
    r = asub.add_parser("anonymity-report", help="every export and its kind of data (anonymous under which "
                        "criterion, pseudonymised, identified), for an ethics audit")
    common(r)
    r.add_argument("--since", help="ISO 8601 start")
    r.add_argument("--until", help="ISO 8601 end")
    r.add_argument("--format", choices=("html", "csv"), default="html")
    r.add_argument("-o", "--output", help="file (default: stdout)")
    r.set_defaults(func=cmd_anonymity_report)
