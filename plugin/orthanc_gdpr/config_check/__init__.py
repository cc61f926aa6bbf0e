"""``orthanc-gdpr check-config PATH [--url URL] [--json]``: audit an Orthanc configuration.

PATH is a configuration file (JSON with comments, as Orthanc reads it) or a directory of them
(merged like Orthanc does). With ``--url`` the running server is checked too (anonymous access,
well-known credentials, plain HTTP to another host, log level, release). One finding per risk,
with its severity and fix; the table of risks is :data:`checks.CHECKS`.

Exit status: 0 when nothing at or above ``--fail-on`` (default: critical) was found, 1 when
something was, 2 when the configuration or the server could not be read at all.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from .checks import (CHECKS, SEVERITIES, Check, Config, ConfigLoadError, Finding, load_config,
                     run_static)
from .jsonc import ConfigSyntaxError, loads, strip_comments
from .live import LiveCheckError, run_live

__all__ = ["CHECKS", "Check", "Config", "ConfigLoadError", "ConfigSyntaxError", "Finding",
           "audit", "load_config", "loads", "run_live", "run_static", "strip_comments", "main"]

REPORT_FORMAT = 1
EXIT_OK, EXIT_FINDINGS, EXIT_ERROR = 0, 1, 2


def _rank(severity: str) -> int:
    return SEVERITIES.index(severity)


def audit(path: str | Path | None, url: str | None = None, auth: tuple[str, str] | None = None,
          fail_on: str = "critical", verify: bool | str = True) -> dict:
    """Run every check; returns the report (the ``--json`` document). Raises ConfigLoadError,
    LiveCheckError."""
    findings: list[Finding] = []
    skipped: list[str] = []
    files: list[str] = []
    if path is not None:
        cfg = load_config(path)
        files = [str(f) for f in cfg.files]
        findings += run_static(cfg)
    if url:
        live, skipped = run_live(url, auth, verify)
        findings += live
    findings.sort(key=lambda f: (_rank(f.check.severity), f.check.id))
    counts = {s: sum(f.check.severity == s for f in findings) for s in SEVERITIES}
    failing = any(_rank(f.check.severity) <= _rank(fail_on) for f in findings)
    return {"format": REPORT_FORMAT, "tool": "orthanc-gdpr check-config", "config_files": files,
            "url": url, "fail_on": fail_on, "findings": [f.to_dict() for f in findings],
            "not_checked": skipped, "counts": counts,
            "exit_code": EXIT_FINDINGS if failing else EXIT_OK}


def _print_text(report: dict) -> None:
    where = ", ".join(report["config_files"]) or "-"
    print(f"orthanc-gdpr check-config: {where}" + (f"  +  live {report['url']}" if report["url"] else ""))
    if not report["findings"]:
        print("no finding")
    for f in report["findings"]:
        print(f"\n[{f['severity'].upper()}] {f['id']}: {f['title']}\n"
              f"    found: {f['detail']}  ({f['source']})\n    fix:   {f['fix']}")
    for s in report["not_checked"]:
        print(f"\nnot checked: {s}")
    counts = ", ".join(f"{n} {s}" for s, n in report["counts"].items() if n)
    print(f"\n{counts or 'nothing found'}; exit code {report['exit_code']} "
          f"(fails on {report['fail_on']} and above)")


def cmd_check_config(args: argparse.Namespace) -> int:
    auth = None
    if args.user:
        if not args.password_file:
            print("error: --user needs --password-file", file=sys.stderr)
            return EXIT_ERROR
        auth = (args.user, Path(args.password_file).read_text().strip())
    if args.path is None and not args.url:
        print("error: give a configuration PATH, --url, or both", file=sys.stderr)
        return EXIT_ERROR
    try:
        report = audit(args.path, args.url, auth, args.fail_on, verify=args.ca_bundle or not args.insecure)
    except (ConfigLoadError, LiveCheckError) as e:
        if args.json:
            print(json.dumps({"format": REPORT_FORMAT, "error": str(e), "exit_code": EXIT_ERROR}))
        else:
            print(f"error: {e}", file=sys.stderr)
        return EXIT_ERROR
    if args.json:
        print(json.dumps(report, indent=2))
    else:
        _print_text(report)
    return report["exit_code"]


def add_command(sub) -> None:
    """Register ``orthanc-gdpr check-config`` on the CLI's sub-command parser."""
    p = sub.add_parser("check-config", help="audit an Orthanc configuration (and a running server)",
                       description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("path", nargs="?", help="configuration file or directory")
    p.add_argument("--url", help="also check the running server, e.g. http://127.0.0.1:8042")
    p.add_argument("--user", help="a user for the authenticated live checks (log level, release)")
    p.add_argument("--password-file", help="file holding that user's password")
    p.add_argument("--json", action="store_true", help="machine-readable report on stdout")
    p.add_argument("--fail-on", choices=SEVERITIES[:4], default="critical",
                   help="lowest severity that makes the exit code 1 (default: critical)")
    p.add_argument("--insecure", action="store_true", help="do not verify the server's TLS certificate")
    p.add_argument("--ca-bundle", help="CA certificates to verify the server's TLS certificate with")
    p.set_defaults(func=cmd_check_config)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="orthanc-gdpr")
    add_command(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(["check-config", *(sys.argv[1:] if argv is None else argv)])
    return args.func(args)
