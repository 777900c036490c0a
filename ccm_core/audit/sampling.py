"""Reproducible audit samples of billed patient-months, and the auditor's findings on them.

Why this shape: an audit sample must be defensible later ("why these 30?"), so
a pull is a pure function of its inputs: the population (billed CCM
patient-months in the period, sorted by a stable key), the strata, the size
and the seed drive ``numpy.random.default_rng(seed)``.  The inputs are stored
with the pull (``audit_sample.strata`` as JSON), so a sample can be reopened
and re-drawn to prove it was not hand-picked.

Allocation across strata is proportional (largest remainder) with at least one
patient-month from every non-empty stratum, so small strata (a rarely used
code, a small payer) are never silently skipped.
"""

from __future__ import annotations

import datetime as dt
import json
import math
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from sqlalchemy import and_, case, delete, func, select, update
from sqlalchemy.engine import Connection

from ccm_core import rules as rules_mod
from ccm_core.audit import checklist as audit
from ccm_core.engine import patient_month as engine_mod
from ccm_core.engine import read
from ccm_core.engine.filters import Filters
from ccm_core.engine.sql import replaced_claims
from ccm_core.storage import schema as s
from ccm_core.storage import stored as pm_store
from ccm_core.storage.db import format_month

# Stratum key -> what it groups by (shown on screen and stored with the pull).
STRATA = {
    "staff": "care manager of the patient",
    "code": "billed CCM code combination",
    "payer": "payer on the claim",
    "practitioner": "billing practitioner on the claim",
    "high_minutes": "high-minutes outliers (counted minutes above Q3 + 1.5 x IQR of the population) vs the rest",
}
ENGINE_FINDING_COLUMNS = engine_mod.FLAG_COLUMNS
EXCLUDED_MINUTE_COLUMNS = (
    "excluded_non_clinical",
    "excluded_inpatient",
    "excluded_pre_consent",
    "excluded_other_program",
)
VERDICTS = ("agree", "disagree")


@dataclass(frozen=True)
class SampleRequest:
    month_from: int
    month_to: int
    size: int
    seed: int
    strata: tuple[str, ...] = ()
    flagged_only: bool = False
    filters: Filters | None = None  # clinic / practitioner / care manager / payer narrowing of the population
    population: str = "billed"  # billed (retrospective) or prebill (supported, not billed yet: prospective)

    def __post_init__(self):
        if self.month_from > self.month_to:
            raise ValueError(
                f"The period is backwards: {format_month(self.month_from)} > {format_month(self.month_to)}"
            )
        if int(self.size) < 1:
            raise ValueError("Sample size must be at least 1.")
        if int(self.seed) < 0:
            raise ValueError("Seed must be a non-negative whole number.")
        if self.population not in audit.POPULATIONS:
            raise ValueError(f"Unknown population {self.population!r}; choose one of {', '.join(audit.POPULATIONS)}.")
        unknown = [x for x in self.strata if x not in STRATA]
        if unknown:
            raise ValueError(f"Unknown stratum {', '.join(unknown)}; choose from {', '.join(STRATA)}.")

    def population_filters(self) -> Filters:
        if self.filters is None:
            return Filters(month_from=self.month_from, month_to=self.month_to)
        return self.filters.with_months(self.month_from, self.month_to)

    def to_json(self) -> dict:
        f = self.filters
        return {
            "month_from": self.month_from,
            "month_to": self.month_to,
            "size": self.size,
            "seed": self.seed,
            "strata": list(self.strata),
            "flagged_only": self.flagged_only,
            "population": self.population,
            "filters": None
            if f is None
            else {
                "clinic_ids": list(f.clinic_ids),
                "practitioner_ids": list(f.practitioner_ids),
                "care_manager_ids": list(f.care_manager_ids),
                "payers": list(f.payers),
            },
        }

    @classmethod
    def from_json(cls, d: dict) -> SampleRequest:
        fd = d.get("filters")
        f = None
        if fd:
            f = Filters(
                month_from=d["month_from"],
                month_to=d["month_to"],
                clinic_ids=tuple(fd.get("clinic_ids", ())),
                practitioner_ids=tuple(fd.get("practitioner_ids", ())),
                care_manager_ids=tuple(fd.get("care_manager_ids", ())),
                payers=tuple(fd.get("payers", ())),
            )
        return cls(
            month_from=int(d["month_from"]),
            month_to=int(d["month_to"]),
            size=int(d["size"]),
            seed=int(d["seed"]),
            strata=tuple(d.get("strata", ())),
            flagged_only=bool(d.get("flagged_only")),
            filters=f,
            population=d.get("population", "billed"),
        )


@dataclass
class Sample:
    request: SampleRequest
    items: pd.DataFrame  # position, patient_id, service_month, stratum (+ item_id once saved)
    population_size: int
    allocation: dict[str, dict[str, int]] = field(default_factory=dict)  # stratum -> {"population", "sampled"}
    outlier_threshold: float | None = None
    id: int | None = None
    name: str | None = None
    created_by: str | None = None
    created_at: dt.datetime | None = None
    status: str = "open"

    def pairs(self) -> list[tuple[int, int]]:
        return list(zip(self.items["patient_id"].astype(int), self.items["service_month"].astype(int)))


# --------------------------------------------------------------------------- population
def population(conn: Connection, request: SampleRequest, rs: rules_mod.RuleSet | None = None) -> pd.DataFrame:
    """Billed CCM patient-months in the period (or, with ``population="prebill"``, the months whose minutes support
    a code and are not billed yet) with the attributes strata use, sorted by (month, patient)."""
    rs = rs or rules_mod.load(conn)
    f = request.population_filters()
    if request.population == "prebill":
        return _prebill_population(conn, request, f, rs)
    cl, c = s.claim_line, s.claim
    pm = audit.billed_patient_months_select(f, rs).subquery("billed_pm")
    ccm = rs.codes_of(family="CCM")
    attrs = (
        select(
            cl.c.patient_id,
            cl.c.dos_month.label("service_month"),
            func.min(cl.c.practitioner_id).label("claim_practitioner_id"),
            func.min(c.c.payer).label("claim_payer"),
        )
        .select_from(cl.join(c, c.c.id == cl.c.claim_id))
        .where(
            cl.c.dos_month.between(f.month_from, f.month_to),
            cl.c.cpt_code.in_(ccm),
            cl.c.claim_id.not_in(replaced_claims()),
        )
        .group_by(cl.c.patient_id, cl.c.dos_month)
    ).subquery("claim_attrs")
    q = select(pm.c.patient_id, pm.c.service_month, attrs.c.claim_practitioner_id, attrs.c.claim_payer).select_from(
        pm.join(attrs, and_(attrs.c.patient_id == pm.c.patient_id, attrs.c.service_month == pm.c.service_month))
    )
    pop = pd.DataFrame(conn.execute(q).all(), columns=["patient_id", "service_month", "practitioner_id", "payer"])
    cols = [
        "patient_id",
        "service_month",
        "practitioner_id",
        "payer",
        "care_manager_id",
        "counted_minutes",
        "codes",
        "flagged",
    ]
    if pop.empty:
        return pd.DataFrame(columns=cols)
    em = read.patient_months(conn, f, rs)
    billed_cols = [f"billed_{code}" for code in ccm if f"billed_{code}" in em.columns]
    em = em.copy()
    em["codes"] = _code_combo(em, billed_cols)
    flag_cols = [c for c in ENGINE_FINDING_COLUMNS if c in em.columns]
    excl_cols = [c for c in EXCLUDED_MINUTE_COLUMNS if c in em.columns]
    em["flagged"] = em[flag_cols].astype(bool).any(axis=1) | (em[excl_cols].astype(int) > 0).any(axis=1)
    pop = pop.merge(
        em[["patient_id", "service_month", "care_manager_id", "counted_minutes", "codes", "flagged"]],
        on=["patient_id", "service_month"],
        how="left",
    )
    pop["counted_minutes"] = pop["counted_minutes"].fillna(0).astype(int)
    pop["flagged"] = pop["flagged"].fillna(False).astype(bool)
    pop["codes"] = pop["codes"].fillna("none")
    if request.flagged_only:
        pop = pop[pop["flagged"]]
    return pop.sort_values(["service_month", "patient_id"]).reset_index(drop=True)[cols]


def _prebill_population(conn: Connection, request: SampleRequest, f: Filters, rs) -> pd.DataFrame:
    """The pre-bill population with the same attributes: the month's practitioner and payer are the patient's,
    codes are the supported ones, flagged = a prerequisite fails or minutes were excluded."""
    cols = [
        "patient_id",
        "service_month",
        "practitioner_id",
        "payer",
        "care_manager_id",
        "counted_minutes",
        "codes",
        "flagged",
    ]
    pm = audit.unbilled_patient_months_select(conn, f, rs).subquery("prebill_pm")
    pop = pd.DataFrame(
        conn.execute(select(pm.c.patient_id, pm.c.service_month)).all(), columns=["patient_id", "service_month"]
    )
    if pop.empty:
        return pd.DataFrame(columns=cols)
    st = read.billing_status(conn, f, rs)
    supported = [c for c in st.columns if c.startswith("supported_") and c[len("supported_") :] in rs.codes]
    st["codes"] = _code_combo(st, supported)
    excl_cols = [c for c in EXCLUDED_MINUTE_COLUMNS if c in st.columns]
    st["flagged"] = (st["failed_prerequisites"] != "") | (st[excl_cols].astype(int) > 0).any(axis=1)
    st = st.rename(columns={"practitioner_id": "month_practitioner_id"})
    st["practitioner_id"] = st["month_practitioner_id"]
    pop = pop.merge(st[cols], on=["patient_id", "service_month"], how="inner")
    if request.flagged_only:
        pop = pop[pop["flagged"]]
    return pop.sort_values(["service_month", "patient_id"]).reset_index(drop=True)[cols]


def _code_combo(em: pd.DataFrame, billed_cols: list[str]) -> list[str]:
    """'99490+99439' per row, codes in rule-file order (column-wise, no per-row apply)."""
    out = [[] for _ in range(len(em))]
    for col in billed_cols:
        for i in np.flatnonzero(em[col].astype(int).to_numpy() > 0):
            out[i].append(col.split("_", 1)[1])  # billed_<code> or supported_<code>
    return ["+".join(x) if x else "none" for x in out]


def outlier_threshold(minutes: pd.Series) -> float | None:
    """Tukey's upper fence: counted minutes above Q3 + 1.5 x IQR are high-minutes outliers."""
    if minutes.empty:
        return None
    q1, q3 = np.percentile(minutes.astype(float), [25, 75])
    return float(q3 + 1.5 * (q3 - q1))


def stratum_labels(pop: pd.DataFrame, strata: tuple[str, ...], threshold: float | None) -> pd.Series:
    """The stratum of each population row, e.g. 'payer=Medicare Part B | code=99490+99439'."""
    if not strata or pop.empty:
        return pd.Series(["all"] * len(pop), index=pop.index, dtype=object)
    parts = []
    for key in strata:
        if key == "staff":
            vals = "care manager #" + pop["care_manager_id"].map(lambda v: "none" if pd.isna(v) else str(int(v)))
        elif key == "code":
            vals = pop["codes"].astype(str)
        elif key == "payer":
            vals = pop["payer"].fillna("unknown").astype(str)
        elif key == "practitioner":
            vals = "practitioner #" + pop["practitioner_id"].map(lambda v: "none" if pd.isna(v) else str(int(v)))
        else:  # high_minutes
            thr = threshold if threshold is not None else math.inf
            vals = pd.Series(
                np.where(pop["counted_minutes"] > thr, "high-minutes outlier", "typical minutes"), index=pop.index
            )
        parts.append(key + "=" + vals)
    out = parts[0]
    for p in parts[1:]:
        out = out + " | " + p
    return out


def allocate(counts: dict[str, int], size: int) -> dict[str, int]:
    """Proportional allocation (largest remainder), at least 1 per non-empty stratum, never more than it holds.

    Ties break on the stratum label so the allocation is a pure function of its inputs.  When there are
    more non-empty strata than ``size``, every stratum still gets one (the sample is then larger than asked).
    """
    counts = {k: int(v) for k, v in sorted(counts.items()) if int(v) > 0}
    total = sum(counts.values())
    if total == 0:
        return {}
    if size >= total:
        return dict(counts)
    quota = {k: size * n / total for k, n in counts.items()}
    alloc = {k: min(counts[k], max(1, math.floor(q))) for k, q in quota.items()}
    # hand out what is left by largest remainder
    while sum(alloc.values()) < size:
        open_ = [k for k in counts if alloc[k] < counts[k]]
        if not open_:
            break
        k = max(open_, key=lambda k: (quota[k] - alloc[k], _rev(k)))
        alloc[k] += 1
    # the minimum of 1 may overshoot: take back from the most over-allocated strata that have more than 1
    while sum(alloc.values()) > size:
        over = [k for k in counts if alloc[k] > 1]
        if not over:
            break
        k = max(over, key=lambda k: (alloc[k] - quota[k], _rev(k)))
        alloc[k] -= 1
    return alloc


def _rev(label: str) -> tuple:
    """Tie-break key that prefers the alphabetically first label under ``max``."""
    return tuple(-ord(ch) for ch in label)


def draw(pop: pd.DataFrame, request: SampleRequest) -> Sample:
    """The deterministic draw: same population + request => same sample."""
    pop = pop.sort_values(["service_month", "patient_id"]).reset_index(drop=True)
    threshold = outlier_threshold(pop["counted_minutes"]) if "high_minutes" in request.strata else None
    labels = stratum_labels(pop, request.strata, threshold)
    counts = labels.value_counts().to_dict()
    alloc = allocate(counts, int(request.size))
    rng = np.random.default_rng(int(request.seed))
    picked = []
    for label in sorted(alloc):
        idx = np.flatnonzero(labels.to_numpy() == label)  # already in (month, patient) order
        n = alloc[label]
        chosen = idx if n >= len(idx) else np.sort(rng.choice(idx, size=n, replace=False))
        part = pop.loc[chosen, ["patient_id", "service_month"]].copy()
        part["stratum"] = label
        picked.append(part)
    items = (
        pd.concat(picked, ignore_index=True)
        if picked
        else pd.DataFrame(columns=["patient_id", "service_month", "stratum"])
    )
    items = items.sort_values(["service_month", "patient_id"]).reset_index(drop=True)
    items.insert(0, "position", np.arange(1, len(items) + 1))
    items["patient_id"] = items["patient_id"].astype(int)
    items["service_month"] = items["service_month"].astype(int)
    allocation = {k: {"population": int(counts[k]), "sampled": int(alloc.get(k, 0))} for k in sorted(counts)}
    return Sample(
        request=request, items=items, population_size=len(pop), allocation=allocation, outlier_threshold=threshold
    )


def pull_sample(conn: Connection, request: SampleRequest) -> Sample:
    """Population + draw (not saved: see ``save_sample``)."""
    return draw(population(conn, request), request)


# --------------------------------------------------------------------------- storage
def save_sample(conn: Connection, sample: Sample, created_by: str, name: str | None = None) -> int:
    """Store the pull (who, when, inputs as JSON, allocation) and its items; returns the sample id."""
    if not created_by:
        raise ValueError("A sample needs the name of the user who pulled it.")
    if sample.items.empty:
        raise ValueError("The sample is empty: there are no patient-months to audit in that period.")
    r = sample.request
    name = (name or "").strip() or (
        f"{format_month(r.month_from)} to {format_month(r.month_to)}, n={r.size}, "
        f"seed {r.seed}" + (f", by {', '.join(r.strata)}" if r.strata else "")
    )
    now = dt.datetime.now().replace(microsecond=0)
    inputs = r.to_json() | {
        "population_size": sample.population_size,
        "allocation": sample.allocation,
        "outlier_threshold": sample.outlier_threshold,
    }
    sid = conn.execute(
        s.audit_sample.insert()
        .values(
            name=name[:200],
            created_by=created_by,
            created_at=now,
            month_from=r.month_from,
            month_to=r.month_to,
            size=int(r.size),
            seed=int(r.seed),
            strata=json.dumps(inputs, sort_keys=True),
            status="open",
        )
        .returning(s.audit_sample.c.id)
    ).scalar_one()
    conn.execute(
        s.audit_sample_item.insert(),
        [
            {
                "sample_id": sid,
                "position": int(p),
                "patient_id": int(pid),
                "service_month": int(m),
                "stratum": str(st)[:100],
            }
            for p, pid, m, st in zip(
                sample.items["position"],
                sample.items["patient_id"],
                sample.items["service_month"],
                sample.items["stratum"],
            )
        ],
    )
    pm_store.record_write(conn, pm_store.Scope.for_tables({"audit_sample", "audit_sample_item"}))
    sample.id, sample.name, sample.created_by, sample.created_at = int(sid), name, created_by, now
    return int(sid)


def load_sample(conn: Connection, sample_id: int) -> Sample:
    """Reopen a stored sample exactly as it was pulled."""
    row = conn.execute(select(s.audit_sample).where(s.audit_sample.c.id == int(sample_id))).mappings().first()
    if row is None:
        raise ValueError(f"No audit sample #{sample_id}.")
    inputs = json.loads(row["strata"] or "{}")
    inputs.setdefault("month_from", row["month_from"])
    inputs.setdefault("month_to", row["month_to"])
    inputs.setdefault("size", row["size"])
    inputs.setdefault("seed", row["seed"])
    request = SampleRequest.from_json(inputs)
    it = s.audit_sample_item
    items = pd.DataFrame(
        conn.execute(
            select(it.c.position, it.c.patient_id, it.c.service_month, it.c.stratum, it.c.id.label("item_id"))
            .where(it.c.sample_id == int(sample_id))
            .order_by(it.c.position)
        ).all(),
        columns=["position", "patient_id", "service_month", "stratum", "item_id"],
    )
    return Sample(
        request=request,
        items=items,
        population_size=int(inputs.get("population_size", 0)),
        allocation=inputs.get("allocation", {}),
        outlier_threshold=inputs.get("outlier_threshold"),
        id=int(row["id"]),
        name=row["name"],
        created_by=row["created_by"],
        created_at=row["created_at"],
        status=row["status"],
    )


def redraw_matches(conn: Connection, sample_id: int) -> bool:
    """Re-pull a stored sample from its inputs: True when today's data gives the same patient-months."""
    stored = load_sample(conn, sample_id)
    again = pull_sample(conn, stored.request)
    return stored.pairs() == again.pairs()


def set_status(conn: Connection, sample_id: int, status: str) -> None:
    if status not in ("open", "closed"):
        raise ValueError("Status must be open or closed.")
    conn.execute(update(s.audit_sample).where(s.audit_sample.c.id == int(sample_id)).values(status=status))
    pm_store.record_write(conn, pm_store.Scope.for_tables({"audit_sample"}))


# --------------------------------------------------------------------------- findings
def final_result(engine_result: str | None, verdict: str) -> str:
    """The audited result: the checklist's when the auditor agrees; flipped when not (an n/a the auditor
    disputes counts as a fail: the auditor says the requirement applies and was not shown to be met)."""
    if verdict == "agree":
        return engine_result or "na"
    return "pass" if engine_result == "fail" else "fail"


def record_finding(
    conn: Connection,
    sample_item_id: int,
    item_key: str,
    verdict: str,
    auditor: str,
    comment: str = "",
    engine_result: str | None = None,
) -> None:
    """Insert or replace the auditor's finding on one checklist item of one sampled patient-month."""
    if item_key not in audit.ITEM_KEYS:
        raise ValueError(f"Unknown checklist item {item_key!r}.")
    if verdict not in VERDICTS:
        raise ValueError("Verdict must be 'agree' or 'disagree'.")
    if engine_result is not None and engine_result not in audit.RESULTS:
        raise ValueError(f"Unknown checklist result {engine_result!r}.")
    comment = (comment or "").strip()
    if verdict == "disagree" and not comment:
        raise ValueError("Say why you disagree: a disagreement needs a comment.")
    if not auditor:
        raise ValueError("A finding needs the auditor's user name.")
    f = s.audit_finding
    exists_item = conn.execute(
        select(s.audit_sample_item.c.id).where(s.audit_sample_item.c.id == int(sample_item_id))
    ).first()
    if exists_item is None:
        raise ValueError(f"No sampled patient-month #{sample_item_id}.")
    values = dict(
        engine_result=engine_result,
        verdict=verdict,
        comment=comment or None,
        auditor=auditor,
        recorded_at=dt.datetime.now().replace(microsecond=0),
    )
    done = conn.execute(
        update(f).where(f.c.sample_item_id == int(sample_item_id), f.c.item_key == item_key).values(**values)
    ).rowcount
    if not done:
        conn.execute(f.insert().values(sample_item_id=int(sample_item_id), item_key=item_key, **values))
    pm_store.record_write(conn, pm_store.Scope.for_tables({"audit_finding"}))


def clear_finding(conn: Connection, sample_item_id: int, item_key: str) -> None:
    f = s.audit_finding
    conn.execute(delete(f).where(f.c.sample_item_id == int(sample_item_id), f.c.item_key == item_key))
    pm_store.record_write(conn, pm_store.Scope.for_tables({"audit_finding"}))


def findings(conn: Connection, sample_id: int) -> pd.DataFrame:
    """Every recorded finding of a sample, with the final (auditor-adjusted) result."""
    f, it = s.audit_finding, s.audit_sample_item
    df = pd.DataFrame(
        conn.execute(
            select(
                it.c.id.label("item_id"),
                it.c.position,
                it.c.patient_id,
                it.c.service_month,
                f.c.item_key,
                f.c.engine_result,
                f.c.verdict,
                f.c.comment,
                f.c.auditor,
                f.c.recorded_at,
            )
            .select_from(f.join(it, it.c.id == f.c.sample_item_id))
            .where(it.c.sample_id == int(sample_id))
            .order_by(it.c.position, f.c.item_key)
        ).all(),
        columns=[
            "item_id",
            "position",
            "patient_id",
            "service_month",
            "item_key",
            "engine_result",
            "verdict",
            "comment",
            "auditor",
            "recorded_at",
        ],
    )
    df["final_result"] = [final_result(e, v) for e, v in zip(df["engine_result"], df["verdict"])]
    return df


def _final_fail_expr(f=s.audit_finding):
    return case(
        (and_(f.c.verdict == "agree", f.c.engine_result == "fail"), 1),
        (and_(f.c.verdict == "disagree", func.coalesce(f.c.engine_result, "na") != "fail"), 1),
        else_=0,
    )


def list_samples(conn: Connection) -> pd.DataFrame:
    """Every stored sample, newest first, with progress (fully reviewed patient-months) and pass rate.

    A patient-month is reviewed when every checklist item has a finding; it passes when no item's final
    result is a fail.  Pass rate = passed / reviewed (None until something is reviewed).  All in SQL.
    """
    a, it, f = s.audit_sample, s.audit_sample_item, s.audit_finding
    n_items = len(audit.ITEM_KEYS)
    per_item = (
        select(
            it.c.id,
            it.c.sample_id,
            func.count(f.c.id).label("n_findings"),
            func.coalesce(func.sum(_final_fail_expr(f)), 0).label("n_fail"),
        )
        .select_from(it.outerjoin(f, f.c.sample_item_id == it.c.id))
        .group_by(it.c.id, it.c.sample_id)
    ).subquery("per_item")
    reviewed = per_item.c.n_findings >= n_items
    per_sample = (
        select(
            per_item.c.sample_id,
            func.count().label("n_items"),
            func.sum(case((reviewed, 1), else_=0)).label("reviewed"),
            func.sum(case((and_(reviewed, per_item.c.n_fail == 0), 1), else_=0)).label("passed"),
            func.sum(per_item.c.n_findings).label("findings"),
        ).group_by(per_item.c.sample_id)
    ).subquery("per_sample")
    q = (
        select(
            a.c.id,
            a.c.name,
            a.c.created_by,
            a.c.created_at,
            a.c.month_from,
            a.c.month_to,
            a.c.size,
            a.c.seed,
            a.c.status,
            func.coalesce(per_sample.c.n_items, 0).label("items"),
            func.coalesce(per_sample.c.reviewed, 0).label("reviewed"),
            func.coalesce(per_sample.c.passed, 0).label("passed"),
            func.coalesce(per_sample.c.findings, 0).label("findings"),
        )
        .select_from(a.outerjoin(per_sample, per_sample.c.sample_id == a.c.id))
        .order_by(a.c.created_at.desc(), a.c.id.desc())
    )
    df = pd.DataFrame(
        conn.execute(q).all(),
        columns=[
            "id",
            "name",
            "created_by",
            "created_at",
            "month_from",
            "month_to",
            "size",
            "seed",
            "status",
            "items",
            "reviewed",
            "passed",
            "findings",
        ],
    )
    for col in ("items", "reviewed", "passed", "findings"):
        df[col] = df[col].astype(int)
    df["progress"] = [r / i if i else 0.0 for r, i in zip(df["reviewed"], df["items"])]
    df["pass_rate"] = [p / r if r else None for p, r in zip(df["passed"], df["reviewed"])]
    return df


def sample_checklist(conn: Connection, sample: Sample, checklist: pd.DataFrame | None = None) -> pd.DataFrame:
    """The live checklist for every item of a sample, joined with the findings recorded so far.

    ``checklist``: the sample's ``audit.checklist_for_months`` frame when the caller already has it (the page
    caches it per data version; findings are read fresh every time).
    """
    cl = audit.checklist_for_months(conn, sample.pairs()) if checklist is None else checklist
    items = sample.items[
        ["position", "patient_id", "service_month", "stratum"]
        + (["item_id"] if "item_id" in sample.items.columns else [])
    ]
    out = items.merge(cl, on=["patient_id", "service_month"], how="left")
    if sample.id is not None:
        fd = findings(conn, sample.id)[
            ["item_id", "item_key", "verdict", "comment", "auditor", "recorded_at", "engine_result", "final_result"]
        ]
        fd = fd.rename(columns={"engine_result": "result_when_recorded"})
        out = out.merge(fd, on=["item_id", "item_key"], how="left")
    else:
        for col in ("verdict", "comment", "auditor", "recorded_at", "result_when_recorded", "final_result"):
            out[col] = None
    return out.sort_values(["position"], kind="stable").reset_index(drop=True)


def sample_progress(checklist_with_findings: pd.DataFrame) -> dict:
    """Progress and pass rates of one sample from ``sample_checklist`` output (small frame)."""
    df = checklist_with_findings
    if df.empty:
        return {
            "items": 0,
            "reviewed": 0,
            "passed": 0,
            "pass_rate": None,
            "engine_pass_rate": None,
            "agreement_rate": None,
        }
    g = df.groupby("position")
    items = g.ngroups
    engine_pass = (~g["result"].apply(lambda r: (r == "fail").any())).sum()
    reviewed_mask = g["verdict"].apply(lambda v: v.notna().all())
    passed_mask = g["final_result"].apply(lambda r: not (r == "fail").any())
    reviewed = int(reviewed_mask.sum())
    passed = int((reviewed_mask & passed_mask).sum())
    judged = df[df["verdict"].notna()]
    return {
        "items": int(items),
        "reviewed": reviewed,
        "passed": passed,
        "pass_rate": passed / reviewed if reviewed else None,
        "engine_pass_rate": float(engine_pass) / items if items else None,
        "agreement_rate": float((judged["verdict"] == "agree").mean()) if len(judged) else None,
    }
