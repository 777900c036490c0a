"""The checklist on the demo database finds every failure the generator planted (both backends)."""

from __future__ import annotations

import pytest

from ccm_core.audit import checklist as audit
from ccm_core.engine.filters import Filters


@pytest.fixture
def demo_checklist(demo_engine, demo_report):
    f = Filters(month_from=demo_report.month_from, month_to=demo_report.end_month)
    with demo_engine.connect() as conn:
        df = audit.checklist_for_months(conn, f)
    return df


def test_every_planted_failure_fails_its_item(demo_checklist, demo_report):
    df = demo_checklist
    results = {(r.patient_id, r.service_month, r.item_key): r.result for r in df.itertuples()}
    billed_months = df.groupby("patient_id")["service_month"].apply(sorted).to_dict()
    checked, missed = 0, []
    for kind, item in audit.PLANTED_ITEM.items():
        planted = demo_report.planted.get(kind, [])
        assert planted, f"the demo planted no {kind}"
        for pid, month in planted:
            months = [month] if month is not None else billed_months.get(pid, [])
            for m in months:
                checked += 1
                if results.get((pid, m, item)) != "fail":
                    missed.append((kind, pid, m, results.get((pid, m, item))))
    assert not missed, missed
    assert checked >= 3 * len(audit.PLANTED_ITEM)


def test_patient_level_failures_persist_in_later_months(demo_checklist, demo_report):
    """Consent / care-plan / initiating-visit problems are not fixed by time passing."""
    df = demo_checklist
    results = {(r.patient_id, r.service_month, r.item_key): r.result for r in df.itertuples()}
    for kind in (
        "missing_consent",
        "undated_consent",
        "incomplete_consent",
        "practitioner_change_no_reconsent",
        "no_care_plan",
        "no_initiating_visit",
    ):
        item = audit.PLANTED_ITEM[kind]
        for pid, month in demo_report.planted[kind]:
            later = sorted(m for (p, m, k) in results if p == pid and k == item and month is not None and m >= month)
            assert later and all(results[(pid, m, item)] == "fail" for m in later), (kind, pid)


def test_shape_and_invariants(demo_checklist, demo_engine, demo_report):
    df = demo_checklist
    per_pm = df.groupby(["patient_id", "service_month"]).size()
    assert (per_pm == len(audit.ITEMS)).all()
    assert set(df["result"]) <= set(audit.RESULTS)
    assert df["evidence"].str.len().min() > 10
    with demo_engine.connect() as conn:
        pop = audit.billed_patient_months(
            conn, Filters(month_from=demo_report.month_from, month_to=demo_report.end_month)
        )
    assert len(per_pm) == len(pop)
    # a clean practice: most billed months pass every item, but not all (failures were planted)
    summary = audit.summarize(df)
    share = summary["all_pass"].mean()
    assert 0.5 < share < 1.0
    # eligibility never fails on demo data: every billed patient has two chronic conditions
    assert (df[df.item_key == "eligibility"]["result"] == "pass").all()


def test_set_based_equals_pairs(demo_checklist, demo_engine):
    """The month-wide run and a run over explicit pairs (a sample) agree row for row."""
    df = demo_checklist
    fails = df[df.result == "fail"][["patient_id", "service_month"]].drop_duplicates().head(8)
    pairs = list(map(tuple, fails.to_numpy()))
    with demo_engine.connect() as conn:
        again = audit.checklist_for_months(conn, pairs)
    merged = again.merge(df, on=["patient_id", "service_month", "item_key"], suffixes=("", "_month"))
    assert len(merged) == len(pairs) * len(audit.ITEMS)
    assert (merged["result"] == merged["result_month"]).all()
    assert (merged["evidence"] == merged["evidence_month"]).all()
