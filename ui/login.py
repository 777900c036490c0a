"""The sign-in form: streamlit-authenticator's widget with the database's lockout rule around it.

The library checks the bcrypt hash and sets the re-login cookie; ``ccm_core.auth``
decides who may try (active, not locked) *before* the widget and counts the
outcome *after* it, so five failures lock an account whatever the library
does.  No feature that sends mail or codes through a third party is used.
"""
from __future__ import annotations

import streamlit as st
import streamlit_authenticator as stauth
from streamlit_authenticator.utilities import LoginError

from ccm_core import auth

from ._run import run_scope
from .data import get_engine
from .session import CurrentUser, cookie_key, current_user, forget_login

COOKIE_NAME = "ccm_dashboard_auth"
COOKIE_EXPIRY_DAYS = 1.0
LOGIN_FORM_KEY = "ccm_login"
_COOKIE_PENDING = "_ccm_cookie_pending"
_FIELDS = {"Form name": "Sign in", "Username": "Username", "Password": "Password", "Login": "Sign in"}


def get_authenticator() -> tuple[stauth.Authenticate, dict]:
    """Create the Authenticate object once per run (it renders a keyed cookie component)."""
    scope = run_scope()
    if "authenticator" not in scope:
        credentials = auth.authenticator_credentials(get_engine())
        authenticator = stauth.Authenticate(
            credentials, cookie_name=COOKIE_NAME, cookie_key=cookie_key(), cookie_expiry_days=COOKIE_EXPIRY_DAYS,
            auto_hash=False, login_sleep_time=0)
        scope["authenticator"] = (authenticator, credentials)
    return scope["authenticator"]


def _attempts(credentials: dict) -> dict[str, int]:
    """Users the library tried a password for in this run (it counts into our fresh dict)."""
    return {name: int(entry.get("failed_login_attempts", 0))
            for name, entry in credentials["usernames"].items() if "failed_login_attempts" in entry}


def _run_widget(authenticator: stauth.Authenticate) -> None:
    try:
        authenticator.login(location="main", fields=_FIELDS, key=LOGIN_FORM_KEY)
    except LoginError:
        # A re-login cookie for a user who is gone or deactivated: ignore the
        # cookie for this session and show the form.
        forget_login()
        authenticator.login(location="main", fields=_FIELDS, key=LOGIN_FORM_KEY)


def login_gate() -> CurrentUser | None:
    """Draw the sign-in form (or accept a valid re-login cookie); the user once signed in."""
    engine = get_engine()
    authenticator, credentials = get_authenticator()
    if st.session_state.get("authentication_status") is False:
        st.session_state["authentication_status"] = None  # so False below means "failed in this run"
    already_signed_in = st.session_state.get("authentication_status") is True

    left, middle, right = st.columns([1, 1.3, 1])
    with middle:
        st.markdown("<div class='ccm-login-brand'>CCM Program Dashboard</div>", unsafe_allow_html=True)
        st.caption("Chronic Care Management: enrollment, minutes, billing, revenue and audit. "
                   "Sign in to see your program's data.")
        notice = st.session_state.pop("_ccm_login_notice", None)
        if notice:
            st.info(notice)
        _run_widget(authenticator)
        status = st.session_state.get("authentication_status")
        attempts = _attempts(credentials)
        if status is True and not already_signed_in:
            username = st.session_state.get("username") or ""
            how = "password" if username in attempts else "re-login cookie"
            auth.record_login_success(engine, username, detail=how)
            if how == "password":
                # The library's own cookie write is cut short by the rerun that follows a
                # sign-in; write it again on the next (signed-in) run so a reload keeps the login.
                st.session_state[_COOKIE_PENDING] = True
            run_scope().pop("user", None)
            st.session_state.pop("_ccm_login_notice", None)
        elif status is False:
            failed = [name for name, count in attempts.items() if count > 0]
            if failed:
                outcome = auth.record_login_failure(engine, failed[0])
            else:  # unknown or inactive username: the library never looked it up
                outcome = auth.record_login_failure(engine, "(unknown user)", detail="unknown user")
            st.error(outcome.message, icon=":material/error:")
        if auth.is_demo_mode():
            with st.expander("Demo sign-ins"):
                st.markdown("\n".join(f"- `{u}` / `{p}`: {auth.ROLE_LABELS[r]}" for u, p, r, _ in auth.DEMO_USERS))
    return current_user()


def write_pending_cookie() -> None:
    """Set the re-login cookie once after a password sign-in (rendered as a zero-height component)."""
    if st.session_state.pop(_COOKIE_PENDING, False):
        authenticator, _ = get_authenticator()
        authenticator.cookie_controller.set_cookie()


def logout_button(user: CurrentUser) -> bool:
    """Sidebar sign-out; True when the user signed out in this run."""
    authenticator, _ = get_authenticator()
    engine = get_engine()

    def _logged_out(_info: dict) -> None:
        from ccm_core.access import log_access

        log_access(engine, username=user.username, role=user.role, action="logout", page="app")

    authenticator.logout(button_name="Sign out", location="sidebar", key="ccm_logout", callback=_logged_out,
                         use_container_width=True)
    if not st.session_state.get("authentication_status"):
        forget_login()
        return True
    return False
