"""CCM Program Dashboard: the app shell (`streamlit run app.py`).

Signs the user in, then offers exactly the pages their role may open.  Before
sign-in every page URL shows the sign-in form in place (same URL and query
string), so a shared deep link opens the right page after login.  Pages are
still guarded themselves (ui.session.require_page), because Streamlit can
run a page file directly on the first request after a server start.
"""

from __future__ import annotations

from functools import partial
from pathlib import Path

import streamlit as st

from ccm_core.security import auth
from ui import login, meeting, theme
from ui.components import friendly_errors
from ui.run_scope import run_scope, shell_widget_ids
from ui.session import DEEP_LINK_KEY, CurrentUser, cookie_key, current_user
from ui.text import html_text

HERE = Path(__file__).resolve().parent
PAGE_ICONS = {
    "overview": ":material/dashboard:",
    "enrollment": ":material/how_to_reg:",
    "minutes": ":material/timer:",
    "billing": ":material/receipt_long:",
    "revenue": ":material/payments:",
    "audit": ":material/fact_check:",
    "import": ":material/upload_file:",
    "admin": ":material/admin_panel_settings:",
    "my_month": ":material/checklist:",
    "denials": ":material/assignment_late:",
}


LANDING_KEY = "_ccm_go_landing"


def sign_in_page() -> None:
    """Stands in for every page until someone signs in; the URL stays the one they asked for."""
    if login.login_gate() is not None:
        # Signed in at the site root (no page asked for): open the role's work queue, not the Overview.
        from urllib.parse import urlparse

        path = urlparse(st.context.url or "").path.strip("/")
        if not path:
            st.session_state[LANDING_KEY] = True
        st.rerun()


def forbidden_page(page_key: str, user: CurrentUser) -> None:
    st.warning(
        f"Your role ({user.role_label}) cannot open the {auth.PAGES[page_key][0]} page. Ask an admin if you need it.",
        icon=":material/lock:",
    )


def missing_page(page_key: str) -> None:
    st.info(f"The {auth.PAGES[page_key][0]} page is not installed in this build.", icon=":material/construction:")


def user_pages(user: CurrentUser) -> dict[str, st.Page]:
    """The role's pages (visible, in navigation order) plus hidden stand-ins that explain a refusal."""
    allowed = auth.ROLE_PAGES[user.role]
    landing = auth.landing_page(user.role)  # each role opens on its work queue
    pages = {}
    for key, (title, file_name) in auth.PAGES.items():
        common = dict(title=title, url_path=key, default=(key == landing), icon=PAGE_ICONS[key])
        if key in allowed:
            if (HERE / file_name).is_file():
                pages[key] = st.Page(file_name, **common)
            else:
                pages[key] = st.Page(partial(missing_page, key), **common)
        else:
            pages[key] = st.Page(partial(forbidden_page, key, user), visibility="hidden", **common)
    return pages


def sidebar(user: CurrentUser) -> bool:
    """User card, meeting switch and a slot for the page's filters; False if the user signed out."""
    with st.sidebar:
        card = st.container()
        if login.logout_button(user):
            return False
        login.write_pending_cookie()
        with card:
            st.html(
                f"<div class='ccm-user-card'><b>{html_text(user.display_name)}</b><br>"
                f"<span class='role'>{html_text(user.role_label)}</span></div>"
            )
            meeting.meeting_toggle(user)
            st.divider()
        run_scope()["filter_slot"] = card.container()
    return True


def follow_deep_link(user: CurrentUser, pages: dict[str, st.Page], page: st.Page) -> None:
    """After a sign-in that started on a page file Streamlit ran directly, go to that page.

    The link is kept until the page is reached (a component-triggered rerun can
    overtake a switch), with a small retry limit so it can never loop.
    """
    deep_link = st.session_state.get(DEEP_LINK_KEY)
    if not deep_link:
        return
    target = pages.get(deep_link["page"]) if auth.may_open(user.role, deep_link["page"]) else None
    if target is None or target is page or deep_link.get("tries", 0) >= 3:
        st.session_state.pop(DEEP_LINK_KEY, None)
        return
    deep_link["tries"] = deep_link.get("tries", 0) + 1
    st.switch_page(target, query_params=deep_link["query"] or None)


def main() -> None:
    theme.ensure_page_setup()
    with friendly_errors("the dashboard"), shell_widget_ids():
        cookie_key()  # refuses to start (error page, no data) when the key is unsafe
        login.get_authenticator()  # once per run: cookie re-login and sign-out need it
        user = current_user()
        if user is not None and not sidebar(user):
            user = None
        if user is None:
            anonymous = [
                st.Page(sign_in_page, title="Sign in", url_path=key, default=(key == "overview")) for key in auth.PAGES
            ]
            st.navigation(anonymous, position="hidden").run()
            return
        if meeting.meeting_mode():
            theme.apply_meeting_css()
        pages = user_pages(user)
        run_scope()["pages"] = pages
        page = st.navigation(list(pages.values()), position="top")
        follow_deep_link(user, pages, page)
        landing = auth.landing_page(user.role)
        if st.session_state.pop(LANDING_KEY, False) and page is not pages[landing]:
            st.switch_page(pages[landing])
        page.run()


main()
