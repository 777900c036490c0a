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
        for f, as_of in cases:
            theirs = peer.compute(conn, label, f, as_of)
            mine = peer.ours(conn, label, f, as_of)
            conn.rollback()
            assert theirs == pytest.approx(mine), (label, f, as_of)
        # the default month has data for every KPI: a peer that read nothing could not pass by 0 == 0
        theirs, cold, cached = peer.run_peer(conn, label, Filters.for_month(MONTH))
        assert theirs["value"], label
        assert cold >= cached > 0


def test_bench_peers_rows_carry_both_ratios(demo_engine, monkeypatch):
    # three kinds of peer (a scalar, one on the patient-month, an as-of one): every peer itself ran above
    some = ("consent_rate", "billable_rate", "pacing_forecast")
    monkeypatch.setattr(peer, "PEERS", {k: peer.PEERS[k] for k in some})
    with demo_engine.connect() as conn:
        rows = peer.bench_peers(conn, MONTH, {label: 0.01 for label in peer.PEERS})
    assert [r["kpi"] for r in rows] == list(some)
    for r in rows:
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
