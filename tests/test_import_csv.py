"""CSV / Excel imports: the example practice, idempotency, upsert + revert, and bad input of every kind.

Each test runs on SQLite and (with CCM_TEST_PG_URL) PostgreSQL through the
``engine`` fixture.  Expected numbers are counted by hand from data/examples.
"""

from __future__ import annotations

import datetime as dt
import io
import json

import pandas as pd
import pytest
from fixtures_import.helpers import (
    EXAMPLES,
    MASTER,
    ROOT,
    data_version,
    example,
    import_master,
    problems,
    run,
    table_counts,
)
from openpyxl import Workbook
from sqlalchemy import func, select

from ccm_core.io.imports import (
    ORDER,
    RevertRefused,
    format_reference_markdown,
    import_files,
    list_batches,
    revert_batch,
)
from ccm_core.io.imports.parse import npi_check_digit
from ccm_core.storage import schema

ALL_EXAMPLES = sorted(p.name for p in EXAMPLES.iterdir())

# Counted by hand from the files in data/examples.
EXPECTED_ROWS = {
    "practice": 1,
    "clinic": 2,
    "practitioner": 2,
    "staff": 4,
    "patient": 6,
    "diagnosis": 12,
    "eligibility_override": 1,
    "visit": 7,
    "facility_stay": 1,
    "enrollment_event": 12,
    "consent": 6,
    "care_plan": 6,
    "complexity_assessment": 1,
    "time_entry": 15,
    "claim": 4,
    "claim_line": 6,
    "remittance": 4,
    "remittance_line": 6,
    "remittance_adjustment": 16,
    "remittance_remark": 1,
    "appeal": 1,
}

PATIENT_HEADER = "mrn,first_name,last_name,birth_date,payer,clinic_code\n"


def _one(engine, query):
    with engine.connect() as conn:
        return conn.execute(query).first()


def test_example_set_imports_cleanly_in_dependency_order(engine):
    before = data_version(engine)
    # Given in reverse order: the importer must sort them by dependency.
    result = import_files(engine, [example(n) for n in reversed(ALL_EXAMPLES)], user="demo")
    assert result.committed and result.ok, result.summary()
    assert [f.kind for f in result.files] == ORDER
    counts = table_counts(engine)
    for table, n in EXPECTED_ROWS.items():
        assert counts[table] == n, table
    assert counts["import_batch"] == len(ALL_EXAMPLES) == 16
    assert data_version(engine) == before + 1  # one bump for the whole run

    with engine.connect() as conn:
        te = conn.execute(select(schema.time_entry).where(schema.time_entry.c.external_id == "T-1")).mappings().one()
        assert te["service_month"] == 202610
        assert te["started_at"] == dt.datetime(2026, 10, 2, 9, 10)
        assert te["ended_at"] == dt.datetime(2026, 10, 2, 9, 25)  # started_at + 15 minutes
        assert te["entry_method"] == "realtime"
        total_minutes = conn.execute(select(func.sum(schema.time_entry.c.minutes))).scalar()
        assert total_minutes == 187  # 15+12+18+14+8+10+5+7+20+16+14+12+11+9+16
        claim = (
            conn.execute(select(schema.claim).where(schema.claim.c.claim_number == "CLM-2610-1004")).mappings().one()
        )
        assert claim["total_charge"] == 185.00 and claim["submitted_month"] == 202611
        lines = (
            conn.execute(
                select(schema.claim_line)
                .where(schema.claim_line.c.claim_id == claim["id"])
                .order_by(schema.claim_line.c.line_number)
            )
            .mappings()
            .all()
        )
        assert [(ln["cpt_code"], ln["units"], ln["dos_month"]) for ln in lines] == [
            ("99490", 1, 202610),
            ("99439", 2, 202610),
        ]
        assert lines[0]["patient_id"] == claim["patient_id"] and lines[0]["icd10_codes"] == "E119,F329,E785"
        # The remittance matched every claim and the denied 99439 line of CLM-2610-1004.
        remits = conn.execute(select(schema.remittance)).mappings().all()
        assert all(r["claim_id"] is not None and r["adjudication_seq"] == 1 for r in remits)
        denied = conn.execute(select(schema.remittance_line).where(schema.remittance_line.c.paid == 0)).mappings().one()
        assert denied["claim_line_id"] == lines[1]["id"] and denied["units"] == 2
        remark = conn.execute(select(schema.remittance_remark)).mappings().one()
        assert remark["rarc"] == "M53" and remark["remittance_line_id"] == denied["id"]
        appeal = conn.execute(select(schema.appeal)).mappings().one()
        assert appeal["claim_id"] == claim["id"] and appeal["claim_line_id"] == lines[1]["id"]
        p3 = conn.execute(select(schema.patient).where(schema.patient.c.mrn == "P1003")).mappings().one()
        assert p3["birth_date"] == dt.date(1944, 4, 18)  # US date 04/18/1944
        assert p3["mbi"] == "3EG4TE5MK75" and p3["is_qmb"] is True
        practice = conn.execute(select(schema.practice)).mappings().one()
        assert practice["name"] == "Riverbend Family Medicine" and practice["tax_id"] == "84-1234567"


def test_reimport_same_files_changes_nothing_and_says_so(engine):
    first = import_files(engine, [example(n) for n in ALL_EXAMPLES], user="demo")
    assert first.committed
    counts, version = table_counts(engine), data_version(engine)
    again = import_files(engine, [example(n) for n in ALL_EXAMPLES], user="demo")
    assert not again.committed and again.ok
    assert all(f.inserted == 0 and f.updated == 0 for f in again.files)
    assert all(f.status == "unchanged" for f in again.files)
    assert all(f.same_as_batch is not None for f in again.files)
    assert "same content (sha256) as batch" in again.files[0].summary()
    assert table_counts(engine) == counts  # not even an empty batch row
    assert data_version(engine) == version


def test_corrected_file_updates_only_what_changed_and_revert_restores(engine):
    import_master(engine)
    original = (EXAMPLES / "patients.csv").read_text()
    corrected = original.replace(
        "P1002,2EG4-TE5-MK74,Rosa,Delgado,1952-07-30,F,555-0102",
        "P1002,2EG4-TE5-MK74,Rosa,Delgado,1952-07-30,F,555-0199",
    )
    corrected += "P1007,,Ivan,Petrov,1947-01-15,M,,Medicare Part B,no,RBM-MAIN,1234567893,S001,,\n"
    assert corrected != original
    result = run(engine, {"patients.csv": corrected})
    f = result.files[0]
    assert result.committed and (f.inserted, f.updated, f.unchanged) == (1, 1, 5)
    with engine.connect() as conn:
        change = (
            conn.execute(
                select(schema.import_change).where(
                    schema.import_change.c.batch_id == f.batch_id, schema.import_change.c.action == "update"
                )
            )
            .mappings()
            .one()
        )
        prior = json.loads(change["before_json"])
        assert prior["phone"] == "555-0102" and prior["import_batch_id"] == 4
        assert (
            conn.execute(select(schema.patient.c.phone).where(schema.patient.c.mrn == "P1002")).scalar() == "555-0199"
        )
    counts = table_counts(engine)
    outcome = revert_batch(engine, f.batch_id, "admin")
    assert outcome == {"batch_id": f.batch_id, "deleted": 1, "restored": 1}
    with engine.connect() as conn:
        row = conn.execute(select(schema.patient).where(schema.patient.c.mrn == "P1002")).mappings().one()
        assert row["phone"] == "555-0102" and row["import_batch_id"] == 4
        assert conn.execute(select(schema.patient).where(schema.patient.c.mrn == "P1007")).first() is None
    assert table_counts(engine)["patient"] == counts["patient"] - 1
    history = list_batches(engine)
    assert history.loc[history["id"] == f.batch_id, "status"].item() == "reverted"
    with pytest.raises(RevertRefused, match="already reverted"):
        revert_batch(engine, f.batch_id, "admin")
    with pytest.raises(RevertRefused, match="no import batch"):
        revert_batch(engine, 999, "admin")


def test_revert_refused_while_later_data_depends_on_the_batch(engine):
    import_master(engine)
    te = run(engine, {"time_entries.csv": (EXAMPLES / "time_entries.csv").read_text()}, today=None)
    assert te.committed
    patients_batch = 4
    counts = table_counts(engine)
    with pytest.raises(RevertRefused, match=r"time_entry row\(s\) from batch 5 refer to patient rows"):
        revert_batch(engine, patients_batch, "admin")
    assert table_counts(engine) == counts  # refusal changed nothing
    # A later batch that updated the batch's rows also blocks.
    staff_v2 = (EXAMPLES / "staff.csv").read_text().replace("S003,Sam,Carter", "S003,Samuel,Carter")
    upd = run(engine, {"staff.csv": staff_v2})
    assert upd.files[0].updated == 1
    with pytest.raises(RevertRefused, match=rf"batch {upd.files[0].batch_id} later changed 1 staff row"):
        revert_batch(engine, 3, "admin")
    # Undo in reverse order and everything goes.
    revert_batch(engine, upd.files[0].batch_id, "admin")
    revert_batch(engine, 5, "admin")
    for batch_id in (4, 3, 2, 1):
        revert_batch(engine, batch_id, "admin")
    after = table_counts(engine)
    assert all(after[t] == 0 for t in ("practice", "clinic", "practitioner", "staff", "patient", "time_entry"))


@pytest.mark.parametrize("delimiter", [";", "\t", "|"])
def test_other_delimiters_are_detected(engine, delimiter):
    import_master(engine)
    text = (EXAMPLES / "diagnoses.csv").read_text().replace(",", delimiter)
    result = run(engine, {"diagnoses.csv": text})
    assert result.committed and result.files[0].inserted == 12
    assert any("not commas" in w for w in result.warnings)


def test_latin1_bytes_are_read_as_windows_1252_with_a_warning(engine):
    import_master(engine)
    text = PATIENT_HEADER + "P2001,Zo\u00eb,M\u00fcller,1950-02-02,Medicare Part B,RBM-MAIN\n"
    result = run(engine, {"patients.csv": text.encode("latin-1")})
    assert result.committed, result.summary()
    assert any("not UTF-8" in w and "line 2" in w for w in result.warnings)
    row = _one(
        engine, select(schema.patient.c.first_name, schema.patient.c.last_name).where(schema.patient.c.mrn == "P2001")
    )
    assert tuple(row) == ("Zo\u00eb", "M\u00fcller")


def test_undecodable_bytes_reject_the_file_and_write_nothing(engine):
    import_master(engine)
    counts = table_counts(engine)
    raw = PATIENT_HEADER.encode() + b"P2001,Zo\x81,X,1950-02-02,Medicare Part B,RBM-MAIN\n"
    result = run(engine, {"patients.csv": raw})
    assert not result.committed and result.files[0].status == "rejected"
    assert "not UTF-8" in result.files[0].message and "0x81" in result.files[0].message
    assert table_counts(engine) == counts


def test_bom_header_is_recognised(engine):
    import_master(engine)
    raw = b"\xef\xbb\xbf" + (PATIENT_HEADER + "P2002,Al,Bo,1950-02-02,Medicare Part B,RBM-MAIN\n").encode()
    result = run(engine, {"patients.csv": raw})
    assert result.committed and result.files[0].inserted == 1


def test_ragged_rows_are_reported_by_spreadsheet_row(engine):
    import_master(engine)
    counts = table_counts(engine)
    text = (
        PATIENT_HEADER + "P2003,Al,Bo,1950-02-02,Medicare Part B,RBM-MAIN\n"
        "P2004,Cy,Do,1950-02-02,Medicare Part B,RBM-MAIN,EXTRA\n"
        "P2005,Ed,Fa,1950-02-02\n"
    )
    result = run(engine, {"patients.csv": text})
    assert not result.committed
    got = problems(result)
    assert (
        3,
        "",
        "row has 7 values but the header has 6 columns (a stray delimiter, or a line break inside an unquoted value?)",
    ) in got
    assert any(r == 4 and "row has 4 values" in p for r, _c, p in got)
    assert table_counts(engine) == counts


@pytest.mark.parametrize(
    "text, message",
    [
        ("", "the file is empty"),
        ('mrn,first_name\n"P1,Al\n', "broken CSV"),
        ("mrn,first_name,last_name,birth_date,payer,clinic_code,shoe_size\n", "unknown column(s) 'shoe_size'"),
        ("mrn,first_name,last_name,payer\n", "missing required column(s): birth_date, clinic_code"),
        ("mrn,First Name,first_name,last_name,birth_date,payer,clinic_code\n", "both mean 'first_name'"),
    ],
)
def test_file_level_problems_name_the_cause(engine, text, message):
    counts = table_counts(engine)
    result = run(engine, {"patients.csv": text})
    assert not result.committed and result.files[0].status == "rejected"
    assert message in result.files[0].message
    assert table_counts(engine) == counts


def test_headers_match_regardless_of_case_spaces_and_underscores(engine):
    import_master(engine)
    text = (
        "MRN,First Name,LAST-NAME,Date of Birth,Payer,clinic code,Care Manager\n"
        "P2010,Al,Bo,03/04/1951,Medicare Part B,RBM-EAST,S002\n"
    )
    result = run(engine, {"new_patients.csv": text})
    assert result.committed, result.summary()
    row = _one(
        engine,
        select(schema.patient.c.birth_date, schema.patient.c.care_manager_id).where(schema.patient.c.mrn == "P2010"),
    )
    staff_id = _one(engine, select(schema.staff.c.id).where(schema.staff.c.external_id == "S002"))[0]
    assert row.birth_date == dt.date(1951, 3, 4) and row.care_manager_id == staff_id


def test_wrong_types_are_reported_per_row_and_column(engine):
    import_master(engine)
    counts = table_counts(engine)
    text = (
        "mrn,mbi,first_name,last_name,birth_date,sex,payer,is_qmb,clinic_code\n"
        "P2020,1EG4-TE5-MK73,Al,Bo,13/45/1950,M,Medicare Part B,no,RBM-MAIN\n"
        "P2021,BADMBI,Cy,Do,1950-01-01,Q,Medicare Part B,maybe,RBM-MAIN\n"
        "P2022,,,Fa,1950-01-01,F,Medicare Part B,yes,RBM-MAIN\n"
    )
    result = run(engine, {"patients.csv": text})
    assert not result.committed
    got = {(r, c): p for r, c, p in problems(result)}
    assert got[(2, "birth_date")] == "'13/45/1950' is not a date (use 2025-11-03 or 11/03/2025)"
    assert got[(3, "mbi")].startswith("'BADMBI' is not a Medicare Beneficiary Identifier")
    assert got[(3, "sex")] == "'Q' is not one of: M, F, U, X"
    assert got[(3, "is_qmb")] == "'maybe' is not yes/no"
    assert got[(4, "first_name")] == "required value is missing"
    assert len(got) == 5
    assert table_counts(engine) == counts


def test_duplicate_keys_inside_a_file_name_every_row(engine):
    import_master(engine)
    text = "external_id,mrn,icd10\nDX-A,P1001,E11.9\nDX-B,P1001,I10\nDX-A,P1002,I50.9\n"
    result = run(engine, {"diagnoses.csv": text})
    assert not result.committed
    got = problems(result)
    assert [(r, c) for r, c, _p in got] == [(2, "external_id"), (4, "external_id")]
    assert got[0][2] == "duplicate external_id 'DX-A' (rows 2, 4)"


def test_orphan_references_are_rejected(engine):
    import_master(engine)
    counts = table_counts(engine)
    text = (
        "external_id,mrn,staff_external_id,service_date,minutes,activity\n"
        "T-X1,P9999,S001,2026-10-02,10,call\n"
        "T-X2,P1001,S999,2026-10-02,10,call\n"
        "T-X3,P1001,S001,2026-10-02,10,call\n"
    )
    result = run(engine, {"time_entries.csv": text})
    assert not result.committed
    assert problems(result) == [
        (2, "mrn", "MRN 'P9999' is not in the database or earlier in this import"),
        (3, "staff_external_id", "staff external_id 'S999' is not in the database or earlier in this import"),
    ]
    assert table_counts(engine) == counts


def test_references_resolve_to_rows_earlier_in_the_same_run(engine):
    files = {"time_entries.csv": (EXAMPLES / "time_entries.csv").read_text()}
    files.update({n: (EXAMPLES / n).read_text() for n in MASTER})
    result = run(engine, files, today=None)
    assert result.committed and table_counts(engine)["time_entry"] == 15


def test_a_rejected_file_rolls_back_the_whole_run(engine):
    counts = table_counts(engine)
    files = {n: (EXAMPLES / n).read_text() for n in MASTER}
    files["time_entries.csv"] = (
        "external_id,mrn,staff_external_id,service_date,minutes,activity\nT-X1,P1001,S001,2026-10-02,-5,call\n"
    )
    result = run(engine, files)
    assert not result.committed
    assert [f.status for f in result.files] == ["not imported"] * 4 + ["rejected"]
    assert table_counts(engine) == counts


def test_impossible_values(engine):
    import_master(engine)
    te = (
        "external_id,mrn,staff_external_id,service_date,started_at,minutes,activity,entered_at\n"
        "T-1,P1001,S001,2026-10-02,,-5,call,\n"
        "T-2,P1001,S001,2026-10-02,,1441,call,\n"
        "T-3,P1001,S001,2026-12-01,,10,call,\n"
        "T-4,P1001,S001,1940-01-01,,10,call,\n"
        "T-5,P1001,S001,2026-10-02,2026-10-03 09:00,10,call,\n"
        "T-6,P1001,S001,2026-10-02,09:00,10,call,2026-10-01 08:00\n"
        "T-7,P1001,S001,2026-10-02,09:00,1440,call,\n"
    )
    stays = "external_id,mrn,kind,admit_date,discharge_date\nST-9,P1001,snf,2026-10-10,2026-10-05\n"
    result = run(engine, {"time_entries.csv": te, "facility_stays.csv": stays})
    assert not result.committed
    got = {(f, r, c): p for f, r, c, p in result.problems.itertuples(index=False)}
    assert got[("time_entries.csv", 2, "minutes")] == "'-5' is below the minimum 0"
    assert got[("time_entries.csv", 3, "minutes")] == "'1441' is above the maximum 1440"
    assert got[("time_entries.csv", 4, "service_date")] == "'2026-12-01' is in the future"
    assert got[("time_entries.csv", 5, "service_date")] == "is before the patient's birth date 1948-03-12"
    assert got[("time_entries.csv", 6, "started_at")] == "is on a different day than service_date"
    assert got[("time_entries.csv", 7, "entered_at")].startswith("is before the service_date")
    assert got[("facility_stays.csv", 2, "discharge_date")] == "is before admit_date"
    assert not any(r == 8 for _f, r, _c in got)  # exactly 24 hours is possible
    assert len(got) == 7


CODE_CASES = {  # value -> valid?
    "npi": {"1234567893": True, "1234567890": False, "123456789": False, "1487650008": True, "12345678931": False},
    "cpt": {"99490": True, "G0506": True, "9949": False, "1126F": True, "994900": False, "g0506": True},
    "icd10": {
        "E11.9": True,
        "e119": True,
        "I10": True,
        "Z79.4": True,
        "U07.1": False,
        "1234": False,
        "E11.65": True,
        "E": False,
    },
}


def test_code_formats(engine):
    """ICD-10-CM pattern, CPT/HCPCS shape, NPI Luhn check: each bad value is reported on its own row."""
    import_master(engine)
    npi = "npi,first_name,last_name,credential\n" + "".join(f"{v},A,B,MD\n" for v in CODE_CASES["npi"])
    visits = "external_id,mrn,visit_date,cpt_code,visit_type\n" + "".join(
        f"V-{i},P1001,2026-10-01,{v},EM\n" for i, v in enumerate(CODE_CASES["cpt"])
    )
    dx = "external_id,mrn,icd10\n" + "".join(f"DX-{i},P1001,{v}\n" for i, v in enumerate(CODE_CASES["icd10"]))
    result = run(engine, {"practitioners.csv": npi, "visits.csv": visits, "diagnoses.csv": dx}, accept_valid=True)
    bad = {(f, r) for f, r, _c, _p in result.problems.itertuples(index=False)}
    for file_name, column in (("practitioners.csv", "npi"), ("visits.csv", "cpt"), ("diagnoses.csv", "icd10")):
        for row, (value, ok) in enumerate(CODE_CASES[column].items(), start=2):
            assert ((file_name, row) not in bad) is ok, (column, value)
    got = {(f, r): p for f, r, _c, p in result.problems.itertuples(index=False)}
    assert got[("practitioners.csv", 3)] == "'1234567890' is not a valid NPI (check digit fails)"
    assert got[("practitioners.csv", 4)] == "'123456789' is not an NPI (10 digits)"
    counts = table_counts(engine)
    assert (counts["practitioner"], counts["visit"], counts["diagnosis"]) == (2, 4, 5)  # both valid NPIs existed
    assert result.files[0].kind == "practitioners" and result.files[0].updated == 2  # ... and were updated


def test_npi_check_digit_matches_the_cms_example():
    # CMS's published example: 123456789 -> check digit 3.
    assert npi_check_digit("123456789") == "3"


def test_accept_valid_imports_good_rows_and_returns_the_rejected_ones(engine):
    import_master(engine)
    text = (
        "external_id,mrn,icd10,onset_date\n"
        "DX-A,P1001,E11.9,2015-04-01\n"
        "DX-B,P1001,NOTCODE,2015-04-01\n"
        "DX-C,P1002,I10,2099-01-01\n"
        "DX-D,P1003,J44.9,\n"
    )
    result = run(engine, {"diagnoses.csv": text}, accept_valid=True)
    f = result.files[0]
    assert result.committed and not result.ok
    assert (f.inserted, f.rows_rejected, f.rows_in) == (2, 2, 4)
    rejected = pd.read_csv(io.BytesIO(f.rejected_csv()), encoding="utf-8-sig", dtype=str)
    assert list(rejected.columns) == ["row", "external_id", "mrn", "icd10", "onset_date", "problem"]
    assert rejected["row"].tolist() == ["3", "4"]
    assert rejected["problem"].tolist() == [
        "icd10: 'NOTCODE' is not an ICD-10-CM code (e.g. E11.9)",
        "onset_date: '2099-01-01' is in the future",
    ]
    batch = list_batches(engine).iloc[0]
    assert (batch["rows_in"], batch["rows_written"], batch["rows_rejected"]) == (4, 2, 2)
    # The corrected rejects import on their own later.
    fixed = rejected.drop(columns=["row", "problem"]).assign(icd10=["I10", "I10"], onset_date=["", ""])
    again = run(engine, {"diagnoses.csv": fixed.to_csv(index=False)})
    assert again.committed and again.files[0].inserted == 2


def test_claim_lines_must_agree_and_a_claim_is_all_or_nothing(engine):
    import_master(engine)
    head = "claim_number,line_number,mrn,billing_npi,payer,submitted_date,cpt_code,units,charge,service_date\n"
    text = (
        head + "C-1,1,P1001,1234567893,Medicare Part B,2026-11-03,99490,1,75,2026-10-31\n"
        "C-1,2,P1001,1234567893,Medicare Advantage,2026-11-03,99439,1,55,2026-10-31\n"
        "C-2,1,P1002,1234567893,Medicare Part B,2026-11-03,99490,1,75,2026-10-31\n"
        "C-2,2,P1002,1234567893,Medicare Part B,2026-11-03,99439,0,55,2026-10-31\n"
        'C-3,1,P1002,1234567893,Medicare Part B,2026-11-03,99490,1,"$1,075.50",2026-10-31\n'
    )
    result = run(engine, {"claims.csv": text}, accept_valid=True)
    got = problems(result)
    assert (2, "payer", "differs between lines of the same claim") in got
    assert (3, "payer", "differs between lines of the same claim") in got
    assert (5, "units", "'0' is below the minimum 1") in got
    assert (4, "claim_number", "another line of this claim was rejected") in got
    assert result.files[0].rows_rejected == 4
    with engine.connect() as conn:
        claims = conn.execute(select(schema.claim.c.claim_number, schema.claim.c.total_charge)).all()
    assert [tuple(c) for c in claims] == [("C-3", 1075.50)]


def test_replacement_claims_point_at_originals_in_the_same_file(engine):
    import_master(engine)
    head = (
        "claim_number,line_number,mrn,billing_npi,payer,submitted_date,frequency_code,original_claim_number,"
        "cpt_code,charge,service_date\n"
    )
    text = (
        head + "R-2,1,P1001,1234567893,Medicare Part B,2026-11-10,7,O-1,99490,80,2026-10-31\n"
        "O-1,1,P1001,1234567893,Medicare Part B,2026-11-03,1,,99490,75,2026-10-31\n"
        "R-9,1,P1001,1234567893,Medicare Part B,2026-11-10,7,NOPE,99490,80,2026-10-31\n"
    )
    result = run(engine, {"claims.csv": text}, accept_valid=True)
    assert problems(result) == [(4, "original_claim_number", "claim number 'NOPE' is not in the database or this file")]
    with engine.connect() as conn:
        rows = {r.claim_number: r for r in conn.execute(select(schema.claim))}
    assert rows["R-2"].original_claim_id == rows["O-1"].id and rows["R-2"].frequency_code == "7"
    revert_batch(engine, result.files[0].batch_id, "admin")  # self-referencing inserts revert cleanly
    assert table_counts(engine)["claim"] == 0


def test_xlsx_workbook_with_one_sheet_per_kind(engine):
    wb = Workbook()
    wb.remove(wb.active)
    for name in MASTER:
        ws = wb.create_sheet(name.removesuffix(".csv"))
        frame = pd.read_csv(EXAMPLES / name, dtype=str, keep_default_na=False)
        ws.append(list(frame.columns))
        for row in frame.itertuples(index=False):
            values = list(row)
            if name == "patients.csv":  # real Excel dates and numbers, as a user's workbook has them
                i = list(frame.columns).index("birth_date")
                values[i] = pd.to_datetime(values[i], format="mixed").to_pydatetime()
            if name == "practitioners.csv":
                values[0] = int(values[0])
            ws.append(values)
    buf = io.BytesIO()
    wb.save(buf)
    result = run(engine, {"practice export.xlsx": buf.getvalue()})
    assert result.committed, result.summary()
    assert [f.kind for f in result.files] == ["clinics", "practitioners", "staff", "patients"]
    assert len(result.batch_ids) == 4
    counts = table_counts(engine)
    assert (counts["clinic"], counts["practitioner"], counts["staff"], counts["patient"]) == (2, 2, 4, 6)
    row = _one(engine, select(schema.patient.c.birth_date).where(schema.patient.c.mrn == "P1003"))
    assert row.birth_date == dt.date(1944, 4, 18)


def test_broken_xlsx_is_rejected_with_a_message(engine):
    result = run(engine, {"patients.xlsx": b"PK\x03\x04 not really a zip"})
    assert not result.committed and "not a readable Excel .xlsx workbook" in result.files[0].message


def test_kind_is_inferred_from_name_then_header(engine):
    import_master(engine)
    body = "external_id,mrn,icd10\nDX-Z,P1001,E11.9\n"
    by_header = run(engine, {"export_0007.csv": body})
    assert by_header.files[0].kind == "diagnoses" and by_header.committed
    misnamed = run(engine, {"visits.csv": "external_id,mrn,icd10\nDX-Y,P1001,I10\n"})
    assert misnamed.files[0].kind == "diagnoses" and misnamed.committed
    assert any("the name suggests visits" in w for w in misnamed.warnings)
    unknown = run(engine, {"stuff.csv": "foo,bar\n1,2\n"})
    assert not unknown.committed and "cannot tell what this file holds" in unknown.files[0].message


def test_dry_run_reports_what_would_change_and_writes_nothing(engine):
    counts, version = table_counts(engine), data_version(engine)
    result = import_files(engine, [example(n) for n in MASTER], user="x", dry_run=True)
    assert result.ok and not result.committed
    assert [f.status for f in result.files] == ["would import"] * 4
    assert [f.inserted for f in result.files] == [3, 2, 4, 6]  # practice + 2 clinics, ...
    assert table_counts(engine) == counts and data_version(engine) == version


def test_care_plan_versions_are_unique_per_patient(engine):
    import_master(engine)
    text = "external_id,mrn,version,established_date\nCP-A,P1001,1,2026-08-06\nCP-B,P1001,1,2026-09-06\n"
    result = run(engine, {"care_plans.csv": text})
    assert {(r, c) for r, c, _p in problems(result)} == {(2, "version"), (3, "version")}
    ok = run(engine, {"care_plans.csv": "external_id,mrn,version,established_date\nCP-A,P1001,1,2026-08-06\n"})
    assert ok.committed
    clash = run(engine, {"care_plans.csv": "external_id,mrn,version,established_date\nCP-Q,P1001,1,2026-08-06\n"})
    assert problems(clash) == [(2, "version", "the patient already has this version under external_id 'CP-A'")]


def test_composite_natural_keys_upsert(engine):
    import_master(engine)
    first = run(engine, {"complexity_assessments.csv": "mrn,service_month,mdm_level\nP1004,2026-10,moderate\n"})
    second = run(engine, {"complexity_assessments.csv": "mrn,service_month,mdm_level\nP1004,202610,high\n"})
    assert first.files[0].inserted == 1 and second.files[0].updated == 1
    row = _one(engine, select(schema.complexity_assessment))
    assert (row.service_month, row.mdm_level) == (202610, "high")


def test_docs_list_every_file_and_column_exactly_as_the_code_does():
    doc = (ROOT / "docs" / "import-format.md").read_text()
    assert format_reference_markdown().strip() in doc, "regenerate the column tables in docs/import-format.md"


def test_today_default_rejects_only_real_future_dates(engine):
    import_master(engine)
    tomorrow = dt.date.today() + dt.timedelta(days=1)
    result = import_files(engine, [], user="x")
    assert result.ok  # nothing offered, nothing to do
    text = f"external_id,mrn,icd10,onset_date\nDX-F,P1001,I10,{tomorrow:%m/%d/%Y}\n"
    res = run(engine, {"diagnoses.csv": text}, today=None)
    assert problems(res) == [(2, "onset_date", f"'{tomorrow:%m/%d/%Y}' is in the future")]


def test_far_future_timestamps_are_a_row_problem_not_an_internal_error(engine):
    """Regression (found by the property test): a one-character typo turning 2026 into 3026 in a
    timestamp overflowed pandas' nanosecond range and aborted the import with an internal error."""
    import_master(engine)
    te = (
        "external_id,mrn,staff_external_id,service_date,started_at,minutes,activity,entered_at\n"
        "T-1,P1001,S001,2026-10-02,3026-10-02 09:26,10,call,\n"
        "T-2,P1001,S001,3026-10-02,,10,call,\n"
    )
    result = run(engine, {"time_entries.csv": te})
    assert not result.committed
    got = {(r, c) for _f, r, c, _p in result.problems.itertuples(index=False)}
    assert (2, "started_at") in got and (3, "service_date") in got
