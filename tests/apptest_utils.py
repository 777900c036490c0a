"""Reusable AppTest helpers: sign in as a role, open a page, read what is on screen.

Typical page test (the database must hold the test users: call
``ensure_role_users(engine)`` once, e.g. in a fixture)::

    from apptest_utils import app_env, ensure_role_users, login_as, open_page

    def test_billing_page(demo_engine, demo_url, monkeypatch):
        ensure_role_users(demo_engine)
        app_env(monkeypatch, demo_url)
        at = login_as("biller")
        open_page(at, "billing")
        assert not at.exception

``page_direct(path, role)`` runs a page file on its own (as Streamlit does on
the first request after a server start) to prove its guard.
"""

from __future__ import annotations

from pathlib import Path

from streamlit.testing.v1 import AppTest

from ccm_core.security import auth

ROOT = Path(__file__).resolve().parent.parent
APP = str(ROOT / "app.py")
TIMEOUT = 60

# One login per role; passwords are only for tests.
ROLE_USERS: dict[str, tuple[str, str]] = {
    "admin": ("t_admin", "t-admin-pass"),
    "program_lead": ("t_lead", "t-lead-pass"),
    "auditor": ("t_auditor", "t-auditor-pass"),
    "biller": ("t_biller", "t-biller-pass"),
    "care_manager": ("t_care", "t-care-pass"),
    "viewer": ("t_viewer", "t-viewer-pass"),
}
TEST_COOKIE_KEY = "6fgMMidHglqQ555sItchKmADLQ5aG-LtZwtKlh2d3yKC"


def ensure_role_users(engine) -> dict[str, tuple[str, str]]:
    """Create the six role logins if missing (cheap bcrypt cost); the care manager gets a staff row."""
    import os

    old = os.environ.get("CCM_BCRYPT_ROUNDS")
    os.environ["CCM_BCRYPT_ROUNDS"] = "4"
    try:
        care_staff = auth.demo_care_manager_staff_id(engine)
        for role, (username, password) in ROLE_USERS.items():
            if auth.get_user(engine, username) is None:
                auth.add_user(
                    engine,
                    username,
                    password,
                    role,
                    display_name=f"Test {auth.ROLE_LABELS[role]}",
                    staff_id=care_staff if role == "care_manager" else None,
                )
            else:
                auth.unlock(engine, username)
    finally:
        if old is None:
            os.environ.pop("CCM_BCRYPT_ROUNDS", None)
        else:
            os.environ["CCM_BCRYPT_ROUNDS"] = old
    return ROLE_USERS


def app_env(monkeypatch, db_url: str, demo_mode: bool = False) -> None:
    """Point the in-process app at ``db_url`` with a valid cookie key (set before AppTest runs)."""
    monkeypatch.setenv("CCM_DATABASE_URL", db_url)
    monkeypatch.setenv("CCM_COOKIE_KEY", TEST_COOKIE_KEY)
    if demo_mode:
        monkeypatch.setenv("CCM_DEMO_MODE", "1")
    else:
        monkeypatch.delenv("CCM_DEMO_MODE", raising=False)


def new_app(query: dict | None = None) -> AppTest:
    at = AppTest.from_file(APP, default_timeout=TIMEOUT)
    for k, v in (query or {}).items():
        at.query_params[k] = v
    return at


def submit_login(at: AppTest, username: str, password: str) -> AppTest:
    """Fill the sign-in form (username, password) and press Sign in."""
    at.text_input[0].set_value(username)
    at.text_input[1].set_value(password)
    at.form_submit_button[0].click()
    return at.run()


def login_as(role: str, query: dict | None = None) -> AppTest:
    """A fresh app session signed in with the test login of ``role``."""
    at = new_app(query).run()
    username, password = ROLE_USERS[role]
    submit_login(at, username, password)
    assert not at.exception, at.exception
    assert at.session_state["authentication_status"] is True, [e.value for e in at.error]
    return at


def open_page(at: AppTest, page_key: str) -> AppTest:
    """Switch to a page by its key (raises ValueError if the role's navigation lacks it)."""
    return at.switch_page(auth.PAGES[page_key][1]).run()


def navigation_page_keys(at: AppTest) -> list[str]:
    """Page keys whose files the navigation registered in the last run (forbidden pages have no file)."""
    by_file = {Path(f).name: key for key, (_, f) in auth.PAGES.items()}
    files = [Path(info.get("script_path") or "").name for info in at._registered_pages.values()]
    return [by_file[name] for name in files if name in by_file]


def signed_in(at: AppTest, role: str) -> AppTest:
    """Give an AppTest session a live sign-in as ``role`` without the form: the session state the sign-in
    leaves plus a server-side session row (ui.session.current_user checks it on every run).  The
    database is the one CCM_DATABASE_URL names (app_env sets it)."""
    import os

    from ccm_core.storage import db

    username, _ = ROLE_USERS[role]
    engine = db.make_engine(os.environ["CCM_DATABASE_URL"])
    try:
        sid, _ends = auth.create_session(engine, username)
    finally:
        engine.dispose()
    at.session_state["authentication_status"] = True
    at.session_state["username"] = username
    at.session_state["_ccm_sid"] = sid
    return at


def page_direct(page_file: str, role: str | None = None, query: dict | None = None) -> AppTest:
    """Run a page file on its own, anonymously or with a session already signed in as ``role``."""
    at = AppTest.from_file(str(ROOT / page_file), default_timeout=TIMEOUT)
    if role is not None:
        signed_in(at, role)
    for k, v in (query or {}).items():
        at.query_params[k] = v
    return at.run()


def screen_text(at: AppTest) -> str:
    """Everything readable on screen (markdown, captions, alerts, metrics, tables) as one string."""
    parts: list[str] = []
    for kind in ("title", "header", "subheader", "markdown", "caption", "text", "error", "warning", "info", "success"):
        parts.extend(str(e.value) for e in getattr(at, kind))
    parts.extend(f"{m.label} {m.value}" for m in at.metric)
    for df in at.dataframe:
        parts.append(df.value.to_string())
    return "\n".join(parts)


def metrics(at: AppTest) -> dict[str, str]:
    return {m.label: m.value for m in at.metric}
