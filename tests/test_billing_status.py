"""Ready to bill means compliant: each prerequisite, built the way a practice would, through the documented
import files (``python -m ccm_core import``), then ``python -m ccm_core billing`` as a biller runs it.

Every patient logs 30 clinical CCM minutes in October 2026 (15 + 15, enough for 99490 x1) and differs from
the clean patient ``P-OK`` in exactly one prerequisite (docs/reference/ccm-rules.md §3.1, §3.3, §3.4, §4), so its month must be
``hold`` with that reason and missing from ``--ready-only``.  The complex-track patients log 95 minutes:
complex CCM (99487 + 99489) needs moderate/high complexity AND a care plan established or substantially
revised in the month (docs/reference/ccm-rules.md §1); short of either the month is billed on the non-complex track.
"""

from __future__ import annotations

import csv
import io
import json
import shutil
from pathlib import Path

import pytest

from ccm_core import cli

EXAMPLES = Path(__file__).resolve().parent.parent / "data" / "examples"
DR_A = "1234567893"  # Maya Patel MD (data/examples/practitioners.csv)
DR_B = "1487650008"  # Luis Okafor NP
MONTH = "2026-10"

# mrn -> what is different from the clean patient
PATIENTS = {
    "P-OK": {},
    "P-ONE": {"diagnoses": ["E11.9"]},  # one chronic condition
    "P-NOCOST": {"consent": {"disclosed_cost_sharing": "no"}},  # consent without the cost-sharing disclosure
    "P-NOPLAN": {"care_plan": None},  # no care plan
    "P-NEW": {"first_seen_date": "2026-08-20", "visit": None},  # new patient, no initiating visit
    # the billing practitioner changed to Dr B (time logged for Dr B) without a new consent (tied to Dr A)
    "P-CHANGED": {"billing_practitioner_npi": DR_B, "time_npi": DR_B},
    # complex track: 95 minutes
    "P-CX": {"minutes": (50, 45), "mdm": True, "revision": True},
    "P-CX-NOREV": {"minutes": (50, 45), "mdm": True},
    "P-CX-NOMDM": {"minutes": (50, 45), "revision": True},
}
EXPECTED_HOLDS = {
    "P-ONE": ("eligibility", "fewer than two chronic conditions"),
    "P-NOCOST": ("consent", "consent lacks the cost-sharing disclosure: record a new consent"),
    "P-NOPLAN": ("care_plan", "no care plan established by month end"),
    "P-NEW": ("initiating_visit", "no initiating visit by the billing practitioner"),
    "P-CHANGED": ("consent", "the billing practitioner changed after the consent: record a new consent"),
}


def _write(path: Path, header: list[str], rows: list[dict]) -> None:
    with path.open("w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=header)
        w.writeheader()
        for r in rows:
            w.writerow({k: r.get(k, "") for k in header})


def write_import_files(folder: Path, patients: dict[str, dict] = PATIENTS) -> Path:
    """The practice's files, in the documented formats (docs/import-format.md)."""
    folder.mkdir(parents=True, exist_ok=True)
    for name in ("clinics.csv", "practitioners.csv", "staff.csv"):
        shutil.copy(EXAMPLES / name, folder / name)
    pats, dx, visits, events, consents, plans, cx, times = [], [], [], [], [], [], [], []
    for i, (mrn, d) in enumerate(patients.items(), start=1):
        npi = d.get("billing_practitioner_npi", DR_A)
        pats.append(
            {
                "mrn": mrn,
                "first_name": f"Pat{i}",
                "last_name": "Test",
                "birth_date": "1950-01-01",
                "payer": "Medicare Part B",
                "clinic_code": "RBM-MAIN",
                "billing_practitioner_npi": npi,
                "care_manager_external_id": "S001",
                "first_seen_date": d.get("first_seen_date", "2019-01-01"),
            }
        )
        for j, code in enumerate(d.get("diagnoses", ["E11.9", "I10"])):
            dx.append({"external_id": f"DX-{mrn}-{j}", "mrn": mrn, "icd10": code, "onset_date": "2015-01-01"})
        if d.get("visit", True):
            visits.append(
                {
                    "external_id": f"V-{mrn}",
                    "mrn": mrn,
                    "practitioner_npi": d.get("visit_npi", DR_A),
                    "clinic_code": "RBM-MAIN",
                    "visit_date": "2026-08-04",
                    "cpt_code": "99214",
                    "visit_type": "EM",
                    "face_to_face": "yes",
                }
            )
        events.append(
            {
                "external_id": f"EV-{mrn}",
                "mrn": mrn,
                "status": "enrolled",
                "event_date": "2026-09-01",
                "staff_external_id": "S001",
                "practitioner_npi": DR_A,
            }
        )
        consent = {
            "external_id": f"C-{mrn}",
            "mrn": mrn,
            "decision": "accepted",
            "consent_date": "2026-09-01",
            "method": "verbal",
            "staff_external_id": "S001",
            "practitioner_npi": DR_A,
            "disclosed_cost_sharing": "yes",
            "disclosed_one_practitioner": "yes",
            "disclosed_right_to_stop": "yes",
            "disclosed_info_sharing": "yes",
        }
        consent.update(d.get("consent", {}))
        consents.append(consent)
        if d.get("care_plan", True):
            plans.append(
                {
                    "external_id": f"CP-{mrn}-1",
                    "mrn": mrn,
                    "version": 1,
                    "established_date": "2026-09-01",
                    "shared_with_patient_date": "2026-09-02",
                    "signed_by_npi": DR_A,
                }
            )
        if d.get("revision"):
            plans.append(
                {
                    "external_id": f"CP-{mrn}-2",
                    "mrn": mrn,
                    "version": 2,
                    "established_date": "2026-10-01",
                    "shared_with_patient_date": "2026-10-01",
                    "signed_by_npi": DR_A,
                    "substantially_revised": "yes",
                }
            )
        if d.get("mdm"):
            cx.append({"mrn": mrn, "service_month": MONTH, "mdm_level": "moderate", "practitioner_npi": DR_A})
        for k, (day, minutes) in enumerate(zip((6, 13), d.get("minutes", (15, 15)))):
            times.append(
                {
                    "external_id": f"T-{mrn}-{k}",
                    "mrn": mrn,
                    "staff_external_id": "S001",
                    "program": "CCM",
                    "service_date": f"2026-10-{day:02d}",
                    "started_at": "09:00",
                    "minutes": minutes,
                    "activity": "care_coordination",
                    "note": "Reviewed home glucose log and adjusted the plan with the patient",
                    "practitioner_npi": d.get("time_npi", DR_A),
                    "entry_method": "realtime",
                    "entered_at": f"2026-10-{day:02d} 10:00",
                    "interactive": "yes",
                }
            )
    _write(
        folder / "patients.csv",
        [
            "mrn",
            "first_name",
            "last_name",
            "birth_date",
            "payer",
            "clinic_code",
            "billing_practitioner_npi",
            "care_manager_external_id",
            "first_seen_date",
        ],
        pats,
    )
    _write(folder / "diagnoses.csv", ["external_id", "mrn", "icd10", "onset_date"], dx)
    _write(
        folder / "visits.csv",
        [
            "external_id",
            "mrn",
            "practitioner_npi",
            "clinic_code",
            "visit_date",
            "cpt_code",
            "visit_type",
            "face_to_face",
        ],
        visits,
    )
    _write(
        folder / "enrollment_events.csv",
        ["external_id", "mrn", "status", "event_date", "staff_external_id", "practitioner_npi"],
        events,
    )
    _write(folder / "consents.csv", list(consents[0]), consents)
    _write(
        folder / "care_plans.csv",
        [
            "external_id",
            "mrn",
            "version",
            "established_date",
            "shared_with_patient_date",
            "signed_by_npi",
            "substantially_revised",
        ],
        plans,
    )
    if cx:
        _write(folder / "complexity_assessments.csv", ["mrn", "service_month", "mdm_level", "practitioner_npi"], cx)
    _write(folder / "time_entries.csv", list(times[0]), times)
    return folder


def _url(engine) -> str:
    return engine.url.render_as_string(hide_password=False)


def _billing(capsys, url: str, *flags: str) -> dict[str, dict]:
    capsys.readouterr()
    assert cli.main(["billing", "--db", url, "--month", MONTH, "--format", "json", "--user", "biller", *flags]) == 0
    out = json.loads(capsys.readouterr().out)
    return {r["mrn"]: r for r in out["patient_months"]}


@pytest.fixture
def imported(engine, tmp_path, capsys):
    folder = write_import_files(tmp_path / "practice")
    assert cli.main(["import", "--db", _url(engine), "--user", "tester", str(folder)]) == 0, capsys.readouterr()
    return _url(engine)


def test_every_prerequisite_holds_the_month_with_its_reason_and_ready_only_excludes_it(imported, capsys):
    rows = _billing(capsys, imported)
    assert set(rows) == set(PATIENTS)
    assert rows["P-OK"]["billing_status"] == "ready" and rows["P-OK"]["hold_reasons"] == ""
    assert rows["P-OK"]["supported_codes"] == "99490 x1" and rows["P-OK"]["counted_minutes"] == 30
    for mrn, (item, reason) in EXPECTED_HOLDS.items():
        r = rows[mrn]
        assert r["counted_minutes"] == 30 and r["supported_codes"] == "99490 x1", mrn  # the minutes are there
        assert r["billing_status"] == "hold", (mrn, r["billing_status"], r["hold_reasons"])
        assert r["failed_prerequisites"] == item, (mrn, r["failed_prerequisites"])  # exactly this one fails
        assert reason in r["hold_reasons"], (mrn, r["hold_reasons"])
        assert ": " in r["hold_reasons"]  # every reason says what fixes it
        assert r["expected_amount"] == pytest.approx(66.13)  # 99490, 2026 (dollars on hold)

    # --ready-only lists only ready months; --holds the held ones (one import serves both checks: imports are slow)
    ready = _billing(capsys, imported, "--ready-only")
    assert set(ready) == {"P-OK", "P-CX", "P-CX-NOREV", "P-CX-NOMDM"}
    assert not set(ready) & set(EXPECTED_HOLDS)
    assert {r["billing_status"] for r in ready.values()} == {"ready"}
    holds = _billing(capsys, imported, "--holds")
    assert set(holds) == set(EXPECTED_HOLDS)
    # the MRN sits beside the internal id, and CSV carries the status and the reasons too
    capsys.readouterr()
    assert cli.main(["billing", "--db", imported, "--month", MONTH, "--holds", "--user", "biller"]) == 0
    rows = list(csv.DictReader(io.StringIO(capsys.readouterr().out)))
    assert {r["mrn"] for r in rows} == set(EXPECTED_HOLDS)
    assert list(rows[0])[:5] == ["patient_id", "mrn", "service_month", "billing_status", "hold_reasons"]
    assert all(r["billing_status"] == "hold" and r["hold_reasons"] for r in rows)

    # complex track: complexity AND a care plan established or substantially revised in the month
    rows = ready
    # 95 min: 99487 + 99489 x1 (144.29 + 78.16 = 222.45) beats 99490 + 2 x 99439 (66.13 + 2 x 50.44 = 167.01)
    cx = rows["P-CX"]
    assert cx["supported_track"] == "complex" and cx["supported_codes"] == "99487 x1, 99489 x1"
    assert cx["expected_amount"] == pytest.approx(222.45) and cx["complex_note"] == ""
    for mrn, missing in (
        ("P-CX-NOREV", "no care plan established or substantially revised in the month"),
        ("P-CX-NOMDM", "no moderate/high complexity (MDM) assessment"),
    ):
        r = rows[mrn]
        assert r["supported_track"] == "non_complex" and r["supported_codes"] == "99490 x1, 99439 x2", mrn
        assert r["expected_amount"] == pytest.approx(167.01)
        assert "complex CCM (99487) not supported" in r["complex_note"] and missing in r["complex_note"], mrn


def test_fixing_the_record_releases_the_hold(engine, imported, capsys, tmp_path):
    """A new consent with the disclosure, imported as a correction, makes the month ready."""
    fix = tmp_path / "fix"
    fix.mkdir()
    _write(
        fix / "consents.csv",
        [
            "external_id",
            "mrn",
            "decision",
            "consent_date",
            "method",
            "practitioner_npi",
            "disclosed_cost_sharing",
            "disclosed_one_practitioner",
            "disclosed_right_to_stop",
        ],
        [
            {
                "external_id": "C-P-NOCOST-2",
                "mrn": "P-NOCOST",
                "decision": "accepted",
                "consent_date": "2026-10-01",
                "method": "written",
                "practitioner_npi": DR_A,
                "disclosed_cost_sharing": "yes",
                "disclosed_one_practitioner": "yes",
                "disclosed_right_to_stop": "yes",
            }
        ],
    )
    assert cli.main(["import", "--db", imported, "--user", "tester", str(fix / "consents.csv")]) == 0
    rows = _billing(capsys, imported)
    assert rows["P-NOCOST"]["billing_status"] == "ready"
    assert "P-NOCOST" in _billing(capsys, imported, "--ready-only")


def test_dollars_on_hold_and_holds_by_reason(engine):
    """Hand-worked (2026 fees): a consent without the cost-sharing disclosure holds 30 min = 99490 $66.13; no
    care plan holds 45 min = 99490 + 99439 = $66.13 + $50.44 = $116.57; a clean month is ready, a 12-minute
    month short: $182.70 on hold in two months."""
    import datetime as dt

    from ccm_core.engine import read
    from ccm_core.engine.filters import Filters
    from ccm_core.kpis import program as kpis

    from builders import Builder

    d = dt.date
    with engine.begin() as conn:
        b = Builder(conn)

        def patient(consent=True, plan=True, **consent_kw):
            p = b.patient(first_seen_date=d(2019, 1, 1))
            b.diagnoses(p, ["E119", "I10"])
            b.visit(p, d(2026, 8, 4))
            b.funnel(p, "enrolled", d(2026, 9, 1))
            if consent:
                b.consent(p, on=d(2026, 9, 1), **consent_kw)
            if plan:
                b.care_plan(p, established=d(2026, 9, 1))
            return p

        no_cost = patient(disclosed_cost_sharing=False)
        b.times(no_cost, [15, 15], on=d(2026, 10, 5))
        no_plan = patient(plan=False)
        b.times(no_plan, [20, 25], on=d(2026, 10, 5))
        ready = patient()
        b.times(ready, [30], on=d(2026, 10, 5))
        short = patient(plan=False)
        b.times(short, [12], on=d(2026, 10, 5))
    f = Filters.for_month(202610)
    with engine.connect() as conn:
        kpi = kpis.dollars_on_hold(conn, f)
        by = read.holds_by_reason(conn, f)
        st = read.billing_status(conn, f).set_index("patient_id")
    assert kpi.value == pytest.approx(182.70) and kpi.extra["patient_months"] == 2
    assert kpi.definition.numerator.startswith("Expected payment")
    assert by.attrs["total"] == {"patient_months": 2, "dollars": pytest.approx(182.70)}
    rows = {(r.prerequisite, r.problem): (r.patient_months, r.dollars) for r in by.itertuples()}
    assert rows == {
        ("care_plan", "none"): (1, pytest.approx(116.57)),
        ("consent", "disclosed_cost_sharing"): (1, pytest.approx(66.13)),
    }
    assert list(by["prerequisite"]) == ["care_plan", "consent"]  # most dollars first
    assert st.loc[ready, "billing_status"] == "ready" and st.loc[short, "billing_status"] == "short"
    # the short month has no care plan: it is not on hold (no code yet), but the worklist can say it will be
    assert st.loc[short, "hold_reasons"] == "" and "no care plan" in st.loc[short, "problems"]
    # a care manager's scope: filters narrow the holds (here: a care manager with no patients has none)
    with engine.connect() as conn:
        assert kpis.dollars_on_hold(conn, Filters.for_month(202610, care_manager_ids=(-1,))).value == 0


def test_payer_vocabulary_maps_spellings_and_warns_about_the_rest(engine, tmp_path):
    """'Medicare FFS' is Medicare Part B (eligible); 'Blue Cross PPO' is outside the vocabulary: imported with a
    warning naming it, and not an eligible payer.  A refused file says what it would have inserted."""
    import datetime as dt

    from ccm_core.engine.filters import Filters
    from ccm_core.io.imports import import_files
    from ccm_core.kpis import program as kpis

    folder = write_import_files(tmp_path / "p", {"P-FFS": {}, "P-BLUE": {}, "P-PARTB": {}})
    pats = (folder / "patients.csv").read_text()
    pats = pats.replace("P-FFS,Pat1,Test,1950-01-01,Medicare Part B", "P-FFS,Pat1,Test,1950-01-01,Medicare FFS")
    pats = pats.replace("P-BLUE,Pat2,Test,1950-01-01,Medicare Part B", "P-BLUE,Pat2,Test,1950-01-01,Blue Cross PPO")
    (folder / "patients.csv").write_text(pats)
    run = import_files(
        engine,
        [
            folder / n
            for n in ("clinics.csv", "practitioners.csv", "staff.csv", "patients.csv", "diagnoses.csv", "visits.csv")
        ],
        today=dt.date(2026, 11, 1),
    )
    assert run.committed
    warnings = " ".join(run.warnings)
    assert "'Blue Cross PPO' (1 row)" in warnings and "outside the payer vocabulary" in warnings
    assert "'Medicare FFS' = 'Medicare Part B'" in warnings
    with engine.connect() as conn:
        elig = kpis.eligible_population(conn, Filters.for_month(202610))
    assert elig.value == 2  # P-FFS and P-PARTB; P-BLUE is not an eligible payer

    bad = tmp_path / "bad"
    bad.mkdir()
    _write(
        bad / "patients.csv",
        ["mrn", "first_name", "last_name", "birth_date", "payer", "clinic_code"],
        [
            {
                "mrn": "P-NEW1",
                "first_name": "A",
                "last_name": "B",
                "birth_date": "1950-01-01",
                "payer": "Medicare Part B",
                "clinic_code": "RBM-MAIN",
            },
            {
                "mrn": "P-NEW2",
                "first_name": "A",
                "last_name": "B",
                "birth_date": "not a date",
                "payer": "Medicare Part B",
                "clinic_code": "RBM-MAIN",
            },
        ],
    )
    refused = import_files(engine, [bad / "patients.csv"], today=dt.date(2026, 11, 1))
    assert not refused.committed
    summary = refused.files[0].summary()
    assert "1 would have been inserted" in summary and " 1 inserted" not in summary, summary


def test_exporting_the_ready_list_is_recorded_by_month(engine):
    """Which months' ready lists went to the billing system, by whom and when (billing_export), newest first."""
    from ccm_core.engine import read

    with engine.begin() as conn:
        read.record_export(conn, 202610, "biller", 24, 2606.12, "ready_to_bill_202610_20261101.csv")
        read.record_export(conn, 202610, "lead", 25, 2672.25, "ready_to_bill_202610_20261102.csv")
        read.record_export(conn, 202609, "biller", 30, 3000.0, "ready_to_bill_202609_20261001.csv")
    with engine.connect() as conn:
        oct_ = read.exports(conn, 202610, 202610)
        both = read.exports(conn, 202609, 202610)
    assert len(oct_) == 2 and len(both) == 3
    assert set(oct_["exported_by"]) == {"biller", "lead"}
    assert oct_["expected_amount"].sum() == pytest.approx(2606.12 + 2672.25)
    assert list(both["exported_at"]) == sorted(both["exported_at"], reverse=True)


def test_prebill_audit_sample_draws_from_months_not_billed_yet(engine):
    """A pre-bill sample is drawn from the months whose minutes support a code and are not billed yet (the
    held and the ready ones), never from billed or short months; it is stored and re-drawn like any other."""
    import datetime as dt

    from ccm_core.audit import checklist as audit
    from ccm_core.audit import sampling

    from builders import Builder

    d = dt.date
    with engine.begin() as conn:
        b = Builder(conn)
        made = {}
        for name, minutes, billed in (
            ("ready", 25, False),
            ("hold", 30, False),
            ("billed", 30, True),
            ("short", 10, False),
        ):
            p = b.patient(first_seen_date=d(2019, 1, 1))
            b.diagnoses(p, ["E119", "I10"])
            b.visit(p, d(2026, 8, 4))
            b.funnel(p, "enrolled", d(2026, 9, 1))
            b.consent(p, on=d(2026, 9, 1))
            if name != "hold":
                b.care_plan(p, established=d(2026, 9, 1))
            b.time(p, minutes, d(2026, 10, 5))
            if billed:
                b.claim(p, [("99490", 1)], dos=d(2026, 10, 31))
            made[name] = p
    req = sampling.SampleRequest(month_from=202610, month_to=202610, size=5, seed=1, population="prebill")
    with engine.begin() as conn:
        smp = sampling.pull_sample(conn, req)
        sid = sampling.save_sample(conn, smp, "auditor")
        assert set(smp.items["patient_id"]) == {made["ready"], made["hold"]}
        assert sampling.redraw_matches(conn, sid)
        assert sampling.load_sample(conn, sid).request.population == "prebill"
        cl = audit.checklist_for_months(conn, smp.pairs())
    res = {(r.patient_id, r.item_key): r.result for r in cl.itertuples()}
    assert res[(made["hold"], "care_plan")] == "fail" and res[(made["ready"], "care_plan")] == "pass"
    assert res[(made["ready"], "minutes_support")] == "na"  # nothing billed yet
