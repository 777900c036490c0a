"""``python -m ccm_core users list|add|set-password|set-role|deactivate|unlock``: manage logins from the
shell.  The same ``security.auth`` functions as the Admin page, so a user created here and one created on
screen are the same row with the same bcrypt hash and the same audit trail."""

from __future__ import annotations

import argparse
import datetime as dt
import getpass
import sys

from ccm_core.cli import add_db_argument
from ccm_core.security import auth
from ccm_core.security.access_log import log_access
from ccm_core.storage import db
from ccm_core.storage.schema import ROLES


def cli_actor() -> str:
    try:
        return "cli:" + getpass.getuser()
    except Exception:  # noqa: BLE001 - no login name in some containers
        return "cli"


def read_password(args, prompt: str = "Password: ") -> str:
    """From standard input (--password-stdin: one line, for scripts), else a hidden prompt asked twice.

    Never from the command line itself: arguments end up in shell history and in every user's process
    list (``ps``)."""
    if getattr(args, "password", None) is not None:
        raise ValueError(
            "Passwords are not taken on the command line (shell history and the process list would "
            "show them). Use the prompt, or pipe it in with --password-stdin."
        )
    if getattr(args, "password_stdin", False):
        line = sys.stdin.readline()
        return line[:-1] if line.endswith("\n") else line
    if not sys.stdin or not sys.stdin.isatty():
        raise ValueError("No terminal to prompt on: pipe the password in with --password-stdin.")
    first = getpass.getpass(prompt)
    second = getpass.getpass("Repeat password: ")
    if first != second:
        raise ValueError("The two passwords differ.")
    return first


def cmd_users(args) -> int:
    engine = db.make_engine(args.db)
    actor = cli_actor()
    try:
        if args.users_command == "list":
            users = auth.list_users(engine)
            if not users:
                print("No users. Add one with: python -m ccm_core users add NAME --role admin")
                return 0
            now = dt.datetime.now()
            print(f"{'username':<20} {'role':<13} {'active':<6} {'locked':<6} {'failed':<6} name")
            for u in users:
                print(
                    f"{u.username:<20} {u.role:<13} {'yes' if u.active else 'no':<6} "
                    f"{'yes' if u.is_locked(now) else 'no':<6} {u.failed_logins:<6} {u.display_name}"
                )
            return 0
        if args.users_command == "add":
            password = read_password(args)
            auth.add_user(
                engine,
                args.username,
                password,
                args.role,
                display_name=args.name,
                email=args.email,
                staff_id=args.staff_id,
            )
            detail = f"user {auth.normalize_username(args.username)} added with role {args.role}"
        elif args.users_command == "set-password":
            if auth.get_user(engine, args.username) is None:
                raise ValueError(f"No user named {args.username!r}.")
            auth.set_password(engine, args.username, read_password(args, "New password: "))
            detail = f"password reset for {auth.normalize_username(args.username)}"
        elif args.users_command == "set-role":
            auth.set_role(engine, args.username, args.role)
            detail = f"role of {auth.normalize_username(args.username)} set to {args.role}"
        elif args.users_command == "deactivate":
            auth.deactivate(engine, args.username)
            detail = f"user {auth.normalize_username(args.username)} deactivated"
        elif args.users_command == "unlock":
            auth.unlock(engine, args.username)
            detail = f"user {auth.normalize_username(args.username)} unlocked"
        else:  # pragma: no cover - argparse guards this
            raise ValueError(f"Unknown users command {args.users_command!r}")
        log_access(engine, username=actor, role=None, action="admin", page="cli", detail=detail)
        print(detail[0].upper() + detail[1:] + ".")
        return 0
    finally:
        engine.dispose()


def add_cli(subparsers) -> None:
    u = subparsers.add_parser("users", help="manage dashboard logins")
    us = u.add_subparsers(dest="users_command", required=True)
    for name, helptext in (
        ("list", "list users"),
        ("add", "add a user"),
        ("set-password", "reset a password (also clears a lockout)"),
        ("set-role", "change a user's role"),
        ("deactivate", "stop a user from logging in"),
        ("unlock", "clear a lockout after failed logins"),
    ):
        sp = us.add_parser(name, help=helptext)
        add_db_argument(sp)
        if name != "list":
            sp.add_argument("username")
        if name in ("add", "set-password"):
            sp.add_argument(
                "--password-stdin",
                action="store_true",
                help="read the password from standard input (one line); otherwise it is prompted for without echo",
            )
            sp.add_argument("--password", help=argparse.SUPPRESS)  # refused with an explanation
        if name == "add":
            sp.add_argument("--role", required=True, choices=ROLES)
            sp.add_argument("--name", help="display name")
            sp.add_argument("--email")
            sp.add_argument("--staff-id", type=int, help="staff.id of a care manager (their own worklist)")
        if name == "set-role":
            sp.add_argument("role", choices=ROLES)
        sp.set_defaults(func=cmd_users)
