"""What the pages, KPIs, audit and command line read about patient-months: the stored rows when current,
else the live statements, as DataFrames or as statements to aggregate further.

The layers, bottom up: the statement builders (``engine.sql``, ``engine.filters``, ``engine.compliance``'s
rules and prerequisites, ``engine.patient_month``'s statement), then ``storage.stored`` (the stored tables
filled from those statements, and ``patient_month_source``: stored rows when current, else the live
statement), then this module, which reads through the store:

* ``patient_months``: one row per patient-month with minutes, codes, amounts and the findings text;
* ``billing_status_select`` / ``billing_status``: each patient-month's prerequisites and status
  (ready / hold / short / billed) with its hold reasons and fixes;
* ``dollars_on_hold_select`` and ``holds_by_reason``: the held months' expected dollars, in all and per reason;
* ``record_export`` / ``exports``: the ready list's export history (the write is recorded through
  ``storage.stored.record_write``).
"""

from __future__ import annotations

import datetime as dt

import pandas as pd
from sqlalchemy import Float, Integer, and_, case, cast, func, literal, not_, or_, select
from sqlalchemy.engine import Connection

from ccm_core import rules as rules_mod
from ccm_core.engine.compliance import (
    HOLD_REASONS,
    PREREQUISITE_TITLES,
    PREREQUISITES,
    calendar_cte,
    failed_prerequisites,
    hold_reasons,
    month_practitioner,
    prerequisites_select,
)
from ccm_core.engine.filters import Filters
from ccm_core.engine.patient_month import FLAG_COLUMNS, FLAG_TEXT, prepare
from ccm_core.storage import schema as s
from ccm_core.storage import stored as pm_store


# --------------------------------------------------------------------------- the patient-month frame
def _join_parts(parts: list[tuple[pd.Series, object]], n: int) -> list[str]:
    """Per row, '; '-join the texts whose mask is true (column-wise: no per-row pandas apply)."""
    out: list[list[str]] = [[] for _ in range(n)]
    for mask, text in parts:
        texts = text if isinstance(text, pd.Series) else None
        for i in mask.to_numpy().nonzero()[0]:
            out[i].append(texts.iat[i] if texts is not None else text)
    return ["; ".join(x) for x in out]


def codes_text(df: pd.DataFrame, prefix: str, codes: list[str]) -> list[str]:
    """'99490 x1, 99439 x2' per row from the ``<prefix><code>`` unit columns."""
    out: list[list[str]] = [[] for _ in range(len(df))]
    for code in codes:
        units = df[prefix + code].astype(int).to_numpy()
        for i in units.nonzero()[0]:
            out[i].append(f"{code} x{units[i]}")
    return [", ".join(x) for x in out]


def patient_months(conn: Connection, filters: Filters, rs: rules_mod.RuleSet | None = None) -> pd.DataFrame:
    """One row per patient and calendar month in range with any counted-program time or tracked claim line.

    Columns: ids (patient, month, clinic, billing practitioner, care manager, payer), minutes (logged,
    counted, practitioner, PCM, excluded by cause), threshold_date, last_contact_date, supported track and
    ``supported_<code>`` units, ``billed_<code>`` units, expected / billed / paid amounts, the finding flags
    (``FLAG_COLUMNS``, plus ``not_billed``) and a ``findings`` text.
    """
    rs = rs or rules_mod.load(conn)
    prepare(conn)
    q = pm_store.patient_month_source(conn, filters, rs).order_by("service_month", "patient_id")
    res = conn.execute(q)
    # plain tuples with the column names once: a dict per row (``mappings()``) cost ~3x the query (3 months at
    # 50k: 3 s), and pandas probes each Row for a ``dtype`` attribute through SQLAlchemy's slow missing-key path
    df = pd.DataFrame(list(map(tuple, res)), columns=list(res.keys()))
    if df.empty:  # same columns as a filled frame, so callers never special-case "no data"
        return pd.DataFrame(
            columns=[c.name for c in q.selected_columns] + ["supported_codes", "billed_codes", "findings", "fee_status"]
        )
    money = [
        c
        for c in df.columns
        if c.startswith("expected_")
        or c in ("billed_charge", "paid_amount", "billed_fee_value", "billed_supported_value")
    ]
    for col in money:
        df[col] = df[col].astype(float).round(2)
    for col in ("threshold_date", "last_contact_date"):
        when = pd.to_datetime(df[col])  # dates or None, vectorised (a Timestamp per row cost 0.06 s per 30k rows)
        df[col] = when.dt.date.where(when.notna(), None).tolist()
    flags = list(FLAG_COLUMNS) + [
        "not_billed",
        "initially_denied",
        "adjudicated",
        "has_complexity",
        "complex_care_plan",
    ]
    for col in flags:
        df[col] = df[col].astype(int).astype(bool)
    counts = [
        c
        for c in df.columns
        if c.endswith("_minutes")
        or c.startswith(("supported_9", "billed_9", "billed_G"))
        or c.startswith("excluded_")
        or c in ("ccm_claims", "ccm_practitioners", "billed_ccm_units")
    ]
    for col in counts:
        df[col] = df[col].astype(int)
    supported = [c for c in rs.codes if f"supported_{c}" in df.columns]
    billed = [c for c in rs.codes if f"billed_{c}" in df.columns]
    df["supported_codes"] = codes_text(df, "supported_", supported)
    df["billed_codes"] = codes_text(df, "billed_", billed)
    df["findings"] = _join_parts([(df[k], FLAG_TEXT[k]) for k in FLAG_COLUMNS], len(df))
    df["fee_status"] = _fee_status(rs, df, supported)
    return df


def _fee_status(rs: rules_mod.RuleSet, df: pd.DataFrame, codes: list[str]) -> list[str]:
    """'99491 UNVERIFIED ...' where the expected amount uses a fee the reference could not confirm."""
    parts = []
    months = df["service_month"].astype(int)
    for code in codes:
        entries = {m: rs.fee_entry(code, m) for m in months.unique()}
        statuses = {m: (e.status if e else "no fee") for m, e in entries.items()}
        shaky = {m: st for m, st in statuses.items() if st not in ("V", "S", "override")}
        if not shaky:
            continue
        mask = (df[f"supported_{code}"] > 0) & months.isin(list(shaky))
        parts.append((mask, months.map(lambda m, code=code, shaky=shaky: f"{code} {shaky.get(m, '')}")))
    return _join_parts(parts, len(df))


# --------------------------------------------------------------------------- billing status
def _billed_units(pm, rs: rules_mod.RuleSet):
    codes = [c for c in rs.codes_of(family="CCM") + rs.codes_of(family="PCM") if f"billed_{c}" in pm.c]
    return sum((pm.c[f"billed_{c}"] for c in codes), literal(0, Integer))


def billing_status_select(conn: Connection, f: Filters, rs: rules_mod.RuleSet | None = None):
    """One row per patient-month of ``f`` (the engine's rows, stored when current) with its MRN, the
    prerequisites (``prerequisites_select``) and ``billing_status``:

    * ``billed``: a CCM or PCM code is billed for the month (replaced claims excluded);
    * ``short``: not billed and the counted minutes support no code;
    * ``ready``: not billed, the minutes support a code and every prerequisite passes (or does not apply);
    * ``hold``: not billed, the minutes support a code and a prerequisite fails.
    """
    rs = rs or rules_mod.load(conn)
    pm = pm_store.patient_month_source(conn, f, rs).cte("status_pm").prefix_with("MATERIALIZED", dialect="postgresql")
    cal = calendar_cte(f.months(), "status_calendar")
    base = (
        (
            select(
                pm.c.patient_id,
                pm.c.service_month,
                cal.c.month_start,
                cal.c.month_end,
                month_practitioner(pm.c.patient_id, pm.c.service_month, pm.c.billing_practitioner_id, rs).label(
                    "practitioner_id"
                ),
            ).select_from(pm.join(cal, cal.c.service_month == pm.c.service_month))
        )
        .cte("status_base")
        .prefix_with("MATERIALIZED")
    )
    pre = prerequisites_select(conn, base, rs).cte("status_prereq").prefix_with("MATERIALIZED")
    billed = _billed_units(pm, rs) > 0
    supported = or_(pm.c.supported_track.isnot(None), pm.c.supported_pcm_track.isnot(None))
    all_pass = and_(*[pre.c[f"{k}_result"] != "fail" for k in PREREQUISITES])
    status = case((billed, "billed"), (not_(supported), "short"), (all_pass, "ready"), else_="hold")
    p = s.patient
    return select(
        pm,
        p.c.mrn,
        (p.c.last_name + literal(", ") + p.c.first_name).label("patient_name"),
        *[c for c in pre.c if c.name not in ("patient_id", "service_month", "payer")],
        status.label("billing_status"),
    ).select_from(
        pm.join(pre, and_(pre.c.patient_id == pm.c.patient_id, pre.c.service_month == pm.c.service_month)).join(
            p, p.c.id == pm.c.patient_id
        )
    )


def billing_status(conn: Connection, f: Filters, rs: rules_mod.RuleSet | None = None) -> pd.DataFrame:
    """``patient_months`` with the billing status, the hold reasons (and fixes), the failed prerequisites
    and the MRN: the frame behind the ready list, the holds queue and ``billing`` on the command line."""
    rs = rs or rules_mod.load(conn)
    em = patient_months(conn, f, rs)
    cols = [
        "patient_id",
        "service_month",
        "mrn",
        "patient_name",
        "billing_status",
        "practitioner_id",
        "first_minute_date",
        *[f"{k}_{x}" for k in PREREQUISITES for x in ("result", "problem")],
        "n_conditions",
        "consent_id",
        "care_plan_version",
        "ccm_start",
        "qual_visit",
        "complex_care_plan",
    ]
    prepare(conn)
    q = billing_status_select(conn, f, rs)
    sub = q.subquery("billing_status")
    st = pd.DataFrame(
        list(map(tuple, conn.execute(select(*[sub.c[c] for c in cols if c in sub.c])).all())),  # one fetchall
        columns=[c for c in cols if c in sub.c],
    )
    if em.empty:
        return em.reindex(
            columns=list(em.columns)
            + [c for c in cols if c not in em.columns]
            + ["problems", "hold_reasons", "failed_prerequisites", "complex_note"]
        )
    out = em.merge(
        st.drop(columns=[c for c in ("complex_care_plan",) if c in st.columns and c in em.columns]),
        on=["patient_id", "service_month"],
        how="left",
    )
    # ``problems``: every failing prerequisite with its fix, whatever the status (a short month that reaches 20
    # minutes will be held for them); ``hold_reasons``: the same, on held months only
    out["problems"] = hold_reasons(out)
    out["hold_reasons"] = out["problems"].where(out["billing_status"] == "hold", "")
    out["failed_prerequisites"] = failed_prerequisites(out)
    out["complex_note"] = _complex_notes(out, rs)
    return out


def _complex_notes(df: pd.DataFrame, rs: rules_mod.RuleSet) -> pd.Series:
    """Why a month with 60+ counted minutes and half of the complex-CCM conditions is not on the complex track
    (docs/reference/ccm-rules.md §1: moderate/high complexity AND a care plan established or substantially revised)."""
    enough = df["counted_minutes"].fillna(0).astype(int) >= rs.code("99487").threshold_minutes
    mdm = df["has_complexity"].fillna(False).astype(bool)
    plan = df["complex_care_plan"].fillna(False).astype(bool)
    out = pd.Series("", index=df.index, dtype=object)
    out[enough & mdm & ~plan] = (
        "complex CCM (99487) not supported: no care plan established or substantially revised in the month"
    )
    out[enough & ~mdm & plan] = (
        "complex CCM (99487) not supported: no moderate/high complexity (MDM) assessment for the month"
    )
    return out


def dollars_on_hold_select(conn: Connection, f: Filters, rs: rules_mod.RuleSet | None = None):
    """(held patient-months, dollars) for ``f``: the sum of ``expected_amount`` over months on hold."""
    sub = billing_status_select(conn, f, rs).subquery("held")
    return select(
        func.count().label("n"), func.coalesce(func.sum(cast(sub.c.expected_amount, Float)), 0.0).label("dollars")
    ).where(sub.c.billing_status == "hold")


def holds_by_reason(conn: Connection, f: Filters, rs: rules_mod.RuleSet | None = None) -> pd.DataFrame:
    """Per prerequisite and problem: patient-months on hold and their expected dollars (a month held for two
    reasons counts under both; ``attrs['total']`` has the distinct months and dollars).

    The status statement runs once (a UNION of one copy per prerequisite made PostgreSQL plan each copy
    apart: 179 s at 50,000 patients); the month's held rows are then counted per prerequisite."""
    prepare(conn)  # as billing_status does: the engine's session settings for this statement
    sub = billing_status_select(conn, f, rs).subquery("held")
    names = ["billing_status", "expected_amount"] + [f"{k}_{x}" for k in PREREQUISITES for x in ("result", "problem")]
    # no WHERE on the status: filtering inside made PostgreSQL push it into the statement and pick a plan 50x
    # slower; the month's patient-months are few (one row each) and are filtered here
    rows = conn.execute(select(*[sub.c[n] for n in names])).all()
    return holds_from_status(pd.DataFrame([tuple(r) for r in rows], columns=names))


def holds_from_status(status: pd.DataFrame) -> pd.DataFrame:
    """``holds_by_reason`` from rows that already carry the billing status (``billing_status``' frame, which
    the Holds tab has read anyway: one status statement instead of two)."""
    held = status.loc[
        status["billing_status"] == "hold",
        ["expected_amount"] + [f"{k}_{x}" for k in PREREQUISITES for x in ("result", "problem")],
    ].copy()
    held["expected_amount"] = pd.to_numeric(held["expected_amount"], errors="coerce").fillna(0.0).astype(float)
    parts = []
    for k in PREREQUISITES:  # five prerequisites (not rows)
        fail = held[held[f"{k}_result"] == "fail"]
        g = (
            fail.groupby(f"{k}_problem", dropna=False)["expected_amount"]
            .agg(patient_months="size", dollars="sum")
            .reset_index()
            .rename(columns={f"{k}_problem": "problem"})
        )
        g.insert(0, "prerequisite", k)
        parts.append(g)
    cols = ["prerequisite", "problem", "patient_months", "dollars"]
    df = pd.concat(parts, ignore_index=True)[cols] if parts else pd.DataFrame(columns=cols)
    df["reason"] = [HOLD_REASONS[(k, p)] for k, p in zip(df["prerequisite"], df["problem"])]
    df["item"] = df["prerequisite"].map(PREREQUISITE_TITLES)
    df["patient_months"] = df["patient_months"].astype(int)
    df["dollars"] = df["dollars"].astype(float).round(2)
    df = df.sort_values(["dollars", "patient_months"], ascending=False).reset_index(drop=True)
    df.attrs["total"] = {"patient_months": len(held), "dollars": round(float(held["expected_amount"].sum()), 2)}
    return df


# --------------------------------------------------------------------------- export record
def record_export(
    conn: Connection, service_month: int, user: str, patient_months: int, expected_amount: float, file_name: str
) -> None:
    """Mark a month's ready list as exported for the billing system (who, when, how many, how much); recorded
    as a write so the cached export history shows it at once."""
    conn.execute(
        s.billing_export.insert().values(
            service_month=service_month,
            exported_by=user,
            exported_at=dt.datetime.now().replace(microsecond=0),
            patient_months=patient_months,
            expected_amount=round(float(expected_amount), 2),
            file_name=file_name,
        )
    )
    pm_store.record_write(conn, pm_store.Scope.for_tables({"billing_export"}))


def exports(conn: Connection, month_from: int, month_to: int) -> pd.DataFrame:
    """The ready-list exports of the months, newest first."""
    be = s.billing_export
    q = (
        select(
            be.c.service_month,
            be.c.exported_by,
            be.c.exported_at,
            be.c.patient_months,
            cast(be.c.expected_amount, Float).label("expected_amount"),
            be.c.file_name,
        )
        .where(be.c.service_month.between(month_from, month_to))
        .order_by(be.c.exported_at.desc(), be.c.id.desc())
    )
    return pd.DataFrame(
        [tuple(r) for r in conn.execute(q)],
        columns=["service_month", "exported_by", "exported_at", "patient_months", "expected_amount", "file_name"],
    )
