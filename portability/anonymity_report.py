"""The anonymity report for an ethics audit: every export, and what kind of data it released.

Rows come from the one audit chain. An ``anonymity.decision`` record is anonymous data under the
criterion it names, with its full rationale. Every other export is *not* anonymous, whatever
profile it used or what its record says: de-identified DICOM sent by a routing rule, released
after review or downloaded is ``pseudonymised``; a patient's own copy (portability bundle) is
``identified``. The classification of each export event is a table (:data:`EXPORT_CLASSES`), not
a guess; a record that claims another classification keeps its claim in the ``note`` column.
"""
from __future__ import annotations

import csv
import html
import io
import json
from datetime import datetime

from orthanc_gdpr.anonymous.decision import EVENT, IDENTIFIED, PSEUDONYMISED

from . import chain

#: Export events that are not anonymity decisions, and the kind of data they released.
EXPORT_CLASSES = {"route.done": PSEUDONYMISED, "download": PSEUDONYMISED, "release.approved": PSEUDONYMISED,
                  "bundle.built": IDENTIFIED}
COLUMNS = ("when", "audit_seq", "classification", "criterion", "decided_by", "clinician", "statement",
           "rationale", "source_series", "files", "sha256", "limits", "event", "destination", "profile", "note")


def rows(db, since: datetime | None = None, until: datetime | None = None) -> list[dict]:
    """One row per export in [since, until], oldest first."""
    out = []
    for rec in chain.records(db, since, until):
        f = chain.fields_of(rec)
        base = {"when": chain.effective_ts(rec).isoformat(), "audit_seq": rec["seq"], "event": rec["event"]}
        if rec["event"] == EVENT:
            outputs = f.get("outputs") or []
            out.append({**base, "classification": f.get("classification", ""), "criterion": f.get("criterion", ""),
                        "decided_by": f.get("decided_by", ""), "clinician": f.get("clinician") or "",
                        "statement": f.get("statement") or "", "rationale": f.get("rationale", ""),
                        "source_series": " ".join(f.get("source_series") or []), "files": len(outputs),
                        "sha256": " ".join(o.get("sha256", "") for o in outputs),
                        "limits": json.dumps(f.get("limits") or {}, sort_keys=True), "destination": "",
                        "profile": "", "note": ""})
        elif rec["event"] in EXPORT_CLASSES:
            kind, claimed = EXPORT_CLASSES[rec["event"]], f.get("classification")
            note = (f"recorded as {claimed}; de-identified DICOM is {kind} unless exported under the anonymity "
                    "criteria" if claimed and claimed != kind else "")
            out.append({**base, "classification": kind, "note": note, "criterion": "",
                        "decided_by": f.get("user") or rec.get("actor") or "", "clinician": f.get("clinician") or "", "statement": "",
                        "rationale": "", "source_series": "", "files": f.get("sent", f.get("instances", "")),
                        "sha256": f.get("sha256", ""), "limits": "",
                        "destination": f.get("destination", ""), "profile": f.get("profile", "")})
    return out


def to_csv(report: list[dict]) -> str:
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=COLUMNS, extrasaction="ignore")
    writer.writeheader()
    writer.writerows(report)
    return buf.getvalue()


_HEAD = ("<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n"
         "<meta http-equiv=\"Content-Security-Policy\" content=\"default-src 'self'\">\n"
         "<title>Anonymity report</title>\n</head>\n<body>\n<main>\n")


def _table(caption: str, columns: tuple[str, ...], report: list[dict]) -> str:
    head = "".join(f"<th scope=\"col\">{html.escape(c.replace('_', ' '))}</th>" for c in columns)
    body = "".join("<tr>" + "".join(f"<td>{html.escape(str(r.get(c, '')))}</td>" for c in columns) + "</tr>\n"
                   for r in report)
    return (f"<table>\n<caption>{html.escape(caption)}</caption>\n<thead><tr>{head}</tr></thead>\n"
            f"<tbody>\n{body}</tbody>\n</table>\n")


def to_html(report: list[dict], since: datetime | None, until: datetime | None) -> str:
    decisions = [r for r in report if r["event"] == EVENT]
    others = [r for r in report if r["event"] != EVENT]
    period = f"{since.isoformat() if since else 'the start'} to {until.isoformat() if until else 'now'}"
    return (_HEAD + f"<h1>Anonymity report</h1>\n<p>Exports from {html.escape(period)}, from the audit chain. "
            f"{len(decisions)} anonymity decision(s); {len(others)} other export(s), none of them anonymous.</p>\n"
            "<h2>Anonymity decisions</h2>\n"
            + _table("Exports released as anonymous, with their rationale", COLUMNS[:12], decisions)
            + "<h2>Other exports: not anonymous</h2>\n<p>De-identified DICOM is pseudonymised data, whatever the "
              "profile; a patient's own copy is identified data.</p>\n"
            + _table("Exports that are personal data", ("when", "audit_seq", "classification", "event",
                                                        "decided_by", "destination", "profile", "files", "note"),
                     others)
            + "</main>\n</body>\n</html>\n")
