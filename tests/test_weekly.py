"""The weekly read's core (ccm_core.kpis.weekly) and the meeting pack (ccm_core.io.meeting_pack), worked by hand."""

from __future__ import annotations

import datetime as dt
import json
import re

import pytest

from ccm_core import cli
from ccm_core.engine.filters import Filters
from ccm_core.io import meeting_pack
from ccm_core.kpis import weekly

from builders import Builder

D = dt.date


def test_target_status_levels_and_vs_last_month():
    # a level: billable rate green at >= 75%, amber at >= 60%
    assert weekly.status("billable_rate", 0.75)[0] == "green"
    assert weekly.status("billable_rate", 0.60)[0] == "amber"
    assert weekly.status("billable_rate", 0.5999)[0] == "red"
    # lower is better: denial rate green at <= 5%, amber at <= 10%
    assert weekly.status("denial_rate", 0.05)[0] == "green"
    assert weekly.status("denial_rate", 0.119)[0] == "red"
    # vs last month: enrolled 400 -> 392 is 2% down (amber), 391 red, 400 green
    assert weekly.status("enrolled", 400, 400)[0] == "green"
    assert weekly.status("enrolled", 392, 400)[0] == "amber"
    assert weekly.status("enrolled", 391, 400)[0] == "red"
    assert weekly.status("enrolled", 391, None)[0] is None
    assert weekly.status("billable_rate", None)[0] is None


def test_admin_targets_override_the_defaults(engine):
    with engine.begin() as conn:
        Builder(conn).setting(
            weekly.TARGETS_KEY, json.dumps({"billable_rate": {"green": 0.8, "amber": 0.7}, "nonsense": {"green": 1}})
        )
    with engine.connect() as conn:
        t = weekly.targets(conn)
    assert t["billable_rate"] == {"kind": "level", "green": 0.8, "amber": 0.7}
    assert t["minutes"] == weekly.DEFAULT_TARGETS["minutes"] and "nonsense" not in t
    weekly.save_targets(engine, {"minutes": {"green": 30, "amber": 22}}, "t_admin")
    with engine.connect() as conn:
        assert weekly.targets(conn)["minutes"] == {"kind": "level", "green": 30.0, "amber": 22.0}
    with pytest.raises(ValueError):
        weekly.save_targets(engine, {"bogus": {"green": 1, "amber": 1}}, "t_admin")


def test_number_formats_and_no_negative_zero():
    assert weekly.fmt_delta(0.1234, 0.12345, "rate") == "0.0 pp"  # not "-0.0 pp"
    assert weekly.fmt_delta(0.20, 0.15, "rate") == "+5.0 pp"
    assert weekly.fmt_delta(100.2, 100.4, "dollars") == "$0"
    assert weekly.fmt_delta(1200, 1500, "dollars") == "-$300"
    assert weekly.fmt(1234.6, "dollars") == "$1,235"
    assert weekly.fmt(582.85, "dollars") == "$583" and weekly.fmt(60.49, "dollars") == "$60.49"
    assert weekly.plural(1, "care manager") == "1 care manager"
    assert weekly.plural(2, "care manager") == "2 care managers"
    assert weekly.plural("<11", "patient") == "<11 patients"


def test_open_months_follow_the_lag(engine):
    # November 2026 ends Nov 30; with the default 45 days it is open until Jan 14, 2027
    assert weekly.is_open(202611, D(2027, 1, 13)) and not weekly.is_open(202611, D(2027, 1, 14))
    assert not weekly.is_open(202611, None)
    with engine.begin() as conn:
        Builder(conn).setting(weekly.LAG_KEY, "10")
    with engine.connect() as conn:
        assert weekly.open_months(conn, [202609, 202610, 202611], D(2026, 12, 6)) == [202611]
        assert weekly.last_closed_month(conn, D(2026, 12, 6)) == 202610


def test_denials_to_work_and_data_through(engine):
    """Four CCM claims denied on first adjudication in March 2025: one appealed, one paid on a second
    adjudication, one a CARC 18 duplicate -> one claim ($100) left to work.  A fifth was denied in October 2024
    (past the 120-day redetermination deadline by April 2025)."""
    with engine.begin() as conn:
        b = Builder(conn)
        p = b.enrolled_patient()
        claims = [b.claim(p, [("99490", 1)], dos=D(2025, 2, 28), charges=[100.0]) for _ in range(4)]
        for c in claims[:3]:
            b.denied(c, on=D(2025, 3, 10))
        b.denied(claims[3], carc="18", on=D(2025, 3, 10))
        b.appeal(claims[1], filed=D(2025, 3, 20))
        b.paid(claims[2], 100.0, on=D(2025, 4, 2), seq=2)
        old = b.claim(p, [("99490", 1)], dos=D(2024, 9, 30), charges=[80.0])
        b.denied(old, on=D(2024, 10, 20))
        b.time(p, 20, D(2025, 4, 3))
    with engine.connect() as conn:
        work = weekly.denials_to_work(conn, Filters.for_month(202503), D(2025, 4, 5))
        through = weekly.data_through(conn, D(2025, 4, 30))
        items = {i["kind"]: i for i in weekly.attention_items(conn, Filters.for_month(202503), D(2025, 4, 5))}
    assert (work.value, work.extra["charges"]) == (1, 100.0)
    assert through["time"] == D(2025, 4, 3) and through["remittances"] == D(2025, 4, 2)
    assert through["overall"] == D(2025, 4, 3)
    assert items["denials"]["count"] == 1 and items["denials"]["page"] == "billing"
    assert items["near_threshold"]["page"] == "minutes"


def test_meeting_pack_pdf_on_the_demo(demo_engine, tmp_path):
    with demo_engine.connect() as conn:
        as_of = weekly.data_through(conn)["overall"]
    f = Filters.for_month(202510)
    data = meeting_pack.pack_data(demo_engine, f, week=D(2025, 11, 3), as_of=as_of)
    with demo_engine.connect() as conn:
        assert data["now"]["enrolled"].value == weekly.headline_values(conn, f)["enrolled"].value
    assert [m for m, _ in data["series"]["billable_rate"]][-1] == 202510 and len(data["series"]["enrolled"]) == 12
    pdf = meeting_pack.render(data, made_on=D(2025, 11, 3))
    assert pdf.startswith(b"%PDF") and len(re.findall(rb"/Type /Page\b", pdf)) == 2
    # the CLI writes the same kind of file
    out = tmp_path / "pack.pdf"
    url = demo_engine.url.render_as_string(hide_password=False)
    assert cli.main(["meeting-pack", "--week", "2025-11-03", "--month", "2025-10", "--out", str(out), "--db", url]) == 0
    assert out.read_bytes().startswith(b"%PDF")


def test_masked_counts_in_the_pack():
    from ccm_core.kpis.definitions import KpiResult

    assert meeting_pack.rate_reveals_small(KpiResult(None, 0.6, 9, 15))  # 9 of 15: both sides small
    assert meeting_pack.rate_reveals_small(KpiResult(None, 0.9, 90, 95))  # 5 did not: the complement is small
    assert not meeting_pack.rate_reveals_small(KpiResult(None, 0.5, 50, 100))
    assert meeting_pack._value("consent_rate", KpiResult(None, 0.6, 9, 15)) == "<11"
    assert meeting_pack.masked_count(7) == "<11"
    assert meeting_pack.masked_count(0) == "0" and meeting_pack.masked_count(11) == "11"
