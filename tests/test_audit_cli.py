"""``python -m ccm_core audit`` and ``sample`` (both backends)."""

from __future__ import annotations

import datetime as dt
import json

from sqlalchemy import select

from ccm_core import cli
from ccm_core.audit import checklist as audit
from ccm_core.engine.filters import Filters
from ccm_core.storage import schema as s

from builders import Builder


def _run(capsys, *argv) -> tuple[int, str, str]:
    rc = cli.main(list(argv))
    out = capsys.readouterr()
    return rc, out.out, out.err


def test_audit_month_json_matches_the_checklist(demo_url, demo_engine, demo_report, capsys):
    month = demo_report.end_month - 1  # the last month with claims (the current month is not billed yet)
    label = f"{month // 100}-{month % 100:02d}"
    rc, out, _ = _run(capsys, "audit", "--db", demo_url, "--month", label, "--format", "json")
    assert rc == 0
    data = json.loads(out)
    with demo_engine.connect() as conn:
        df = audit.checklist_for_months(conn, Filters.for_month(month))
    assert data["month"] == label
    assert data["patient_months"] == df[["patient_id", "service_month"]].drop_duplicates().shape[0] > 0
    assert len(data["items"]) == len(df)
    fails = int((df["result"] == "fail").sum())
    assert sum(v["fail"] for v in data["summary"].values()) == fails
    rc, out, _ = _run(capsys, "audit", "--db", demo_url, "--month", label, "--format", "csv", "--fails-only")
    assert rc == 0 and len(out.strip().splitlines()) == 1 + fails


def test_sample_is_reproducible_from_the_command_line(demo_url, demo_report, capsys):
    args = [
        "sample",
        "--db",
        demo_url,
        "--from",
        "2025-05",
        "--to",
        "2025-09",
        "--size",
        "8",
        "--seed",
        "21",
        "--strata",
        "payer,code",
        "--format",
        "json",
    ]
    rc1, out1, _ = _run(capsys, *args)
    rc2, out2, _ = _run(capsys, *args)
    rc3, out3, _ = _run(capsys, *(args[:-4] + ["--seed", "22", "--strata", "payer,code", "--format", "json"]))
    assert rc1 == rc2 == rc3 == 0
    a, b, c = json.loads(out1), json.loads(out2), json.loads(out3)
    assert a["items"] == b["items"] and a["items"] != c["items"]
    assert a["sample_id"] is None and a["inputs"]["seed"] == 21 and a["inputs"]["strata"] == ["payer", "code"]
    assert len(a["items"]) >= 8  # at least one per stratum may add to the size
    assert sum(v["sampled"] for v in a["allocation"].values()) == len(a["items"])


def test_sample_save_records_the_pull_and_the_access_log(engine, capsys):
    url = engine.url.render_as_string(hide_password=False)
    with engine.begin() as conn:
        b = Builder(conn)
        for _ in range(4):
            p = b.enrolled_patient()
            b.times(p, [12, 13], on=dt.date(2025, 3, 3))
            b.claim(p, [("99490", 1)], dos=dt.date(2025, 3, 31))
    rc, _, err = _run(
        capsys, "sample", "--db", url, "--from", "2025-03", "--to", "2025-03", "--size", "2", "--seed", "3", "--save"
    )
    assert rc == 2 and "--user" in err
    rc, out, _ = _run(
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
        "3",
        "--save",
        "--user",
        "auditor1",
        "--name",
        "cli pull",
    )
    assert rc == 0
    data = json.loads(out)
    with engine.connect() as conn:
        row = conn.execute(select(s.audit_sample)).mappings().one()
        items = conn.execute(
            select(s.audit_sample_item.c.patient_id, s.audit_sample_item.c.service_month).order_by(
                s.audit_sample_item.c.position
            )
        ).all()
        log = conn.execute(select(s.access_log.c.action, s.access_log.c.username, s.access_log.c.patient_count)).all()
    assert data["sample_id"] == row["id"] and row["name"] == "cli pull" and row["created_by"] == "auditor1"
    assert [tuple(x) for x in items] == [(i["patient_id"], i["service_month"]) for i in data["items"]]
    assert [tuple(x) for x in log] == [("sample_pull", "auditor1", 2)]


def test_bad_input_gives_a_message_not_a_traceback(demo_url, capsys):
    rc, _, err = _run(capsys, "audit", "--db", demo_url, "--month", "2025-13")
    assert rc == 2 and "YYYY-MM" in err
    rc, _, err = _run(
        capsys, "sample", "--db", demo_url, "--from", "2025-09", "--to", "2025-05", "--size", "3", "--seed", "1"
    )
    assert rc == 2 and "backwards" in err
    rc, _, err = _run(
        capsys,
        "sample",
        "--db",
        demo_url,
        "--from",
        "2025-05",
        "--to",
        "2025-09",
        "--size",
        "3",
        "--seed",
        "1",
        "--strata",
        "shoe_size",
    )
    assert rc == 2 and "Unknown stratum" in err
