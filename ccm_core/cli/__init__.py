"""``python -m ccm_core <command>``: the same numbers the pages show, for scripts.

Each feature module contributes its own sub-commands through a function
``add_cli(subparsers)`` that registers parsers whose ``func`` takes the parsed
args and returns an exit code.  This file only wires them together.
"""

from __future__ import annotations

import argparse
import importlib
import sys

# Feature modules, in the order their commands appear in --help.
CLI_MODULES = [
    "ccm_core.cli.database",  # init-db
    "ccm_core.cli.users",  # users
    "ccm_core.io.demo",  # demo
    "ccm_core.cli.billing",  # kpis, billing
    "ccm_core.io.imports",  # import, batches, revert
    "ccm_core.cli.audit",  # audit, sample
    "ccm_core.storage.stored",  # refresh-store
    "ccm_core.io.meeting_pack",  # meeting-pack
]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m ccm_core", description="CCM program dashboard: command line")
    sub = parser.add_subparsers(dest="command", required=True)
    for name in CLI_MODULES:
        try:
            mod = importlib.import_module(name)
        except ModuleNotFoundError as exc:
            if exc.name == name:  # feature not built in this checkout
                continue
            raise
        mod.add_cli(sub)
    return parser


def add_db_argument(p: argparse.ArgumentParser) -> None:
    """``--db URL``; defaults to the app's own database (see ``ccm_core.storage.db.database_url``)."""
    p.add_argument("--db", default=None, help="database URL (default: CCM_DATABASE_URL, secrets.toml, or data/ccm.db)")


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except (ValueError, FileNotFoundError, PermissionError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
