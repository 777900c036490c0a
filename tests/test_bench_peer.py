"""The bench's peer (bench/peer.py) computes the SAME numbers as our KPIs on the small demo database.

Why: the peer's times are only comparable with ours if it answers the same question; a peer that
dropped a rule would be faster for the wrong reason (or slower, for the wrong reason).
"""

from __future__ import annotations

import datetime as dt

import pytest
from sqlalchemy import text

from bench import peer
from ccm_core.engine.filters import Filters

from builders import Builder

MONTH = 202509  # the demo set ends 2025-10; September is the last complete month


def _filters(conn):
    clinic = conn.execute(text("SELECT min(clinic_id) FROM patient")).scalar()
    payer = conn.execute(text("SELECT min(payer) FROM patient")).scalar()
    return [
        Filters.for_month(MONTH),
        Filters.for_month(202507),
        Filters(month_from=202506, month_to=MONTH),
        Filters.for_month(MONTH, clinic_ids=(int(clinic),)),
        Filters.for_month(MONTH, payers=(payer,)),
    ]


# the as-of KPIs (near-threshold list, pacing forecast) are asked on the 17th of each filter's last month
# (peer.default_as_of) and, here, also on a month end
AS_OF_KPIS = ("near_threshold_worklist", "pacing_forecast")


@pytest.mark.parametrize("label", list(peer.PEERS))
def test_peer_equals_ours(demo_engine, label):
    with demo_engine.connect() as conn:
        cases = [(f, None) for f in _filters(conn)]
        if label in AS_OF_KPIS:
            cases.append((Filters.for_month(MONTH), dt.date(2025, 9, 30)))
        frames = peer.read_tables(conn, peer.PEERS[label][0])  # read once, as the habit does
        values = []
        for f, as_of in cases:
            theirs = peer.compute(conn, label, f, as_of, frames)
            mine = peer.ours(conn, label, f, as_of)
            conn.rollback()
            assert theirs == pytest.approx(mine), (label, f, as_of)
            values.append(theirs["value"])
    # the filter sets hold data for every KPI: a peer that read nothing could not pass by 0 == 0 (the demo's
    # suspicious time, for one, is planted in earlier months: the 4-month range holds it); the timings: below
    assert any(values), label


def test_time_flag_peer_on_every_planted_pattern(engine):
    """The demo plants round, back-dated and vague time only: the hand-built set of tests/test_pages_kpis_extra.py
    holds one of each pattern (repeated durations and over 8 h in a day too), and ordinary time."""
    with engine.begin() as conn:
        b = Builder(conn)
        s1, s2, s3, s4 = (b.staff() for _ in range(4))
        a = b.patient(care_manager_id=s1)
        b.time(a, 20, dt.date(2025, 3, 3), staff_id=s1, entered_at=dt.datetime(2025, 3, 10, 9, 0))
        b.time(a, 30, dt.date(2025, 3, 4), staff_id=s1, entered_at=dt.datetime(2025, 3, 10, 9, 5))
        vague = b.patient(care_manager_id=s1)
        b.time(vague, 15, dt.date(2025, 3, 5), staff_id=s1, note="CCM call completed")
        b.time(vague, 12, dt.date(2025, 3, 6), staff_id=s1, note="ok")
        for _ in range(5):
            b.time(b.patient(care_manager_id=s2), 17, dt.date(2025, 3, 10), staff_id=s2)
        batch = b.patient(care_manager_id=s3)
        for day, minutes in ((3, 13), (5, 14), (20, 16)):
            b.time(batch, minutes, dt.date(2025, 3, day), staff_id=s3, entered_at=dt.datetime(2025, 3, 30, 17, day))
        late_but_fresh = b.patient(care_manager_id=s3)
        for day, minutes in ((28, 13), (29, 14), (30, 16)):
            b.time(
                late_but_fresh, minutes, dt.date(2025, 3, day), staff_id=s3, entered_at=dt.datetime(2025, 3, 30, 9, day)
            )
        for minutes in (95, 97, 99, 101, 98):
            b.time(b.patient(care_manager_id=s4), minutes, dt.date(2025, 3, 12), staff_id=s4)
        b.times(b.patient(care_manager_id=s1), [12, 9, 14], dt.date(2025, 3, 17), staff_id=s1)
    with engine.connect() as conn:
        for f in (Filters.for_month(202503), Filters.for_month(202503, care_manager_ids=(s3, s4))):
            theirs = peer.compute(conn, "time_flag_summary", f)
            assert theirs == peer.ours(conn, "time_flag_summary", f), f
        assert all(theirs[f"{k}.entries"] for k in ("backdated_batch", "implausible_daily_total"))
        everything = peer.compute(conn, "time_flag_summary", Filters.for_month(202503))
    assert all(everything[f"{k}.entries"] for k in peer.TIME_FLAGS)


def test_bench_peers_rows_carry_both_ratios(demo_engine, monkeypatch):
    # three kinds of peer (a scalar, one on the patient-month, an as-of one): every peer itself ran above
    some = ("consent_rate", "billable_rate", "pacing_forecast")
    monkeypatch.setattr(peer, "PEERS", {k: peer.PEERS[k] for k in some})
    with demo_engine.connect() as conn:
        rows = peer.bench_peers(conn, MONTH, {label: 0.01 for label in peer.PEERS})
    assert [r["kpi"] for r in rows] == list(some)
    for r in rows:
        assert r["peer_cold"] > r["peer_cached"] > 0  # every row pays for its tables' reads, shared or not
        assert r["vs_cold"] == round(0.01 / r["peer_cold"], 3)
        assert r["vs_cached"] == round(0.01 / r["peer_cached"], 3)


def test_peer_table_flags_both_targets():
    from bench import harness

    core = {
        "peer": [
            {"kpi": "fast", "ours": 0.01, "peer_cold": 0.5, "peer_cached": 0.02, "vs_cold": 0.02, "vs_cached": 0.5},
            {"kpi": "slow", "ours": 0.1, "peer_cold": 0.5, "peer_cached": 0.05, "vs_cold": 0.2, "vs_cached": 2.0},
        ]
    }
    md = "\n".join(harness.render_peer(core))
    assert "| fast | 0.010 | 0.500 | 0.020 | 0.02 | 0.5 | yes | yes |" in md
    assert "| slow | 0.100 | 0.500 | 0.050 | 0.2 | 2.0 | no | no |" in md
    assert harness.render_peer({"peer_error": "boom"}) == ["Peer ERROR: boom\n"]
