"""X12 835 import: every public sample, counted against the file; rejections; matching to our claims."""

from __future__ import annotations

import datetime as dt

import pytest
from fixtures_import.helpers import EXAMPLES, SAMPLES, import_master, run, table_counts
from fixtures_import.x12 import build_835
from sqlalchemy import select

from ccm_core.io.imports import RevertRefused, Source, import_files, revert_batch
from ccm_core.storage import schema

# (claims = CLP segments, service lines = SVC segments, adjustments = CAS reason/amount triples,
#  remarks = LQ*HE + MOA/MIA remark codes), counted by hand / grep on the files, not by the parser.
SAMPLE_COUNTS = {
    "edi835parser_emedny_sample.835": (3, 10, 4, 2),
    "edi835parser_uhc_legacy_sample.835": (2, 5, 7, 0),
    "lfh-cob-contractual-adjustment.835": (1, 1, 2, 0),
    "lfh-managed-care.835": (2, 2, 5, 0),
    "lfh-medicare-part-a.835": (2, 0, 2, 1),
    "lfh-secondary-payment.835": (2, 2, 5, 0),
    "oopfactory_5010_deident_multi_st.835": (56, 91, 97, 98),
    "pyx12-835-denied-lines.txt": (1, 3, 3, 3),
    "pyx12-835-simple-4010.txt": (3, 3, 2, 0),
}
REJECTED_SAMPLES = {
    "lfh-demo-with-typo.835": (27, "CAS_CO", 'Segment identifier "CAS_CO" is invalid'),
    "lfh-tertiary-payment.835": (20, "SVC", "procedure composite SVC01 'HC' has no procedure code"),
}
REMIT_TABLES = ("remittance", "remittance_line", "remittance_adjustment", "remittance_remark")


def grep_counts(raw: bytes) -> tuple[int, int, int, int]:
    """Independent count with plain string splitting (the cross-check for SAMPLE_COUNTS)."""
    text = raw.decode("utf-8-sig").lstrip()
    segs = [s.strip().split("*") for s in text.split(text[105]) if s.strip()]
    clp = sum(s[0] == "CLP" for s in segs)
    svc = sum(s[0] == "SVC" for s in segs)
    cas = sum(1 for s in segs if s[0] == "CAS" for k in range(2, len(s), 3) if s[k])
    remarks = sum(s[0] == "LQ" and s[1] == "HE" for s in segs)
    remarks += sum(1 for s in segs if s[0] == "MOA" for k in (3, 4, 5, 6, 7) if k < len(s) and s[k])
    remarks += sum(1 for s in segs if s[0] == "MIA" for k in (5, 20, 21, 22, 23) if k < len(s) and s[k])
    return clp, svc, cas, remarks


def _sample(name: str) -> Source:
    return Source(name, (SAMPLES / name).read_bytes())


def _rows(engine, table, *order):
    t = schema.metadata.tables[table]
    with engine.connect() as conn:
        return conn.execute(select(t).order_by(*(order or (t.c.id,)))).mappings().all()


def test_every_sample_file_is_covered():
    names = {p.name for p in SAMPLES.iterdir() if not p.name.startswith(("LICENSE", "SOURCES"))}
    assert names == set(SAMPLE_COUNTS) | set(REJECTED_SAMPLES)
    for name, counts in SAMPLE_COUNTS.items():
        assert grep_counts((SAMPLES / name).read_bytes()) == counts, name


@pytest.mark.parametrize("name", sorted(SAMPLE_COUNTS))
def test_sample_imports_with_counts_matching_the_file(engine, name):
    claims, lines, adjustments, remarks = SAMPLE_COUNTS[name]
    result = import_files(engine, [_sample(name)], user="tester")
    f = result.files[0]
    assert result.committed and f.status == "imported", f.summary()
    counts = table_counts(engine)
    assert tuple(counts[t] for t in REMIT_TABLES) == (claims, lines, adjustments, remarks)
    # None of the samples' claim numbers are ours: every claim is kept unmatched and reported.
    remits = _rows(engine, "remittance")
    assert all(r["claim_id"] is None for r in remits)
    assert sorted(f.x12.unmatched_claims) == sorted(r["claim_number"] for r in remits)
    assert f"{claims} claim(s) not found among our claims" in f.message
    assert all(r["source_file"] == name for r in remits)
    # adjudication_seq counts earlier remittances of the same claim number, in file order.
    seen: dict[str, int] = {}
    for r in remits:
        seen[r["claim_number"]] = seen.get(r["claim_number"], 0) + 1
        assert r["adjudication_seq"] == seen[r["claim_number"]]


def test_managed_care_values_and_compliance_warnings(engine):
    result = import_files(engine, [_sample("lfh-managed-care.835")], user="tester")
    warnings = "\n".join(result.warnings)
    assert "BPR16 payment date '20002316' is not a valid date" in warnings
    assert 'Mandatory segment "Payer Technical Contact Information" (PER) missing' in warnings
    first, second = _rows(engine, "remittance")
    assert (
        first["claim_number"],
        first["status_code"],
        first["total_charge"],
        first["paid_amount"],
        first["patient_responsibility"],
        first["payer_claim_control_number"],
    ) == ("5554555444", "1", 800.0, 450.0, 300.0, "94060555410000")
    assert first["payer"] == "RUSHMORE LIFE" and first["check_number"] == "7170066655"
    assert first["received_date"] == dt.date(2002, 3, 14) and first["received_month"] == 200203  # DTM*405
    line = _rows(engine, "remittance_line")[0]
    assert (line["cpt_code"], line["charge"], line["paid"], line["units"], line["service_date"]) == (
        "99211",
        800.0,
        500.0,
        1,
        dt.date(2002, 3, 1),
    )
    adj = [
        (a["remittance_id"], a["remittance_line_id"], a["group_code"], a["carc"], a["amount"])
        for a in _rows(engine, "remittance_adjustment")
    ]
    assert adj == [
        (first["id"], None, "CO", "A2", 50.0),
        (first["id"], line["id"], "PR", "1", 300.0),
        (second["id"], None, "CO", "A2", 55.0),
        (second["id"], line["id"] + 1, "PR", "1", 600.0),
        (second["id"], line["id"] + 1, "CO", "45", 50.0),
    ]


def test_secondary_payment_composites_with_other_separator_keep_their_lines(engine):
    result = import_files(engine, [_sample("lfh-secondary-payment.835")], user="tester")
    assert any("used '>' instead of the declared component separator ':'" in w for w in result.warnings)
    lines = _rows(engine, "remittance_line")
    assert [(ln["cpt_code"], ln["modifier"], ln["paid"]) for ln in lines] == [
        ("12345", "26", 30.0),
        ("66543", "26", 280.0),
    ]
    multi = [
        (a["group_code"], a["carc"], a["amount"])
        for a in _rows(engine, "remittance_adjustment")
        if a["remittance_line_id"] == lines[1]["id"]
    ]
    assert multi == [("PR", "1", 150.0), ("PR", "2", 70.0), ("CO", "42", 85.0)]  # CAS*PR*1*150**2*70 = 2 triples


def test_cob_allowed_amount_and_negative_adjustment(engine):
    import_files(engine, [_sample("lfh-cob-contractual-adjustment.835")], user="tester")
    line = _rows(engine, "remittance_line")[0]
    assert (line["cpt_code"], line["allowed"], line["service_date"]) == ("55669", 550.0, dt.date(2005, 2, 2))
    assert [(a["carc"], a["amount"]) for a in _rows(engine, "remittance_adjustment")] == [("23", 516.0), ("94", -9.0)]
    assert _rows(engine, "remittance")[0]["status_code"] == "2"


def test_medicare_part_a_claim_level_remark_and_plb_warning(engine):
    result = import_files(engine, [_sample("lfh-medicare-part-a.835")], user="tester")
    remark = _rows(engine, "remittance_remark")[0]
    assert remark["rarc"] == "MA02" and remark["remittance_line_id"] is None
    assert any("provider-level adjustment segment(s) (PLB)" in w for w in result.warnings)


def test_4010_reversal_and_readjudication_sequence(engine):
    import_files(engine, [_sample("pyx12-835-simple-4010.txt")], user="tester")
    remits = _rows(engine, "remittance")
    assert [(r["claim_number"], r["status_code"], r["paid_amount"], r["adjudication_seq"]) for r in remits] == [
        ("123839-24635", "22", -210.0, 1),
        ("123839-24635", "1", 200.0, 2),
        ("134158-27488", "22", -500.25, 1),
    ]
    lines = _rows(engine, "remittance_line")
    assert lines[2]["modifier"] == "TG" and lines[2]["service_date"] == dt.date(2008, 4, 2)
    assert {a["group_code"] for a in _rows(engine, "remittance_adjustment")} == {"CR"}


def test_denied_lines_keep_their_remarks(engine):
    import_files(engine, [_sample("pyx12-835-denied-lines.txt")], user="tester")
    remit = _rows(engine, "remittance")[0]
    assert remit["status_code"] == "4" and remit["paid_amount"] == 0.0
    lines = _rows(engine, "remittance_line")
    assert [ln["units"] for ln in lines] == [68, 16, 36]
    remarks = _rows(engine, "remittance_remark")
    assert [(r["rarc"], r["remittance_line_id"]) for r in remarks] == [("N14", ln["id"]) for ln in lines]


def test_bom_and_indentation_are_cleaned_with_warnings(engine):
    result = import_files(engine, [_sample("oopfactory_5010_deident_multi_st.835")], user="tester")
    text = "\n".join(result.warnings)
    assert "byte-order mark" in text and "indentation" in text and "fractional units" in text
    denied = [r for r in _rows(engine, "remittance") if r["status_code"] == "4"]
    assert len(denied) == 16  # "16 denied" per SOURCES.md


@pytest.mark.parametrize("name", sorted(REJECTED_SAMPLES))
def test_unreadable_samples_are_rejected_whole(engine, name):
    row, column, text = REJECTED_SAMPLES[name]
    counts = table_counts(engine)
    result = import_files(engine, [_sample(name)], user="tester")
    f = result.files[0]
    assert not result.committed and f.status == "rejected"
    assert "rejected, nothing imported" in f.message and text in f.message
    assert (row, column) in {(int(r.row), r.column) for r in f.problems.itertuples()}
    assert table_counts(engine) == counts


def _managed() -> str:
    return (SAMPLES / "lfh-managed-care.835").read_text()


@pytest.mark.parametrize(
    "mutate, message",
    [
        (lambda t: t[: t.index("SE*26")], "truncated"),
        (lambda t: t[: t.index("CAS*CO*45") + 6], "truncated"),
        (lambda t: t[:60], "truncated inside its ISA header"),
        (lambda t: t[t.index("ST*835") :], "does not start with an ISA header"),
        (lambda t: t.replace("CAS*PR*1*600.00", "ZZZ*PR*1*600.00"), "unknown segment id 'ZZZ'"),
        (
            lambda t: t.replace("CLP*5554555444*1*800.00*450.00", "CLP*5554555444*1*800.00*4S0.00"),
            "CLP04 '4S0.00' is not an amount",
        ),
        (lambda t: t.replace("CAS*CO*45*50.00", "CAS*XX*45*50.00"), "CAS01 group code 'XX'"),
        (lambda t: t.replace("DTM*150*20020310", "DTM*150*20021341"), "service date '20021341' is not a valid date"),
    ],
)
def test_damaged_835_is_rejected_with_a_clear_message(engine, mutate, message):
    counts = table_counts(engine)
    result = run(engine, {"remit.835": mutate(_managed())})
    f = result.files[0]
    assert f.status == "rejected" and message in f.message, f.message
    assert table_counts(engine) == counts


def test_same_835_twice_changes_nothing(engine):
    first = import_files(engine, [_sample("lfh-managed-care.835")], user="tester")
    counts = table_counts(engine)
    again = import_files(engine, [_sample("lfh-managed-care.835")], user="tester")
    f = again.files[0]
    assert not again.committed and f.status == "unchanged" and f.inserted == 0
    assert f.same_as_batch["id"] == first.files[0].batch_id
    assert "2 remittance(s) were already stored" in f.message
    assert table_counts(engine) == counts


def test_835_batch_reverts_completely(engine):
    counts = table_counts(engine)
    result = import_files(engine, [_sample("edi835parser_emedny_sample.835")], user="tester")
    revert_batch(engine, result.files[0].batch_id, "admin")
    after = table_counts(engine)
    assert {t: after[t] for t in REMIT_TABLES} == {t: counts[t] for t in REMIT_TABLES}


def _our_claims(engine):
    import_master(engine)
    head = "claim_number,line_number,mrn,billing_npi,payer,submitted_date,cpt_code,units,charge,service_date\n"
    text = (
        head + "C-1,1,P1001,1234567893,Medicare Part B,2026-11-03,99490,1,75,2026-10-31\n"
        "C-1,2,P1001,1234567893,Medicare Part B,2026-11-03,99439,1,55,2026-10-31\n"
        "C-2,1,P1002,1234567893,Medicare Part B,2026-11-03,99490,1,75,2026-09-30\n"
        "C-2,2,P1002,1234567893,Medicare Part B,2026-11-03,99490,1,75,2026-10-31\n"
    )
    assert run(engine, {"claims.csv": text}).committed
    with engine.connect() as conn:
        return {
            (r.claim_number, r.line_number): r.id
            for r in conn.execute(
                select(schema.claim.c.claim_number, schema.claim_line.c.line_number, schema.claim_line.c.id).join(
                    schema.claim_line, schema.claim_line.c.claim_id == schema.claim.c.id
                )
            )
        }


def test_synthetic_835_matches_our_claims_and_lines(engine):
    line_ids = _our_claims(engine)
    remit = build_835(
        [
            {
                "number": "C-1",
                "charge": 130,
                "paid": 90,
                "lines": [  # add-on listed first: matched by code
                    {"code": "99439", "charge": 55, "paid": 40, "date": "20261031", "allowed": 50.44},
                    {"code": "99490", "charge": 75, "paid": 50, "date": "20261031", "cas": [("CO", "45", 8.87)]},
                ],
            },
            {
                "number": "C-2",
                "charge": 150,
                "paid": 50,
                "lines": [  # same code twice: the date decides
                    {"code": "99490", "charge": 75, "paid": 50, "date": "20261031"},
                    {
                        "code": "99490",
                        "charge": 75,
                        "paid": 0,
                        "date": "20260930",
                        "cas": [("CO", "18", 75)],
                        "remarks": ["N702"],
                    },
                    {"code": "99491", "charge": 90, "paid": 0, "date": "20261031"},
                ],
            },  # not on our claim
            {
                "number": "X-404",
                "charge": 10,
                "paid": 0,
                "lines": [{"code": "99490", "charge": 10, "paid": 0, "date": "20261031"}],
            },
        ],
        pay_date="20261120",
    )
    result = run(engine, {"remit_20261120.835": remit})
    f = result.files[0]
    assert result.committed, f.summary()
    assert f.x12.matched_claims == 2 and f.x12.unmatched_claims == ["X-404"]
    assert f.x12.unmatched_lines == ["C-2 99491 2026-10-31"]
    assert "1 service line(s) not matched to a claim line: C-2 99491 2026-10-31" in f.message
    with engine.connect() as conn:
        claim_ids = dict(conn.execute(select(schema.claim.c.claim_number, schema.claim.c.id)).all())
    remits = {r["claim_number"]: r for r in _rows(engine, "remittance")}
    assert remits["C-1"]["claim_id"] == claim_ids["C-1"] and remits["X-404"]["claim_id"] is None
    assert remits["C-1"]["received_date"] == dt.date(2026, 11, 20)
    got = [(ln["cpt_code"], ln["service_date"], ln["claim_line_id"]) for ln in _rows(engine, "remittance_line")]
    assert got == [
        ("99439", dt.date(2026, 10, 31), line_ids[("C-1", 2)]),
        ("99490", dt.date(2026, 10, 31), line_ids[("C-1", 1)]),
        ("99490", dt.date(2026, 10, 31), line_ids[("C-2", 2)]),
        ("99490", dt.date(2026, 9, 30), line_ids[("C-2", 1)]),
        ("99491", dt.date(2026, 10, 31), None),
        ("99490", dt.date(2026, 10, 31), None),
    ]

    # A later 835 re-adjudicating C-1 (reversal + corrected payment) continues the sequence.
    later = build_835(
        [
            {
                "number": "C-1",
                "status": "22",
                "charge": -130,
                "paid": -90,
                "lines": [{"code": "99490", "charge": -75, "paid": -50, "date": "20261031"}],
            },
            {
                "number": "C-1",
                "status": "1",
                "charge": 130,
                "paid": 95,
                "lines": [{"code": "99490", "charge": 75, "paid": 55, "date": "20261031", "ref6r": "1"}],
            },
        ],
        pay_date="20261121",
        check="EFT20261121",
        control="000000102",
    )
    assert run(engine, {"remit_20261121.835": later}).committed
    seqs = [
        (r["status_code"], r["adjudication_seq"]) for r in _rows(engine, "remittance") if r["claim_number"] == "C-1"
    ]
    assert seqs == [("1", 1), ("22", 2), ("1", 3)]
    # The batch that inserted our claims cannot be reverted while remittances point at them.
    with pytest.raises(RevertRefused, match="remittance"):
        revert_batch(engine, 5, "admin")


def test_835_and_csv_files_in_one_run_follow_dependency_order(engine):
    names = [
        "appeals.csv",
        "remittance.835",
        "claims.csv",
        "time_entries.csv",
        *reversed(["clinics.csv", "practitioners.csv", "staff.csv", "patients.csv"]),
    ]
    result = import_files(engine, [Source(n, (EXAMPLES / n).read_bytes()) for n in names], user="t")
    assert result.committed, result.summary()
    assert [f.kind for f in result.files][-3:] == ["claims", "x12_835", "appeals"]
    assert all(r["claim_id"] is not None for r in _rows(engine, "remittance"))
