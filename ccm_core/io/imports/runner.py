"""One import run: several files, one transaction, all or nothing.

Files are taken in dependency order (clinics before patients before time
entries...).  Every file is validated and its valid rows written inside the
same transaction, so a later file can refer to rows of an earlier one; at the
end the run commits only if nothing was rejected (or the caller opted in to
"import valid rows"), otherwise it rolls back and the database is untouched.
Each file that wrote something becomes one ``import_batch``.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import logging
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd
from sqlalchemy import Engine, delete, func, select
from sqlalchemy.exc import SQLAlchemyError

from ccm_core.io.imports import store, tables, x835
from ccm_core.io.imports.reader import (
    ImportFileError,
    RawTable,
    looks_like_x12,
    looks_like_xlsx,
    read_csv_bytes,
    read_xlsx_bytes,
)
from ccm_core.io.imports.specs import KINDS, ORDER, X12_KIND, kind_from_file_name, kind_from_header
from ccm_core.io.spreadsheet import csv_bytes
from ccm_core.storage import stored as pm_store
from ccm_core.storage.schema import import_batch, import_change

log = logging.getLogger(__name__)


@dataclass
class Source:
    """An uploaded or local file: its name (used to infer the kind) and its bytes."""

    name: str
    data: bytes

    @classmethod
    def from_path(cls, path: str | Path) -> Source:
        p = Path(path)
        if not p.exists():
            raise FileNotFoundError(f"No such file: {p}")
        return cls(p.name, p.read_bytes())


@dataclass
class FileResult:
    source: str
    kind: str | None
    sha256: str
    status: str = "pending"  # imported, unchanged, rejected, not imported, would import
    batch_id: int | None = None
    rows_in: int = 0
    rows_rejected: int = 0
    counts: dict[str, store.UpsertCounts] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)
    problems: pd.DataFrame = field(default_factory=lambda: pd.DataFrame(columns=["file", "row", "column", "problem"]))
    rejected_rows: pd.DataFrame | None = None  # the rejected input rows plus row and problem columns
    same_as_batch: dict | None = None
    message: str = ""
    x12: x835.X12Outcome | None = None

    @property
    def inserted(self) -> int:
        return sum(c.inserted for c in self.counts.values())

    @property
    def updated(self) -> int:
        return sum(c.updated for c in self.counts.values())

    @property
    def unchanged(self) -> int:
        return sum(c.unchanged for c in self.counts.values())

    def rejected_csv(self) -> bytes | None:
        """The rejected rows as CSV (UTF-8 with BOM so Excel opens it cleanly), for download and correction."""
        if self.rejected_rows is None or self.rejected_rows.empty:
            return None
        return csv_bytes(self.rejected_rows)

    def summary(self) -> str:
        parts = [f"{self.source} ({self.kind or 'unknown kind'}): {self.status}"]
        if self.counts:
            # a refused or checked file wrote nothing: say what it would have done, not what it did
            would = {"imported": "", "unchanged": "", "would import": "would be "}.get(self.status, "would have been ")
            per = "; ".join(
                f"{t} {c.inserted} {would}inserted, {c.updated} {would}updated, {c.unchanged} unchanged"
                for t, c in self.counts.items()
            )
            parts.append(per)
        if self.rows_rejected:
            parts.append(f"{self.rows_rejected} of {self.rows_in} rows rejected")
        if self.batch_id:
            parts.append(f"batch {self.batch_id}")
        if self.same_as_batch:
            parts.append(
                f"same content (sha256) as batch {self.same_as_batch['id']} imported "
                f"{self.same_as_batch['imported_at']:%Y-%m-%d %H:%M} by {self.same_as_batch['imported_by']}"
            )
        if self.message:
            parts.append(self.message)
        return " - ".join(parts)


@dataclass
class ImportRun:
    files: list[FileResult]
    committed: bool
    dry_run: bool
    accept_valid: bool
    message: str

    @property
    def ok(self) -> bool:
        """Everything that was offered is (or, for a dry run, would be) in the database."""
        return all(f.status in ("imported", "unchanged", "would import") and not f.rows_rejected for f in self.files)

    @property
    def problems(self) -> pd.DataFrame:
        frames = [f.problems for f in self.files if len(f.problems)]
        if not frames:
            return pd.DataFrame(columns=["file", "row", "column", "problem"])
        return pd.concat(frames, ignore_index=True)

    @property
    def warnings(self) -> list[str]:
        return [w for f in self.files for w in f.warnings]

    @property
    def batch_ids(self) -> list[int]:
        return [f.batch_id for f in self.files if f.batch_id]

    def summary(self) -> str:
        return "\n".join([self.message, *(f.summary() for f in self.files)])


@dataclass
class _Job:
    source: str
    sha256: str
    kind: str | None
    table: RawTable | None = None
    raw: bytes | None = None
    error: str | None = None
    warnings: list[str] = field(default_factory=list)


def _fits(table: RawTable, kind: str) -> bool:
    try:
        tables.map_headers(table, KINDS[kind])
        return True
    except ImportFileError:
        return False


def _load(src: Source, kind: str | None) -> list[_Job]:
    """Bytes -> jobs (a workbook may hold several sheets); a file that cannot be read becomes a failed job."""
    sha = hashlib.sha256(src.data).hexdigest()
    if kind is not None and kind not in KINDS and kind != X12_KIND:
        return [_Job(src.name, sha, None, error=f"unknown kind {kind!r}; use one of: {', '.join(ORDER)}")]
    if not src.data.strip():
        return [_Job(src.name, sha, kind, error=f"{src.name}: the file is empty.")]
    if kind == X12_KIND or (kind is None and looks_like_x12(src.data)):
        return [_Job(src.name, sha, X12_KIND, raw=src.data)]
    by_name = kind_from_file_name(src.name)
    if by_name == X12_KIND and kind is None:
        return [_Job(src.name, sha, X12_KIND, raw=src.data)]
    try:
        if looks_like_xlsx(src.data, src.name):
            raws = read_xlsx_bytes(src.data, src.name, kind)
        else:
            raws = [read_csv_bytes(src.data, src.name, kind or by_name)]
    except ImportFileError as exc:
        return [_Job(src.name, sha, kind or by_name, error=str(exc))]
    jobs = []
    for t in raws:
        chosen = kind or t.sheet_kind or (by_name if by_name != X12_KIND else None)
        warnings = []
        if chosen is None or (kind is None and not _fits(t, chosen)):
            from_header = kind_from_header(t.headers)
            if from_header and from_header != chosen:
                if chosen:
                    warnings.append(
                        f"{t.source}: the name suggests {chosen}, but the columns are those of "
                        f"{from_header}; imported as {from_header}."
                    )
                chosen = from_header
        if chosen is None:
            jobs.append(
                _Job(
                    t.source,
                    sha,
                    None,
                    error=(
                        f"{t.source}: cannot tell what this file holds from its name or its columns; name it like "
                        "patients.csv or time_entries.csv, or choose the kind explicitly."
                    ),
                )
            )
            continue
        jobs.append(_Job(t.source, sha, chosen, table=t, warnings=warnings))
    return jobs


def _problems_frame(source: str, rows: list[tuple[int, str, str]]) -> pd.DataFrame:
    return pd.DataFrame(
        {"file": source, "row": [r[0] for r in rows], "column": [r[1] for r in rows], "problem": [r[2] for r in rows]}
    )


def _table_report(job: _Job, outcome: tables.TableOutcome) -> tuple[pd.DataFrame, pd.DataFrame | None]:
    """Problems with spreadsheet row numbers, and the rejected input rows with a problem column."""
    p = outcome.problems
    if p is None or p.empty:
        return pd.DataFrame(columns=["file", "row", "column", "problem"]), None
    rownum = pd.Series(job.table.row_numbers, index=job.table.data.index)
    frame = pd.DataFrame(
        {
            "file": job.source,
            "row": rownum.loc[p["idx"]].to_numpy(),
            "column": p["column"].to_numpy(),
            "problem": p["problem"].to_numpy(),
        }
    ).sort_values(["row", "column"], kind="stable")
    text = (
        p.assign(t=(p["column"].where(p["column"] != "", "row") + ": " + p["problem"].astype(str)))
        .groupby("idx")["t"]
        .agg("; ".join)
    )
    rejected = job.table.data.loc[outcome.rejected_idx].copy()
    rejected.columns = [h or f"column_{i + 1}" for i, h in enumerate(job.table.headers)]
    rejected.insert(0, "row", rownum.loc[outcome.rejected_idx].to_numpy())
    rejected["problem"] = text.reindex(outcome.rejected_idx).to_numpy()
    return frame.reset_index(drop=True), rejected.reset_index(drop=True)


def import_files(
    engine: Engine,
    sources,
    *,
    user: str = "cli",
    kind: str | None = None,
    accept_valid: bool = False,
    dry_run: bool = False,
    today: dt.date | None = None,
    progress=None,
) -> ImportRun:
    """Validate and import ``sources`` (paths or ``Source``) in one transaction; see the module docstring.

    ``dry_run`` validates and computes what would change, then rolls back (the
    import page's preview).  ``accept_valid`` writes the valid rows even when
    some are rejected; the rejected rows come back in ``FileResult.rejected_rows``.
    """
    today = today or dt.date.today()
    srcs = [s if isinstance(s, Source) else Source.from_path(s) for s in sources]
    jobs = [j for s in srcs for j in _load(s, kind)]
    jobs.sort(key=lambda j: ORDER.index(j.kind) if j.kind in ORDER else -1)
    results = [FileResult(j.source, j.kind, j.sha256, warnings=list(j.warnings)) for j in jobs]
    wrote_any = False
    fatal_error = None
    with engine.connect() as conn:
        trans = conn.begin()
        try:
            for job, res in zip(jobs, results):
                if fatal_error:
                    res.status = "not imported"
                    continue
                try:
                    wrote_any |= _run_job(conn, job, res, user=user, today=today, progress=progress)
                except SQLAlchemyError as exc:
                    log.exception("database error importing %s", job.source)
                    msg = str(getattr(exc, "orig", exc)).splitlines()[0][:300]
                    res.status = "rejected"
                    res.message = f"the database refused this file: {msg}"
                    res.problems = _problems_frame(job.source, [(0, "", res.message)])
                    fatal_error = res.message
                    break
            rejected = any(r.status == "rejected" or r.rows_rejected for r in results)
            commit = not dry_run and not fatal_error and (not rejected or accept_valid) and wrote_any
            if commit:
                # bump the data version and bring the stored patient-month up to date, same transaction
                scope = pm_store.batch_scope(conn, [r.batch_id for r in results if r.batch_id])
                pm_store.record_write(conn, scope)
                rebuilt = pm_store.rebuilt_whole(conn)
                trans.commit()
            else:
                trans.rollback()
        except Exception:
            if trans.is_active:
                trans.rollback()
            log.exception("internal error during import")
            for r in results:
                if r.status in ("pending", "imported", "unchanged"):
                    r.status = "not imported"
            return ImportRun(
                results,
                False,
                dry_run,
                accept_valid,
                "Import failed with an internal error; nothing was imported. The details are in the server log.",
            )
    if commit:
        pm_store.vacuum(engine, rebuilt)  # outside the transaction: VACUUM cannot run inside one
    blocked = bool(fatal_error) or (rejected and not accept_valid)
    for r in results:
        if r.status == "pending":
            r.status = "not imported"
        if not commit and r.status == "imported":
            r.batch_id = None
            r.status = (
                "rejected" if r.rows_rejected else "would import" if dry_run and not fatal_error else "not imported"
            )
        elif r.status == "unchanged" and blocked:
            r.status = "not imported"
    if dry_run:
        message = "Check only, nothing written: " + (
            "no problems found." if not rejected else f"{len(pd.concat([r.problems for r in results]))} problem(s)."
        )
    elif commit:
        n_rej = sum(r.rows_rejected for r in results)
        message = "Imported." if not n_rej else f"Imported the valid rows; {n_rej} row(s) rejected (download them)."
    elif fatal_error:
        message = f"Nothing was imported: {fatal_error}"
    elif rejected:
        message = "Nothing was imported: fix the problems listed (or choose to import the valid rows only)."
    else:
        message = "Nothing to change: the database already holds exactly this data."
    return ImportRun(results, commit, dry_run, accept_valid, message)


def _run_job(conn, job: _Job, res: FileResult, *, user, today, progress) -> bool:
    """Validate and write one job; returns whether it wrote anything."""
    if job.error:
        res.status = "rejected"
        res.message = job.error
        res.problems = _problems_frame(job.source, [(1, "", job.error)])
        return False
    res.same_as_batch = store.same_file_batch(conn, job.sha256)
    batch: dict[str, int] = {}

    def get_batch() -> int:
        if "id" not in batch:
            batch["id"] = store.start_batch(conn, kind=job.kind, file_name=job.source, sha256=job.sha256, user=user)
        return batch["id"]

    def write_progress(done, total):
        if progress:
            progress(job.source, done, total)

    if job.kind == X12_KIND:
        try:
            parsed = x835.parse_835(job.raw, job.source)
        except x835.X12Rejected as exc:
            res.status = "rejected"
            res.message = str(exc)
            res.problems = _problems_frame(job.source, exc.problems)
            return False
        res.warnings += parsed.warnings
        res.rows_in = len(parsed.claims)
        out = x835.write_835(conn, parsed, job.source, get_batch)
        res.x12 = out
        res.counts = out.counts
        notes = [
            f"{out.claims} claim(s), {out.lines} service line(s), {out.adjustments} adjustment(s), "
            f"{out.remarks} remark(s) stored"
        ]
        if out.already_present:
            notes.append(f"{out.already_present} remittance(s) were already stored and were skipped")
        if out.unmatched_claims:
            shown = ", ".join(list(dict.fromkeys(out.unmatched_claims))[:10])
            notes.append(f"{len(out.unmatched_claims)} claim(s) not found among our claims (kept unmatched): {shown}")
        if out.unmatched_lines:
            notes.append(
                f"{len(out.unmatched_lines)} service line(s) not matched to a claim line: "
                + ", ".join(out.unmatched_lines[:10])
            )
        res.message = "; ".join(notes)
        written = out.claims
    else:
        try:
            outcome = tables.process_table(
                conn, job.table, job.kind, today=today, accept_valid=True, get_batch=get_batch, progress=write_progress
            )
        except ImportFileError as exc:
            res.status = "rejected"
            res.message = str(exc)
            res.problems = _problems_frame(job.source, [(1, "", str(exc))])
            return False
        res.rows_in = outcome.rows_in
        res.rows_rejected = outcome.rows_rejected
        res.counts = outcome.counts
        res.warnings += outcome.warnings + _payer_warnings(conn, job)
        res.problems, res.rejected_rows = _table_report(job, outcome)
        written = outcome.total("inserted") + outcome.total("updated")
    if "id" in batch:
        bid = batch["id"]
        changed = conn.execute(
            select(func.count()).select_from(import_change).where(import_change.c.batch_id == bid)
        ).scalar()
        if not changed:  # nothing new: leave no empty batch behind
            conn.execute(delete(import_batch).where(import_batch.c.id == bid))
        else:
            store.finish_batch(
                conn,
                bid,
                rows_in=res.rows_in,
                rows_written=written,
                rows_rejected=res.rows_rejected,
                warnings=res.warnings,
            )
            res.batch_id = bid
    if res.rows_rejected and not written:
        res.status = "rejected"
    elif res.batch_id:
        res.status = "imported"
    else:
        res.status = "unchanged" if not res.rows_rejected else "rejected"
    return res.batch_id is not None


def _payer_warnings(conn, job: _Job) -> list[str]:
    """A payer outside the vocabulary silently drops a patient out of every eligibility count: say so."""
    if job.kind not in ("patients", "claims") or job.table is None:
        return []
    heads = [h.strip().lower() for h in job.table.headers]
    if "payer" not in heads:
        return []
    from ccm_core import rules as rules_mod

    values = job.table.data.iloc[:, heads.index("payer")].tolist()
    return [f"{job.source}: {w}" for w in rules_mod.load(conn).payer_warnings(values)]


def import_file(engine: Engine, source, **kw) -> ImportRun:
    """One file (a path or a Source); same options as ``import_files``."""
    return import_files(engine, [source], **kw)


def problems_csv(run: ImportRun) -> bytes:
    return csv_bytes(run.problems)


def preview(source: Source, kind: str | None = None, rows: int = 20) -> list[tuple[str, str | None, pd.DataFrame]]:
    """The first rows of each table in ``source`` as read (or the claims of an 835), for the upload preview."""
    out = []
    for job in _load(source, kind):
        if job.error:
            continue
        if job.kind == X12_KIND:
            try:
                parsed = x835.parse_835(job.raw, job.source)
            except x835.X12Rejected:
                continue
            frame = pd.DataFrame(
                [
                    {
                        "claim_number": c.claim_number,
                        "status": c.status_code,
                        "payer": c.payer,
                        "charge": c.total_charge,
                        "paid": c.paid_amount,
                        "lines": len(c.lines),
                        "received": c.received_date,
                    }
                    for c in parsed.claims[:rows]
                ]
            )
        else:
            frame = job.table.data.head(rows).copy()
            frame.columns = [h or f"column_{i + 1}" for i, h in enumerate(job.table.headers)]
            frame.insert(0, "row", job.table.row_numbers[: len(frame)])
        out.append((job.source, job.kind, frame))
    return out
