"""``python -m ccm_core import|batches|revert``: the Import page's functions for scripts and cron jobs."""

from __future__ import annotations

import getpass
import sys
from pathlib import Path

from ccm_core.io.spreadsheet import csv_bytes

SUPPORTED = (".csv", ".txt", ".tsv", ".xlsx", ".xlsm", ".835", ".x12", ".edi", ".era")


def _engine(args):
    from ccm_core.storage import db

    engine = db.make_engine(args.db)
    if not db.has_schema(engine):
        db.upgrade(engine)
    return engine


def _user(args) -> str:
    if args.user:
        return args.user
    try:
        return getpass.getuser()
    except Exception:  # no login name in some containers
        return "cli"


def _expand(paths: list[str]) -> list[Path]:
    """Files as given; a directory stands for the import files inside it."""
    out = []
    for p in map(Path, paths):
        if p.is_dir():
            out += sorted(f for f in p.iterdir() if f.is_file() and f.suffix.lower() in SUPPORTED)
        elif not p.exists():
            raise FileNotFoundError(f"No such file: {p}")
        else:
            out.append(p)
    if not out:
        raise ValueError("no import files found in " + ", ".join(paths))
    return out


class _Bar:
    """A plain text progress bar on stderr for long files (nothing for small ones)."""

    def __init__(self, stream=None, min_total=5000):
        self._stream, self.min_total, self.last = stream, min_total, None

    @property
    def stream(self):
        return self._stream or sys.stderr

    def __call__(self, label, done, total):
        if total < self.min_total:
            return
        pct = int(100 * done / max(total, 1))
        if (label, pct) == self.last:
            return
        self.last = (label, pct)
        filled = pct * 30 // 100
        self.stream.write(f"\r{label}: [{'#' * filled}{' ' * (30 - filled)}] {pct:3d}% ({done}/{total} rows)")
        if done >= total:
            self.stream.write("\n")
        self.stream.flush()


def cmd_import(args) -> int:
    from ccm_core.io.imports.runner import Source, import_files

    paths = _expand(args.paths)
    engine = _engine(args)
    run = import_files(
        engine,
        [Source.from_path(p) for p in paths],
        user=_user(args),
        kind=args.kind,
        accept_valid=args.accept_valid,
        dry_run=args.dry_run,
        progress=_Bar(),
    )
    print(run.summary())
    for w in run.warnings:
        print("warning:", w)
    problems = run.problems
    if len(problems):
        print(f"\n{len(problems)} problem(s):")
        print(problems.head(args.show).to_string(index=False))
        if len(problems) > args.show:
            print(f"... {len(problems) - args.show} more (use --problems-out FILE for all)")
    if args.problems_out and len(problems):
        Path(args.problems_out).write_bytes(csv_bytes(problems))
        print(f"problems written to {args.problems_out}")
    rejected = [f for f in run.files if f.rejected_csv()]
    if args.rejected_out and rejected:
        out = Path(args.rejected_out)
        if len(rejected) == 1:
            out.write_bytes(rejected[0].rejected_csv())
        else:
            out.mkdir(parents=True, exist_ok=True)
            for f in rejected:
                (out / f"rejected_{Path(f.source).stem}.csv").write_bytes(f.rejected_csv())
        print(f"rejected rows written to {out}")
    engine.dispose()
    return 0 if run.ok else 1


def cmd_batches(args) -> int:
    from ccm_core.io.imports.store import list_batches

    engine = _engine(args)
    frame = list_batches(engine, limit=args.limit)
    if frame.empty:
        print("No imports yet.")
    else:
        cols = [
            "id",
            "kind",
            "file_name",
            "imported_by",
            "imported_at",
            "rows_in",
            "rows_written",
            "rows_rejected",
            "status",
        ]
        print(frame[cols].to_string(index=False))
    engine.dispose()
    return 0


def cmd_revert(args) -> int:
    from ccm_core.io.imports.store import RevertRefused, revert_batch

    engine = _engine(args)
    try:
        result = revert_batch(engine, args.batch_id, _user(args))
    except RevertRefused as exc:
        print(f"refused: {exc}", file=sys.stderr)
        return 1
    finally:
        engine.dispose()
    print(
        f"Batch {args.batch_id} reverted: {result['deleted']} inserted row(s) deleted, "
        f"{result['restored']} updated row(s) restored."
    )
    return 0


def add_cli(subparsers) -> None:
    from ccm_core.cli import add_db_argument
    from ccm_core.io.imports.specs import ORDER

    p = subparsers.add_parser(
        "import",
        help="import CSV/Excel/X12 835 files (all or nothing)",
        description="Import files in dependency order in one transaction. The kind is "
        "inferred from the file name or its columns. Exit code 1 when anything "
        "was rejected.",
    )
    add_db_argument(p)
    p.add_argument("paths", nargs="+", metavar="PATH", help="files, or a directory of import files")
    p.add_argument("--user", help="who is importing (recorded on the batch; default: login name)")
    p.add_argument("--kind", choices=ORDER, help="the kind of every file (default: inferred)")
    p.add_argument("--accept-valid", action="store_true", help="import the valid rows even when some rows are rejected")
    p.add_argument("--dry-run", action="store_true", help="validate and report only; write nothing")
    p.add_argument("--rejected-out", help="write the rejected rows (with a problem column) to this CSV")
    p.add_argument("--problems-out", help="write every problem (file, row, column, problem) to this CSV")
    p.add_argument("--show", type=int, default=50, help="problems to print (default 50)")
    p.set_defaults(func=cmd_import)

    p = subparsers.add_parser("batches", help="list import batches, newest first")
    add_db_argument(p)
    p.add_argument("--limit", type=int, default=50)
    p.set_defaults(func=cmd_batches)

    p = subparsers.add_parser("revert", help="undo an import batch (if no later data depends on it)")
    add_db_argument(p)
    p.add_argument("batch_id", type=int)
    p.add_argument("--user", help="who is reverting (default: login name)")
    p.set_defaults(func=cmd_revert)
