"""The peer (issue 16, item 5): the common Streamlit habit, timed beside our KPIs in the same run.

The habit: read each whole table a KPI needs into pandas once (``pd.read_sql("SELECT * FROM t")``,
typically behind ``st.cache_data``), then filter and group in pandas on every request.  Each peer
function below is a straight, reasonably efficient pandas version of the same written definition as
the ``ccm_core.kpis.program`` function it shadows (vectorised merges and group-bys, no row loops), and
``tests/test_bench_peer.py`` checks that it returns the SAME numbers as ours on the small demo
database, so the comparison is apples to apples.

Two timings per KPI:
  * cold   = read the tables it needs + compute (a fresh process, an empty ``st.cache_data``);
  * cached = compute only, on frames already in memory (the habit's best case).

Covered: the KPIs in ``PEERS`` (the bench prints a row for each); the peer patient-month (``patient_month``)
re-does the engine's per-entry counting and supported code track in pandas, so every KPI built on minutes or
codes has a faithful peer.  What is not covered, and why: docs/performance.md ("The peer").
"""

from __future__ import annotations

import datetime as dt
import math
import time
from dataclasses import dataclass
from typing import Any

import pandas as pd
from sqlalchemy.engine import Connection

from ccm_core import rules as rules_mod
from ccm_core.audit.checklist import (
    BACKDATE_DAYS,
    MIN_NOTE_CHARS,
    MONTH_END_DAYS,
    ROUND_MINUTES,
)
from ccm_core.audit.checklist import MAX_STAFF_DAY_MINUTES as DAILY_LIMIT_MINUTES
from ccm_core.audit.checklist import VAGUE_NOTE_PHRASES as VAGUE_PHRASES
from ccm_core.engine.filters import Filters
from ccm_core.engine.sql import DENIAL_STATUS, DUPLICATE_CARC, NOT_DENIAL_CARCS
from ccm_core.kpis import breakdowns as kpis_extra
from ccm_core.kpis import program as kpis
from ccm_core.kpis.definitions import rate as _rate
from ccm_core.storage.db import add_months, month_bounds, month_int
from ccm_core.storage.db import month_end as _month_end


@dataclass(frozen=True)
class Ctx:
    """What a peer gets besides its frames: the program's billing codes, the rule tables (ccm_core.rules, read as
    data) and the as-of date of the as-of KPIs (near-threshold list, pacing forecast)."""

    codes: list[str]
    rs: Any
    as_of: dt.date


def read_tables(conn: Connection, names) -> dict[str, pd.DataFrame]:
    """The habit's loader: every named table read whole, dates parsed as pandas datetimes."""
    frames = {}
    for name in names:
        df = pd.read_sql(f"SELECT * FROM {name}", conn)
        for col in df.columns:
            if col.endswith("_date") or col in ("started_at", "ended_at", "entered_at"):
                df[col] = pd.to_datetime(df[col], errors="coerce")
        frames[name] = df
    return frames


def _patients(t, f: Filters) -> pd.Series:
    """Ids of the patients passing the patient filters (clinic, practitioner, care manager, payer)."""
    p = t["patient"]
    keep = pd.Series(True, index=p.index)
    for col, chosen in (
        ("clinic_id", f.clinic_ids),
        ("billing_practitioner_id", f.practitioner_ids),
        ("care_manager_id", f.care_manager_ids),
        ("payer", f.payers),
    ):
        if chosen:
            keep &= p[col].isin(chosen)
    return p.loc[keep, "id"]


# --------------------------------------------------------------------------- enrollment and consent
def _enrolled_count(t, f: Filters, as_of: dt.date) -> int:
    """Patients whose latest event (by date, then id) on or before ``as_of`` in each program is 'enrolled'."""
    ee = t["enrollment_event"]
    ee = ee[
        ee["program"].isin(f.programs)
        & (ee["event_date"] <= pd.Timestamp(as_of))
        & ee["patient_id"].isin(_patients(t, f))
    ]
    latest = ee.sort_values(["event_date", "id"]).groupby(["patient_id", "program"]).tail(1)
    return int(latest.loc[latest["status"] == "enrolled", "patient_id"].nunique())


def enrolled_patients(t, f: Filters) -> dict:
    return {
        "value": _enrolled_count(t, f, _month_end(f.month_to)),
        "previous_month": _enrolled_count(t, f, _month_end(add_months(f.month_to, -1))),
    }


def consent_rate(t, f: Filters) -> dict:
    start, end = pd.Timestamp(month_bounds(f.month_from)[0]), pd.Timestamp(month_bounds(f.month_to)[1])
    pids = _patients(t, f)
    cn, ee = t["consent"], t["enrollment_event"]
    cn = cn[cn["consent_date"].between(start, end) & cn["program"].isin(f.programs) & cn["patient_id"].isin(pids)]
    consented = set(cn.loc[cn["decision"] == "accepted", "patient_id"])
    ee = ee[
        ee["status"].isin(("consented", "declined"))
        & ee["event_date"].between(start, end)
        & ee["program"].isin(f.programs)
        & ee["patient_id"].isin(pids)
    ]
    offered = consented | set(cn["patient_id"]) | set(ee["patient_id"])
    return {"value": _rate(len(consented), len(offered)), "numerator": len(consented), "denominator": len(offered)}


def consent_conversion(t, f: Filters) -> dict:
    """Patients with an accepted consent dated in the period ÷ patients reached in it (a reached, consented or
    declined event dated in the period, or such a consent)."""
    start, end = pd.Timestamp(month_bounds(f.month_from)[0]), pd.Timestamp(month_bounds(f.month_to)[1])
    pids = _patients(t, f)
    cn, ee = t["consent"], t["enrollment_event"]
    consented = set(
        cn.loc[
            (cn["decision"] == "accepted")
            & cn["consent_date"].between(start, end)
            & cn["program"].isin(f.programs)
            & cn["patient_id"].isin(pids),
            "patient_id",
        ]
    )
    reached = consented | set(
        ee.loc[
            ee["status"].isin(("reached", "consented", "declined"))
            & ee["event_date"].between(start, end)
            & ee["program"].isin(f.programs)
            & ee["patient_id"].isin(pids),
            "patient_id",
        ]
    )
    return {"value": _rate(len(consented), len(reached)), "numerator": len(consented), "denominator": len(reached)}


# --------------------------------------------------------------------------- minutes
def _counted_minutes(t, f: Filters) -> pd.Series:
    """CCM counted minutes per patient in ``f.month_to``, by the engine's per-entry rules: an entry counts
    nothing when its staff member is non-clinical (not clinical and no practitioner), the patient was in a
    facility stay that day, or no accepted consent covered that day; otherwise its minutes less the minutes
    it overlaps entries of another program (same patient, same day), clamped to [0, minutes]."""
    te, st = t["time_entry"], t["staff"]
    te = te[(te["service_month"] == f.month_to) & te["program"].isin(("CCM", "PCM"))]
    pids = _patients(t, f)
    te = te[te["patient_id"].isin(pids)]
    ids = ["id", "patient_id", "service_date", "program", "started_at", "ended_at"]
    pairs = te[ids].merge(t["time_entry"][ids[1:]], on=["patient_id", "service_date"], suffixes=("", "_o"))
    pairs = pairs[
        (pairs["program"] != pairs["program_o"])
        & (pairs["started_at_o"] < pairs["ended_at"])
        & (pairs["ended_at_o"] > pairs["started_at"])
    ]
    span = pairs[["ended_at", "ended_at_o"]].min(axis=1) - pairs[["started_at", "started_at_o"]].max(axis=1)
    pairs = pairs.assign(ov=(span.dt.total_seconds() / 60.0).round().astype(int))
    overlap = pairs.groupby("id")["ov"].sum()
    te = te[te["program"] == "CCM"].merge(
        st[["id", "is_clinical", "practitioner_id"]].rename(
            columns={"id": "staff_id", "practitioner_id": "staff_practitioner_id"}
        ),
        on="staff_id",
    )
    clinical = te["is_clinical"].astype(bool) | te["staff_practitioner_id"].notna()
    fs = t["facility_stay"][["patient_id", "admit_date", "discharge_date"]].merge(
        te[["id", "patient_id", "service_date"]], on="patient_id"
    )
    in_stay = te["id"].isin(
        fs.loc[
            (fs["admit_date"] <= fs["service_date"])
            & (fs["discharge_date"].isna() | (fs["discharge_date"] >= fs["service_date"])),
            "id",
        ]
    )
    cn = t["consent"]
    cn = cn.loc[
        (cn["decision"] == "accepted") & cn["consent_date"].notna(),
        ["patient_id", "program", "consent_date", "revoked_date"],
    ].merge(te[["id", "patient_id", "program", "service_date"]], on=["patient_id", "program"])
    covered = te["id"].isin(
        cn.loc[
            (cn["consent_date"] <= cn["service_date"])
            & (cn["revoked_date"].isna() | (cn["revoked_date"] >= cn["service_date"])),
            "id",
        ]
    )
    ov = te["id"].map(overlap).fillna(0).clip(lower=0)
    ov = ov.where(ov <= te["minutes"], te["minutes"])
    counted = (te["minutes"] - ov).where(clinical & ~in_stay & covered, 0)
    return counted.groupby(te["patient_id"]).sum()


def _enrolled_ids(t, f: Filters, as_of: dt.date) -> pd.Series:
    ee = t["enrollment_event"]
    ee = ee[
        ee["program"].isin(f.programs)
        & (ee["event_date"] <= pd.Timestamp(as_of))
        & ee["patient_id"].isin(_patients(t, f))
    ]
    latest = ee.sort_values(["event_date", "id"]).groupby(["patient_id", "program"]).tail(1)
    return pd.Series(latest.loc[latest["status"] == "enrolled", "patient_id"].unique())


def minutes_per_enrolled_patient(t, f: Filters) -> dict:
    """Mean and median counted minutes over the patients enrolled at month end (0 for those with none), and
    the patients in each minutes band."""
    enrolled = _enrolled_ids(t, f, _month_end(f.month_to))
    mins = enrolled.map(_counted_minutes(t, f)).fillna(0).astype(int)
    out: dict[str, float | int | None] = {
        f"band.{label}": int(((mins >= lo) & (True if hi is None else mins <= hi)).sum())
        for lo, hi, label in kpis.MINUTE_BANDS
    }
    out.update(
        {
            "value": float(mins.mean()) if len(mins) else None,
            "numerator": int(mins.sum()),
            "denominator": len(mins),
            "median": float(mins.median()) if len(mins) else None,
        }
    )
    return out


# --------------------------------------------------------------------------- claims
def _claims(t, f: Filters, codes) -> pd.DataFrame:
    """Claims passing the filters: a known patient, clinic / practitioner / care manager / payer on the claim
    (clinic falling back to the patient's), and at least one line with a code of the filter's programs."""
    c = t["claim"].merge(
        t["patient"][["id", "clinic_id", "care_manager_id"]].rename(
            columns={"id": "patient_id", "clinic_id": "patient_clinic_id"}
        ),
        on="patient_id",
    )
    keep = pd.Series(True, index=c.index)
    clinic = c["clinic_id"].fillna(c["patient_clinic_id"])
    for col, chosen in (
        (clinic, f.clinic_ids),
        (c["practitioner_id"], f.practitioner_ids),
        (c["care_manager_id"], f.care_manager_ids),
        (c["payer"], f.payers),
    ):
        if chosen:
            keep &= col.isin(chosen)
    cl = t["claim_line"]
    keep &= c["id"].isin(cl.loc[cl["cpt_code"].isin(codes), "claim_id"])
    return c[keep]


def _is_denial(t) -> pd.Series:
    """Per remittance row: status 4, or zero paid on a processed claim with a non-contractual adjustment."""
    r, ra = t["remittance"], t["remittance_adjustment"]
    adjusted = r["id"].isin(ra.loc[~ra["carc"].isin(NOT_DENIAL_CARCS), "remittance_id"])
    return (r["status_code"] == DENIAL_STATUS) | (
        r["status_code"].isin(("1", "2", "3")) & (r["paid_amount"] <= 0) & adjusted
    )


def first_pass_resolution_rate(t, f: Filters, codes) -> dict:
    r = t["remittance"].assign(denied=_is_denial(t).astype(int))
    first = r[(r["adjudication_seq"] == 1) & r["claim_id"].notna() & (r["received_month"] == f.month_to)]
    first = first.groupby("claim_id", as_index=False)["denied"].max()
    j = first[first["claim_id"].isin(_claims(t, f, codes)["id"])]
    num, den = int((j["denied"] == 0).sum()), len(j)
    return {"value": _rate(num, den), "numerator": num, "denominator": den}


def days_to_payment(t, f: Filters, codes) -> dict:
    start, end = pd.Timestamp(month_bounds(f.month_from)[0]), pd.Timestamp(month_bounds(f.month_to)[1])
    r = t["remittance"]
    paid = r[r["paid_amount"] > 0]
    paid_now = paid.loc[paid["received_date"].between(start, end), "claim_id"]
    first_paid = paid[paid["claim_id"].isin(paid_now)].groupby("claim_id", as_index=False)["received_date"].min()
    first_paid = first_paid[first_paid["received_date"].between(start, end)]
    j = _claims(t, f, codes)[["id", "submitted_date"]].merge(first_paid, left_on="id", right_on="claim_id")
    days = (j["received_date"] - j["submitted_date"]).dt.days
    n = len(days)
    return {
        "value": float(days.sort_values().iloc[(n - 1) // 2 if n % 2 else n // 2 - 1 : n // 2 + 1].mean())
        if n
        else None,
        "claims": n,
    }


def _monthly(df: pd.DataFrame, month_col: str) -> dict[int, tuple[int, float]]:
    g = df.groupby(month_col)["total_charge"].agg(["count", "sum"])
    return {int(m): (int(n), float(d)) for m, (n, d) in zip(g.index, g[["count", "sum"]].itertuples(index=False))}


def denial_trend(t, f: Filters, codes) -> list[dict]:
    """Per month: claims initially denied (first adjudication, CARC 18 excluded) over the 3 prior months'
    average submissions, by count and by charges (HFMA, lagged denominator)."""
    months = f.months()
    r, ra = t["remittance"], t["remittance_adjustment"]
    duplicate = r["id"].isin(ra.loc[ra["carc"] == DUPLICATE_CARC, "remittance_id"])
    first = r[
        (r["adjudication_seq"] == 1)
        & r["claim_id"].notna()
        & _is_denial(t)
        & ~duplicate
        & r["received_month"].between(months[0], months[-1])
    ]
    per_claim = first.groupby("claim_id", as_index=False)["received_month"].min()
    claims = _claims(t, f, codes)
    denied = claims.merge(per_claim, left_on="id", right_on="claim_id")
    num = _monthly(denied, "received_month")
    subs = _monthly(claims[claims["submitted_month"].between(add_months(months[0], -3), months[-1])], "submitted_month")
    rows = []
    for m in months:
        lag = [add_months(m, -k) for k in (1, 2, 3)]
        den_n = sum(subs.get(x, (0, 0.0))[0] for x in lag) / 3.0
        den_d = sum(subs.get(x, (0, 0.0))[1] for x in lag) / 3.0
        n, d = num.get(m, (0, 0.0))
        rows.append(
            {
                "month": m,
                "initial_denials": n,
                "denied_charges": round(d, 2),
                "lagged_avg_submitted": den_n,
                "lagged_avg_charges": round(den_d, 2),
                "rate_by_count": _rate(n, den_n),
                "rate_by_dollars": _rate(d, den_d),
            }
        )
    return rows


def initial_denial_rates(t, f: Filters, codes) -> dict:
    row = denial_trend(t, f.with_months(f.month_to), codes)[0]
    return {
        "count": _rate(float(row["initial_denials"]), float(row["lagged_avg_submitted"])),
        "dollars": _rate(float(row["denied_charges"]), float(row["lagged_avg_charges"])),
        "value": _rate(float(row["initial_denials"]), float(row["lagged_avg_submitted"])),
    }


# --------------------------------------------------------------------------- the patient-month, in pandas
# The engine's patient-month (ccm_core/engine/patient_month.py: patient_month_select) re-done on whole frames:
# per-entry counting, threshold date, billed units per code, money received, the supported code track per
# ccm_core/rules/codes.csv (99490/99439, complex 99487/99489, 99491/99437, PCM 99424/99425 and 99426/99427) and
# fee_schedule.csv, and the finding flags.  Only the rule tables come from ccm_core.rules (as data).
CCM_TRACKS = ("non_complex", "complex", "practitioner")
PCM_TRACKS = ("pcm_practitioner", "pcm_staff")


def _truthy(s: pd.Series) -> pd.Series:
    """A boolean column as read (SQLite 0/1, PostgreSQL True/False, NULL = False)."""
    return s.fillna(False).astype(bool)


def _entries(t, f: Filters, pids: pd.Series | None) -> pd.DataFrame:
    """CCM and PCM entries of the months with cause, counted minutes and the practitioner flag."""
    te_all, st, p = t["time_entry"], t["staff"], t["patient"]
    te = te_all[te_all["service_month"].between(f.month_from, f.month_to) & te_all["program"].isin(("CCM", "PCM"))]
    te = te[
        [
            "id",
            "patient_id",
            "staff_id",
            "program",
            "service_date",
            "service_month",
            "started_at",
            "ended_at",
            "minutes",
            "practitioner_id",
        ]
    ]
    if pids is not None:
        te = te[te["patient_id"].isin(pids)]
    ids = ["id", "patient_id", "service_date", "program", "started_at", "ended_at"]
    pairs = te[ids].merge(te_all[ids[1:]], on=["patient_id", "service_date"], suffixes=("", "_o"))
    pairs = pairs[
        (pairs["program"] != pairs["program_o"])
        & (pairs["started_at_o"] < pairs["ended_at"])
        & (pairs["ended_at_o"] > pairs["started_at"])
    ]
    span = pairs[["ended_at", "ended_at_o"]].min(axis=1) - pairs[["started_at", "started_at_o"]].max(axis=1)
    overlap = (span.dt.total_seconds() / 60.0).round().groupby(pairs["id"]).sum()
    te = te.merge(
        st[["id", "is_clinical", "practitioner_id"]].rename(
            columns={"id": "staff_id", "practitioner_id": "staff_practitioner_id"}
        ),
        on="staff_id",
    ).merge(p[["id", "billing_practitioner_id"]].rename(columns={"id": "patient_id"}), on="patient_id")
    nonclinical = ~(_truthy(te["is_clinical"]) | te["staff_practitioner_id"].notna())
    fs = t["facility_stay"][["patient_id", "admit_date", "discharge_date"]].merge(
        te[["id", "patient_id", "service_date"]], on="patient_id"
    )
    in_stay = te["id"].isin(
        fs.loc[
            (fs["admit_date"] <= fs["service_date"])
            & (fs["discharge_date"].isna() | (fs["discharge_date"] >= fs["service_date"])),
            "id",
        ]
    )
    cn = t["consent"]
    cn = cn.loc[
        (cn["decision"] == "accepted") & cn["consent_date"].notna(),
        ["patient_id", "program", "consent_date", "revoked_date"],
    ].merge(te[["id", "patient_id", "program", "service_date"]], on=["patient_id", "program"])
    covered = te["id"].isin(
        cn.loc[
            (cn["consent_date"] <= cn["service_date"])
            & (cn["revoked_date"].isna() | (cn["revoked_date"] >= cn["service_date"])),
            "id",
        ]
    )
    cause = pd.Series(None, index=te.index, dtype=object)
    cause = cause.mask(~covered, "pre_consent").mask(in_stay, "inpatient").mask(nonclinical, "non_clinical")
    ov = te["id"].map(overlap).fillna(0)
    ov = ov.where(ov <= te["minutes"], te["minutes"]).clip(lower=0)
    ok = cause.isna()
    own = te["staff_practitioner_id"].notna() & (
        te["staff_practitioner_id"] == te["practitioner_id"].fillna(te["billing_practitioner_id"])
    )
    return te.assign(
        cause=cause,
        counted=(te["minutes"] - ov).where(ok, 0),
        other_program=ov.where(ok, 0),
        is_practitioner=own,
    )


def _pm_minutes(e: pd.DataFrame, f: Filters, threshold: int) -> pd.DataFrame:
    ccm, pcm = e["program"] == "CCM", e["program"] == "PCM"
    prac = e["is_practitioner"]
    cols = {
        "logged_minutes": e["minutes"].where(ccm, 0),
        "counted_minutes": e["counted"].where(ccm, 0),
        "practitioner_minutes": e["counted"].where(ccm & prac, 0),
        "excluded_non_clinical": e["minutes"].where(ccm & (e["cause"] == "non_clinical"), 0),
        "excluded_inpatient": e["minutes"].where(ccm & (e["cause"] == "inpatient"), 0),
        "excluded_pre_consent": e["minutes"].where(ccm & (e["cause"] == "pre_consent"), 0),
        "excluded_other_program": e["other_program"].where(ccm, 0),
        "pcm_minutes": e["counted"].where(pcm, 0),
        "pcm_practitioner_minutes": e["counted"].where(pcm & prac, 0),
        "in_programs": e["program"].isin(f.programs).astype(int),
    }
    keys = ["patient_id", "service_month"]
    g = pd.DataFrame(cols).assign(patient_id=e["patient_id"], service_month=e["service_month"])
    out = g.groupby(keys).agg({**{k: "sum" for k in cols}, "in_programs": "max"})
    # threshold date: the first day the month's counted CCM minutes, in order, reach the threshold
    daily = e[ccm].groupby([*keys, "service_date"])["counted"].sum().reset_index()
    daily["cum"] = daily.groupby(keys)["counted"].cumsum()
    out["threshold_date"] = daily[daily["cum"] >= threshold].groupby(keys)["service_date"].min()
    out["last_contact_date"] = e[ccm & (e["counted"] > 0)].groupby(keys)["service_date"].max()
    return out


def _pm_claims(t, f: Filters, rs, pids: pd.Series | None):
    """(billed per patient-month, money received per patient-month) from the claim lines of the months."""
    ccm_codes, pcm_codes, apcm_codes = (rs.codes_of(family=x) for x in ("CCM", "PCM", "APCM"))
    tracked = ccm_codes + pcm_codes + apcm_codes
    program_codes = [c for c in tracked if rs.family_of(c) in [x for x in ("CCM", "PCM", "APCM") if x in f.programs]]
    keys = ["patient_id", "service_month"]
    cl, c, r = t["claim_line"], t["claim"], t["remittance"]
    lines = cl.loc[
        cl["dos_month"].between(f.month_from, f.month_to) & cl["cpt_code"].isin(tracked),
        ["claim_id", "patient_id", "dos_month", "practitioner_id", "cpt_code", "units", "charge"],
    ].rename(columns={"dos_month": "service_month"})
    if pids is not None:
        lines = lines[lines["patient_id"].isin(pids)]
    replaced = c.loc[(c["frequency_code"] == "7") & c["original_claim_id"].notna(), "original_claim_id"]
    live = lines[~lines["claim_id"].isin(replaced)]
    cc = live.groupby([*keys, "claim_id", "practitioner_id", "cpt_code"], as_index=False).agg(
        units=("units", "sum"), charge=("charge", "sum")
    )
    caps = {code: rs.code(code).unit_cap for code in tracked if rs.code(code).unit_cap is not None}
    is_ccm = cc["cpt_code"].isin(ccm_codes)
    units = cc.groupby([*keys, "cpt_code"])["units"].sum().unstack(fill_value=0)
    billed = units.reindex(columns=tracked, fill_value=0).add_prefix("billed_")
    g = cc.assign(
        ccm_claim=cc["claim_id"].where(is_ccm),
        ccm_prac=cc["practitioner_id"].where(is_ccm),
        over=(cc["units"] > cc["cpt_code"].map(caps).astype(float)).astype(int),
        in_programs=cc["cpt_code"].isin(program_codes).astype(int),
    ).groupby(keys)
    billed["billed_charge"] = g["charge"].sum()
    billed["ccm_claims"] = g["ccm_claim"].nunique()
    billed["ccm_practitioners"] = g["ccm_prac"].nunique()
    billed["units_over_cap"] = g["over"].max()
    billed["in_programs"] = g["in_programs"].max()
    by_prac = (
        cc.assign(
            has_ccm=is_ccm.astype(int),
            has_pcm=cc["cpt_code"].isin(pcm_codes).astype(int),
            has_apcm=cc["cpt_code"].isin(apcm_codes).astype(int),
        )
        .groupby([*keys, "practitioner_id"])[["has_ccm", "has_pcm", "has_apcm"]]
        .max()
    )
    by_prac["ccm_with_pcm_same_practitioner"] = by_prac["has_ccm"] * by_prac["has_pcm"]
    by_prac["ccm_with_apcm_same_practitioner"] = by_prac["has_ccm"] * by_prac["has_apcm"]
    same = by_prac.groupby(keys)[["ccm_with_pcm_same_practitioner", "ccm_with_apcm_same_practitioner"]].max()
    billed = billed.join(same)
    # money received: every adjudication of every claim (replaced ones too), spread by the month's charge share
    mc = lines.groupby(["claim_id", *keys], as_index=False)["charge"].sum()
    rc = r[r["claim_id"].isin(mc["claim_id"])]  # only the claims of these lines (no other claim is looked up)
    cp = (
        rc.assign(init=((rc["adjudication_seq"] == 1) & (rc["status_code"] == "4")).astype(int))
        .groupby("claim_id")
        .agg(paid=("paid_amount", "sum"), init=("init", "max"), n=("id", "count"))
    )
    mc = mc.merge(c[["id", "total_charge"]], left_on="claim_id", right_on="id").merge(
        cp, left_on="claim_id", right_index=True, how="left"
    )
    share = mc["charge"] / mc["total_charge"].where(mc["total_charge"] != 0)
    mc = mc.assign(
        paid_amount=mc["paid"].fillna(0.0) * share, initially_denied=mc["init"], adjudicated=(mc["n"] > 0).astype(int)
    )
    paid = mc.groupby(keys).agg(
        paid_amount=("paid_amount", "sum"),
        initially_denied=("initially_denied", "max"),
        adjudicated=("adjudicated", "max"),
    )
    paid["initially_denied"] = paid["initially_denied"].fillna(0)
    return billed, paid, tracked


def _units(minutes: pd.Series, threshold: int, increment, cap, base_ok=None) -> tuple[pd.Series, pd.Series]:
    ok = minutes >= threshold if base_ok is None else (minutes >= threshold) & base_ok
    base = ok.astype(int)
    if not increment:
        return base, base * 0
    extra = (minutes - threshold) // increment
    if cap is not None:
        extra = extra.clip(upper=cap)
    return base, extra.where(ok & (minutes >= threshold + increment), 0).astype(int)


def _fee(rs, code: str, months: pd.Series) -> pd.Series:
    """The code's fee for each YYYYMM: the first fee period the month falls in; before the first period, the
    first amount; after the last, the last amount (fee_schedule.csv)."""
    periods = rs.fee_periods(code)

    def fee(m: int) -> float:
        if not periods:
            return 0.0
        hit = next((amount for a, b, amount in periods if a <= m <= b), None)
        if hit is not None:
            return hit
        return periods[0][2] if m < periods[0][0] else periods[-1][2]

    return months.map({m: fee(int(m)) for m in months.unique()}).astype(float)


def patient_month(t, f: Filters, rs) -> pd.DataFrame:
    """One row per patient-month with counted-program time or tracked claim lines in the filter's programs."""
    pids = _patients(t, f) if (f.clinic_ids or f.practitioner_ids or f.care_manager_ids or f.payers) else None
    threshold = rs.code("99490").threshold_minutes
    minutes = _pm_minutes(_entries(t, f, pids), f, threshold)
    billed, paid, tracked = _pm_claims(t, f, rs, pids)
    keys = ["patient_id", "service_month"]
    pm = pd.concat(
        [minutes.rename(columns={"in_programs": "in_m"}), billed.rename(columns={"in_programs": "in_b"}), paid], axis=1
    )
    pm = pm[pm[["in_m", "in_b"]].max(axis=1) == 1].drop(columns=["in_m", "in_b"])
    pm = pm.fillna({col: 0 for col in pm.columns if col not in ("threshold_date", "last_contact_date")})
    pm = pm.rename_axis(keys).reset_index()
    p = t["patient"][["id", "clinic_id", "billing_practitioner_id", "care_manager_id", "payer"]]
    pm = pm.merge(p.rename(columns={"id": "patient_id"}), on="patient_id")
    if pids is not None:
        pm = pm[pm["patient_id"].isin(pids)]
    ca = t["complexity_assessment"][["patient_id", "service_month", "id"]].rename(columns={"id": "ca_id"})
    pm = pm.merge(ca, on=keys, how="left")
    pm["has_complexity"] = pm["ca_id"].notna().astype(int)
    cp = t["care_plan"]
    est = cp["established_date"]
    revised = cp.loc[(cp["version"] == 1) | _truthy(cp["substantially_revised"]), ["patient_id"]].assign(
        service_month=(est.dt.year * 100 + est.dt.month)
    )
    revised = revised.drop_duplicates().assign(complex_care_plan=1)
    pm = pm.merge(revised, on=keys, how="left")
    pm["complex_care_plan"] = pm["complex_care_plan"].fillna(0).astype(int)
    month = pm["service_month"]
    fees = {code: _fee(rs, code, month) for code in tracked}
    track_minutes = {
        "non_complex": (pm["counted_minutes"], None),
        "complex": (pm["counted_minutes"], (pm["has_complexity"] == 1) & (pm["complex_care_plan"] == 1)),
        "practitioner": (pm["practitioner_minutes"], None),
        "pcm_practitioner": (pm["pcm_practitioner_minutes"], None),
        "pcm_staff": (pm["pcm_minutes"], None),
    }
    tu, expected = {}, {}
    for track, (mins, extra) in track_minutes.items():
        base_code, addon_code = rs.track_codes(track)
        bc, ac = rs.code(base_code), (rs.code(addon_code) if addon_code else None)
        tu[base_code], a_units = _units(
            mins, bc.threshold_minutes, ac.increment_minutes if ac else None, ac.unit_cap if ac else None, extra
        )
        value = fees[base_code] * tu[base_code]
        if addon_code:
            tu[addon_code] = a_units
            value = value + fees[addon_code] * a_units
        expected[track] = value
    ccm_codes, pcm_codes = rs.codes_of(family="CCM"), rs.codes_of(family="PCM")
    priced = ccm_codes + pcm_codes
    b = {code: pm[f"billed_{code}"] for code in tracked}
    pm["billed_supported_value"] = sum((fees[c] * b[c].clip(upper=tu[c]) for c in ccm_codes), month * 0.0)
    pm["billed_fee_value"] = sum((fees[c] * b[c] for c in priced), month * 0.0)
    pm["billed_ccm_units"] = sum((b[c] for c in ccm_codes), month * 0)
    tracks_billed = sum(
        (pd.concat([b[c] > 0 for c in rs.track_codes(tr) if c], axis=1).any(axis=1).astype(int) for tr in CCM_TRACKS),
        month * 0,
    )
    pm["ccm_tracks_mixed"] = (tracks_billed > 1).astype(int)
    pm["over_billed"] = pd.concat([b[c] > tu[c] for c in priced], axis=1).any(axis=1).astype(int)
    pm["addon_without_base"] = (
        pd.concat([(b[c] > 0) & (b[rs.code(c).base_code] == 0) for c in priced if rs.code(c).is_addon], axis=1)
        .any(axis=1)
        .astype(int)
    )
    for tr in CCM_TRACKS + PCM_TRACKS:
        pm[f"expected_{tr}"] = expected[tr]
    nc, cx, pr = expected["non_complex"], expected["complex"], expected["practitioner"]
    track = pd.Series(None, index=pm.index, dtype=object)
    track = track.mask(pr > 0, "practitioner").mask((cx > 0) & (cx >= pr), "complex")
    track = track.mask((nc > 0) & (nc >= cx) & (nc >= pr), "non_complex")
    pp, ps = expected["pcm_practitioner"], expected["pcm_staff"]
    pcm_track = pd.Series(None, index=pm.index, dtype=object).mask(ps > 0, "pcm_staff")
    pcm_track = pcm_track.mask((pp > 0) & (pp >= ps), "pcm_practitioner")
    pm["supported_track"], pm["supported_pcm_track"] = track, pcm_track
    for trs, chosen in ((CCM_TRACKS, track), (PCM_TRACKS, pcm_track)):
        for tr in trs:
            for code in rs.track_codes(tr):
                if code:
                    pm[f"supported_{code}"] = tu[code].where(chosen == tr, 0)
    exp_ccm = pd.concat([nc, cx, pr], axis=1).max(axis=1)
    exp_pcm = pd.concat([pp, ps], axis=1).max(axis=1)
    pm["expected_ccm"], pm["expected_pcm"], pm["expected_amount"] = exp_ccm, exp_pcm, exp_ccm + exp_pcm
    pm["under_billed"] = ((pm["billed_ccm_units"] > 0) & (exp_ccm - pm["billed_supported_value"] > 0.005)).astype(int)
    pm["duplicate_ccm"] = (pm["ccm_claims"] > 1).astype(int)
    pm["not_billed"] = ((pm["billed_ccm_units"] == 0) & (exp_ccm > 0)).astype(int)
    return pm.drop(columns="ca_id")


# --------------------------------------------------------------------------- minutes and billing (on the patient-month)
def _enrolled_month(t, f: Filters, rs, month: int, pm: pd.DataFrame | None = None) -> pd.DataFrame:
    """Patients enrolled at the end of ``month`` with that month's counted minutes and billable flag (0 / 0 when
    they have no patient-month)."""
    fm = f.with_months(month)
    enr = _enrolled_ids(t, fm, _month_end(month))
    pm = patient_month(t, fm, rs) if pm is None else pm[pm["service_month"] == month]
    pm = pm.set_index("patient_id")
    return pd.DataFrame(
        {
            "patient_id": enr,
            "counted_minutes": enr.map(pm["counted_minutes"]).fillna(0).astype(int),
            "billable": enr.map(pm["supported_track"].notna()).fillna(False).astype(int),
        }
    )


def billable_rate(t, f: Filters, c: Ctx) -> dict:
    em = _enrolled_month(t, f, c.rs, f.month_to)
    num, den = int(em["billable"].sum()), len(em)
    return {"value": _rate(num, den), "numerator": num, "denominator": den}


def billable_rate_trend(t, f: Filters, c: Ctx) -> dict:
    pm = patient_month(t, f, c.rs)
    out: dict[str, Any] = {}
    for m in f.months():
        em = _enrolled_month(t, f, c.rs, m, pm)
        n, b = len(em), int(em["billable"].sum())
        out.update({f"{m}.enrolled": n, f"{m}.billable": b, f"{m}.rate": _rate(b, n)})
    out["value"] = out[f"{f.month_to}.rate"]
    return out


def addon_capture(t, f: Filters, c: Ctx) -> dict:
    em = _enrolled_month(t, f, c.rs, f.month_to)
    billable = em["billable"] == 1
    b = int(billable.sum())
    ge40 = int((billable & (em["counted_minutes"] >= 40)).sum())
    ge60 = int((billable & (em["counted_minutes"] >= 60)).sum())
    return {
        "value": _rate(ge40, b),
        "numerator": ge40,
        "denominator": b,
        "ge40": _rate(ge40, b),
        "ge60": _rate(ge60, b),
        "ge60_patients": ge60,
    }


def _staff_names(t) -> pd.Series:
    st = t["staff"]
    return pd.Series((st["first_name"] + " " + st["last_name"]).to_numpy(), index=st["id"].to_numpy())


def minutes_per_care_manager(t, f: Filters, c: Ctx) -> Listed:
    em = _enrolled_month(t, f, c.rs, f.month_to)
    em = em.merge(t["patient"][["id", "care_manager_id"]].rename(columns={"id": "patient_id"}), on="patient_id")
    em["with_minutes"] = (em["counted_minutes"] > 0).astype(int)
    g = em.groupby("care_manager_id", dropna=False).agg(
        panel=("patient_id", "size"),
        counted_minutes=("counted_minutes", "sum"),
        patients_with_minutes=("with_minutes", "sum"),
        billable=("billable", "sum"),
    )
    g["care_manager"] = g.index.map(_staff_names(t)).fillna("unassigned")
    g["minutes_per_patient"] = g["counted_minutes"] / g["panel"]
    g["billable_rate"] = g["billable"] / g["panel"]
    return Listed(g.reset_index(), "care_manager_id", value=int(g["counted_minutes"].sum()))


def _flat_frame(df: pd.DataFrame, key: str, value=None, order: bool = False) -> dict:
    """A frame as one flat dict ``"<key>.<column>"`` (NaN as None), ``value`` = the headline given (default: rows),
    ``order`` = the keys in row order when the order is part of the answer."""
    out: dict[str, Any] = {}
    for row in df.to_dict("records"):
        k = row.pop(key)
        k = "none" if k is None or (isinstance(k, float) and math.isnan(k)) else int(k) if isinstance(k, float) else k
        for col, v in row.items():
            out[f"{k}.{col}"] = None if v is None or (not isinstance(v, str) and pd.isna(v)) else v
    if order:
        out["order"] = " ".join(str(x) for x in df[key])
    out["value"] = len(df) if value is None else value
    return out


@dataclass(frozen=True)
class Listed:
    """A list KPI's answer as the peer computes it (a frame); flattened for the comparison only after the timing
    (``_flat_frame``), as ours is."""

    df: pd.DataFrame
    key: str
    value: Any = None
    order: bool = False


def _finish(result):
    return _flat_frame(result.df, result.key, result.value, result.order) if isinstance(result, Listed) else result


NEAR_COLUMNS = (
    "patient_id",
    "mrn",
    "patient_name",
    "clinic_id",
    "billing_practitioner_id",
    "care_manager_id",
    "care_manager",
    "payer",
    "counted_minutes",
    "minutes_needed",
    "tier",
    "days_left",
    "expected_at_stake",
    "days_since_contact",
)


def near_threshold_worklist(t, f: Filters, c: Ctx) -> Listed:
    """Enrolled patients (at ``as_of``) 1-10 counted minutes short of 99490's threshold in the as-of month and not
    billable, tier 1 (5 or fewer short) first, then most minutes, then patient id."""
    as_of, rs = c.as_of, c.rs
    month = month_int(as_of)
    fm = f.with_months(month)
    threshold = rs.code("99490").threshold_minutes
    pm = patient_month(t, fm, rs)
    pm = pm[
        pm["counted_minutes"].between(threshold - 10, threshold - 1)
        & pm["supported_track"].isna()
        & pm["patient_id"].isin(_enrolled_ids(t, fm, as_of))
    ]
    p = t["patient"][["id", "mrn", "first_name", "last_name"]].rename(columns={"id": "patient_id"})
    df = pm.merge(p, on="patient_id")
    st = t["staff"].set_index("id")
    cm = df["care_manager_id"]
    df["patient_name"] = df["first_name"] + " " + df["last_name"]
    df["care_manager"] = (
        cm.map(st["first_name"]).fillna("").astype(str) + " " + cm.map(st["last_name"]).fillna("").astype(str)
    )
    df["minutes_needed"] = threshold - df["counted_minutes"].astype(int)
    df["tier"] = (df["counted_minutes"] < threshold - 5).astype(int) + 1
    df["days_left"] = (_month_end(month) - as_of).days
    df["expected_at_stake"] = float(rs.fee("99490", month) or 0.0)
    df["days_since_contact"] = (pd.Timestamp(as_of) - df["last_contact_date"]).dt.days
    df = df.sort_values(["tier", "counted_minutes", "patient_id"], ascending=[True, False, True])
    return Listed(df[list(NEAR_COLUMNS)], "patient_id", order=True)


def _ours_near(conn: Connection, f: Filters, c: Ctx) -> dict:
    df = kpis.near_threshold_worklist(conn, f.with_months(month_int(c.as_of)), c.as_of)
    df = df.assign(days_since_contact=df.get("days_since_contact"))
    return _flat_frame(df[list(NEAR_COLUMNS)], "patient_id", order=True)


def _cutoff(month: int, day: int | None) -> dt.date:
    first, last = month_bounds(month)
    return last if day is None else min(first + dt.timedelta(days=day - 1), last)


def _reached_and_open(t, f: Filters, pm: pd.DataFrame, month: int, day: int | None) -> tuple[int, int]:
    """(billable patient-months of ``month`` whose minutes reached the threshold by ``day``, patients enrolled on
    that day not among them)."""
    cutoff = _cutoff(month, day)
    pm = pm[pm["service_month"] == month]
    cond = pm["supported_track"].notna()
    if day is not None:
        cond &= pm["threshold_date"].notna() & (pm["threshold_date"] <= pd.Timestamp(cutoff))
    reached = pm.loc[cond, "patient_id"]
    enr = _enrolled_ids(t, f.with_months(month), cutoff)
    return len(reached), int((~enr.isin(reached)).sum())


def pacing_forecast(t, f: Filters, c: Ctx, history: int = kpis.FORECAST_HISTORY_MONTHS) -> dict:
    """Month-end billable patient-months for the as-of month: so far + can still bill x the mean share the
    ``history`` months before converted from the same day (range: lowest and highest share), capped."""
    as_of = c.as_of
    month, day = month_int(as_of), as_of.day
    days_in_month = month_bounds(month)[1].day
    pm = patient_month(t, f.with_months(add_months(month, -history), month), c.rs)
    so_far, still = _reached_and_open(t, f, pm, month, day)
    cap = so_far + still
    shares, used = [], []
    for k in range(1, history + 1):
        m = add_months(month, -k)
        r_day, open_day = _reached_and_open(t, f, pm, m, day)
        final = _reached_and_open(t, f, pm, m, None)[0]
        if open_day > 0 and final > 0:
            shares.append(min(1.0, max(0.0, (final - r_day) / open_day)))
            used.append(m)
    if shares:
        mean: float | None = sum(shares) / len(shares)
        point = so_far + round(still * (mean or 0.0))
        low = so_far + math.floor(still * min(shares))
        high = so_far + math.ceil(still * max(shares))
    else:
        point = low = high = min(cap, round(so_far * days_in_month / day if day else so_far))
        mean = None
    point, low, high = (min(cap, max(so_far, v)) for v in (point, low, high))
    out = {
        "value": int(point),
        "so_far": so_far,
        "can_still_bill": still,
        "cap": cap,
        "low": int(low),
        "high": int(high),
        "conversion": mean,
        "enrolled": len(_enrolled_ids(t, f.with_months(month), as_of)),
    }
    out.update({f"conversion.{m}": s for m, s in zip(used, shares)})
    return out


def _ours_pacing(conn: Connection, f: Filters, c: Ctx) -> dict:
    k = kpis.pacing_forecast(conn, f.with_months(month_int(c.as_of)), c.as_of)
    e = k.extra
    out = {"value": k.value, **{x: e[x] for x in ("so_far", "can_still_bill", "cap", "low", "high", "conversion")}}
    out["enrolled"] = e["enrolled"]
    out.update({f"conversion.{m}": s for m, s in e["conversions"].items()})
    return out


# --------------------------------------------------------------------------- eligibility
MIN_CONDITIONS = 2  # two or more chronic conditions (docs/reference/ccm-rules.md §3.1)
SEEN_WITHIN_DAYS = 365  # a visit in the 12 months before


def _condition_counts(t, as_of: dt.date, pids: pd.Series | None = None) -> pd.Series:
    """Distinct chronic conditions (the shipped ICD-10 map: rules.condition_key) active on ``as_of``, per patient."""
    dg = t["diagnosis"]
    if pids is not None:
        dg = dg[dg["patient_id"].isin(pids)]
    at = pd.Timestamp(as_of)
    dg = dg[
        (dg["onset_date"].isna() | (dg["onset_date"] <= at)) & (dg["resolved_date"].isna() | (dg["resolved_date"] > at))
    ]
    keys = {code: rules_mod.condition_key(code) for code in dg["icd10"].unique()}
    cond = dg["icd10"].map(keys)
    return cond.groupby(dg["patient_id"]).nunique()


def _eligible_ids(t, f: Filters, rs, as_of: dt.date) -> pd.Series:
    """Patients eligible to be offered CCM on ``as_of``: seen in the 12 months before, an eligible payer, alive, and
    clinically eligible (the newest CCM eligibility decision on or before ``as_of`` wins; without one, two or more
    chronic conditions active)."""
    at = pd.Timestamp(as_of)
    v = t["visit"]
    seen = v.loc[(v["visit_date"] <= at) & (v["visit_date"] > at - pd.Timedelta(days=SEEN_WITHIN_DAYS)), "patient_id"]
    p = t["patient"]
    p = p[p["id"].isin(seen) & p["id"].isin(_patients(t, f))]
    p = p[
        p["payer"].str.lower().isin(rs.eligible_payer_spellings())
        & (p["deceased_date"].isna() | (p["deceased_date"] > at))
    ]
    eo = t["eligibility_override"]
    eo = eo[(eo["program"] == "CCM") & (eo["decided_on"] <= at)]
    newest = eo.sort_values(["decided_on", "id"]).groupby("patient_id")["eligible"].last()
    n = p["id"].map(_condition_counts(t, as_of, p["id"])).fillna(0)
    found = p["id"].isin(newest.index)
    decided = p["id"].map(newest).fillna(0).astype(bool)
    clinical = (found & decided) | (~found & (n >= MIN_CONDITIONS))
    return p.loc[clinical, "id"]


_ELIGIBILITY_TABLES = ("patient", "visit", "diagnosis", "eligibility_override")


def eligible_population(t, f: Filters, c: Ctx) -> dict:
    n = len(_eligible_ids(t, f, c.rs, _month_end(f.month_to)))
    return {"value": n, "numerator": n}


def enrollment_rate(t, f: Filters, c: Ctx) -> dict:
    as_of = _month_end(f.month_to)
    elig = _eligible_ids(t, f, c.rs, as_of)
    enr = _enrolled_ids(t, f, as_of)
    num = int(enr.isin(elig).sum())
    return {
        "value": _rate(num, len(elig)),
        "numerator": num,
        "denominator": len(elig),
        "enrolled_not_eligible": len(enr) - num,
    }


def _name(first: pd.Series, last: pd.Series) -> pd.Series:
    return first.fillna("").astype(str) + " " + last.fillna("").astype(str)


def _iso(s: pd.Series) -> pd.Series:
    """Dates as ISO text (None when missing): how both sides of a list compare."""
    d = pd.to_datetime(s)
    return d.dt.strftime("%Y-%m-%d").astype(object).where(d.notna(), None)


OUTREACH_COLUMNS = (
    "patient_id",
    "mrn",
    "patient_name",
    "phone",
    "clinic",
    "practitioner",
    "care_manager",
    "payer",
    "chronic_conditions",
    "latest_status",
    "status_date",
    "reason",
    "last_visit",
    "next_step",
)


def eligible_not_enrolled(t, f: Filters, c: Ctx) -> Listed:
    """Eligible patients at the end of ``f.month_to`` whose latest status (per program) is not 'enrolled', best bets
    first (consented, reached, ... by the next step's order), then most chronic conditions, then patient id."""
    as_of = _month_end(f.month_to)
    at = pd.Timestamp(as_of)
    elig = _eligible_ids(t, f, c.rs, as_of)
    ee = t["enrollment_event"]
    ee = ee[ee["program"].isin(f.programs) & (ee["event_date"] <= at)]
    latest = ee.sort_values(["event_date", "id"]).groupby(["patient_id", "program"], as_index=False).last()
    latest = latest[["patient_id", "status", "reason", "event_date"]].rename(columns={"event_date": "status_date"})
    p = t["patient"]
    df = p[p["id"].isin(elig)].rename(columns={"id": "patient_id"}).merge(latest, on="patient_id", how="left")
    df = df[df["status"].isna() | (df["status"] != "enrolled")]
    v = t["visit"]
    last_visit = v[v["visit_date"] <= at].groupby("patient_id")["visit_date"].max()
    pr, st = t["practitioner"].set_index("id"), t["staff"].set_index("id")
    bp, cm = df["billing_practitioner_id"], df["care_manager_id"]
    status = df["status"].astype(object).where(df["status"].notna(), None)
    steps = {k: v for k, v in kpis_extra.NEXT_STEP.items() if k is not None}  # None and unknown: the default
    default = kpis_extra.NEXT_STEP[None]
    df = df.assign(
        patient_name=_name(df["first_name"], df["last_name"]),
        clinic=df["clinic_id"].map(t["clinic"].set_index("id")["name"]),
        practitioner=_name(bp.map(pr["first_name"]), bp.map(pr["last_name"])),
        care_manager=_name(cm.map(st["first_name"]), cm.map(st["last_name"])),
        chronic_conditions=df["patient_id"].map(_condition_counts(t, as_of, df["patient_id"])).fillna(0).astype(int),
        latest_status=status.fillna("no outreach yet"),
        status_date=_iso(df["status_date"]),
        reason=df["reason"].fillna(""),
        last_visit=_iso(df["patient_id"].map(last_visit)),
        next_step=status.map({k: v[1] for k, v in steps.items()}).fillna(default[1]),
        _order=status.map({k: v[0] for k, v in steps.items()}).fillna(default[0]),
    )
    df = df.sort_values(["_order", "chronic_conditions", "patient_id"], ascending=[True, False, True])
    return Listed(df[list(OUTREACH_COLUMNS)], "patient_id", order=True)


def _ours_outreach(conn: Connection, f: Filters, c: Ctx) -> dict:
    df = kpis_extra.eligible_not_enrolled(conn, f)
    df = df.assign(status_date=_iso(df["status_date"]), last_visit=_iso(df["last_visit"]))
    return _flat_frame(df[list(OUTREACH_COLUMNS)], "patient_id", order=True)


# --------------------------------------------------------------------------- the funnel, consent completeness, retention
def _in_period(s: pd.Series, f: Filters) -> pd.Series:
    start, end = pd.Timestamp(month_bounds(f.month_from)[0]), pd.Timestamp(month_bounds(f.month_to)[1])
    return s.between(start, end)


def _consented_ids(t, f: Filters, pids: pd.Series) -> set:
    cn = t["consent"]
    return set(
        cn.loc[
            (cn["decision"] == "accepted")
            & _in_period(cn["consent_date"], f)
            & cn["program"].isin(f.programs)
            & cn["patient_id"].isin(pids),
            "patient_id",
        ]
    )


def funnel_counts(t, f: Filters, c: Ctx) -> dict:
    """Distinct patients per stage in the period: eligible (month end), outreached, reached, consented, enrolled,
    first billable month (a billable patient-month on or after a month with an enrolled event in the period)."""
    pids = _patients(t, f)
    ee = t["enrollment_event"]
    ee = ee[_in_period(ee["event_date"], f) & ee["program"].isin(f.programs)]
    mine = ee[ee["patient_id"].isin(pids)]
    consented = _consented_ids(t, f, pids)

    def with_status(*statuses) -> set:
        return set(mine.loc[mine["status"].isin(statuses), "patient_id"])

    enrolled_ev = ee.loc[ee["status"] == "enrolled", ["patient_id", "event_date"]]
    enrolled_ev = enrolled_ev.assign(
        ev_month=enrolled_ev["event_date"].dt.year * 100 + enrolled_ev["event_date"].dt.month
    )
    first_ev = enrolled_ev.groupby("patient_id")["ev_month"].min()
    pm = patient_month(t, f, c.rs)
    pm = pm[pm["supported_track"].notna()]
    fb = pm.loc[pm["service_month"] >= pm["patient_id"].map(first_ev), "patient_id"].nunique()
    stages = {
        "eligible": len(_eligible_ids(t, f, c.rs, _month_end(f.month_to))),
        "outreached": len(consented | with_status("outreached", "reached", "consented", "declined")),
        "reached": len(consented | with_status("reached", "consented", "declined")),
        "consented": len(consented),
        "enrolled": len(with_status("enrolled")),
        "first billable month": int(fb),
    }
    return {**stages, "value": stages["eligible"]}


def _ours_funnel(conn: Connection, f: Filters, c: Ctx) -> dict:
    df = kpis.funnel_counts(conn, f)
    out = {str(stage): int(n) for stage, n in zip(df["stage"], df["patients"])}
    return {**out, "value": out["eligible"]}


CONSENT_ELEMENTS = (
    "dated",
    "method recorded",
    "staff recorded",
    "cost-sharing explained",
    "one practitioner explained",
    "right to stop explained",
    "information sharing explained",
    "tied to current billing practitioner",
)


def consent_completeness(t, f: Filters, c: Ctx) -> dict:
    """Accepted consents of the programs (dated in the period, or of a patient enrolled at its end): how many
    document each element."""
    end = month_bounds(f.month_to)[1]
    pids = _patients(t, f)
    cn = t["consent"].merge(
        t["patient"][["id", "billing_practitioner_id"]].rename(columns={"id": "patient_id"}), on="patient_id"
    )
    cn = cn[
        (cn["decision"] == "accepted")
        & cn["program"].isin(f.programs)
        & cn["patient_id"].isin(pids)
        & (_in_period(cn["consent_date"], f) | cn["patient_id"].isin(_enrolled_ids(t, f, end)))
    ]
    flags = [
        cn["consent_date"].notna(),
        cn["method"].notna(),
        cn["staff_id"].notna(),
        _truthy(cn["disclosed_cost_sharing"]),
        _truthy(cn["disclosed_one_practitioner"]),
        _truthy(cn["disclosed_right_to_stop"]),
        _truthy(cn["disclosed_info_sharing"]),
        cn["practitioner_id"] == cn["billing_practitioner_id"],
    ]
    total = len(cn)
    out: dict[str, Any] = {}
    for name, flag in zip(CONSENT_ELEMENTS, flags):
        n = int(flag.sum())
        out.update({f"{name}.documented": n, f"{name}.total": total, f"{name}.rate": _rate(n, total)})
    out["value"] = total
    return out


def _ours_consents(conn: Connection, f: Filters, c: Ctx) -> dict:
    df = kpis.consent_completeness(conn, f)
    out: dict[str, Any] = {}
    for r in df.to_dict("records"):
        out.update({f"{r['element']}.{k}": r[k] for k in ("documented", "total", "rate")})
    out["value"] = int(df["total"].iloc[0]) if len(df) else 0
    return out


RETENTION_HORIZONS = (1, 3, 6, 12)


def _month_idx(s: pd.Series) -> pd.Series:
    return s.dt.year * 12 + s.dt.month - 1


def retention_by_cohort(t, f: Filters, c: Ctx) -> dict:
    """Cohort = month of a patient's first 'enrolled' event (in the filter's months); the share not disenrolled
    (on or after that first enrolment) more than N months later, where N months have passed by ``f.month_to``."""
    ee = t["enrollment_event"]
    ee = ee[ee["program"].isin(f.programs)]
    first = ee[(ee["status"] == "enrolled") & ee["patient_id"].isin(_patients(t, f))]
    first = first.groupby("patient_id")["event_date"].min().rename("enrolled_on").reset_index()
    left = ee[ee["status"] == "disenrolled"].merge(first, on="patient_id")
    left = left[left["event_date"] >= left["enrolled_on"]].groupby("patient_id")["event_date"].min().rename("left_on")
    j = first.merge(left, left_on="patient_id", right_index=True, how="left")
    j["cohort_idx"] = _month_idx(j["enrolled_on"])
    to_idx = (f.month_to // 100) * 12 + f.month_to % 100 - 1
    j = j[j["cohort_idx"].between((f.month_from // 100) * 12 + f.month_from % 100 - 1, to_idx)]
    gap = _month_idx(j["left_on"]) - j["cohort_idx"]
    for h in RETENTION_HORIZONS:
        j[f"active_{h}"] = (j["left_on"].isna() | (gap > h)).astype(int)
    g = j.groupby("cohort_idx").agg(
        enrolled=("patient_id", "size"), **{f"a{h}": (f"active_{h}", "sum") for h in RETENTION_HORIZONS}
    )
    out: dict[str, Any] = {}
    for idx, r in g.iterrows():
        cohort = (idx // 12) * 100 + idx % 12 + 1
        out[f"{cohort}.enrolled"] = int(r["enrolled"])
        for h in RETENTION_HORIZONS:
            out[f"{cohort}.retained_{h}m"] = _rate(r[f"a{h}"], r["enrolled"]) if idx + h <= to_idx else None
    out["value"] = int(g["enrolled"].sum())
    return out


def _ours_retention(conn: Connection, f: Filters, c: Ctx) -> dict:
    df = kpis.retention_by_cohort(conn, f)
    out: dict[str, Any] = {}
    for r in df.to_dict("records"):
        out[f"{r['cohort']}.enrolled"] = r["enrolled"]
        for h in RETENTION_HORIZONS:
            v = r[f"retained_{h}m"]
            out[f"{r['cohort']}.retained_{h}m"] = None if v is None or pd.isna(v) else v
    out["value"] = int(df["enrolled"].sum())
    return out


# --------------------------------------------------------------------------- billing and revenue (on the patient-month)
FINDINGS = (
    ("under_billed", "Under-billed"),
    ("over_billed", "Over-billed"),
    ("duplicate_ccm", "Duplicate CCM"),
    ("ccm_with_pcm_same_practitioner", "CCM + PCM same practitioner"),
    ("ccm_with_apcm_same_practitioner", "CCM + APCM same practitioner"),
    ("addon_without_base", "Add-on without base"),
    ("units_over_cap", "Units over cap"),
    ("ccm_tracks_mixed", "Mixed CCM tracks"),
)
CONFLICT_FLAGS = tuple(k for k, _ in FINDINGS if k not in ("under_billed", "over_billed"))


def _priced_codes(rs, f: Filters) -> list[str]:
    return [c for fam in ("CCM", "PCM") if fam in f.programs for c in rs.codes_of(family=fam)]


def supported_vs_billed(t, f: Filters, c: Ctx) -> Listed:
    """Per month and priced code: supported and billed units and their fee-schedule values (codes used at all)."""
    rs = c.rs
    codes = _priced_codes(rs, f)
    pm = patient_month(t, f, rs)
    g = pm.groupby("service_month")[[f"supported_{x}" for x in codes] + [f"billed_{x}" for x in codes]].sum()
    g = g.reindex(f.months(), fill_value=0)
    rows = []
    for code in codes:
        fee = g.index.map(lambda m, code=code: float(rs.fee(code, m) or 0.0)).to_numpy()
        su, bu = g[f"supported_{code}"].astype(int), g[f"billed_{code}"].astype(int)
        rows.append(
            pd.DataFrame(
                {
                    "month": g.index,
                    "code": code,
                    "supported_units": su.to_numpy(),
                    "billed_units": bu.to_numpy(),
                    "supported_value": (su * fee).round(2).to_numpy(),
                    "billed_value": (bu * fee).round(2).to_numpy(),
                    "gap_units": (su - bu).to_numpy(),
                    "gap_value": ((su - bu) * fee).round(2).to_numpy(),
                }
            )
        )
    df = pd.concat(rows, ignore_index=True) if rows else pd.DataFrame(columns=["month", "code", "supported_units"])
    used = df.groupby("code")[["supported_units", "billed_units"]].sum().sum(axis=1)
    df = df[df["code"].isin(used[used > 0].index)]
    return Listed(df.assign(key=df["month"].astype(str) + "." + df["code"]).drop(columns=["month", "code"]), "key")


def _ours_svb(conn: Connection, f: Filters, c: Ctx) -> dict:
    df = kpis_extra.supported_vs_billed(conn, f).drop(columns="description")
    return _flat_frame(df.assign(key=df["month"].astype(str) + "." + df["code"]).drop(columns=["month", "code"]), "key")


def _join_texts(parts: list[tuple[pd.Series, pd.Series | str]], sep: str, index) -> pd.Series:
    """Per row, ``sep``-join the texts whose mask is true: column by column (no per-row apply)."""
    out = pd.Series("", index=index, dtype=object)
    for mask, text in parts:
        piece = (text if isinstance(text, pd.Series) else pd.Series(text, index=index)).where(mask, "")
        out = out + (pd.Series(sep, index=index).where(mask & (out != ""), "")) + piece
    return out


FINDINGS_COLUMNS = (
    "key",
    "mrn",
    "patient_name",
    "practitioner",
    "payer",
    "counted_minutes",
    "supported_codes",
    "billed_codes",
    "expected",
    "billed_charge",
    "paid",
    "findings",
)


def billing_findings_list(t, f: Filters, c: Ctx) -> Listed:
    """Every patient-month of the range with a billing finding, newest month first, with its codes and money."""
    rs = c.rs
    pm = patient_month(t, f, rs)
    pm = pm[pm[[k for k, _ in FINDINGS]].astype(bool).any(axis=1)]
    codes = _priced_codes(rs, f) + [x for x in rs.codes_of(family="APCM") if "APCM" in f.programs]
    p = t["patient"][["id", "mrn", "first_name", "last_name"]].rename(columns={"id": "patient_id"})
    df = pm.merge(p, on="patient_id")
    pr = t["practitioner"].set_index("id")
    bp = df["billing_practitioner_id"]

    def codes_text(prefix: str) -> pd.Series:
        cols = [x for x in codes if prefix + x in df.columns]
        units = {x: df[prefix + x].astype(int) for x in cols}
        return _join_texts([(units[x] > 0, x + " x" + units[x].astype(str)) for x in cols], ", ", df.index)

    df = df.assign(
        key=df["patient_id"].astype(str) + "/" + df["service_month"].astype(str),
        patient_name=_name(df["first_name"], df["last_name"]),
        practitioner=_name(bp.map(pr["first_name"]), bp.map(pr["last_name"])),
        supported_codes=codes_text("supported_"),
        billed_codes=codes_text("billed_"),
        findings=_join_texts([(df[k].astype(bool), label) for k, label in FINDINGS], "; ", df.index),
        expected=df["expected_amount"].astype(float).round(2),
        billed_charge=df["billed_charge"].astype(float).round(2),
        paid=df["paid_amount"].astype(float).round(2),
    ).sort_values(["service_month", "patient_id"], ascending=[False, True])
    return Listed(df[list(FINDINGS_COLUMNS)], "key", order=True)


def _ours_findings(conn: Connection, f: Filters, c: Ctx) -> dict:
    df = kpis_extra.billing_findings_list(conn, f)
    df = df.assign(key=df["patient_id"].astype(str) + "/" + df["month"].astype(str))
    return _flat_frame(df[list(FINDINGS_COLUMNS)], "key", order=True)


def _revenue_rows(t, f: Filters, rs) -> list[dict]:
    pm = patient_month(t, f, rs)
    g = pm.assign(billable=pm["supported_track"].notna().astype(int)).groupby("service_month")
    sums = g[["expected_amount", "billed_charge", "paid_amount", "billable"]].sum()
    rows = []
    for m in f.months():
        exp, bil, paid, bpm = (
            (float(x) for x in sums.loc[m]) if m in sums.index else (0.0, 0.0, 0.0, 0)  # type: ignore[misc]
        )
        enrolled = len(_enrolled_ids(t, f, _month_end(m)))
        rows.append(
            {
                "month": m,
                "expected": round(exp, 2),
                "billed": round(bil, 2),
                "paid": round(paid, 2),
                "billable_patient_months": int(bpm),
                "enrolled": enrolled,
                "expected_per_enrolled": _rate(exp, enrolled),
                "billed_per_enrolled": _rate(bil, enrolled),
                "paid_per_enrolled": _rate(paid, enrolled),
            }
        )
    return rows


def _month_rows(rows: list[dict], value_key: str) -> dict:
    out = {f"{r['month']}.{k}": v for r in rows for k, v in r.items() if k != "month"}
    out["value"] = rows[-1][value_key] if rows else None
    return out


def revenue_by_month(t, f: Filters, c: Ctx) -> dict:
    return _month_rows(_revenue_rows(t, f, c.rs), "expected")


def revenue_summary(t, f: Filters, c: Ctx) -> dict:
    rows = _revenue_rows(t, f, c.rs)
    last = rows[-1]
    return {
        "value": float(last["expected"]),
        "denominator": int(last["enrolled"]),
        "billed": float(last["billed"]),
        "paid": float(last["paid"]),
        "per_enrolled": last["expected_per_enrolled"],
        "billed_per_enrolled": last["billed_per_enrolled"],
        "paid_per_enrolled": last["paid_per_enrolled"],
        "range_expected": sum(r["expected"] for r in rows),
        "range_billed": sum(r["billed"] for r in rows),
        "range_paid": sum(r["paid"] for r in rows),
    }


def _ours_revenue_summary(conn: Connection, f: Filters, c: Ctx) -> dict:
    k = kpis.revenue_summary(conn, f)
    e = k.extra
    keys = ("billed", "paid", "per_enrolled", "billed_per_enrolled", "paid_per_enrolled")
    return {
        "value": k.value,
        "denominator": k.denominator,
        **{x: e[x] for x in keys},
        **{x: e[x] for x in ("range_expected", "range_billed", "range_paid")},
    }


def _none_nan(rows: list[dict]) -> list[dict]:
    return [
        {k: (None if v is not None and not isinstance(v, str) and pd.isna(v) else v) for k, v in r.items()}
        for r in rows
    ]


def revenue_leakage(t, f: Filters, c: Ctx) -> dict:
    """Patient-months and dollars by cause over the range (the month is closed for 'not billed' 15 days after
    its end, counted from today as ours is asked without an as-of date)."""
    rs = c.rs
    closed_before = month_int(dt.date.today() - dt.timedelta(days=15))
    pm = patient_month(t, f, rs)
    conflict = pm[list(CONFLICT_FLAGS)].astype(bool).any(axis=1)
    near = pm["counted_minutes"].between(15, 19) & pm["supported_track"].isna()
    causes = {
        "under-billing": (pm["under_billed"] == 1, pm["expected_ccm"] - pm["billed_supported_value"]),
        "not billed": ((pm["not_billed"] == 1) & (pm["service_month"] < closed_before), pm["expected_amount"]),
        "denials not recovered": ((pm["initially_denied"] == 1) & (pm["paid_amount"] <= 0), pm["billed_fee_value"]),
        "near misses (15-19 min)": (near, _fee(rs, "99490", pm["service_month"])),
        "conflicts": (conflict, pm["billed_fee_value"]),
    }
    out: dict[str, Any] = {}
    for label, (cond, amount) in causes.items():
        out[f"{label}.patient_months"] = int(cond.sum())
        out[f"{label}.dollars"] = round(float(amount[cond].sum()), 2)
    out["value"] = sum(out[f"{label}.dollars"] for label in causes)
    return out


def _ours_leakage(conn: Connection, f: Filters, c: Ctx) -> dict:
    df = kpis.revenue_leakage(conn, f)
    out: dict[str, Any] = {}
    for r in df.to_dict("records"):
        out[f"{r['cause']}.patient_months"] = r["patient_months"]
        out[f"{r['cause']}.dollars"] = r["dollars"]
    out["value"] = float(df["dollars"].sum())
    return out


def revenue_projection(t, f: Filters, c: Ctx, months_ahead: int = 6, window: int = 6) -> dict:
    """The range's months plus ``months_ahead`` projected: enrolment growth over the trailing ``window`` months, the
    billable rate, expected per billable month and the collection ratio of months at least 2 months old."""
    actual = _revenue_rows(t, f, c.rs)
    aged_cutoff = add_months(f.month_to, -2)
    rows = [
        {
            "month": r["month"],
            "kind": "actual",
            **{k: r[k] for k in ("enrolled", "billable_patient_months", "expected", "billed", "paid")},
            "collected": r["paid"] if r["month"] <= aged_cutoff else None,
        }
        for r in actual
    ]
    trail = actual[-min(window, len(actual)) :]
    enrolled = [float(r["enrolled"]) for r in trail]
    growth = (enrolled[-1] - enrolled[0]) / (len(trail) - 1) if len(trail) > 1 else 0.0
    billable_rate = _rate(sum(r["billable_patient_months"] for r in trail), sum(enrolled))
    per_billable = _rate(sum(r["expected"] for r in trail), sum(r["billable_patient_months"] for r in trail))
    aged = [r for r in trail if r["month"] <= aged_cutoff]
    collection = _rate(sum(r["paid"] for r in aged), sum(r["expected"] for r in aged)) if aged else None
    last_enrolled = enrolled[-1] if trail else 0.0
    projected = []
    for k in range(1, months_ahead + 1):
        e = max(last_enrolled + growth * k, 0.0)
        b = e * (billable_rate or 0.0)
        x = b * (per_billable or 0.0)
        projected.append(
            {
                "month": add_months(f.month_to, k),
                "kind": "projected",
                "enrolled": round(e, 1),
                "billable_patient_months": round(b, 1),
                "expected": round(x, 2),
                "billed": None,
                "paid": None,
                "collected": round(x * collection, 2) if collection is not None else None,
            }
        )
    out = _month_rows(rows + projected, "expected")
    out.update(
        {
            "growth": growth,
            "billable_rate": billable_rate,
            "expected_per_billable": per_billable,
            "collection_ratio": collection,
            "projected_expected_total": round(sum(r["expected"] for r in projected), 2),
        }
    )
    return out


def _ours_projection(conn: Connection, f: Filters, c: Ctx) -> dict:
    df = kpis_extra.revenue_projection(conn, f)
    out = _month_rows(_none_nan(df.to_dict("records")), "expected")
    a = df.attrs
    out.update({k: a[k] for k in ("growth", "billable_rate", "expected_per_billable", "collection_ratio")})
    out["projected_expected_total"] = a["projected_expected_total"]
    return out


# --------------------------------------------------------------------------- claim lines, suspicious time
CLAIM_LINE_COLUMNS = (
    "claim_number",
    "patient_id",
    "mrn",
    "patient_name",
    "payer",
    "practitioner",
    "service_date",
    "cpt_code",
    "units",
    "charge",
    "submitted_date",
    "status",
    "first_adjudicated",
    "claim_paid",
    "carcs",
    "rarcs",
    "reason",
)
CLAIM_LINES_LIMIT = 5000


def _sorted_list(pairs: pd.DataFrame, col: str) -> pd.Series:
    """Per claim: its distinct codes sorted, ', '-joined."""
    pairs = pairs.drop_duplicates(["claim_id", col]).sort_values(["claim_id", col])
    return pairs.groupby("claim_id")[col].agg(", ".join)


def claim_lines(t, f: Filters, c: Ctx) -> Listed:
    """The period's claim lines of the program codes on claims passing the filters (newest first, at most 5,000),
    with the claim's status from its first adjudication, money paid, and reason codes (CARC, RARC)."""
    rs, codes = c.rs, c.codes
    claims = _claims(t, f, codes)
    cl = t["claim_line"]
    lines = cl[cl["dos_month"].between(f.month_from, f.month_to) & cl["cpt_code"].isin(codes)]
    lines = lines.merge(
        claims[["id", "claim_number", "patient_id", "payer", "practitioner_id", "submitted_date"]].rename(
            columns={"id": "claim_id", "patient_id": "claim_patient_id", "practitioner_id": "claim_practitioner_id"}
        ),
        on="claim_id",
    )
    r, ra, rr = t["remittance"], t["remittance_adjustment"], t["remittance_remark"]
    mine = r[r["claim_id"].isin(lines["claim_id"])]
    first = mine[mine["adjudication_seq"] == 1].sort_values("id").groupby("claim_id").head(1)
    denial = _is_denial(t)
    duplicate = r["id"].isin(ra.loc[ra["carc"] == DUPLICATE_CARC, "remittance_id"])
    first = first.assign(denied=denial.loc[first.index] & ~duplicate.loc[first.index], dup=duplicate.loc[first.index])
    paid = mine.groupby("claim_id")["paid_amount"].sum()
    lines = lines.merge(
        first[["claim_id", "denied", "dup", "received_date"]].rename(columns={"received_date": "first_adjudicated"}),
        on="claim_id",
        how="left",
    )
    claim_paid = lines["claim_id"].map(paid).fillna(0.0).astype(float)
    has_first = lines["first_adjudicated"].notna() | lines["denied"].notna()
    denied = lines["denied"].fillna(False).astype(bool)
    status = pd.Series("paid", index=lines.index, dtype=object)
    status = status.mask(lines["dup"].fillna(False).astype(bool), "duplicate (CARC 18)")
    status = status.mask(denied, "denied").mask(denied & (claim_paid > 0), "denied, later paid")
    status = status.mask(~has_first, "pending")
    lines = lines.assign(status=status, claim_paid=claim_paid.round(2))
    total = len(lines)
    lines = lines.sort_values(["service_date", "claim_number", "line_number"], ascending=[False, True, True])
    lines = lines.head(CLAIM_LINES_LIMIT)
    page_remits = r.loc[r["claim_id"].isin(lines["claim_id"]), ["id", "claim_id"]].rename(
        columns={"id": "remittance_id"}
    )
    carc_pairs = page_remits.merge(ra.loc[~ra["carc"].isin(NOT_DENIAL_CARCS), ["remittance_id", "carc"]])
    rarc_pairs = page_remits.merge(rr[["remittance_id", "rarc"]])
    carcs = lines["claim_id"].map(_sorted_list(carc_pairs, "carc")).astype(object).fillna("")
    texts = {code: f"{code}: {rs.carc_text(code)}" for code in carc_pairs["carc"].unique()}
    reason = carc_pairs.assign(text=carc_pairs["carc"].map(texts))
    reason = reason.drop_duplicates(["claim_id", "carc"]).sort_values(["claim_id", "carc"])
    p = t["patient"].set_index("id")
    pr = t["practitioner"].set_index("id")
    pid, prid = lines["claim_patient_id"], lines["claim_practitioner_id"]
    lines = lines.assign(
        patient_id=pid,
        mrn=pid.map(p["mrn"]),
        patient_name=_name(pid.map(p["first_name"]), pid.map(p["last_name"])),
        practitioner=_name(prid.map(pr["first_name"]), prid.map(pr["last_name"])),
        service_date=_iso(lines["service_date"]),
        submitted_date=_iso(lines["submitted_date"]),
        first_adjudicated=_iso(lines["first_adjudicated"]),
        charge=lines["charge"].astype(float).round(2),
        carcs=carcs,
        rarcs=lines["claim_id"].map(_sorted_list(rarc_pairs, "rarc")).astype(object).fillna(""),
        reason=lines["claim_id"].map(reason.groupby("claim_id")["text"].agg("; ".join)).astype(object).fillna(""),
    )
    df = lines[list(CLAIM_LINE_COLUMNS)].reset_index(drop=True)
    return Listed(df.rename_axis("row").reset_index(), "row", value=total)


def _ours_claim_lines(conn: Connection, f: Filters, c: Ctx) -> dict:
    df = kpis_extra.claim_lines(conn, f)
    df = df.assign(
        service_date=_iso(df["service_date"]),
        submitted_date=_iso(df["submitted_date"]),
        first_adjudicated=_iso(df["first_adjudicated"]),
    )
    return _flat_frame(df[list(CLAIM_LINE_COLUMNS)].rename_axis("row").reset_index(), "row", value=df.attrs["total"])


REPEAT_MIN_ENTRIES = 5  # the same duration this many times by one staff member on one day
TIME_FLAGS = (
    "round_durations",
    "repeated_durations",
    "backdated_batch",
    "implausible_daily_total",
    "vague_note",
)


def time_flag_summary(t, f: Filters, c: Ctx) -> dict:
    """Per kind of suspicious-time flag (the audit checklist's thresholds): entries, patients, staff, minutes."""
    te = t["time_entry"]
    te = te[te["service_month"].between(f.month_from, f.month_to) & te["program"].isin(f.programs)]
    if f.clinic_ids or f.practitioner_ids or f.care_manager_ids or f.payers:
        te = te[te["patient_id"].isin(_patients(t, f))]
    te = te[
        [
            "id",
            "patient_id",
            "staff_id",
            "service_date",
            "service_month",
            "minutes",
            "note",
            "entry_method",
            "entered_at",
        ]
    ]
    note = te["note"].fillna("").astype(str).str.strip(" ").str.lower()
    phrases = [*VAGUE_PHRASES, *(x + "." for x in VAGUE_PHRASES)]
    vague = note.isin(phrases) | (note.str.len() < MIN_NOTE_CHARS)
    entered = te["entered_at"].dt.normalize()
    month_end = te["service_month"].map({m: pd.Timestamp(month_bounds(m)[1]) for m in f.months()})
    backdated = te["entered_at"].notna() & ((entered - te["service_date"]).dt.days >= BACKDATE_DAYS)
    after_fact = (te["entry_method"] == "batch") | backdated
    late = backdated & ((entered - month_end).dt.days >= -(MONTH_END_DAYS - 1))
    is_round = (te["minutes"] > 0) & (te["minutes"] % ROUND_MINUTES == 0)
    keys = [te["patient_id"], te["service_month"]]
    n = te.groupby(keys)["id"].transform("size")
    n_round = (is_round & after_fact).astype(int).groupby(keys).transform("sum")
    n_late = late.astype(int).groupby(keys).transform("sum")
    repeated = te.groupby(["staff_id", "service_date", "minutes"])["id"].transform("size") >= REPEAT_MIN_ENTRIES
    heavy = te.groupby(["staff_id", "service_date"])["minutes"].transform("sum") > DAILY_LIMIT_MINUTES
    kinds = {
        "round_durations": (n >= 2) & (n_round == n),
        "repeated_durations": repeated,
        "backdated_batch": late & (n_late >= 2) & (n_late * 2 >= n),
        "implausible_daily_total": heavy,
        "vague_note": vague,
    }
    out: dict[str, Any] = {}
    for kind in TIME_FLAGS:
        hit = te[kinds[kind].to_numpy()]
        out.update(
            {
                f"{kind}.entries": hit["id"].nunique(),
                f"{kind}.patients": hit["patient_id"].nunique(),
                f"{kind}.staff": hit["staff_id"].nunique(),
                f"{kind}.minutes": int(hit["minutes"].sum()),
            }
        )
    out["value"] = sum(out[f"{k}.entries"] for k in TIME_FLAGS)
    return out


def _ours_time_flags(conn: Connection, f: Filters, c: Ctx) -> dict:
    df = kpis_extra.time_flag_summary(conn, f)
    out: dict[str, Any] = {}
    for r in df.to_dict("records"):
        out.update({f"{r['kind']}.{k}": r[k] for k in ("entries", "patients", "staff", "minutes")})
    out["value"] = int(df["entries"].sum())
    return out


# --------------------------------------------------------------------------- the KPIs the bench compares
def carc_pareto(t, f: Filters, codes) -> dict:
    """CARCs (contractual / patient-share codes left out) by denied remittances carrying them in the period,
    most frequent first, with each one's share of all denied remittances and the dollars adjusted."""
    r, ra = t["remittance"], t["remittance_adjustment"]
    den = r[
        _is_denial(t)
        & r["received_month"].between(f.month_from, f.month_to)
        & r["claim_id"].isin(_claims(t, f, codes)["id"])
    ]
    total = len(den)
    adj = ra[ra["remittance_id"].isin(den["id"]) & ~ra["carc"].isin(NOT_DENIAL_CARCS)]
    g = (
        adj.groupby("carc")
        .agg(remittances=("remittance_id", "nunique"), dollars=("amount", "sum"))
        .reset_index()
        .sort_values(["remittances", "carc"], ascending=[False, True])
    )
    out: dict[str, object] = {"order": " ".join(g["carc"]), "value": total}
    for code, n, dollars in g[["carc", "remittances", "dollars"]].itertuples(index=False):
        out[f"{code}.remittances"] = int(n)
        out[f"{code}.dollars"] = float(dollars)
        out[f"{code}.share"] = _rate(int(n), total)
    return out


def _ours_carc(conn: Connection, f: Filters) -> dict:
    df = kpis.carc_pareto(conn, f)
    total = int(round(df["remittances"].iloc[0] / df["share"].iloc[0])) if len(df) else 0
    out: dict[str, object] = {"order": " ".join(df["code"]), "value": total}
    for code, n, dollars, share in df[["code", "remittances", "dollars", "share"]].itertuples(index=False):
        out[f"{code}.remittances"] = int(n)
        out[f"{code}.dollars"] = float(dollars)
        out[f"{code}.share"] = share
    return out


def _flat(rows: list[dict]) -> dict:
    """A per-month table as one flat dict (``"202509.rate_by_count"``...), headline = the last month's rate."""
    out = {f"{r['month']}.{k}": (None if pd.isna(v) else float(v)) for r in rows for k, v in r.items()}
    out["value"] = out[f"{rows[-1]['month']}.rate_by_count"] if rows else None
    return out


_CLAIM_TABLES = ("patient", "claim", "claim_line", "remittance", "remittance_adjustment")
# the tables the patient-month reads (entries, stays, consents, staff, claims, remittances, complexity, care plans)
_PM_TABLES = (
    "patient",
    "staff",
    "time_entry",
    "facility_stay",
    "consent",
    "claim",
    "claim_line",
    "remittance",
    "complexity_assessment",
    "care_plan",
)
_ENROLLED_PM_TABLES = (*_PM_TABLES, "enrollment_event")


def _kpi(k) -> dict:
    return {"value": k.value, "numerator": k.numerator, "denominator": k.denominator}


def _ours_care_managers(conn: Connection, f: Filters, c: Ctx) -> dict:
    df = kpis.minutes_per_care_manager(conn, f)
    df = df.assign(care_manager_id=df["care_manager_id"].astype(object).where(df["care_manager_id"].notna(), None))
    return _flat_frame(df, "care_manager_id", value=int(df["counted_minutes"].sum()))


def _ours_trend(conn: Connection, f: Filters, c: Ctx) -> dict:
    df = kpis_extra.billable_rate_trend(conn, f)
    out: dict[str, Any] = {
        f"{r['month']}.{k}": r[k] for r in df.to_dict("records") for k in ("enrolled", "billable", "rate")
    }
    out["value"] = out[f"{f.month_to}.rate"]
    return out


# label -> (tables read, peer(frames, f, ctx) -> dict, ours(conn, f, ctx) -> the same dict); ours reads only
# ctx.as_of (the as-of KPIs) from the context.
PEERS: dict[str, tuple[tuple[str, ...], Any, Any]] = {
    "enrolled_patients": (
        ("patient", "enrollment_event"),
        lambda t, f, c: enrolled_patients(t, f),
        lambda conn, f, c: (lambda k: {"value": k.value, "previous_month": k.extra["previous_month"]})(
            kpis.enrolled_patients(conn, f)
        ),
    ),
    "consent_rate": (
        ("patient", "consent", "enrollment_event"),
        lambda t, f, c: consent_rate(t, f),
        lambda conn, f, c: _kpi(kpis.consent_rate(conn, f)),
    ),
    "consent_conversion": (
        ("patient", "consent", "enrollment_event"),
        lambda t, f, c: consent_conversion(t, f),
        lambda conn, f, c: _kpi(kpis.consent_conversion(conn, f)),
    ),
    "minutes_per_enrolled_patient": (
        ("patient", "enrollment_event", "time_entry", "staff", "facility_stay", "consent"),
        lambda t, f, c: minutes_per_enrolled_patient(t, f),
        lambda conn, f, c: (
            lambda k: {
                **_kpi(k),
                "median": k.extra["median"],
                **{f"band.{b}": n for b, n in k.extra["bands"].items()},
            }
        )(kpis.minutes_per_enrolled_patient(conn, f)),
    ),
    "billable_rate": (_ENROLLED_PM_TABLES, billable_rate, lambda conn, f, c: _kpi(kpis.billable_rate(conn, f))),
    "near_threshold_worklist": (_ENROLLED_PM_TABLES, near_threshold_worklist, _ours_near),
    "pacing_forecast": (_ENROLLED_PM_TABLES, pacing_forecast, _ours_pacing),
    "addon_capture": (
        _ENROLLED_PM_TABLES,
        addon_capture,
        lambda conn, f, c: (
            lambda k: {
                **_kpi(k),
                "ge40": k.extra["ge40"],
                "ge60": k.extra["ge60"],
                "ge60_patients": k.extra["ge60_patients"],
            }
        )(kpis.addon_capture(conn, f)),
    ),
    "minutes_per_care_manager": (_ENROLLED_PM_TABLES, minutes_per_care_manager, _ours_care_managers),
    "billable_rate_trend": (_ENROLLED_PM_TABLES, billable_rate_trend, _ours_trend),
    "eligible_population": (
        _ELIGIBILITY_TABLES,
        eligible_population,
        lambda conn, f, c: (lambda k: {"value": k.value, "numerator": k.numerator})(kpis.eligible_population(conn, f)),
    ),
    "enrollment_rate": (
        (*_ELIGIBILITY_TABLES, "enrollment_event"),
        enrollment_rate,
        lambda conn, f, c: (lambda k: {**_kpi(k), "enrolled_not_eligible": k.extra["enrolled_not_eligible"]})(
            kpis.enrollment_rate(conn, f)
        ),
    ),
    "eligible_not_enrolled": (
        (*_ELIGIBILITY_TABLES, "enrollment_event", "clinic", "practitioner", "staff"),
        eligible_not_enrolled,
        _ours_outreach,
    ),
    "funnel_counts": (
        (*_ENROLLED_PM_TABLES, "visit", "diagnosis", "eligibility_override"),
        funnel_counts,
        _ours_funnel,
    ),
    "consent_completeness": (("patient", "consent", "enrollment_event"), consent_completeness, _ours_consents),
    "retention_by_cohort": (("patient", "enrollment_event"), retention_by_cohort, _ours_retention),
    "supported_vs_billed": (_PM_TABLES, supported_vs_billed, _ours_svb),
    "billing_findings_list": ((*_PM_TABLES, "practitioner"), billing_findings_list, _ours_findings),
    "revenue_summary": (_ENROLLED_PM_TABLES, revenue_summary, _ours_revenue_summary),
    "revenue_by_month": (
        _ENROLLED_PM_TABLES,
        revenue_by_month,
        lambda conn, f, c: _month_rows(kpis.revenue_by_month(conn, f).to_dict("records"), "expected"),
    ),
    "revenue_leakage": (_PM_TABLES, revenue_leakage, _ours_leakage),
    "revenue_projection": (_ENROLLED_PM_TABLES, revenue_projection, _ours_projection),
    "claim_lines": (
        (*_CLAIM_TABLES, "remittance_remark", "practitioner"),
        claim_lines,
        _ours_claim_lines,
    ),
    "time_flag_summary": (("patient", "time_entry"), time_flag_summary, _ours_time_flags),
    "initial_denial_rates": (
        _CLAIM_TABLES,
        lambda t, f, c: initial_denial_rates(t, f, c.codes),
        lambda conn, f, c: (
            lambda k: {"count": k["count"].value, "dollars": k["dollars"].value, "value": k["count"].value}
        )(kpis.initial_denial_rates(conn, f)),
    ),
    "denial_trend": (
        _CLAIM_TABLES,
        lambda t, f, c: _flat(denial_trend(t, f, c.codes)),
        lambda conn, f, c: _flat(kpis.denial_trend(conn, f).to_dict("records")),
    ),
    "carc_pareto": (
        _CLAIM_TABLES,
        lambda t, f, c: carc_pareto(t, f, c.codes),
        lambda conn, f, c: _ours_carc(conn, f),
    ),
    "first_pass_resolution_rate": (
        ("patient", "claim", "claim_line", "remittance", "remittance_adjustment"),
        lambda t, f, c: first_pass_resolution_rate(t, f, c.codes),
        lambda conn, f, c: _kpi(kpis.first_pass_resolution_rate(conn, f)),
    ),
    "days_to_payment": (
        ("patient", "claim", "claim_line", "remittance"),
        lambda t, f, c: days_to_payment(t, f, c.codes),
        lambda conn, f, c: (lambda k: {"value": k.value, "claims": k.extra["claims"]})(kpis.days_to_payment(conn, f)),
    ),
}


def default_as_of(f: Filters) -> dt.date:
    """The as-of date the tests use for ``f``: the 17th of ``f.month_to`` (mid-month: a live pacing question)."""
    return _cutoff(f.month_to, 17)


def _context(conn: Connection, f: Filters, as_of: dt.date | None) -> Ctx:
    rs = rules_mod.load(conn)
    return Ctx(codes=kpis.program_codes(rs, f), rs=rs, as_of=as_of or default_as_of(f))


def run_peer(
    conn: Connection, label: str, f: Filters, as_of: dt.date | None = None, read: dict | None = None
) -> tuple[dict, float, float]:
    """(peer result, cold seconds = read + compute, cached seconds = compute on the frames read).

    ``read`` (table -> (frame, seconds it took to read)) lends tables already read: their read time is charged
    to this KPI as if it had read them itself, and tables missing from it are read and added to it."""
    tables, fn, _ = PEERS[label]
    read = {} if read is None else read
    for name in tables:
        if name not in read:
            t0 = time.perf_counter()
            frame = read_tables(conn, [name])[name]
            read[name] = (frame, time.perf_counter() - t0)
    frames = {name: read[name][0] for name in tables}
    t0 = time.perf_counter()
    ctx = _context(conn, f, as_of)
    t1 = time.perf_counter()
    result = fn(frames, f, ctx)
    t2 = time.perf_counter()
    result = fn(frames, f, ctx)  # second pass: best of two for the cached figure
    t3 = time.perf_counter()
    compute = min(t2 - t1, t3 - t2)
    return _finish(result), sum(read[name][1] for name in tables) + (t1 - t0) + compute, compute


def compute(conn: Connection, label: str, f: Filters, as_of: dt.date | None = None, frames: dict | None = None) -> dict:
    """The peer's answer alone (one compute; the tables read unless ``frames`` holds them): what the equality test
    compares."""
    tables, fn, _ = PEERS[label]
    frames = read_tables(conn, tables) if frames is None else frames
    return _finish(fn({name: frames[name] for name in tables}, f, _context(conn, f, as_of)))


def ours(conn: Connection, label: str, f: Filters, as_of: dt.date | None = None) -> dict:
    return PEERS[label][2](conn, f, Ctx(codes=[], rs=None, as_of=as_of or default_as_of(f)))


def bench_peers(
    conn: Connection, month: int, kpi_seconds: dict[str, float], as_of: dt.date | None = None
) -> list[dict]:
    """One row per peer KPI: our seconds (from the core stage), peer cold / cached, the two ratios, targets.

    Each table is read once per run (at 50,000 patients the time log alone takes ~30 s to read): a KPI's cold
    figure is the sum of the read times of the tables it needs, its rules, and its compute.

    ``as_of`` (the near-threshold list, the pacing forecast) should be the date the core stage timed ours with;
    without it, the last day with logged time (the demo generator's "today" or close to it)."""
    f = Filters.for_month(month)
    if as_of is None:
        last = pd.read_sql("SELECT max(service_date) AS d FROM time_entry", conn)["d"].iloc[0]
        as_of = pd.Timestamp(last).date() if last is not None and pd.notna(last) else _month_end(month)
        conn.rollback()
    rows = []
    read: dict[str, tuple[pd.DataFrame, float]] = {}  # each table read once; its read time charged to every KPI
    for label in PEERS:
        _, cold, cached = run_peer(conn, label, f, as_of, read)
        conn.rollback()
        our = kpi_seconds.get(label)
        cold, cached = round(cold, 4) or 0.0001, round(cached, 4) or 0.0001  # the ratios of the figures shown
        rows.append(
            {
                "kpi": label,
                "ours": our,
                "peer_cold": cold,
                "peer_cached": cached,
                "vs_cold": None if not our else round(our / cold, 3),
                "vs_cached": None if not our else round(our / cached, 3),
            }
        )
    return rows
