"""The sign-in form: streamlit-authenticator's widget with the database's lockout rule and sessions around it.

The library checks the bcrypt hash and draws the form; ``ccm_core.security.auth``
decides who may try (active, not locked) *before* the widget and counts the
outcome *after* it, so five failures lock an account whatever the library
does.  No feature that sends mail or codes through a third party is used.

The login cookie is ours, not the library's: its value names a server-side
session (``ccm_core.security.auth.create_session``), and reading it goes through
``ccm_core.security.auth.decode_session_cookie`` + ``live_session_user``, so a cookie
copied before a sign-out (or a password reset, lockout, deactivation, role
change) signs nobody in, and a cookie with another algorithm, a bad signature
or odd claims is treated as no cookie.  The library writes the cookie from
JavaScript, so it cannot be HttpOnly; it is SameSite=Strict, and Secure when
the app is served over HTTPS (docs/security.md, "Sessions and sign-in").
"""

from __future__ import annotations

import logging

import streamlit as st
import streamlit_authenticator as stauth
from sqlalchemy.exc import SQLAlchemyError
from streamlit_authenticator.utilities import LoginError

from ccm_core.security import auth
from ui.cache import get_engine
from ui.run_scope import run_scope
from ui.session import SESSION_ID_KEY, CurrentUser, cookie_key, current_user, forget_login

log = logging.getLogger("ccm.ui")

COOKIE_NAME = "ccm_dashboard_auth"
LOGIN_FORM_KEY = "ccm_login"
_COOKIE_PENDING = "_ccm_cookie_pending"
_SESSION_ENDS = "_ccm_session_ends"
_FIELDS = {"Form name": "Sign in", "Username": "Username", "Password": "Password", "Login": "Sign in"}
NOT_RECORDED = (
    "Sign-in is not possible right now: the database could not record it. Ask an admin to check "
    "the database (it may be read-only or full)."
)


def served_over_https() -> bool:
    """True when the browser reached the app over TLS (directly or through a proxy that says so)."""
    try:
        url = st.context.url or ""
        proto = (st.context.headers.get("X-Forwarded-Proto") or "").split(",")[0].strip().lower()
    except Exception:  # noqa: BLE001 - no request context (bare tests)
        return False
    return url.startswith("https://") or proto == "https"


def _read_cookie(model) -> dict | None:
    """Replaces CookieModel.get_cookie: a signed cookie naming a live session, else None (never an error)."""
    if st.session_state.get("logout"):
        return None
    try:
        token = st.context.cookies.get(COOKIE_NAME)
    except Exception:  # noqa: BLE001
        return None
    claims = auth.decode_session_cookie(model.cookie_key, token)
    if claims is None:
        return None
    user = auth.live_session_user(get_engine(), claims["sid"])
    if user is None or user.username != claims["username"]:
        return None
    st.session_state[SESSION_ID_KEY] = claims["sid"]
    return {"username": user.username, "exp_date": claims["exp_date"]}


def _write_cookie(model) -> None:
    """Replaces CookieModel.set_cookie: write the cookie of this browser session's live session, if any."""
    sid = st.session_state.get(SESSION_ID_KEY)
    ends = st.session_state.get(_SESSION_ENDS)
    username = st.session_state.get("username")
    if not sid or not ends or not username:
        return
    token = auth.encode_session_cookie(model.cookie_key, username, sid, ends)
    model.cookie_manager.set(model.cookie_name, token, expires_at=ends, secure=served_over_https(), same_site="strict")


def get_authenticator() -> tuple[stauth.Authenticate, dict]:
    """Create the Authenticate object once per run (it renders a keyed cookie component)."""
    scope = run_scope()
    if "authenticator" not in scope:
        engine = get_engine()
        credentials = auth.authenticator_credentials(engine)
        authenticator = stauth.Authenticate(
            credentials,
            cookie_name=COOKIE_NAME,
            cookie_key=cookie_key(),
            cookie_expiry_days=auth.session_hours(engine) / 24,
            auto_hash=False,
            login_sleep_time=0,
        )
        model = authenticator.cookie_controller.cookie_model
        model.get_cookie = lambda: _read_cookie(model)
        model.set_cookie = lambda: _write_cookie(model)
        scope["authenticator"] = (authenticator, credentials)
    return scope["authenticator"]


def _start_session(engine, username: str, how: str) -> bool:
    """Record the sign-in (session row for a password, login row always); False when the database cannot.

    A sign-in the access log cannot record does not happen: the user is signed out again."""
    try:
        if how == "password":
            sid, ends = auth.create_session(engine, username)
            st.session_state[SESSION_ID_KEY] = sid
            st.session_state[_SESSION_ENDS] = ends
        auth.record_login_success(engine, username, detail=how)
    except SQLAlchemyError:
        log.exception("could not record the sign-in of %s", username)
        forget_login()
        return False
    return True


def _attempts(credentials: dict) -> dict[str, int]:
    """Users the library tried a password for in this run (it counts into our fresh dict)."""
    return {
        name: int(entry.get("failed_login_attempts", 0))
        for name, entry in credentials["usernames"].items()
        if "failed_login_attempts" in entry
    }


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
        st.caption(
            "Chronic Care Management: enrollment, minutes, billing, revenue and audit. "
            "Sign in to see your program's data."
        )
        notice = st.session_state.pop("_ccm_login_notice", None)
        if notice:
            st.info(notice)
        _run_widget(authenticator)
        status = st.session_state.get("authentication_status")
        attempts = _attempts(credentials)
        if status is True and not already_signed_in:
            username = st.session_state.get("username") or ""
            how = "password" if username in attempts else "re-login cookie"
            if not _start_session(engine, username, how):
                st.error(NOT_RECORDED, icon=":material/database:")
            elif how == "password":
                # The library's own cookie write happens before the session exists (and is cut short
                # by the rerun that follows a sign-in); write it on the next (signed-in) run.
                st.session_state[_COOKIE_PENDING] = True
            run_scope().pop("user", None)
            st.session_state.pop("_ccm_login_notice", None)
        elif status is False:
            failed = [name for name, count in attempts.items() if count > 0]
            try:
                if failed:
                    outcome = auth.record_login_failure(engine, failed[0])
                else:  # unknown or inactive username: the library never looked it up
                    outcome = auth.record_login_failure(engine, "(unknown user)", detail="unknown user")
                st.error(outcome.message, icon=":material/error:")
            except SQLAlchemyError:
                log.exception("could not record a failed sign-in")
                st.error(NOT_RECORDED, icon=":material/database:")
        if show_demo_sign_ins(engine):
            with st.expander("Demo sign-ins"):
                st.markdown("\n".join(f"- `{u}` / `{p}`: {auth.ROLE_LABELS[r]}" for u, p, r, _ in auth.DEMO_USERS))
    return current_user()


def show_demo_sign_ins(engine) -> bool:
    """The demo passwords are shown only in demo mode AND on a demo database (never on real logins)."""
    if not auth.is_demo_mode():
        return False
    try:
        return auth.is_demo_database(engine)
    except SQLAlchemyError:
        return False


COOKIE_WRITE_RUNS = 10  # runs after a sign-in that keep the cookie writer on the page


def write_pending_cookie() -> None:
    """Set the re-login cookie after a password sign-in (a zero-height component in the sidebar).

    The component writes the cookie in the browser only once it is mounted there; a rerun that comes
    before that (a page's own rerun, a busy server) would unmount it unwritten and the next full page
    load would ask for a password again.  So it stays on the page for the next few runs."""
    pending = st.session_state.get(_COOKIE_PENDING)
    if not pending:
        return
    left = COOKIE_WRITE_RUNS if pending is True else int(pending)
    if left > 1:
        st.session_state[_COOKIE_PENDING] = left - 1
    else:
        st.session_state.pop(_COOKIE_PENDING, None)
    authenticator, _ = get_authenticator()
    authenticator.cookie_controller.set_cookie()


def logout_button(user: CurrentUser) -> bool:
    """Sidebar sign-out; True when the user signed out in this run."""
    authenticator, _ = get_authenticator()
    engine = get_engine()

    def _logged_out(_info: dict) -> None:
        from ccm_core.security.access_log import log_access

        auth.revoke_session(engine, st.session_state.get(SESSION_ID_KEY), "signed out")
        log_access(engine, username=user.username, role=user.role, action="logout", page="app")

    authenticator.logout(
        button_name="Sign out", location="sidebar", key="ccm_logout", callback=_logged_out, use_container_width=True
    )
    if not st.session_state.get("authentication_status"):
        forget_login()
        return True
    return False
