"""Scoped rebuilds for the imports of patients, consents, facility stays and staff: the stored
patient-month (and claim store, and eligibility) is rebuilt only for the patients a file names, and
afterwards equals the live statement.  The diagnosis case is in ``test_pm_store.py``."""

from __future__ import annotations

import pandas as pd
import pytest
from sqlalchemy import select
from test_pm_store import EXAMPLES, _all_equal, _import

from ccm_core import rules
from ccm_core.io.imports.runner import Source
from ccm_core.storage import schema as s
from ccm_core.storage import stored as pm_store

NOBODY = 999_999  # a patient id no file names: its planted stored rows survive a scoped rebuild only


def _ids(engine) -> dict[str, int]:
    with engine.connect() as conn:
        return dict(conn.execute(select(s.patient.c.mrn, s.patient.c.id)).all())


def _stored(engine, patient_id: int, month: int = 202610) -> dict:
    with engine.connect() as conn:
        t = pm_store.store_table(rules.load(conn))
        row = conn.execute(select(t).where(t.c.patient_id == patient_id, t.c.service_month == month)).mappings().one()
        return dict(row)


def _plant(engine, like: int) -> None:
    """Copy ``like``'s stored patient-month and claim rows to NOBODY (the store stays current)."""
    with engine.begin() as conn:
        rs = rules.load(conn)
        t, ct = pm_store.store_table(rs), pm_store.claim_table(rs)
        for row in conn.execute(select(t).where(t.c.patient_id == like)).mappings().all():
            conn.execute(t.insert().values({**row, "patient_id": NOBODY}))
        for row in conn.execute(select(ct).where(ct.c.patient_id == like)).mappings().all():
            conn.execute(ct.insert().values({**row, "patient_id": NOBODY, "claim_id": row["claim_id"] + NOBODY}))


def _planted(engine) -> tuple[int, int]:
    """How many planted rows survived (stored patient-months, stored claims); removes them."""
    with engine.begin() as conn:
        rs = rules.load(conn)
        t, ct = pm_store.store_table(rs), pm_store.claim_table(rs)
        n = conn.execute(t.delete().where(t.c.patient_id == NOBODY)).rowcount
        m = conn.execute(ct.delete().where(ct.c.patient_id == NOBODY)).rowcount
        return n, m


def _others(engine, named: set[int]) -> pd.DataFrame:
    with engine.connect() as conn:
        t = pm_store.store_table(rules.load(conn))
        q = select(t).where(t.c.patient_id.not_in(sorted(named | {NOBODY}))).order_by(t.c.patient_id, t.c.service_month)
        return pd.DataFrame(conn.execute(q).mappings().all())


@pytest.fixture
def spied(engine, monkeypatch):
    """Examples imported; every refresh's scope, its patient set and its outcome recorded."""
    _import(engine, *sorted(p for p in EXAMPLES.iterdir() if p.suffix in (".csv", ".835")))
    _all_equal(engine)
    seen: list[dict] = []
    real = pm_store.refresh

    def spy(conn, rs=None, scope=pm_store.EVERYTHING, **kw):
        who = pm_store._patient_month_patients(scope)
        rec = {"scope": scope, "patients": None if who is None else set(conn.execute(who).scalars())}
        rec["out"] = real(conn, rs, scope, **kw)
        seen.append(rec)
        return rec["out"]

    monkeypatch.setattr(pm_store, "refresh", spy)
    return engine, seen


def _csv(name: str, frame: pd.DataFrame) -> Source:
    return Source(name, frame.to_csv(index=False).encode())


def _rows(file: str) -> pd.DataFrame:
    return pd.read_csv(EXAMPLES / file, dtype=str, keep_default_na=False)


def _check_scoped(rec: dict, named: set[int], *, claims="no") -> None:
    out, scope = rec["out"], rec["scope"]
    assert scope.months is False and scope.patient_batches is not None
    assert rec["patients"] == named
    assert out["mode"] == "months" and out["patients_rebuilt"] is True
    assert out["claims_rebuilt"] == {"no": False, "patients": "patients"}[claims]


def test_a_consent_import_rebuilds_only_its_patients(spied):
    """C-1 (P1001) now dated 2026-10-10: T-1 (15 min, 10-02) and T-2 (12 min, 10-09) fall before it.
    C-2 moves from P1002 to P1006: P1002 has no consent left, so both its entries (14 + 8) are
    pre-consent; the patient it left is rebuilt too."""
    engine, seen = spied
    ids = _ids(engine)
    _plant(engine, ids["P1005"])
    before = _others(engine, {ids["P1001"], ids["P1002"], ids["P1006"]})
    assert _stored(engine, ids["P1001"])["excluded_pre_consent"] == 0
    c = _rows("consents.csv")
    c.loc[c.external_id == "C-1", "consent_date"] = "2026-10-10"
    c.loc[c.external_id == "C-2", "mrn"] = "P1006"
    _import(engine, _csv("consents.csv", c[c.external_id.isin(["C-1", "C-2"])]))
    rec = seen[-1]
    assert rec["scope"].patients_also == (ids["P1001"], ids["P1002"])  # the updated rows' owners before
    _check_scoped(rec, {ids["P1001"], ids["P1002"], ids["P1006"]})
    assert rec["out"]["eligible_rebuilt"] is False and rec["out"]["enrolled_rebuilt"] is False
    p1001, p1002 = _stored(engine, ids["P1001"]), _stored(engine, ids["P1002"])
    assert (p1001["excluded_pre_consent"], p1001["counted_minutes"]) == (27, 18)
    assert (p1002["excluded_pre_consent"], p1002["counted_minutes"]) == (22, 0)
    assert _planted(engine) == (1, 1)  # NOBODY's rows were left alone
    pd.testing.assert_frame_equal(_others(engine, {ids["P1001"], ids["P1002"], ids["P1006"]}), before)
    _all_equal(engine)


def test_a_facility_stay_import_rebuilds_only_its_patient(spied):
    """A stay for P1001 from 2026-10-15 to 10-17 covers T-3 (18 min on 10-16): inpatient, not counted."""
    engine, seen = spied
    ids = _ids(engine)
    _plant(engine, ids["P1005"])
    assert _stored(engine, ids["P1001"])["counted_minutes"] == 45
    stay = pd.DataFrame(
        [
            {
                "external_id": "ST-2",
                "mrn": "P1001",
                "kind": "inpatient",
                "admit_date": "2026-10-15",
                "discharge_date": "2026-10-17",
                "facility_name": "Riverbend General Hospital",
            }
        ]
    )
    _import(engine, _csv("facility_stays.csv", stay))
    _check_scoped(seen[-1], {ids["P1001"]})
    row = _stored(engine, ids["P1001"])
    assert (row["excluded_inpatient"], row["counted_minutes"]) == (18, 27)
    assert _planted(engine) == (1, 1)
    _all_equal(engine)


def test_a_staff_import_rebuilds_the_patients_their_entries_are_for(spied):
    """S003 (a scheduler, non-clinical) logged T-7 (5 min) for P1003 only; marked clinical, those
    minutes count: P1003 goes from 17 counted and 5 excluded to 22 and 0; nobody else is rebuilt."""
    engine, seen = spied
    ids = _ids(engine)
    _plant(engine, ids["P1005"])
    row = _stored(engine, ids["P1003"])
    assert (row["counted_minutes"], row["excluded_non_clinical"]) == (17, 5)
    st = _rows("staff.csv")
    st.loc[st.external_id == "S003", "is_clinical"] = "yes"
    _import(engine, _csv("staff.csv", st))  # the whole roster: only the changed row is written
    _check_scoped(seen[-1], {ids["P1003"]})
    row = _stored(engine, ids["P1003"])
    assert (row["counted_minutes"], row["excluded_non_clinical"]) == (22, 0)
    assert _planted(engine) == (1, 1)
    _all_equal(engine)


def test_a_patients_import_rebuilds_only_its_patients_claims_and_eligibility(spied):
    """P1004 moves to RBM-MAIN: its stored rows and stored claims carry the new clinic; its
    eligibility is recomputed for it alone; NOBODY's planted rows survive."""
    engine, seen = spied
    ids = _ids(engine)
    _plant(engine, ids["P1005"])
    with engine.connect() as conn:
        main = conn.execute(select(s.clinic.c.id).where(s.clinic.c.code == "RBM-MAIN")).scalar_one()
    assert _stored(engine, ids["P1004"])["clinic_id"] != main
    p = _rows("patients.csv")
    p.loc[p.mrn == "P1004", "clinic_code"] = "RBM-MAIN"
    _import(engine, _csv("patients.csv", p))
    rec = seen[-1]
    _check_scoped(rec, {ids["P1004"]}, claims="patients")
    assert rec["scope"].claims_of_patients is True
    assert rec["out"]["eligible_rebuilt"] == "patients"
    assert _stored(engine, ids["P1004"])["clinic_id"] == main
    with engine.connect() as conn:
        ct = pm_store.claim_table(rules.load(conn))
        clinics = set(
            conn.execute(
                select(ct.c.clinic_id)
                .join(s.claim, s.claim.c.id == ct.c.claim_id)
                .where(ct.c.patient_id == ids["P1004"], s.claim.c.clinic_id.is_(None))
            ).scalars()
        )
    assert clinics <= {main}
    assert _planted(engine) == (1, 1)
    _all_equal(engine)


def test_time_and_patients_in_one_run_rebuild_the_month_and_the_patients(spied):
    """Both scopes at once: the month of the new time entry and every month of the named patient."""
    engine, seen = spied
    ids = _ids(engine)
    p = _rows("patients.csv")
    p.loc[p.mrn == "P1005", "care_manager_external_id"] = "S001"
    te = _rows("time_entries.csv").head(1).copy()
    te["external_id"], te["service_date"], te["entered_at"] = "T-extra", "2026-10-29", "2026-10-29 10:00"
    _import(engine, _csv("patients.csv", p[p.mrn == "P1005"]), _csv("time_entries.csv", te))
    rec = seen[-1]
    assert rec["scope"].months == (202610, 202610) and rec["patients"] == {ids["P1005"]}
    assert rec["out"]["patients_rebuilt"] is True
    assert _stored(engine, ids["P1001"])["logged_minutes"] == 45 + 15
    _all_equal(engine)


def test_a_revert_still_rebuilds_everything(spied):
    from ccm_core.io.imports.store import revert_batch

    engine, seen = spied
    stay = pd.DataFrame(
        [
            {
                "external_id": "ST-2",
                "mrn": "P1001",
                "kind": "inpatient",
                "admit_date": "2026-10-15",
                "discharge_date": "2026-10-17",
                "facility_name": "X",
            }
        ]
    )
    run = _import(engine, _csv("facility_stays.csv", stay))
    revert_batch(engine, run.files[0].batch_id, user="tester")
    assert seen[-1]["scope"] == pm_store.EVERYTHING and seen[-1]["out"]["mode"] == "all"
    _all_equal(engine)
