"""The ``orthanc-gdpr`` command line: local-first, no server needed for de-identification."""

from __future__ import annotations

import argparse
import copy
import json
import secrets
import sys
import time
from pathlib import Path

from . import __version__
from .deid import (DeidentificationError, Deidentifier, KeyFileError, Keyring, ProfileError,
                   UnknownOptionError, deidentify_tree, load_key, load_profile, read)
from .deid.engine import _label
from .deid.files import quiet_pydicom


def _profile(args: argparse.Namespace):
    profile = load_profile(args.profile)
    return profile.with_options(args.option) if args.option else profile


def _key(args: argparse.Namespace) -> tuple[bytes, bool]:
    key = load_key(args.key_file)
    if key is None:
        return secrets.token_bytes(32), False
    return key, True


class _Progress:
    """One status line on stderr, redrawn at most ten times a second."""

    def __init__(self) -> None:
        self.start = time.monotonic()
        self.last = 0.0

    def __call__(self, done: int, total: int, held: int) -> None:
        now = time.monotonic()
        if done != total and now - self.last < 0.1:
            return
        self.last = now
        rate = done / max(now - self.start, 1e-6)
        bar = "#" * int(30 * done / max(total, 1))
        print(f"\r[{bar:<30}] {done}/{total}  {rate:.0f} files/s  held back: {held}", end="",
              file=sys.stderr, flush=True)
        if done == total:
            print(file=sys.stderr)


def cmd_deidentify(args: argparse.Namespace) -> int:
    profile = _profile(args)
    key, from_file = _key(args)
    if not from_file:
        print("note: no key given (--key-file or $ORTHANC_GDPR_KEY): a fresh random key is used; "
              "pseudonyms and UIDs are consistent within this run only", file=sys.stderr)
    out = Path(args.output)
    inputs = [Path(p) for p in args.inputs]
    missing = [str(p) for p in inputs if not p.exists()]
    if missing:
        print(f"error: no such input: {', '.join(missing)}", file=sys.stderr)
        return 2
    start = time.monotonic()
    run = deidentify_tree(inputs, out, profile, key, workers=args.workers,
                          progress=None if args.quiet else _Progress(), previews_dir=args.previews)
    elapsed = time.monotonic() - start
    report_path = Path(args.report) if args.report else out / "deidentification-report.json"
    report_path.parent.mkdir(parents=True, exist_ok=True)
    # Compact JSON: the C encoder writes a report of thousands of instances in a blink.
    report_path.write_text(json.dumps(run.to_dict(), separators=(",", ":")))
    for path, entry in zip(run.held_back_paths, run.held_back):
        print(f"held back: {path}: {entry['error']}", file=sys.stderr)
    for path, entry in zip(run.dropped_paths, run.dropped):
        print(f"dropped: {path}: {entry['reason']}", file=sys.stderr)
    summary = run.summary()
    total = summary["instances_written"] + summary["instances_held_back"] + summary["instances_dropped"]
    print(f"{summary['instances_written']} of {total} instances de-identified with profile "
          f"{profile.name!r} in {elapsed:.1f} s ({total / max(elapsed, 1e-6):.0f} files/s); "
          f"{summary['instances_held_back']} held back; {summary['instances_dropped']} dropped by policy; "
          f"safety-net hits: {summary['safety_net_hits']}; report: {report_path}")
    return 1 if run.held_back else 0


def cmd_inspect(args: argparse.Namespace) -> int:
    profile = _profile(args)
    key, _ = _key(args)
    ds = read(args.file)
    report = Deidentifier(profile, Keyring(key)).deidentify(copy.deepcopy(ds))
    planned = {path: (action, rule) for path, action, rule in report.actions}

    def show(dataset, prefix: str, indent: str) -> None:
        for elem in dataset:
            tag = int(elem.tag)
            path = prefix + _label(tag)
            action, rule = planned.get(path, ("K", "not listed in Table E.1-1: kept"))
            value = "" if elem.VR == "SQ" else repr(elem.value)[:40]
            print(f"{indent}({tag >> 16:04X},{tag & 0xFFFF:04X}) {elem.VR:2} {_label(tag)[:36]:36} "
                  f"{action:1}  {rule}   {value}")
            if elem.VR == "SQ":
                for i, item in enumerate(elem.value):
                    print(f"{indent}  item {i}")
                    show(item, f"{path}[{i}]/", indent + "    ")

    print(f"profile {profile.name!r}, options: {', '.join(o.cli for o in profile.options) or 'none'}")
    print("tag         VR attribute                            action  rule   value")
    show(ds, "", "")
    return 0


#: Sub-commands of the engine alone: they start without importing the server, the service and
#: their dependencies (SQLAlchemy, FastAPI, SciPy...), which cost about a second of CPU per run.
ENGINE_COMMANDS = ("deidentify", "inspect")


def _add_other_commands(sub) -> None:
    from portability import anonymous_cli, audit_cli, commands, users_cli

    from . import serve
    from .config_check import add_command as add_check_config_command

    serve.add_command(sub)
    commands.add_commands(sub)
    audit_cli.add_commands(sub)
    anonymous_cli.add_commands(sub)
    users_cli.add_commands(sub)
    add_check_config_command(sub)


def build_parser(engine_only: bool = False) -> argparse.ArgumentParser:
    """The whole command line, or (``engine_only``) just :data:`ENGINE_COMMANDS`."""
    parser = argparse.ArgumentParser(prog="orthanc-gdpr", description=__doc__)
    parser.add_argument("--version", action="version", version=f"orthanc-gdpr {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)

    def profile_args(p: argparse.ArgumentParser) -> None:
        p.add_argument("--profile", default="basic", help="profile name or path to a profile JSON file")
        p.add_argument("--option", action="append", default=[],
                       help="add a PS3.15 option, e.g. retain-uids (repeatable)")
        p.add_argument("--key-file", help="secret key file (default: $ORTHANC_GDPR_KEY, else a one-off key)")

    d = sub.add_parser("deidentify", help="de-identify DICOM files or folders into OUT")
    profile_args(d)
    d.add_argument("inputs", nargs="+", metavar="IN")
    d.add_argument("output", metavar="OUT")
    d.add_argument("--report", help="where to write the JSON report (default: OUT/deidentification-report.json)")
    d.add_argument("--workers", type=int, default=None, help="processes (default: one per core)")
    d.add_argument("--quiet", action="store_true", help="no progress bar")
    d.add_argument("--previews", type=Path, metavar="DIR",
                   help="with clean-pixel-data: before/after PNGs and masked boxes for visual sign-off "
                        "(the before images show original pixels: keep DIR private)")
    d.set_defaults(func=cmd_deidentify)

    i = sub.add_parser("inspect", help="show, per attribute, what a profile would do and why")
    profile_args(i)
    i.add_argument("file")
    i.set_defaults(func=cmd_inspect)

    if not engine_only:
        _add_other_commands(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    args = build_parser(engine_only=bool(argv) and argv[0] in ENGINE_COMMANDS).parse_args(argv)
    quiet_pydicom()
    try:
        return args.func(args)
    except (ProfileError, UnknownOptionError, KeyFileError, DeidentificationError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
