"""Audit sample pulls: deterministic, stratified as asked, stored and reopened unchanged; findings and
pass rates worked by hand (both backends)."""

from __future__ import annotations

import datetime as dt
import json

import pytest
from sqlalchemy import func, select

from ccm_core.audit import checklist as audit
from ccm_core.audit import sampling
from ccm_core.engine.filters import Filters
from ccm_core.storage import schema as s

from builders import Builder

D = dt.date


# --------------------------------------------------------------------------- allocation (pure)
def test_allocation_is_proportional_by_largest_remainder():
    assert sampling.allocate({"a": 50, "b": 30, "c": 20}, 10) == {"a": 5, "b": 3, "c": 2}
    # quotas 3.5 / 2.1 / 1.4 -> floors 3/2/1 (6), the one left goes to the largest remainder (a: .5)
    assert sampling.allocate({"a": 35, "b": 21, "c": 14}, 7) == {"a": 4, "b": 2, "c": 1}


def test_allocation_gives_every_stratum_at_least_one_and_never_more_than_it_holds():
    # quotas 4.85 / 0.10 / 0.05 -> 4 + 1 + 1 = 6 > 5: one taken back from the only stratum with more than 1
    assert sampling.allocate({"a": 97, "b": 2, "c": 1}, 5) == {"a": 3, "b": 1, "c": 1}
    assert sampling.allocate({"a": 3, "b": 2}, 10) == {"a": 3, "b": 2}
    assert sampling.allocate({"a": 5, "b": 5, "c": 5}, 2) == {"a": 1, "b": 1, "c": 1}  # more strata than size
    assert sampling.allocate({"a": 0, "b": 4}, 2) == {"b": 2}
    assert sampling.allocate({}, 5) == {}


def test_request_validation_messages():
    with pytest.raises(ValueError, match="backwards"):
        sampling.SampleRequest(202505, 202503, 10, 1)
    with pytest.raises(ValueError, match="at least 1"):
        sampling.SampleRequest(202503, 202503, 0, 1)
    with pytest.raises(ValueError, match="Unknown stratum colour"):
        sampling.SampleRequest(202503, 202503, 5, 1, ("colour",))


# --------------------------------------------------------------------------- reproducibility on the demo data
@pytest.fixture
def demo_request(demo_report):
    return lambda **kw: sampling.SampleRequest(
        month_from=demo_report.month_from, month_to=demo_report.end_month, **({"size": 20, "seed": 11} | kw)
    )


def test_same_seed_same_sample_different_seed_different(demo_engine, demo_request):
    with demo_engine.connect() as conn:
        a = sampling.pull_sample(conn, demo_request())
        b = sampling.pull_sample(conn, demo_request())
        c = sampling.pull_sample(conn, demo_request(seed=12))
        pop = sampling.population(conn, demo_request())
    assert a.pairs() == b.pairs()
    assert a.pairs() != c.pairs()
    assert len(a.items) == 20 and a.items["position"].tolist() == list(range(1, 21))
    assert len(set(a.pairs())) == 20
    population = set(zip(pop["patient_id"], pop["service_month"]))
    assert set(a.pairs()) <= population
    assert a.population_size == len(pop)


def test_strata_allocation_is_respected_on_demo(demo_engine, demo_request):
    with demo_engine.connect() as conn:
        smp = sampling.pull_sample(conn, demo_request(size=15, strata=("payer",)))
        pop = sampling.population(conn, demo_request())
    counts = pop["payer"].value_counts().to_dict()
    expected = sampling.allocate({f"payer={k}": v for k, v in counts.items()}, 15)
    got = smp.items["stratum"].value_counts().to_dict()
    assert got == expected
    assert all(v >= 1 for v in got.values()) and len(got) == len(counts)
    assert {k: v["population"] for k, v in smp.allocation.items()} == {f"payer={k}": v for k, v in counts.items()}


def test_flagged_only_population_has_engine_findings(demo_engine, demo_request):
    with demo_engine.connect() as conn:
        flagged = sampling.population(conn, demo_request(flagged_only=True))
        everything = sampling.population(conn, demo_request())
    assert 0 < len(flagged) < len(everything)
    assert flagged["flagged"].all()


def test_high_minutes_stratum_uses_tukey_fence(demo_engine, demo_request):
    with demo_engine.connect() as conn:
        smp = sampling.pull_sample(conn, demo_request(size=10, strata=("high_minutes",)))
        pop = sampling.population(conn, demo_request())
    q1, q3 = pop["counted_minutes"].quantile([0.25, 0.75])
    assert smp.outlier_threshold == pytest.approx(q3 + 1.5 * (q3 - q1))
    outliers = int((pop["counted_minutes"] > smp.outlier_threshold).sum())
    assert smp.allocation["high_minutes=high-minutes outlier"]["population"] == outliers
    assert (smp.items["stratum"] == "high_minutes=high-minutes outlier").sum() >= 1


# --------------------------------------------------------------------------- a hand-built population
def _billed(b: Builder, payer: str, month_day: dt.date, minutes=(12, 13), care_manager_id=None) -> int:
    kw = {"payer": payer}
    if care_manager_id:
        kw["care_manager_id"] = care_manager_id
    p = b.enrolled_patient(consent_on=D(2025, 1, 2), **kw)
    b.visit(p, on=D(2024, 12, 1))
    b.times(p, list(minutes), on=month_day)
    b.paid(b.claim(p, [("99490", 1)], dos=month_day.replace(day=28)))
    return p


@pytest.fixture
def cohort(engine):
    """12 billed patient-months in March 2025: 8 Medicare Part B, 3 Medicare Advantage, 1 Medicaid."""
    with engine.begin() as conn:
        b = Builder(conn)
        ids = {"Medicare Part B": [], "Medicare Advantage": [], "Medicaid": []}
        for payer, n in (("Medicare Part B", 8), ("Medicare Advantage", 3), ("Medicaid", 1)):
            for _ in range(n):
                ids[payer].append(_billed(b, payer, D(2025, 3, 3)))
        unbilled = b.enrolled_patient()
        b.time(unbilled, 25, on=D(2025, 3, 3))  # time without a claim: not in the population
    return engine, ids, unbilled


def test_hand_built_strata_and_population(cohort):
    engine, ids, unbilled = cohort
    req = sampling.SampleRequest(202503, 202503, size=6, seed=5, strata=("payer",))
    with engine.connect() as conn:
        pop = sampling.population(conn, req)
        smp = sampling.draw(pop, req)
    assert len(pop) == 12 and unbilled not in set(pop["patient_id"])
    # quotas 4.0 / 1.5 / 0.5 -> 4 / 1 / 1
    assert smp.items["stratum"].value_counts().to_dict() == {
        "payer=Medicare Part B": 4,
        "payer=Medicare Advantage": 1,
        "payer=Medicaid": 1,
    }
    by_payer = {p: k for k, v in ids.items() for p in v}
    for pid, stratum in zip(smp.items["patient_id"], smp.items["stratum"]):
        assert stratum == f"payer={by_payer[pid]}"
    assert set(smp.items["patient_id"]) >= set(ids["Medicaid"])  # the one-member stratum is always drawn


def test_population_order_does_not_change_the_draw(cohort):
    engine, _, _ = cohort
    req = sampling.SampleRequest(202503, 202503, size=5, seed=9)
    with engine.connect() as conn:
        pop = sampling.population(conn, req)
    shuffled = pop.sample(frac=1.0, random_state=3)
    assert sampling.draw(pop, req).pairs() == sampling.draw(shuffled, req).pairs()


def test_save_reopen_and_redraw(cohort):
    engine, _, _ = cohort
    req = sampling.SampleRequest(
        202503,
        202503,
        size=5,
        seed=42,
        strata=("payer", "code"),
        filters=Filters(202503, 202503, payers=("Medicare Part B", "Medicaid")),
    )
    with engine.begin() as conn:
        smp = sampling.pull_sample(conn, req)
        sid = sampling.save_sample(conn, smp, "auditor1", name="Q1 spot check")
    with engine.connect() as conn:
        back = sampling.load_sample(conn, sid)
        row = conn.execute(select(s.audit_sample).where(s.audit_sample.c.id == sid)).mappings().one()
        assert sampling.redraw_matches(conn, sid)
    assert back.pairs() == smp.pairs()
    assert back.items["stratum"].tolist() == smp.items["stratum"].tolist()
    assert back.request == req
    assert back.population_size == 9 and back.created_by == "auditor1" and back.name == "Q1 spot check"
    stored = json.loads(row["strata"])
    assert stored["seed"] == 42 and stored["strata"] == ["payer", "code"]
    assert stored["filters"]["payers"] == ["Medicare Part B", "Medicaid"]
    assert (row["month_from"], row["month_to"], row["size"], row["seed"]) == (202503, 202503, 5, 42)


def test_save_refuses_empty_or_anonymous(cohort):
    engine, _, _ = cohort
    with engine.begin() as conn:
        empty = sampling.pull_sample(conn, sampling.SampleRequest(202406, 202406, 5, 1))
        with pytest.raises(ValueError, match="empty"):
            sampling.save_sample(conn, empty, "auditor1")
        full = sampling.pull_sample(conn, sampling.SampleRequest(202503, 202503, 2, 1))
        with pytest.raises(ValueError, match="user"):
            sampling.save_sample(conn, full, "")
    with engine.connect() as conn:
        assert conn.execute(select(func.count()).select_from(s.audit_sample)).scalar() == 0
        with pytest.raises(ValueError, match="No audit sample #99"):
            sampling.load_sample(conn, 99)


# --------------------------------------------------------------------------- findings and pass rates
def test_findings_progress_and_pass_rate(cohort):
    engine, _, _ = cohort
    with engine.begin() as conn:
        smp = sampling.pull_sample(conn, sampling.SampleRequest(202503, 202503, 3, 7))
        sid = sampling.save_sample(conn, smp, "auditor1")
        items = sampling.load_sample(conn, sid).items
        first, second = int(items["item_id"][0]), int(items["item_id"][1])
        # first patient-month: agree with every (passing) item -> reviewed, passes
        for key in audit.ITEM_KEYS:
            sampling.record_finding(conn, first, key, "agree", "auditor1", engine_result="pass")
        # second: agree with all but one, where the auditor disagrees with a pass -> reviewed, fails
        for key in audit.ITEM_KEYS:
            verdict = "disagree" if key == "care_plan" else "agree"
            sampling.record_finding(
                conn,
                second,
                key,
                verdict,
                "auditor1",
                comment="plan unsigned on paper" if verdict == "disagree" else "",
                engine_result="pass",
            )
        # third: half reviewed
        sampling.record_finding(conn, int(items["item_id"][2]), "consent", "agree", "auditor1", engine_result="pass")
    with engine.connect() as conn:
        listing = sampling.list_samples(conn)
        fd = sampling.findings(conn, sid)
        merged = sampling.sample_checklist(conn, sampling.load_sample(conn, sid))
    row = listing[listing.id == sid].iloc[0]
    assert (row["items"], row["reviewed"], row["passed"], row["findings"]) == (3, 2, 1, 2 * len(audit.ITEMS) + 1)
    assert row["pass_rate"] == pytest.approx(0.5) and row["progress"] == pytest.approx(2 / 3)
    assert fd[fd.verdict == "disagree"]["final_result"].tolist() == ["fail"]
    prog = sampling.sample_progress(merged)
    assert (prog["items"], prog["reviewed"], prog["passed"]) == (3, 2, 1)
    assert prog["pass_rate"] == pytest.approx(0.5)
    assert prog["engine_pass_rate"] == pytest.approx(1.0)  # the clean cohort passes every item as computed
    assert prog["agreement_rate"] == pytest.approx((2 * len(audit.ITEMS)) / (2 * len(audit.ITEMS) + 1))


def test_record_finding_replaces_and_validates(cohort):
    engine, _, _ = cohort
    with engine.begin() as conn:
        sid = sampling.save_sample(
            conn, sampling.pull_sample(conn, sampling.SampleRequest(202503, 202503, 1, 1)), "auditor1"
        )
        item_id = int(sampling.load_sample(conn, sid).items["item_id"][0])
        sampling.record_finding(conn, item_id, "consent", "agree", "auditor1", engine_result="pass")
        sampling.record_finding(conn, item_id, "consent", "disagree", "auditor2", "form unsigned", "pass")
        with pytest.raises(ValueError, match="needs a comment"):
            sampling.record_finding(conn, item_id, "care_plan", "disagree", "auditor1", "  ")
        with pytest.raises(ValueError, match="Unknown checklist item"):
            sampling.record_finding(conn, item_id, "vibes", "agree", "auditor1")
        with pytest.raises(ValueError, match="Verdict"):
            sampling.record_finding(conn, item_id, "consent", "maybe", "auditor1")
        with pytest.raises(ValueError, match="No sampled patient-month"):
            sampling.record_finding(conn, 999999, "consent", "agree", "auditor1")
    with engine.connect() as conn:
        fd = sampling.findings(conn, sid)
    assert len(fd) == 1
    assert (fd["verdict"][0], fd["auditor"][0], fd["comment"][0], fd["final_result"][0]) == (
        "disagree",
        "auditor2",
        "form unsigned",
        "fail",
    )


@pytest.mark.parametrize(
    "engine_result,verdict,final",
    [
        ("pass", "agree", "pass"),
        ("fail", "agree", "fail"),
        ("na", "agree", "na"),
        ("pass", "disagree", "fail"),
        ("fail", "disagree", "pass"),
        ("na", "disagree", "fail"),
    ],
)
def test_final_result_rule(engine_result, verdict, final):
    assert sampling.final_result(engine_result, verdict) == final
