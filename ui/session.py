"""Who is signed in, and what they may open and do.

Every page calls ``require_page(key)`` before it reads any data: with a
``pages/`` folder beside app.py, Streamlit's first request after a server
start can run a page file directly, without app.py's navigation, so the page
itself must refuse anonymous and wrong-role sessions.  The role is re-read
from the database on every run, so a deactivation or role change takes
effect at the next click, not at the next login.
"""

from __future__ import annotations

from dataclasses import dataclass

import streamlit as st

from ccm_core.security import auth
from ui.cache import get_engine
from ui.run_scope import run_scope

DEEP_LINK_KEY = "_ccm_deep_link"
SESSION_ID_KEY = "_ccm_sid"  # the live user_session this browser session belongs to (ccm_core.security.auth)
ENDED_NOTICE = (
    "You have been signed out: the session ended (signed out elsewhere, or the account changed). Sign in again."
)


@dataclass(frozen=True)
class CurrentUser:
    username: str
    display_name: str
    role: str
    staff_id: int | None = None

    @property
    def role_label(self) -> str:
        return auth.ROLE_LABELS.get(self.role, self.role)


def can(user: CurrentUser | None, action: str) -> bool:
    """Server-side action check; pages hide buttons with it and must also gate the action itself."""
    return user is not None and auth.role_can(user.role, action)


def cookie_key() -> str:
    """The signing key, or an error page and a stop when it is unsafe (outside demo mode)."""
    scope = run_scope()
    if "cookie_key" not in scope:
        try:
            scope["cookie_key"] = auth.cookie_key()
        except auth.CookieKeyError as exc:
            st.error("**The dashboard cannot start: its sign-in cookies are not protected.**")
            st.markdown(str(exc))
            st.stop()
    return scope["cookie_key"]


def forget_login(reason: str | None = None) -> None:
    """Drop this browser session's login (and stop cookie re-login in it)."""
    for key in ("authentication_status", "username", "name", "email", "roles"):
        st.session_state[key] = None
    st.session_state.pop(SESSION_ID_KEY, None)
    st.session_state["logout"] = True
    run_scope().pop("user", None)
    if reason:
        st.session_state["_ccm_login_notice"] = reason


def current_user() -> CurrentUser | None:
    """The signed-in user as the database knows them now, or None.

    Checked on every run: the browser session's user_session row must still be live (not signed out,
    not expired, user active and not locked, no password or role change since), so ending a session in
    the database ends it here at the next click."""
    scope = run_scope()
    if "user" in scope:
        return scope["user"]
    user = None
    if st.session_state.get("authentication_status") is True and st.session_state.get("username"):
        record = auth.live_session_user(get_engine(), st.session_state.get(SESSION_ID_KEY))
        if (
            record is not None
            and record.username == auth.normalize_username(st.session_state["username"])
            and record.role in auth.ROLE_PAGES
        ):
            user = CurrentUser(record.username, record.display_name, record.role, record.staff_id)
        else:
            forget_login(ENDED_NOTICE)
    scope["user"] = user
    return user


def _running_as_legacy_page() -> bool:
    """True when Streamlit ran a pages/ file directly (first request after a server start)."""
    from streamlit.runtime.pages_manager import PagesManager

    return bool(PagesManager.uses_pages_directory)


def remember_deep_link(page_key: str) -> None:
    st.session_state[DEEP_LINK_KEY] = {"page": page_key, "query": st.query_params.to_dict()}


def page_title(page_key: str) -> str:
    return auth.PAGES[page_key][0]


def require_page(page_key: str) -> CurrentUser:
    """The signed-in user if their role may open this page; otherwise a message and st.stop()."""
    if page_key not in auth.PAGES:
        raise ValueError(f"Unknown page key {page_key!r}")
    from ui import login, theme
    from ui.components import friendly_errors

    theme.ensure_page_setup()
    user = None
    # A page file can be the first thing a fresh server runs (before app.py): a missing or broken database
    # must show the app's own message here too, never Streamlit's error box.
    with friendly_errors("this page"):
        cookie_key()
        user = current_user()
        if user is None:
            remember_deep_link(page_key)
            user = login.login_gate()
            if user is None:
                st.stop()
            st.rerun()
    if user is None:  # the wrapper showed what went wrong
        st.stop()
    if not auth.may_open(user.role, page_key):
        st.session_state.pop(DEEP_LINK_KEY, None)
        st.warning(
            f"Your role ({user.role_label}) cannot open the {page_title(page_key)} page. Ask an admin if you need it.",
            icon=":material/lock:",
        )
        st.stop()
    if _running_as_legacy_page():
        # Move into the app shell (navigation, sidebar, logout); app.py brings
        # the user back to this page with the same query parameters.
        remember_deep_link(page_key)
        st.switch_page("app.py")
    return user
