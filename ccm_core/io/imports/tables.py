"""Validate one CSV/Excel table of a known kind and write its valid rows.

The order is fixed: header -> column types -> rules within a row -> duplicate
keys -> references (one query per referenced table) -> rules that need the
database (birth dates, care-plan versions, claim lines) -> write.  Every
problem is a row of (row index, column, problem); rows with a problem are
never written.
"""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from sqlalchemy.engine import Connection

from ccm_core.io.imports import store
from ccm_core.io.imports.parse import parse_column
from ccm_core.io.imports.reader import ImportFileError, RawTable
from ccm_core.io.imports.specs import KINDS, Kind, header_key
from ccm_core.storage import schema

REF_TABLES = {
    "clinic": (schema.clinic, "code"),
    "practitioner": (schema.practitioner, "npi"),
    "staff": (schema.staff, "external_id"),
    "patient": (schema.patient, "mrn"),
    "claim": (schema.claim, "claim_number"),
}
REF_LABEL = {
    "clinic": "clinic code",
    "practitioner": "NPI",
    "staff": "staff external_id",
    "patient": "MRN",
    "claim": "claim number",
}

# Dates that cannot precede the patient's birth (and, for care delivered, follow their death).
PATIENT_DATES = {
    "time_entries": ("service_date", True),
    "visits": ("visit_date", True),
    "claims": ("service_date", True),
    "facility_stays": ("admit_date", False),
    "consents": ("consent_date", False),
    "enrollment_events": ("event_date", False),
    "care_plans": ("established_date", False),
    "diagnoses": ("onset_date", False),
}
# (earlier, later) pairs within one row.
ORDERED_DATES = {
    "patients": [("birth_date", "first_seen_date"), ("birth_date", "deceased_date")],
    "diagnoses": [("onset_date", "resolved_date")],
    "facility_stays": [("admit_date", "discharge_date")],
    "consents": [("consent_date", "revoked_date")],
    "care_plans": [("established_date", "reviewed_date"), ("established_date", "shared_with_patient_date")],
    "claims": [("service_date", "submitted_date")],
    "appeals": [("filed_date", "outcome_date")],
}


@dataclass
class TableOutcome:
    rows_in: int = 0
    counts: dict[str, store.UpsertCounts] = field(default_factory=dict)
    problems: pd.DataFrame | None = None  # idx, column, problem
    warnings: list[str] = field(default_factory=list)
    rejected_idx: np.ndarray = field(default_factory=lambda: np.array([], dtype=np.int64))

    @property
    def rows_rejected(self) -> int:
        return len(self.rejected_idx)

    def total(self, attr: str) -> int:
        return sum(getattr(c, attr) for c in self.counts.values())


class Problems:
    """Collects (row index, column, problem) vectorised: a mask and a message per call."""

    def __init__(self, index: pd.Index):
        self.index = index
        self.parts: list[pd.DataFrame] = []

    def add(self, mask: pd.Series, column: str, message) -> None:
        mask = mask.reindex(self.index, fill_value=False).fillna(False).astype(bool)
        if not mask.any():
            return
        idx = self.index[mask.to_numpy()]
        msg = message[mask].to_numpy(dtype=object) if isinstance(message, pd.Series) else [message] * len(idx)
        self.parts.append(pd.DataFrame({"idx": idx, "column": column, "problem": msg}))

    def add_rows(self, rows: list[tuple[int, str, str]]) -> None:
        if rows:
            self.parts.append(pd.DataFrame(rows, columns=["idx", "column", "problem"]))

    def frame(self) -> pd.DataFrame:
        if not self.parts:
            return pd.DataFrame(
                {
                    "idx": pd.Series([], dtype=np.int64),
                    "column": pd.Series([], dtype=object),
                    "problem": pd.Series([], dtype=object),
                }
            )
        return pd.concat(self.parts, ignore_index=True)

    def bad_mask(self) -> pd.Series:
        f = self.frame()
        return pd.Series(self.index.isin(f["idx"].unique()), index=self.index)


def map_headers(table: RawTable, kind: Kind) -> dict[int, str]:
    """Header position -> column name; unknown, duplicate or missing columns stop the file with a clear message."""
    by_key: dict[str, str] = {}
    for c in kind.columns:
        for a in (c.name, *c.aliases):
            by_key.setdefault(header_key(a), c.name)
    mapping: dict[int, str] = {}
    unknown, seen = [], {}
    for pos, h in enumerate(table.headers):
        if not h.strip():
            if table.data[pos].astype(str).str.strip().ne("").any():
                unknown.append(f"(column {pos + 1} has values but no header)")
            continue
        name = by_key.get(header_key(h))
        if name is None:
            unknown.append(repr(h))
            continue
        if name in seen:
            raise ImportFileError(f"{table.source}: columns {seen[name]!r} and {h!r} both mean {name!r}; keep one.")
        seen[name] = h
        mapping[pos] = name
    errors = []
    if unknown:
        errors.append(
            f"unknown column(s) {', '.join(unknown)} for {kind.file_name}; expected columns: "
            + ", ".join(c.name for c in kind.columns)
        )
    missing = [r for r in kind.required if r not in seen]
    if missing:
        errors.append(f"missing required column(s): {', '.join(missing)}")
    if errors:
        raise ImportFileError(f"{table.source}: " + "; ".join(errors) + ".")
    return mapping


def parse_table(table: RawTable, kind: Kind, today: dt.date, problems: Problems) -> pd.DataFrame:
    """Typed values per column (absent optional columns filled with their default)."""
    mapping = map_headers(table, kind)
    raw = {name: table.data[pos] for pos, name in mapping.items()}
    index = table.data.index
    values: dict[str, pd.Series] = {}
    order = sorted(kind.columns, key=lambda c: c.type == "datetime")  # datetimes may need the row's date first
    for col in order:
        if col.name not in raw:
            values[col.name] = pd.Series([col.default] * len(index), index=index, dtype=object)
            continue
        base = values.get("service_date") if (col.type == "datetime" and kind.name == "time_entries") else None
        v, p = parse_column(raw[col.name], col, today, base_dates=base)
        values[col.name] = v
        problems.add(p.notna(), col.name, p)
    return pd.DataFrame({c.name: values[c.name] for c in kind.columns}, index=index)


def _row_checks(kind: Kind, v: pd.DataFrame, problems: Problems) -> None:
    for early, late in ORDERED_DATES.get(kind.name, []):
        a, b = v[early], v[late]
        both = a.notna() & b.notna()
        if both.any():
            before = pd.Series(False, index=v.index)
            before[both] = [y < x for x, y in zip(a[both], b[both])]
            problems.add(before, late, f"is before {early}")
    if kind.name == "time_entries":
        both = v["started_at"].notna() & v["service_date"].notna()
        if both.any():
            other_day = pd.Series(False, index=v.index)
            other_day[both] = [s.date() != d for s, d in zip(v["started_at"][both], v["service_date"][both])]
            problems.add(other_day, "started_at", "is on a different day than service_date")
        both = v["entered_at"].notna() & v["service_date"].notna()
        if both.any():
            early = pd.Series(False, index=v.index)
            early[both] = [e.date() < d for e, d in zip(v["entered_at"][both], v["service_date"][both])]
            problems.add(early, "entered_at", "is before the service_date (entered before the work was done)")
    if kind.name == "claims":
        same = v["original_claim_number"].notna() & (v["original_claim_number"] == v["claim_number"])
        problems.add(same, "original_claim_number", "a claim cannot replace itself")
        check_claim_consistency(v, problems)


def _duplicate_keys(kind: Kind, v: pd.DataFrame, table: RawTable, problems: Problems) -> None:
    key = list(kind.key)
    complete = v[key].notna().all(axis=1)
    if not complete.any():
        return
    keyed = v.loc[complete, key[0]].astype(str)
    for k in key[1:]:
        keyed = keyed + "|" + v.loc[complete, k].astype(str)
    dup = keyed.duplicated(keep=False)
    if not dup.any():
        return
    rownum = pd.Series(table.row_numbers, index=v.index)
    first_rows = rownum[complete][dup].groupby(keyed[dup]).agg(lambda r: ", ".join(map(str, r.tolist()[:5])))
    label = " + ".join(key)
    msg = (
        "duplicate "
        + label
        + " '"
        + keyed[dup].str.replace("|", "', '", regex=False)
        + "' (rows "
        + keyed[dup].map(first_rows)
        + ")"
    )
    problems.add(dup.reindex(v.index, fill_value=False), key[0], msg.reindex(v.index))


def resolve_refs(conn: Connection, kind: Kind, v: pd.DataFrame, problems: Problems) -> dict[str, pd.Series]:
    """Natural keys -> ids, one query per referenced table; unknown keys are row problems."""
    out: dict[str, pd.Series] = {}
    for col in kind.columns:
        if not col.ref or col.ref == "practice":
            continue
        if kind.name == "claims" and col.ref == "claim":
            continue  # original claims may be in this same file: resolved while writing
        table, key_col = REF_TABLES[col.ref]
        vals = v[col.name]
        present = vals.notna()
        ids = store.key_ids(conn, table, key_col, vals[present].unique().tolist()) if present.any() else {}
        mapped = vals.map(ids) if ids else pd.Series([None] * len(vals), index=vals.index, dtype=object)
        missing = present & mapped.isna()
        problems.add(
            missing,
            col.name,
            REF_LABEL[col.ref] + " '" + vals.astype(str) + "' is not in the database or earlier in this import",
        )
        out[col.name] = pd.Series([None if pd.isna(x) else int(x) for x in mapped], index=vals.index, dtype=object)
    return out


def _patient_facts(conn, ids: pd.Series) -> pd.DataFrame:
    found = store.fetch_in(
        conn, schema.patient, "id", [i for i in ids.dropna().unique()], ["id", "birth_date", "deceased_date"]
    )
    return found.set_index("id")


def _db_checks(conn, kind: Kind, v: pd.DataFrame, ids: dict[str, pd.Series], problems: Problems) -> dict:
    extra: dict[str, pd.Series] = {}
    if kind.name in PATIENT_DATES and "mrn" in ids:
        date_col, care = PATIENT_DATES[kind.name]
        facts = _patient_facts(conn, ids["mrn"])
        if len(facts):
            pid = ids["mrn"]
            birth = pid.map(facts["birth_date"])
            d = v[date_col]
            both = d.notna() & birth.notna()
            if both.any():
                early = pd.Series(False, index=v.index)
                early[both] = [x < b for x, b in zip(d[both], birth[both])]
                problems.add(early, date_col, "is before the patient's birth date " + birth.astype(str))
            if care:
                death = pid.map(facts["deceased_date"])
                both = d.notna() & death.notna()
                if both.any():
                    late = pd.Series(False, index=v.index)
                    late[both] = [x > b for x, b in zip(d[both], death[both])]
                    problems.add(late, date_col, "is after the patient's deceased_date " + death.astype(str))
    if kind.name == "care_plans":
        pv = pd.DataFrame({"patient_id": ids["mrn"], "version": v["version"], "external_id": v["external_id"]})
        ok = pv["patient_id"].notna() & pv["version"].notna()
        dup = pv[ok].duplicated(["patient_id", "version"], keep=False).reindex(v.index, fill_value=False)
        problems.add(dup, "version", "the same patient has this version twice in the file")
        existing = store.fetch_in(
            conn,
            schema.care_plan,
            "patient_id",
            pv.loc[ok, "patient_id"].unique().tolist(),
            ["patient_id", "version", "external_id"],
        )
        if len(existing):
            m = pv.reset_index().merge(existing, on=["patient_id", "version"], how="inner", suffixes=("", "_db"))
            clash = m[m["external_id"] != m["external_id_db"]]
            if len(clash):
                mask = pd.Series(v.index.isin(clash["index"]), index=v.index)
                msg = pd.Series(None, index=v.index, dtype=object)
                msg[clash["index"].to_numpy()] = (
                    "the patient already has this version under external_id '"
                    + clash["external_id_db"].astype(str)
                    + "'"
                ).to_numpy()
                problems.add(mask, "version", msg)
    if kind.name == "claims":
        orig = v["original_claim_number"]
        has = orig.notna()
        if has.any():
            known = set(store.key_ids(conn, schema.claim, "claim_number", orig[has].unique().tolist()))
            known |= set(v["claim_number"].dropna())
            problems.add(
                has & ~orig.isin(list(known)),
                "original_claim_number",
                "claim number '" + orig.astype(str) + "' is not in the database or this file",
            )
    if kind.name == "appeals":
        has_line = v["line_number"].notna() & ids["claim_number"].notna()
        line_ids = pd.Series([None] * len(v), index=v.index, dtype=object)
        if has_line.any():
            lines = store.fetch_in(
                conn,
                schema.claim_line,
                "claim_id",
                ids["claim_number"][has_line].unique().tolist(),
                ["id", "claim_id", "line_number"],
            )
            lookup = {(c, n): i for i, c, n in lines[["id", "claim_id", "line_number"]].itertuples(index=False)}
            found = [lookup.get((c, n)) for c, n in zip(ids["claim_number"][has_line], v["line_number"][has_line])]
            line_ids[has_line] = found
            problems.add(has_line & line_ids.isna(), "line_number", "the claim has no line with this number")
        extra["claim_line_id"] = line_ids
    return extra


def process_table(
    conn: Connection, table: RawTable, kind_name: str, *, today: dt.date, accept_valid: bool, get_batch, progress=None
) -> TableOutcome:
    """Validate ``table`` as ``kind_name`` and, for the rows without problems, upsert them.

    ``get_batch()`` returns the batch id (created on first use).  Rows are only
    written when there are no problems or ``accept_valid`` is set; the caller
    rolls back the whole run otherwise.
    """
    kind = KINDS[kind_name]
    out = TableOutcome(rows_in=len(table.data), warnings=list(table.warnings))
    problems = Problems(table.data.index)
    problems.add_rows(table.problems)
    v = parse_table(table, kind, today, problems)
    _row_checks(kind, v, problems)
    _duplicate_keys(kind, v, table, problems)
    ids = resolve_refs(conn, kind, v, problems)
    extra = _db_checks(conn, kind, v, ids, problems)
    bad = problems.bad_mask()
    if kind.name == "claims" and bad.any():  # a claim is all its lines or nothing
        bad_claims = set(v.loc[bad & v["claim_number"].notna(), "claim_number"])
        spill = ~bad & v["claim_number"].isin(bad_claims)
        problems.add(spill, "claim_number", "another line of this claim was rejected")
        bad = bad | spill
    out.problems = problems.frame()
    out.rejected_idx = v.index[bad.to_numpy()].to_numpy()
    good = ~bad
    if bad.any() and not accept_valid:
        return out
    if not good.any():
        return out
    vg = v[good]
    idg = {k: s[good] for k, s in ids.items()}
    exg = {k: s[good] for k, s in extra.items()}
    writer = WRITERS.get(kind.name, _write_simple)
    out.counts = writer(conn, kind, vg, idg, exg, get_batch, progress)
    return out


def _base_frame(kind: Kind, v: pd.DataFrame, ids: dict, extra: dict) -> pd.DataFrame:
    cols = {}
    for col in kind.columns:
        if col.db_column == "" or col.ref == "practice":
            continue
        if col.name in ids:
            cols[col.db_column] = ids[col.name]
        elif col.db_column in kind.table.c:
            cols[col.db_column] = v[col.name]
    for k, s in extra.items():
        cols[k] = s
    return pd.DataFrame(cols, index=v.index).astype(object)


def _db_key(kind: Kind) -> list[str]:
    return [kind.col(k).db_column for k in kind.key]


def _write_simple(conn, kind, v, ids, extra, get_batch, progress) -> dict:
    frame = _base_frame(kind, v, ids, extra)
    if kind.name == "time_entries":
        frame["service_month"] = [d.year * 100 + d.month for d in v["service_date"]]
        frame["ended_at"] = [
            None if s is None else s + dt.timedelta(minutes=int(m)) for s, m in zip(v["started_at"], v["minutes"])
        ]
    counts = store.upsert(conn, kind.table, frame, _db_key(kind), get_batch(), progress=progress)
    return {kind.table.name: counts}


def _write_clinics(conn, kind, v, ids, extra, get_batch, progress) -> dict:
    """Practices are named on clinic rows: create the new ones, update a changed tax id."""
    batch_id = get_batch()
    names = v["practice_name"]
    tax = v["practice_tax_id"]
    existing = store.fetch_in(conn, schema.practice, "name", names.unique().tolist(), ["id", "name", "tax_id"])
    known = dict(zip(existing["name"], existing["id"]))
    first_tax = pd.DataFrame({"name": names, "tax": tax}).dropna().drop_duplicates("name").set_index("name")["tax"]
    counts = store.UpsertCounts()
    new_names = [n for n in names.unique() if n not in known]
    if new_names:
        before = store.max_id(conn, schema.practice)
        conn.execute(schema.practice.insert(), [{"name": n, "tax_id": first_tax.get(n)} for n in new_names])
        rows = conn.execute(
            schema.practice.select().where(schema.practice.c.id > before, schema.practice.c.name.in_(new_names))
        ).all()
        conn.execute(
            schema.import_change.insert(),
            [{"batch_id": batch_id, "table_name": "practice", "row_id": r.id, "action": "insert"} for r in rows],
        )
        known.update({r.name: r.id for r in rows})
        counts.inserted = len(rows)
    for pid, name, old_tax in existing.itertuples(index=False):
        new_tax = first_tax.get(name)
        if new_tax is not None and new_tax != old_tax:
            conn.execute(schema.practice.update().where(schema.practice.c.id == pid).values(tax_id=new_tax))
            conn.execute(
                schema.import_change.insert().values(
                    batch_id=batch_id,
                    table_name="practice",
                    row_id=int(pid),
                    action="update",
                    before_json=json.dumps({"tax_id": old_tax}),
                )
            )
            counts.updated += 1
    frame = _base_frame(kind, v, ids, extra)
    frame["practice_id"] = [int(known[n]) for n in names]
    result = {"practice": counts}
    result["clinic"] = store.upsert(conn, schema.clinic, frame, ["code"], batch_id, progress=progress)
    return result


CLAIM_LEVEL = [
    "mrn",
    "billing_npi",
    "clinic_code",
    "payer",
    "submitted_date",
    "frequency_code",
    "original_claim_number",
    "place_of_service",
]


def check_claim_consistency(v: pd.DataFrame, problems: Problems) -> None:
    """Claim-level columns repeat on every line: they must agree within a claim."""
    has = v["claim_number"].notna()
    if not has.any():
        return
    g = v[has].astype(str).groupby(v.loc[has, "claim_number"])
    for col in CLAIM_LEVEL:
        n = g[col].transform("nunique")
        problems.add((n > 1).reindex(v.index, fill_value=False), col, "differs between lines of the same claim")


def _write_claims(conn, kind, v, ids, extra, get_batch, progress) -> dict:
    batch_id = get_batch()
    claims = pd.DataFrame(
        {
            "claim_number": v["claim_number"],
            "patient_id": ids["mrn"],
            "practitioner_id": ids["billing_npi"],
            "clinic_id": ids["clinic_code"],
            "payer": v["payer"],
            "submitted_date": v["submitted_date"],
            "frequency_code": v["frequency_code"],
            "place_of_service": v["place_of_service"],
            "original_claim_number": v["original_claim_number"],
            "charge": v["charge"],
        },
        index=v.index,
    )
    totals = claims.groupby("claim_number", sort=False)["charge"].sum().round(2)
    head = claims.drop_duplicates("claim_number").drop(columns=["charge"]).copy()
    head["total_charge"] = head["claim_number"].map(totals).astype(float)
    head["submitted_month"] = [d.year * 100 + d.month for d in head["submitted_date"]]
    counts_claim = store.UpsertCounts()
    pending = head
    # Replacements may point at originals in this same file: write claims whose original is known first.
    while len(pending):
        orig = pending["original_claim_number"]
        known = store.key_ids(conn, schema.claim, "claim_number", orig.dropna().unique().tolist())
        ready = orig.isna() | orig.isin(list(known))
        if not ready.any():
            raise ImportFileError(
                "original_claim_number values form a cycle or name claims that do not exist: "
                + ", ".join(sorted(set(orig[~ready].astype(str)))[:5])
            )
        part = pending[ready].copy()
        part["original_claim_id"] = [None if o is None else int(known[o]) for o in part["original_claim_number"]]
        part = part.drop(columns=["original_claim_number"]).astype(object)
        counts_claim.add(store.upsert(conn, schema.claim, part, ["claim_number"], batch_id))
        pending = pending[~ready]
    claim_ids = store.key_ids(conn, schema.claim, "claim_number", head["claim_number"].tolist())
    lines = pd.DataFrame(
        {
            "claim_id": [int(claim_ids[c]) for c in v["claim_number"]],
            "line_number": v["line_number"],
            "cpt_code": v["cpt_code"],
            "modifier": v["modifier"],
            "units": v["units"],
            "charge": v["charge"],
            "service_date": v["service_date"],
            "dos_month": [d.year * 100 + d.month for d in v["service_date"]],
            "patient_id": ids["mrn"],
            "practitioner_id": ids["billing_npi"],
            "icd10_codes": v["icd10_codes"],
        },
        index=v.index,
    ).astype(object)
    counts_line = store.upsert(conn, schema.claim_line, lines, ["claim_id", "line_number"], batch_id, progress=progress)
    return {"claim": counts_claim, "claim_line": counts_line}


WRITERS = {"clinics": _write_clinics, "claims": _write_claims}
