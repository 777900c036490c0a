"""The pre-bill status and the audit checklist agree on every demo patient-month (both databases).

The billing status (``engine.read.billing_status``: the engine's patient-months, stored when current, judged in
one statement per month range) and the audit checklist (``audit.checklist_for_months``: its own population,
scope and practitioner lookup, then the checklist items) are two ways to the same prerequisite rules.  For each
patient-month both see, the prerequisites that fail must be the same; a month the status calls ``ready`` must
pass (or not need) every prerequisite item, a ``hold`` must fail at least one.
"""

from __future__ import annotations

import pandas as pd

from ccm_core.audit import checklist as audit
from ccm_core.engine import compliance, read
from ccm_core.engine.filters import Filters

KEY = ["patient_id", "service_month"]


def _failed_items(df: pd.DataFrame) -> dict[tuple[int, int], set[str]]:
    pre = df[df["item_key"].isin(compliance.PREREQUISITES)]
    out: dict[tuple[int, int], set[str]] = {}
    for p, m, item, res in zip(pre["patient_id"], pre["service_month"], pre["item_key"], pre["result"]):
        s = out.setdefault((int(p), int(m)), set())
        if res == "fail":
            s.add(item)
    return out


def test_prebill_status_and_audit_checklist_agree_on_every_demo_patient_month(demo_engine, demo_report):
    f = Filters(month_from=demo_report.month_from, month_to=demo_report.end_month)
    with demo_engine.connect() as conn:
        status = read.billing_status(conn, f)
        billed = _failed_items(audit.checklist_for_months(conn, f, population="billed"))
        prebill = _failed_items(audit.checklist_for_months(conn, f, population="prebill"))
    assert not set(billed) & set(prebill)  # a month is billed or not, never both
    st = {
        (int(p), int(m)): (s, set(x for x in fp.split(", ") if x))
        for p, m, s, fp in zip(
            status["patient_id"], status["service_month"], status["billing_status"], status["failed_prerequisites"]
        )
    }
    counts = status["billing_status"].value_counts().to_dict()
    # the demo has every status, and holds of more than one kind (planted failures in the open month)
    assert {"ready", "hold", "short", "billed"} <= set(counts), counts
    mismatches = []
    for pm, items in prebill.items():
        state, failed = st[pm]  # every unbilled month with CCM time has a status
        if failed != items:
            mismatches.append((pm, state, failed, items))
        if state == "ready" and items:
            mismatches.append((pm, "ready but the audit fails", items))
        if state == "hold" and not items:
            mismatches.append((pm, "hold but the audit passes"))
    for pm, items in billed.items():
        state, failed = st[pm]
        # a billed month's conflict item also judges the claims (second practitioner, paid twice): the pre-bill
        # conflict rule is a part of it, so it may fail where the status does not
        if failed - items or (items - failed) - {"no_conflicting_claim"}:
            mismatches.append((pm, state, failed, items))
    assert not mismatches, mismatches[:10]
    held = status[status["billing_status"] == "hold"]
    assert len(held) > 0 and (held["hold_reasons"].str.len() > 0).all()
    assert len(prebill) > 0 and len(billed) > 100
    # every month the status holds is in the pre-bill audit population (CCM time, no CCM claim)
    assert {(int(p), int(m)) for p, m in zip(held["patient_id"], held["service_month"])} <= set(prebill)


def test_holds_by_reason_from_the_status_frame_is_the_statements(demo_engine, demo_report):
    """The Holds tab words the reasons from ``billing_status``' frame (``holds_from_status``): the same counts and
    dollars as ``holds_by_reason``'s own statement, reason by reason, on every demo month with holds."""
    f = Filters(month_from=demo_report.month_from, month_to=demo_report.end_month)
    with demo_engine.connect() as conn:
        by = read.holds_by_reason(conn, f)
        from_frame = read.holds_from_status(read.billing_status(conn, f))
    assert len(by) >= 2 and by.attrs["total"]["patient_months"] > 0  # holds of several kinds
    pd.testing.assert_frame_equal(from_frame, by)
    assert from_frame.attrs == by.attrs
