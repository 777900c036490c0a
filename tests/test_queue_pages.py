"""My month and Denials to work through AppTest: the care manager's list is hers whatever the URL says
(server-side), meeting mode hides patient rows on both pages, and the numbers on screen are the
``ccm_core.kpis.queues`` numbers.  Its own small demo practice (page views and status changes write).
"""

from __future__ import annotations

import datetime as dt

import pytest
from sqlalchemy import select

from ccm_core.engine.filters import Filters
from ccm_core.kpis import queues
from ccm_core.security import auth
from ccm_core.storage import db
from ccm_core.storage.schema import patient, staff

from apptest_utils import ROLE_USERS, app_env, ensure_role_users, login_as, open_page, screen_text
from conftest import DEMO_KW

AS_OF = dt.date(2025, 10, 31)  # the demo's data date


@pytest.fixture(scope="module")
def queue_db(tmp_path_factory):
    from ccm_core.io import demo

    url = f"sqlite:///{tmp_path_factory.mktemp('queue_pages') / 'q.db'}"
    engine = db.make_engine(url)
    db.upgrade(engine)
    demo.generate(engine, **DEMO_KW)
    ensure_role_users(engine)
    yield engine, url
    engine.dispose()


@pytest.fixture
def app(queue_db, monkeypatch):
    engine, url = queue_db
    app_env(monkeypatch, url)
    monkeypatch.setenv("CCM_BCRYPT_ROUNDS", "4")
    return engine


def _frame(at, col):
    return [df.value for df in at.dataframe if col in df.value.columns]


def test_care_manager_sees_only_her_patients_whatever_the_link_says(app):
    care = auth.get_user(app, ROLE_USERS["care_manager"][0])
    with app.connect() as conn:
        other = (
            conn.execute(select(staff.c.id).where(staff.c.role == "care_manager", staff.c.id != care.staff_id))
            .scalars()
            .first()
        )
        mine = set(conn.execute(select(patient.c.id).where(patient.c.care_manager_id == care.staff_id)).scalars())
        expected = queues.my_month(conn, Filters(202510, 202510, care_manager_ids=(care.staff_id,)), AS_OF)
    at = login_as("care_manager", query={"cm": str(other)})
    assert not at.exception
    assert [t.value for t in at.title] == ["My month"]  # her landing page
    lists = _frame(at, "days_since_contact")
    assert lists and set(lists[0]["patient_id"]) <= mine and len(lists[0]) == len(expected)
    metrics = {m.label: m.value for m in at.metric}
    assert metrics["Still to finish"] == str(len(expected))
    assert metrics["At 0 minutes"] == str(expected.attrs["at_zero"])
    assert "Care manager" not in [m.label for m in at.multiselect]


def test_meeting_mode_hides_patient_rows_on_the_queues(app):
    with app.connect() as conn:
        names = {f"{a} {b}" for a, b in conn.execute(select(patient.c.first_name, patient.c.last_name))}
    for role, page in (("program_lead", "my_month"), ("biller", "denials")):
        at = login_as(role)
        at.session_state["meeting_mode"] = True
        open_page(at, page)
        assert not at.exception
        text = screen_text(at)
        assert "hidden in meeting mode" in text
        leaked = [n for n in names if n in text]  # staff names (the caseload table) may show
        assert not leaked, (page, leaked, text[:3000])
        assert not _frame(at, "patient_name")


def test_biller_queue_numbers_match_the_core(app):
    at = login_as("biller")
    assert not at.exception
    assert [t.value for t in at.title] == ["Denials to work"]
    with app.connect() as conn:
        df = queues.denials_to_work(conn, Filters(202411, 202510), AS_OF)
    open_ = df[df["status"] == "open"]
    metrics = {m.label: m.value for m in at.metric}
    assert metrics["Open lines"] == str(len(open_))
    shown = _frame(at, "fix")
    assert shown and set(shown[0]["claim_line_id"]) == set(df["claim_line_id"])
