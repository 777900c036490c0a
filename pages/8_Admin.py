"""Admin: users and roles, the access log, import history and settings.

Every action here re-checks the "manage_users" permission on the server and
is written to the access log; passwords go straight to bcrypt and are never
shown or stored in clear.
"""

from __future__ import annotations

import datetime as dt

import streamlit as st

from ui.session import can, require_page

user = require_page("admin")  # before any data is read

from ccm_core.io.imports import import_history  # noqa: E402
from ccm_core.rules.fees import fee_schedule, fee_schedule_year, set_fee_override, set_fee_schedule_year  # noqa: E402
from ccm_core.security import auth  # noqa: E402
from ccm_core.security.access_log import ACTIONS as LOG_ACTIONS  # noqa: E402
from ccm_core.security.access_log import access_log_frame, access_log_usernames, log_access  # noqa: E402
from ccm_core.security.masking import MEETING_STAFF_CHOICES, meeting_staff_display, set_meeting_staff_display  # noqa: E402
from ccm_core.security.users import care_manager_choices, manage_user, users_frame  # noqa: E402
from ccm_core.storage.schema import ROLES  # noqa: E402
from ui.cache import get_engine  # noqa: E402
from ui.components import empty_state, friendly_errors  # noqa: E402
from ui.exports import download_buttons  # noqa: E402

PAGE = "admin"


def _role_label(role: str) -> str:
    return auth.ROLE_LABELS.get(role, role)


def _in_words(df, config: dict) -> dict:
    """Every column's header in words (ccm_core.io.labels), with the given column configs on top."""
    from ccm_core.io.labels import header

    return {**{c: header(c) for c in df.columns}, **config}


def _done(message: str) -> None:
    st.session_state["_admin_notice"] = message[0].upper() + message[1:] + "."
    st.rerun()


def users_tab(engine) -> None:
    notice = st.session_state.pop("_admin_notice", None)
    if notice:
        st.success(notice, icon=":material/check_circle:")
    users = users_frame(engine)
    shown = users.drop(columns=["email"]).assign(role=users["role"].map(_role_label))
    st.dataframe(
        shown,
        hide_index=True,
        width="stretch",
        placeholder="—",
        column_config=_in_words(
            shown,
            {
                "active": st.column_config.CheckboxColumn("Active"),
                "locked": st.column_config.CheckboxColumn("Locked"),
                "locked_until": st.column_config.DatetimeColumn("Locked until", format="HH:mm"),
                "last_login_at": st.column_config.DatetimeColumn("Last sign-in", format="MMM D, HH:mm"),
            },
        ),
    )
    names = users["username"].tolist()
    left, right = st.columns(2)
    with left:
        with st.form("add_user", clear_on_submit=True, border=True):
            st.markdown("**Add a user**")
            username = st.text_input("Username", help="2-64 characters: letters, digits, '.', '_' or '-'.")
            display = st.text_input("Display name")
            role = st.selectbox("Role", ROLES, format_func=_role_label)
            cms = care_manager_choices(engine)
            staff_id = st.selectbox(
                "Care-manager staff record (care managers only)",
                [None] + [i for i, _ in cms],
                format_func=lambda i: "none" if i is None else dict(cms).get(i, str(i)),
            )
            pw1 = st.text_input("Password", type="password", help=f"At least {auth.MIN_PASSWORD_LENGTH} characters.")
            pw2 = st.text_input("Repeat password", type="password")
            if st.form_submit_button("Add user", type="primary"):
                if not can(user, "manage_users"):
                    st.error("Your role cannot manage users.")
                elif pw1 != pw2:
                    st.error("The two passwords differ.")
                else:
                    try:
                        auth.add_user(
                            engine,
                            username,
                            pw1,
                            role,
                            display_name=display or None,
                            staff_id=staff_id if role == "care_manager" else None,
                        )
                    except ValueError as exc:
                        st.error(str(exc))
                    else:
                        log_access(
                            engine,
                            username=user.username,
                            role=user.role,
                            action="admin",
                            page=PAGE,
                            detail=f"user {auth.normalize_username(username)} added with role {role}",
                        )
                        _done(f"user {auth.normalize_username(username)} added")
    with right:
        with st.container(border=True):
            st.markdown("**Change a user**")
            if not names:
                st.caption("No users yet.")
                return
            target = st.selectbox("User", names, key="admin_target")
            current = users.set_index("username").loc[target]
            st.caption(
                f"{_role_label(current['role'])} · {'active' if current['active'] else 'deactivated'}"
                + (" · locked" if current["locked"] else "")
            )
            new_role = st.selectbox(
                "Role", ROLES, index=ROLES.index(current["role"]), format_func=_role_label, key="admin_new_role"
            )
            c1, c2, c3 = st.columns(3)
            action = None
            if c1.button("Set role", width="stretch"):
                action = ("set_role", {"role": new_role})
            if c2.button("Unlock", width="stretch", disabled=not current["locked"] and not current["failed_logins"]):
                action = ("unlock", {})
            if current["active"]:
                if c3.button("Deactivate", width="stretch"):
                    action = ("deactivate", {})
            elif c3.button("Reactivate", width="stretch"):
                action = ("reactivate", {})
            with st.form("reset_password", clear_on_submit=True, border=False):
                pw1 = st.text_input("New password", type="password")
                pw2 = st.text_input("Repeat new password", type="password")
                if st.form_submit_button("Reset password"):
                    action = ("set_password", {"password": pw1}) if pw1 == pw2 else ("mismatch", {})
            if action:
                if action[0] == "mismatch":
                    st.error("The two passwords differ.")
                elif not can(user, "manage_users"):
                    st.error("Your role cannot manage users.")
                else:
                    try:
                        _done(manage_user(engine, user.username, action[0], target, **action[1]))
                    except ValueError as exc:
                        st.error(str(exc))


def access_log_tab(engine) -> None:
    c1, c2, c3, c4 = st.columns([2, 2, 2, 1])
    today = dt.date.today()
    with c1:
        period = st.date_input("Between", (today - dt.timedelta(days=30), today), max_value=today, key="log_period")
    with c2:
        who = st.multiselect("Users", access_log_usernames(engine), key="log_users", placeholder="All users")
    with c3:
        actions = st.multiselect("Actions", LOG_ACTIONS, key="log_actions", placeholder="All actions")
    with c4:
        limit = st.number_input("Rows", 50, 50_000, 1000, step=500, key="log_limit")
    if isinstance(period, (tuple, list)):  # one date while the user is still picking the second
        start = period[0] if period else None
        end = period[1] if len(period) > 1 else start
    else:
        start = end = period
    log = access_log_frame(engine, start, end, tuple(who), tuple(actions), limit=int(limit))
    if log.empty:
        empty_state("No access-log rows match", "Widen the dates or clear the user and action filters.")
        return
    shown = log.drop(columns=["id"])
    st.dataframe(
        shown,
        hide_index=True,
        width="stretch",
        placeholder="—",
        column_config=_in_words(shown, {"at": st.column_config.DatetimeColumn("When", format="YYYY-MM-DD HH:mm:ss")}),
    )
    st.caption(f"{len(log):,} rows, newest first.")
    download_buttons(log, "access_log", user, PAGE)


def imports_tab(engine) -> None:
    history = import_history(engine)
    if history.empty:
        empty_state(
            "No imports yet", "Imports made on the Import page or with `python -m ccm_core import` appear here."
        )
        return
    st.dataframe(history, hide_index=True, width="stretch", placeholder="—", column_config=_in_words(history, {}))
    try:
        from ccm_core.io import imports

        revert = getattr(imports, "revert_batch", None)
    except ImportError:
        revert = None
    committed = history[history["status"] == "committed"]
    if revert is None or committed.empty or not can(user, "revert_import"):
        return
    with st.form("revert_batch", border=True):
        st.markdown("**Revert an import**: deletes the rows it inserted and restores the rows it updated.")
        batch_id = st.selectbox(
            "Batch",
            committed["id"].tolist(),
            format_func=lambda i: f"#{i} {committed.set_index('id').loc[i, 'file_name']}",
        )
        sure = st.checkbox("I understand this changes the data every page shows.")
        if st.form_submit_button("Revert batch") and sure:
            try:
                result = revert(engine, int(batch_id), user.username)
            except ValueError as exc:
                st.error(str(exc))
            else:
                log_access(
                    engine,
                    username=user.username,
                    role=user.role,
                    action="revert",
                    page=PAGE,
                    detail=f"import batch {batch_id} reverted",
                )
                st.success(f"Batch #{batch_id} reverted. {result or ''}")


def settings_tab(engine) -> None:
    shown = meeting_staff_display(engine)
    staff = st.radio(
        "Staff in meeting mode",
        MEETING_STAFF_CHOICES,
        horizontal=True,
        index=MEETING_STAFF_CHOICES.index(shown),
        format_func={"names": "Names", "pseudonyms": "Role and pseudonym"}.get,
        help="How care managers, practitioners and staff read on a shared screen in meeting mode "
        "(tables and charts): their names, or their role with a stable pseudonym.",
    )
    if staff != shown:
        set_meeting_staff_display(engine, staff, user.username)
        st.rerun()
    year = fee_schedule_year(engine)
    years = list(range(2025, max(2027, dt.date.today().year + 1) + 1))
    chosen = st.selectbox(
        "Fee schedule year",
        years,
        index=years.index(year) if year in years else 0,
        help="The year whose fees this tab shows and edits. Each service month is always priced "
        "with the fee schedule of its own year.",
    )
    if chosen != year:
        set_fee_schedule_year(engine, chosen, user.username)
        st.rerun()
    fees = fee_schedule(engine, chosen)
    st.dataframe(
        fees,
        hide_index=True,
        width="stretch",
        placeholder="—",
        column_config=_in_words(fees, {"amount": st.column_config.NumberColumn("Amount", format="$%.2f")}),
    )
    unverified = fees[fees["status"].str.startswith("UNVERIFIED")]
    if not unverified.empty:
        st.caption(
            f"{len(unverified)} amounts for {chosen} are UNVERIFIED defaults: confirm them against your MAC's "
            "fee schedule and correct them below."
        )
    with st.form("fee_override", border=True):
        st.markdown(f"**Set a {chosen} fee** (for your locality, or to confirm an UNVERIFIED amount)")
        c1, c2 = st.columns(2)
        code = c1.selectbox("Code", fees["code"].tolist())
        amount = c2.number_input("Amount ($)", min_value=0.0, max_value=9999.99, step=0.01, format="%.2f")
        if st.form_submit_button("Save fee"):
            try:
                set_fee_override(engine, code, chosen, amount, user.username)
            except ValueError as exc:
                st.error(str(exc))
            else:
                st.success(f"{code} for {chosen} set to ${amount:,.2f}; every page recomputes with it.")
    sessions_form(engine)
    targets_form(engine)


def targets_form(engine) -> None:
    """The Overview's KPI targets (green / amber / red; ccm_core.kpis.weekly, defaults in docs/weekly-read.md)."""
    from ccm_core.kpis import weekly

    with engine.connect() as conn:
        current = weekly.targets(conn)
    with st.form("kpi_targets", border=True):
        st.markdown("**KPI targets** (the Overview's and the meeting pack's green / amber / red)")
        st.caption(
            "Rates in percent. Enrolled patients and expected revenue are green when not below last month; "
            "their amber is how far below (percent) still counts as amber."
        )
        new: dict[str, dict] = {}
        for h in weekly.HEADLINES:
            spec = current[h.key]
            pct = h.unit == "rate"
            c1, c2, c3 = st.columns([2, 1, 1], vertical_alignment="bottom")
            c1.markdown(f"{h.label} ({'lower is better' if h.better == 'lower' else 'higher is better'})")
            if spec["kind"] == "vs_last_month":
                c2.markdown("Green: not below last month")
                amber = c3.number_input(
                    "Amber: % below", 0.0, 100.0, float(spec["amber"]) * 100, 0.5, key=f"tgt_a_{h.key}"
                )
                new[h.key] = {"kind": "vs_last_month", "amber": amber / 100}
            else:
                scale = 100 if pct else 1
                green = c2.number_input(
                    "Green at", 0.0, 10_000.0, float(spec["green"]) * scale, 0.5, key=f"tgt_g_{h.key}"
                )
                amber = c3.number_input(
                    "Amber at", 0.0, 10_000.0, float(spec["amber"]) * scale, 0.5, key=f"tgt_a_{h.key}"
                )
                new[h.key] = {"kind": "level", "green": green / scale, "amber": amber / scale}
        if st.form_submit_button("Save targets"):
            if not can(user, "manage_users"):
                st.error("Your role cannot change settings.")
                return
            try:
                weekly.save_targets(engine, new, user.username)
            except ValueError as exc:
                st.error(str(exc))
            else:
                st.success("Targets saved; the Overview uses them from now on.")


def sessions_form(engine) -> None:
    """How long a sign-in lasts (ccm_core.security.auth.session_hours); sign-ins from now on get the new length."""
    with st.form("session_length", border=True):
        st.markdown("**Sign-in sessions**")
        hours = st.number_input(
            "Session length (hours)",
            min_value=auth.MIN_SESSION_HOURS,
            max_value=auth.MAX_SESSION_HOURS,
            value=float(auth.session_hours(engine)),
            step=1.0,
            format="%.2f",
            help="How long a sign-in (and its browser cookie) lasts before the user signs in again. Sign-out, a "
            "password reset, a lockout, a deactivation or a role change end a session at once.",
        )
        if st.form_submit_button("Save session length"):
            try:
                auth.set_session_hours(engine, hours, user.username)
            except ValueError as exc:
                st.error(str(exc))
            else:
                st.success(f"Sign-ins from now on last {hours:g} hours.")


with friendly_errors("the admin page"):
    engine = get_engine()
    st.title("Admin", anchor=False)
    users_t, log_t, imports_t, settings_t = st.tabs(["Users", "Access log", "Imports", "Settings"])
    with users_t:
        users_tab(engine)
    with log_t:
        access_log_tab(engine)
    with imports_t:
        imports_tab(engine)
    with settings_t:
        settings_tab(engine)
