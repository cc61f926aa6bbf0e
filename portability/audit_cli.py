"""``orthanc-gdpr audit verify|ingest|export|breach|anonymity-report``: the one audit store, from the command line.

The database is ``--database-url``, else the one of ``--data-dir DIR`` (the data directory of
``orthanc-gdpr serve``: ``DIR/service``), else ``$ORTHANC_GDPR_SERVICE_DATABASE_URL`` (else the
service's default SQLite, only when it exists); ``--plugin-log`` defaults to ``DIR/gdpr-state/audit.jsonl`` with
``--data-dir``, else to ``$ORTHANC_GDPR_SERVICE_PLUGIN_AUDIT_LOG``.

There is no default store: when nothing names one, or the named one does not exist, a command fails
(exit 2) rather than open a new, empty one.

Exit codes: 0 intact / done, 1 the chain is broken (first break printed with its seq and reason;
raised as a ``security.audit-broken`` incident), 2 bad arguments, no store or unreadable store.
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


class NoStore(Exception):
    """No audit store is named, or the named one does not exist."""


def _db(args, migrate: bool = True):
    """The named store, or the service's default SQLite when it exists; never a new, empty one
    (that would answer "intact" about nothing)."""
    from sqlalchemy import inspect

    from .db import Database
    from .settings import PREFIX, Settings

    settings = Settings.from_env()
    url = named_store(args) or settings.database_url
    if url.startswith("sqlite:///") and not Path(url[len("sqlite:///"):]).is_file():
        raise NoStore("no audit store: the SQLite file does not exist" if named_store(args) else
                      f"no audit store configured: give --database-url or --data-dir, or set {PREFIX}DATABASE_URL")
    db = Database(url)
    try:
        if "portability_audit" not in inspect(db.engine).get_table_names():
            raise NoStore("the database holds no audit store (no portability_audit table)")
    except NoStore:
        db.dispose()
        raise
    except Exception as e:  # noqa: BLE001 - unreachable server, bad URL: a clear error, exit 2
        db.dispose()
        raise NoStore(f"cannot open the audit store: {type(e).__name__}") from None
    if migrate:
        db.migrate()
    return db, settings


def _plugin_log(args, settings) -> Path | None:
    if args.plugin_log:
        return Path(args.plugin_log)
    if getattr(args, "data_dir", None):
        return Path(args.data_dir) / "gdpr-state" / "audit.jsonl"
    return settings.plugin_audit_log


def cmd_verify(args) -> int:
    from . import audit_integrity

    db, settings = _db(args, migrate=False)
    log = _plugin_log(args, settings)
    if log is not None and not log.exists():
        print(f"plugin log {log}: not found", file=sys.stderr)
        db.dispose()
        return 2
    answer = audit_integrity.verify_whole(db, log, actor="orthanc-gdpr audit verify")
    db.dispose()
    if args.json:
        print(json.dumps(answer, indent=1))
        return 0 if answer["intact"] else 1
    plugin = answer["plugin_log"]
    if plugin:
        if plugin["breaks"]:
            first = plugin["breaks"][0]
            print(f"plugin log {log}: BROKEN at line {first['line']} (seq {first['seq']}): {first['reason']}")
            for b in plugin["breaks"][1:5]:
                print(f"  also line {b['line']}: {b['reason']}")
        else:
            print(f"plugin log {log}: intact ({plugin['records']} records)")
    store = answer["store"]
    if store["breaks"]:
        first = store["breaks"][0]
        print(f"audit store: BROKEN at entry seq {first['seq']}: {first['reason']}")
        for b in store["breaks"][1:5]:
            print(f"  also entry seq {b['seq']}: {b['reason']}")
    else:
        print(f"audit store: intact ({store['entries']} entries)")
    if answer["incidents"]:
        print(f"security incident recorded: {audit_integrity.INCIDENT} (store seq "
              f"{', '.join(str(i) for i in answer['incidents'])})")
    return 0 if answer["intact"] else 1


def cmd_ingest(args) -> int:
    from . import audit_integrity

    db, settings = _db(args)
    log = _plugin_log(args, settings)
    if not log:
        print("error: give --plugin-log FILE", file=sys.stderr)
        return 2
    result = audit_integrity.ingest(db, log, actor="orthanc-gdpr audit ingest")
    print(f"{result['imported']} plugin records imported, {result['already']} already in the store")
    for b in result["breaks"]:
        print(f"left out line {b['line']} (seq {b['seq']}): {b['reason']}; raised as {audit_integrity.INCIDENT}")
    return 1 if result["breaks"] else 0


def _with_plugin_records(args, command: str):
    """The store with the plugin's sound records imported (a broken line is left out and raised as
    an incident; the command goes on)."""
    from . import audit_integrity

    db, settings = _db(args)
    log = _plugin_log(args, settings)
    if log:
        audit_integrity.ingest(db, log, actor=f"orthanc-gdpr audit {command}")
    return db


def _when(text: str | None) -> datetime | None:
    return datetime.fromisoformat(text) if text else None


def cmd_export(args) -> int:
    from . import audit_reports

    db = _with_plugin_records(args, "export")
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
    db = _with_plugin_records(args, "breach")
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

    db = _with_plugin_records(args, "anonymity-report")
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


def _store_required(command):
    def run(args) -> int:
        try:
            return command(args)
        except NoStore as e:
            print(f"error: {e}", file=sys.stderr)
            return 2
    return run


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

    v = asub.add_parser("verify", help="check the store and the plugin's log; report the first edited, inserted "
                                       "or deleted record (raised as security.audit-broken)")
    common(v)
    v.add_argument("--json", action="store_true", help="the answer of GET /api/audit/verify, as JSON")
    v.set_defaults(func=_store_required(cmd_verify))
    i = asub.add_parser("ingest", help="import the plugin's audit log into the store (verified first)")
    common(i)
    i.set_defaults(func=_store_required(cmd_ingest))
    e = asub.add_parser("export", help="export as a FHIR Bundle of AuditEvents (IHE BALP shape)")
    common(e)
    e.add_argument("--since")
    e.add_argument("--until")
    e.add_argument("-o", "--output", help="file (default: stdout)")
    e.set_defaults(func=_store_required(cmd_export))
    b = asub.add_parser("breach", help="patients whose data went to a destination / were downloaded by a user")
    common(b)
    b.add_argument("--destination", help="e.g. modality:RESEARCH or RESEARCH")
    b.add_argument("--user", help="Orthanc user name of de-identified downloads")
    b.add_argument("--since", required=True, help="ISO 8601 start")
    b.add_argument("--until", required=True, help="ISO 8601 end")
    b.add_argument("--format", choices=("csv", "json"), default="csv")
    b.add_argument("--orthanc", metavar="URL", help="Orthanc (http://user:pw@host:port) to name the patients")
    b.add_argument("-o", "--output", help="file (default: stdout)")
    b.set_defaults(func=_store_required(cmd_breach))
    r = asub.add_parser("anonymity-report", help="every export and its kind of data (anonymous under which "
                        "criterion, pseudonymised, identified), for an ethics audit")
    common(r)
    r.add_argument("--since", help="ISO 8601 start")
    r.add_argument("--until", help="ISO 8601 end")
    r.add_argument("--format", choices=("html", "csv"), default="html")
    r.add_argument("-o", "--output", help="file (default: stdout)")
    r.set_defaults(func=_store_required(cmd_anonymity_report))
