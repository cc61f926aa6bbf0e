"""``orthanc-gdpr users add|list|disable|enable|reset-password``: staff accounts from the command line.

The account store is the service's database: ``--data-dir DIR`` is the data directory of
``orthanc-gdpr serve`` (its ``service/portability.sqlite``); otherwise ``--database-url``, else
``$ORTHANC_GDPR_SERVICE_DATABASE_URL`` / ``$ORTHANC_GDPR_SERVICE_DATA_DIR`` as for the service.

Passwords: ``--password-stdin`` reads one line from standard input (for scripts). Without it a
password is generated and shown once, on a terminal only: when standard output is not a
terminal (a redirected log, a pipe) the command refuses rather than write a password there.
Every change is audited with the operating-system user who ran the command.

Exit codes: 0 done, 2 bad input (the field and the rule are named), 3 no such account.
"""
from __future__ import annotations

import argparse
import getpass
import sys
from pathlib import Path


def _db(args):
    from . import audit
    from .db import Database
    from .settings import Settings

    overrides = {"data_dir": Path(args.data_dir) / "service"} if args.data_dir else {}
    settings = Settings.from_env(**overrides)
    db = Database(args.database_url or settings.database_url)
    db.migrate()
    audit.configure(audit.AuditSink(db))
    audit.note_role(_actor(), "operator")  # whoever runs the command on the server
    return db


def _actor() -> str:
    return f"{getpass.getuser()} (command line)"


def _password(args) -> tuple[str | None, bool]:
    """(password, generated); (None, False) when a generated one could not be shown safely."""
    from .accounts import generate_password

    if args.password_stdin:
        return sys.stdin.readline().rstrip("\r\n"), False
    if not sys.stdout.isatty():
        print("error: standard output is not a terminal, so a generated password cannot be shown safely; "
              "give one with --password-stdin", file=sys.stderr)
        return None, False
    return generate_password(), True


def _show(name: str, password: str) -> None:
    print(f"generated password for {name} (shown once, not stored readable anywhere): {password}")


def _run(args, action) -> int:
    from . import accounts

    db = _db(args)
    try:
        return action(db, accounts)
    except accounts.AccountError as e:
        from . import audit

        audit.record("user.refused", actor=_actor(), action=args.users_command, field=e.field, rule=e.rule,
                     account=args.name if accounts.NAME.match(getattr(args, "name", "") or "") else None)
        print(f"error: {e}", file=sys.stderr)
        return 3 if isinstance(e, accounts.UnknownAccount) else 2
    finally:
        db.dispose()


def _with_password(args, event: str, apply, done: str) -> int:
    """Get the password (:func:`_password`), ``apply(password)`` -> Account, audit ``event``, say
    ``done``, show a generated password once."""
    from . import audit

    password, generated = _password(args)
    if password is None:
        return 2
    account = apply(password)
    audit.record(event, actor=_actor(), account=account.name, role=account.role, channel="cli",
                 password="generated" if generated else "chosen")
    print(done.format(account=account))
    if generated:
        _show(account.name, password)
    return 0


def cmd_add(args) -> int:
    def action(db, accounts) -> int:
        accounts.check_name(args.name)
        accounts.check_role(args.role)
        return _with_password(args, "user.created", lambda pw: accounts.create(db, args.name, args.role, pw, _actor()),
                              "account {account.name} created (role {account.role})")

    return _run(args, action)


def cmd_list(args) -> int:
    def action(db, accounts) -> int:
        rows = accounts.list_accounts(db)
        print(f"{'name':24} {'role':10} {'status':9} created")
        for a in rows:
            print(f"{a.name:24} {a.role:10} {'enabled' if a.enabled else 'disabled':9} "
                  f"{a.created_at:%Y-%m-%d} by {a.created_by}")
        print(f"{len(rows)} account(s), {sum(a.enabled for a in rows)} enabled")
        return 0

    return _run(args, action)


def cmd_enabled(enabled: bool):
    def cmd(args) -> int:
        def action(db, accounts) -> int:
            from . import audit

            accounts.set_enabled(db, args.name, enabled, _actor())
            audit.record("user.enabled" if enabled else "user.disabled", actor=_actor(), account=args.name,
                         channel="cli")
            print(f"account {args.name} {'enabled' if enabled else 'disabled'}")
            return 0

        return _run(args, action)

    return cmd


def cmd_reset(args) -> int:
    def action(db, accounts) -> int:
        if accounts.get(db, args.name) is None:
            raise accounts.UnknownAccount("name", "no account with this name")
        return _with_password(args, "user.password-reset", lambda pw: accounts.set_password(db, args.name, pw),
                              "password of {account.name} changed")

    return _run(args, action)


def add_commands(sub) -> None:
    from .accounts import ROLES

    u = sub.add_parser("users", help="staff accounts (for the service, Orthanc and the web workspace)")
    usub = u.add_subparsers(dest="users_command", required=True)

    def common(p: argparse.ArgumentParser) -> None:
        p.add_argument("--data-dir", help="the data directory of `orthanc-gdpr serve` (its service database)")
        p.add_argument("--database-url", help="the service database (default: $ORTHANC_GDPR_SERVICE_DATABASE_URL)")

    def password_option(p: argparse.ArgumentParser) -> None:
        p.add_argument("--password-stdin", action="store_true",
                       help="read the password from standard input (default: generate one, shown once on a terminal)")

    a = usub.add_parser("add", help="add an account")
    a.add_argument("name")
    a.add_argument("--role", required=True, help=f"one of {', '.join(ROLES)}")
    common(a)
    password_option(a)
    a.set_defaults(func=cmd_add)
    li = usub.add_parser("list", help="list accounts (never passwords)")
    common(li)
    li.set_defaults(func=cmd_list)
    d = usub.add_parser("disable", help="disable an account (it can no longer log in anywhere)")
    d.add_argument("name")
    common(d)
    d.set_defaults(func=cmd_enabled(False))
    e = usub.add_parser("enable", help="enable a disabled account again")
    e.add_argument("name")
    common(e)
    e.set_defaults(func=cmd_enabled(True))
    r = usub.add_parser("reset-password", help="set a new password (generated, or from --password-stdin)")
    r.add_argument("name")
    common(r)
    password_option(r)
    r.set_defaults(func=cmd_reset)
