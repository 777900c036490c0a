"""``python -m ccm_core kpis`` / ``billing``: the same numbers as the engine, as JSON, CSV or a table."""

from __future__ import annotations

import argparse
import csv
import datetime as dt
import io
import json

import pytest

from ccm_core.cli import billing as engine_cli

from builders import Builder

D = dt.date


def run(argv, capsys):
    parser = argparse.ArgumentParser()
    sub = parser.add_subparsers(dest="command", required=True)
    engine_cli.add_cli(sub)
    args = parser.parse_args(argv)
    rc = args.func(args)
    return rc, capsys.readouterr().out


@pytest.fixture
def url(engine):
    with engine.begin() as conn:
        b = Builder(conn)
        under = b.enrolled_patient()
        b.visit(under, D(2025, 1, 2))
        b.time(under, 45, D(2025, 3, 5))
        b.claim(under, [("99490", 1)], dos=D(2025, 3, 31))
        ready = b.enrolled_patient()
        b.visit(ready, D(2025, 1, 2))  # the initiating visit: without it the month would be on hold
        b.time(ready, 25, D(2025, 3, 5))
        short = b.enrolled_patient()
        b.time(short, 12, D(2025, 3, 5))
    return engine.url.render_as_string(hide_password=False)


def test_billing_json_lists_each_patient_month_with_codes_and_findings(url, capsys):
    rc, out = run(["billing", "--db", url, "--month", "2025-03", "--format", "json"], capsys)
    assert rc == 0
    data = json.loads(out)
    assert data["month"] == "2025-03"
    rows = {r["patient_id"]: r for r in data["patient_months"]}
    assert len(rows) == 3
    under, ready, short = rows[1], rows[2], rows[3]
    assert under["counted_minutes"] == 45 and under["supported_codes"] == "99490 x1, 99439 x1"
    assert under["billed_codes"] == "99490 x1" and under["under_billed"] is True
    assert under["expected_amount"] == pytest.approx(106.42) and "under-billed" in under["findings"]
    assert ready["not_billed"] is True and ready["expected_amount"] == pytest.approx(60.49)
    assert ready["threshold_date"] == "2025-03-05"
    assert short["supported_codes"] == "" and short["expected_amount"] == 0 and short["threshold_date"] is None


def test_billing_csv_and_ready_only(url, capsys):
    rc, out = run(["billing", "--db", url, "--month", "2025-03", "--ready-only"], capsys)
    assert rc == 0
    rows = list(csv.DictReader(io.StringIO(out)))
    # only the unbilled month whose minutes support a code and whose prerequisites hold: patient 1 is billed
    # already, patient 3 is short of 20 minutes
    assert [r["patient_id"] for r in rows] == ["2"]
    assert rows[0]["billing_status"] == "ready" and rows[0]["hold_reasons"] == ""
    assert rows[0]["supported_codes"] == "99490 x1" and rows[0]["billed_codes"] == ""
    assert set(engine_cli.BILLING_COLUMNS) == set(rows[0].keys())
    rc, out = run(["billing", "--db", url, "--month", "2025-03", "--format", "json"], capsys)
    status = {r["patient_id"]: r["billing_status"] for r in json.loads(out)["patient_months"]}
    assert status == {1: "billed", 2: "ready", 3: "short"}


def test_kpis_json_and_table(url, capsys):
    rc, out = run(["kpis", "--db", url, "--month", "2025-03", "--format", "json"], capsys)
    assert rc == 0
    kp = {k["key"]: k for k in json.loads(out)["kpis"]}
    assert kp["enrolled_patients"]["value"] == 3
    assert kp["billable_rate"]["numerator"] == 2 and kp["billable_rate"]["denominator"] == 3
    assert kp["revenue"]["extra"]["expected"] == pytest.approx(106.42 + 60.49)
    assert kp["minutes_per_enrolled"]["extra"]["bands"]["10-14"] == 1
    rc, out = run(["kpis", "--db", url, "--month", "2025-03"], capsys)
    assert rc == 0 and "Billable (completion) rate" in out and "66.7%  (2 / 3)" in out


def test_bad_month_and_missing_database_are_clear_errors(url, tmp_path, capsys):
    with pytest.raises(ValueError, match="YYYY-MM"):
        run(["billing", "--db", url, "--month", "March"], capsys)
    with pytest.raises(ValueError, match="init-db"):
        run(["kpis", "--db", f"sqlite:///{tmp_path / 'empty.db'}", "--month", "2025-03"], capsys)


def test_empty_month_prints_an_empty_list(url, capsys):
    rc, out = run(["billing", "--db", url, "--month", "2024-01", "--format", "json"], capsys)
    assert rc == 0 and json.loads(out)["patient_months"] == []
