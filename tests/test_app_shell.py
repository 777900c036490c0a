"""The app shell through AppTest: sign-in, lockout, role gates, guarded page files,
filters in the URL, meeting mode, exports and the cookie-key refusal.

Runs against a small hand-built SQLite practice (fast, independent of the
demo generator); the Overview's numbers on the demo data are checked in
test_overview_page.py.
"""

from __future__ import annotations

import datetime as dt

import pandas as pd
import pytest
from sqlalchemy import select
from streamlit.testing.v1 import AppTest

from ccm_core.security import auth
from ccm_core.storage import db
from ccm_core.storage.schema import access_log, patient
from ccm_core.storage.settings import put_setting

from apptest_utils import (
    ROLE_USERS,
    ROOT,
    TEST_COOKIE_KEY,
    app_env,
    ensure_role_users,
    login_as,
    navigation_page_keys,
    new_app,
    open_page,
    page_direct,
    screen_text,
    signed_in,
    submit_login,
)
from builders import Builder

OCT = dt.date(2025, 10, 6)
SEP = dt.date(2025, 9, 8)


@pytest.fixture(scope="module")
def shell_db(tmp_path_factory):
    """12 enrolled patients of one care manager, 3 of another; minutes in Sep and Oct 2025."""
    url = f"sqlite:///{tmp_path_factory.mktemp('shell') / 'shell.db'}"
    engine = db.make_engine(url)
    db.upgrade(engine)
    with engine.begin() as conn:
        b = Builder(conn)
        cm_busy = b.staff(role="care_manager", first_name="Bea", last_name="Busy")
        cm_small = b.staff(role="care_manager", first_name="Sol", last_name="Small")
        for i in range(12):
            p = b.enrolled_patient(
                consent_on=dt.date(2025, 8, 4), care_manager_id=cm_busy, first_name="Alma", last_name=f"Example{i}"
            )
            b.time(p, minutes=10 + 3 * i, on=OCT)
            b.time(p, minutes=25, on=SEP)
        for _ in range(3):
            p = b.enrolled_patient(consent_on=dt.date(2025, 8, 4), care_manager_id=cm_small)
            b.time(p, minutes=21, on=OCT)
        db.bump_data_version(conn)
    ensure_role_users(engine)
    yield engine, url
    engine.dispose()


@pytest.fixture
def app(shell_db, monkeypatch):
    engine, url = shell_db
    app_env(monkeypatch, url)
    monkeypatch.setenv("CCM_BCRYPT_ROUNDS", "4")
    return engine


def _log_rows(engine, action):
    with engine.connect() as conn:
        return conn.execute(
            select(access_log.c.username, access_log.c.detail, access_log.c.page)
            .where(access_log.c.action == action)
            .order_by(access_log.c.id)
        ).all()


def _existing(keys):
    return [k for k in keys if (ROOT / auth.PAGES[k][1]).is_file()]


# --------------------------------------------------------------------------- sign-in
def test_anonymous_visitor_sees_only_the_sign_in_form(app):
    at = new_app().run()
    assert not at.exception
    assert [t.label for t in at.text_input] == ["Username", "Password"]
    assert at.text_input[1].proto.type == at.text_input[1].proto.PASSWORD
    assert not at.metric and not at.dataframe and not at.title
    assert "Example" not in screen_text(at)
    assert "Demo sign-ins" not in [e.label for e in at.expander]  # not demo mode


def test_wrong_password_shows_a_message_and_right_one_signs_in(app):
    username, password = ROLE_USERS["program_lead"]
    at = new_app().run()
    submit_login(at, username, "not-the-password")
    assert [e.value for e in at.error] == [auth.GENERIC_FAILURE]
    assert not at.metric
    submit_login(at, username, password)
    assert not at.exception and not at.error
    assert [t.value for t in at.title][0].startswith("Overview")
    assert at.metric and at.session_state["username"] == username
    details = [d for u, d, _ in _log_rows(app, "login") if u == username]
    assert details[-1] == "password"
    assert any(u == username and "failure 1" in d for u, d, _ in _log_rows(app, "login_failed"))


def test_five_failures_lock_the_account_even_for_the_right_password(app):
    auth.add_user(app, "lockme", "lock-me-pass", "viewer") if auth.get_user(app, "lockme") is None else None
    auth.unlock(app, "lockme")
    at = new_app().run()
    for i in range(5):
        submit_login(at, "lockme", f"bad-{i}-password")
    assert [e.value for e in at.error] == [auth.GENERIC_FAILURE]  # never "this account is locked"
    submit_login(at, "lockme", "lock-me-pass")
    assert [e.value for e in at.error] == [auth.GENERIC_FAILURE] and not at.metric
    assert auth.get_user(app, "lockme").is_locked()
    auth.unlock(app, "lockme")
    submit_login(at, "lockme", "lock-me-pass")
    assert not at.error and at.metric


def test_unknown_user_is_logged_and_told_the_same(app):
    at = new_app().run()
    submit_login(at, "nobody-here", "whatever-pass")
    assert [e.value for e in at.error] == [auth.GENERIC_FAILURE]
    assert _log_rows(app, "login_failed")[-1][0] == "(unknown user)"


def test_sign_out_returns_to_the_form_and_is_logged(app):
    at = login_as("auditor")
    at.button(key="ccm_logout").click().run()
    assert not at.exception
    assert [t.label for t in at.text_input] == ["Username", "Password"] and not at.metric
    assert _log_rows(app, "logout")[-1][0] == ROLE_USERS["auditor"][0]


def test_deactivation_ends_an_open_session_at_the_next_click(app):
    auth.add_user(app, "temp_lead", "temp-lead-pass", "program_lead") if auth.get_user(
        app, "temp_lead"
    ) is None else auth.set_active(app, "temp_lead", True)
    at = new_app().run()
    submit_login(at, "temp_lead", "temp-lead-pass")
    assert at.metric
    auth.deactivate(app, "temp_lead")
    at.run()
    assert not at.metric and [t.label for t in at.text_input] == ["Username", "Password"]
    assert "You have been signed out" in screen_text(at)


# --------------------------------------------------------------------------- role gates
@pytest.mark.parametrize("role", list(ROLE_USERS))
def test_each_role_sees_exactly_its_pages(app, role):
    at = login_as(role)
    assert navigation_page_keys(at) == _existing(auth.ROLE_PAGES[role])
    for key, (_, page_file) in auth.PAGES.items():
        if key in auth.ROLE_PAGES[role] or not (ROOT / page_file).is_file():
            continue
        with pytest.raises(ValueError):
            open_page(at, key)


def test_admin_can_open_the_admin_page(app):
    at = login_as("admin")
    open_page(at, "admin")
    assert not at.exception and [t.value for t in at.title] == ["Admin"]
    users = at.dataframe[0].value
    assert set(ROLE_USERS["viewer"][:1]) <= set(users["username"])
    assert "password_hash" not in users.columns


@pytest.mark.parametrize("page_key", list(auth.PAGES))
def test_page_files_run_directly_show_no_data_to_anonymous_visitors(app, page_key):
    page_file = auth.PAGES[page_key][1]
    if not (ROOT / page_file).is_file():
        pytest.skip(f"{page_file} not in this checkout yet")
    at = page_direct(page_file)
    assert not at.exception
    assert [t.label for t in at.text_input] == ["Username", "Password"]
    assert not at.metric and not at.dataframe and not at.title
    assert "Example" not in screen_text(at)


@pytest.mark.parametrize("page_key", [k for k in auth.PAGES if k != "overview"])
def test_page_files_run_directly_refuse_the_wrong_role(app, page_key):
    page_file = auth.PAGES[page_key][1]
    if not (ROOT / page_file).is_file():
        pytest.skip(f"{page_file} not in this checkout yet")
    role = next(r for r in ("care_manager", "viewer", "biller") if page_key not in auth.ROLE_PAGES[r])
    at = page_direct(page_file, role=role)
    assert not at.exception
    assert "cannot open" in " ".join(w.value for w in at.warning)
    assert not at.metric and not at.dataframe and not at.text_input


def test_direct_page_sign_in_then_shows_the_page(app):
    at = page_direct("pages/8_Admin.py")
    submit_login(at, *ROLE_USERS["admin"])
    assert not at.exception and [t.value for t in at.title] == ["Admin"]


# --------------------------------------------------------------------------- filters and links
def test_filters_come_from_the_link_and_go_back_into_it(app):
    at = login_as("admin", query={"to": "2025-09", "cm": "999"})
    assert not at.exception
    assert "2025-09" in at.caption[0].value
    assert at.query_params["from"] == "2025-09" and at.query_params["to"] == "2025-09"
    assert "cm" not in at.query_params  # an unknown care manager id is dropped, not applied
    at.select_slider(key="_f_months").set_value((202509, 202510)).run()
    assert at.query_params["from"] == "2025-09" and at.query_params["to"] == "2025-10"
    assert "2025-09 to 2025-10" in at.caption[0].value
    # Kept across pages: the Admin page draws no filters, and back on the Overview they are restored.
    open_page(at, "admin")
    open_page(at, "overview")
    assert at.select_slider(key="_f_months").value == (202509, 202510)
    assert "2025-09 to 2025-10" in at.caption[0].value


def test_care_manager_is_scoped_to_their_own_patients(app):
    with app.connect() as conn:
        busy = (
            conn.execute(
                select(patient.c.care_manager_id)
                .group_by(patient.c.care_manager_id)
                .order_by(patient.c.care_manager_id)
            )
            .scalars()
            .all()
        )
    at = login_as("care_manager")
    care = auth.get_user(app, ROLE_USERS["care_manager"][0])
    assert care.staff_id in busy
    assert "Care manager" not in [m.label for m in at.multiselect]
    assert [t.value for t in at.title] == ["My month"]  # she lands on her work queue
    open_page(at, "overview")
    enrolled = {m.label: m.value for m in at.metric}["Enrolled patients"]
    with app.connect() as conn:
        mine = conn.execute(select(patient.c.id).where(patient.c.care_manager_id == care.staff_id)).all()
    assert enrolled == str(len(mine))


# --------------------------------------------------------------------------- meeting mode and exports
def _present_script():
    import pandas as pd
    import streamlit as st
    from sqlalchemy import select

    from ccm_core.storage.schema import patient
    from ui.cache import get_engine
    from ui.meeting import present, suppress_small
    from ui.session import require_page

    user = require_page("overview")
    with get_engine().connect() as conn:
        df = pd.DataFrame(
            conn.execute(
                select(patient.c.id.label("patient_id"), patient.c.mrn, patient.c.last_name).order_by(patient.c.id)
            )
            .mappings()
            .all()
        )
    shown = present(df, user, "overview", id_cols=("patient_id", "mrn"), name_cols=("last_name",), table_key="roster")
    if shown is not None:
        st.dataframe(shown)
    st.text(f"small={suppress_small(7)} big={suppress_small(15)}")


def _present_app(role, meeting):
    at = signed_in(AppTest.from_function(_present_script, default_timeout=60), role)
    at.session_state["meeting_mode"] = meeting
    return at.run()


def test_meeting_mode_hides_patient_tables_until_revealed(app):
    at = _present_app("program_lead", meeting=True)
    assert not at.exception and not at.dataframe
    assert "hidden in meeting mode" in screen_text(at)
    assert at.text[0].value == "small=<11 big=15"
    at.button(key="reveal_overview_roster").click().run()
    shown = at.dataframe[0].value
    assert shown["last_name"].str.startswith("Example").sum() == 12  # revealed: real names
    reveal = _log_rows(app, "reveal")[-1]
    assert reveal[0] == ROLE_USERS["program_lead"][0] and "roster" in reveal[1]


def test_viewer_sees_pseudonyms_and_cannot_reveal(app):
    at = _present_app("viewer", meeting=False)
    shown = at.dataframe[0].value
    assert not shown["last_name"].str.contains("Example").any()
    assert shown["mrn"].str.match(r"^Patient [0-9A-F]{6}$").all()
    assert (shown["mrn"] == shown["last_name"]).all() and shown["mrn"].nunique() == 15
    again = _present_app("viewer", meeting=False).dataframe[0].value
    assert again["mrn"].tolist() == shown["mrn"].tolist()  # stable across sessions
    at = _present_app("viewer", meeting=True)
    assert not at.dataframe and not [b for b in at.button if b.key and b.key.startswith("reveal")]
    view = _log_rows(app, "view")[-1]
    assert view[0] == ROLE_USERS["viewer"][0] and "pseudonymised" in view[1]


def test_lead_outside_meeting_sees_names_and_the_view_is_logged_once(app):
    before = len(_log_rows(app, "view"))
    at = _present_app("program_lead", meeting=False)
    assert at.dataframe[0].value["last_name"].str.startswith("Example").sum() == 12
    at.run()  # a rerun is not a new view
    rows = _log_rows(app, "view")
    assert len(rows) == before + 1 and "identified" in rows[-1][1]


def _export_script():
    import pandas as pd

    from ui.exports import download_buttons
    from ui.session import require_page

    user = require_page("overview")
    df = pd.DataFrame({"patient_id": [1, 2, 3], "mrn": ["A1", "B2", "C3"], "minutes": [5, 19, 25]})
    download_buttons(df, "worklist", user, "overview", id_cols=("patient_id", "mrn"))


def test_exports_are_deferred_and_not_offered_to_viewers(app):
    """The buttons carry no file: nothing is built or logged when they are drawn or when AppTest (which has
    no server to run the deferred callable) clicks.  Building and logging on a real click is tested in
    tests/test_downloads.py and, end to end, in tests/test_browser_privacy.py."""
    before = len(_log_rows(app, "export"))
    at = signed_in(AppTest.from_function(_export_script, default_timeout=60), "biller")
    at.run()
    assert [b.label for b in at.download_button] == ["CSV", "Excel"]
    assert all(not b.proto.url for b in at.download_button)  # no file behind the button at draw time
    at.download_button[0].click().run()
    assert len(_log_rows(app, "export")) == before
    viewer = signed_in(AppTest.from_function(_export_script, default_timeout=60), "viewer")
    viewer.run()
    assert not viewer.download_button


def test_excel_export_round_trips():
    from ui.exports import to_csv_bytes, to_excel_bytes

    df = pd.DataFrame({"patient": ["Patient 1A2B3C"], "minutes": [19], "when": [pd.Timestamp("2025-10-06")]})
    back = pd.read_excel(__import__("io").BytesIO(to_excel_bytes(df, "worklist")))
    assert back.to_dict("records") == [{"patient": "Patient 1A2B3C", "minutes": 19, "when": pd.Timestamp("2025-10-06")}]
    assert to_csv_bytes(df).decode("utf-8-sig").splitlines()[1] == "Patient 1A2B3C,19,2025-10-06"


# --------------------------------------------------------------------------- cookie key
def test_app_refuses_to_start_with_an_unsafe_cookie_key(app, monkeypatch):
    monkeypatch.setenv("CCM_COOKIE_KEY", "some_key")
    at = new_app().run()
    assert not at.exception
    assert "cannot start" in at.error[0].value
    assert not at.text_input and not at.metric
    page = page_direct("pages/1_Overview.py")
    assert "cannot start" in page.error[0].value and not page.text_input


def test_demo_mode_runs_without_a_key_and_lists_demo_logins(app, monkeypatch):
    monkeypatch.delenv("CCM_COOKIE_KEY")
    monkeypatch.setenv("CCM_DEMO_MODE", "1")
    at = new_app().run()
    assert not at.error and [t.label for t in at.text_input] == ["Username", "Password"]
    # Demo passwords only on a demo database: this one holds real-looking logins, so none are shown...
    assert "Demo sign-ins" not in [e.label for e in at.expander]
    with app.begin() as conn:
        put_setting(conn, auth.DEMO_FLAG_KEY, "true")
    try:
        at = new_app().run()
        assert "Demo sign-ins" in [e.label for e in at.expander]
        # ...and a demo database without CCM_DEMO_MODE=1 shows none either.
        monkeypatch.delenv("CCM_DEMO_MODE")
        monkeypatch.setenv("CCM_COOKIE_KEY", TEST_COOKIE_KEY)
        assert "Demo sign-ins" not in [e.label for e in new_app().run().expander]
    finally:
        with app.begin() as conn:
            put_setting(conn, auth.DEMO_FLAG_KEY, "false")


# --------------------------------------------------------------------------- admin page actions
def test_admin_page_manages_users_with_guard_rails(app):
    at = login_as("admin")
    open_page(at, "admin")
    form = at.form("add_user")
    form.text_input[0].set_value("newbie")
    form.text_input[1].set_value("New Person")
    form.selectbox[0].set_value("biller")
    form.text_input[2].set_value("newbie-pass-1")
    form.text_input[3].set_value("newbie-pass-1")
    form.form_submit_button[0].click().run()
    assert not at.exception and at.success[0].value == "User newbie added."
    created = auth.get_user(app, "newbie")
    assert created.role == "biller" and auth.verify_password("newbie-pass-1", _hash(app, "newbie"))

    at.selectbox(key="admin_target").set_value("newbie").run()
    at.selectbox(key="admin_new_role").set_value("auditor").run()
    at.button[[b.label for b in at.button].index("Set role")].click().run()
    assert auth.get_user(app, "newbie").role == "auditor"
    at.selectbox(key="admin_target").set_value("newbie").run()
    at.button[[b.label for b in at.button].index("Deactivate")].click().run()
    assert not auth.get_user(app, "newbie").active
    # Guard rail: the admin cannot deactivate themselves.
    at.selectbox(key="admin_target").set_value(ROLE_USERS["admin"][0]).run()
    at.button[[b.label for b in at.button].index("Deactivate")].click().run()
    assert "your own admin access" in at.error[0].value
    assert auth.get_user(app, ROLE_USERS["admin"][0]).active
    details = [d for _, d, _ in _log_rows(app, "admin")]
    assert "user newbie added with role biller" in details and "newbie deactivated" in details


def _hash(engine, username):
    from ccm_core.storage.schema import app_user

    with engine.connect() as conn:
        return conn.execute(select(app_user.c.password_hash).where(app_user.c.username == username)).scalar_one()


def test_admin_sets_the_session_length_and_new_sign_ins_get_it(app):
    at = login_as("admin")
    open_page(at, "admin")
    form = at.form("session_length")
    assert form.number_input[0].value == auth.session_hours(app)
    form.number_input[0].set_value(2.0)
    form.form_submit_button[0].click().run()
    assert not at.exception
    try:
        assert auth.session_hours(app) == 2
        assert "Sign-ins from now on last 2 hours." in [s.value for s in at.success]
        assert _log_rows(app, "admin")[-1][:2] == (ROLE_USERS["admin"][0], "session length set to 2 hours")
        before = dt.datetime.now()
        sid, ends = auth.create_session(app, ROLE_USERS["viewer"][0])
        assert dt.timedelta(hours=2) <= ends - before < dt.timedelta(hours=2, seconds=5)
    finally:
        auth.set_session_hours(app, auth.DEFAULT_SESSION_HOURS, actor="test")
