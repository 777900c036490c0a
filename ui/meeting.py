"""Meeting mode: one switch that makes every page safe to screen-share.

While it is on, names and identifiers become stable pseudonyms ("Patient
7F3A9C"; the masking rules are ``ccm_core.security.masking``, keyed here with
this server's cookie key), counts below 11 read "<11" (``ui.suppression``),
KPI tiles grow, and patient-level tables stay hidden until a permitted user
deliberately reveals one (logged as "reveal").  The viewer role always sees
pseudonyms, meeting or not.  This module holds the switch, its session state
and ``present`` (a frame as this user may see it now, with the view logged).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable

import pandas as pd
import streamlit as st

from ccm_core.io.meetings import record_meeting
from ccm_core.security import masking
from ccm_core.security.access_log import log_access
from ui.cache import get_engine
from ui.run_scope import run_scope
from ui.session import CurrentUser, can, cookie_key
from ui.suppression import SMALL_CELL, rate_reveals_small, suppress_frame

MEETING_KEY = "meeting_mode"
_TOGGLE_KEY = "_meeting_toggle"
_REVEALED_KEY = "_meeting_revealed"
_LOGGED_KEY = "_ccm_logged_views"


def meeting_mode() -> bool:
    return bool(st.session_state.get(MEETING_KEY, False))


def _on_toggle(user: CurrentUser) -> None:
    on = bool(st.session_state.get(_TOGGLE_KEY))
    st.session_state[MEETING_KEY] = on
    st.session_state[_REVEALED_KEY] = set()
    if on:
        record_meeting(get_engine(), dt.date.today(), user.username)


def meeting_toggle(user: CurrentUser) -> bool:
    """The sidebar switch (drawn by app.py on every page); the state outlives page changes."""
    if MEETING_KEY not in st.session_state:
        st.session_state[MEETING_KEY] = st.query_params.get("meeting") == "1"
        if st.session_state[MEETING_KEY]:
            record_meeting(get_engine(), dt.date.today(), user.username)
    st.session_state[_TOGGLE_KEY] = meeting_mode()
    st.toggle(
        "Meeting mode",
        key=_TOGGLE_KEY,
        on_change=_on_toggle,
        args=(user,),
        help="For screen sharing: hides names and identifiers, suppresses counts under 11, enlarges tiles "
        "and records today's meeting for 'since last meeting' deltas.",
    )
    if meeting_mode():
        st.query_params["meeting"] = "1"
    elif "meeting" in st.query_params:
        del st.query_params["meeting"]
    return meeting_mode()


def pseudonym(value, kind: str = "Patient") -> str:
    """Stable, non-reversible label for an identifier with this server's key (``masking.pseudonym``)."""
    return masking.pseudonym(value, kind, cookie_key())


def suppress_small(n) -> str | int:
    """CMS small-cell rule: counts 1-10 show as "<11" in meeting mode."""
    if n is None or (isinstance(n, float) and pd.isna(n)):
        return n
    return "<11" if meeting_mode() and 0 < n < SMALL_CELL else n


def count_pair(numerator, denominator) -> tuple:
    """A numerator and denominator for text ("6 consented of 12 offered"): both "<11" in meeting mode when
    either, or the complement, is a count of 1-10 (12 offered and 11 consented gives back 1)."""
    n, d = numerator or 0, denominator or 0
    if meeting_mode() and rate_reveals_small(n, d):
        return "<11", "<11"
    return n, d


def hides_rate(numerator, denominator) -> bool:
    """In meeting mode, a rate whose numerator, denominator or complement is 1-10 is not shown."""
    return meeting_mode() and rate_reveals_small(numerator, denominator)


def masks_identifiers(user: CurrentUser) -> bool:
    return meeting_mode() or user.role == "viewer" or not can(user, "reveal_identifiers")


def staff_pseudonyms() -> bool:
    """Meeting mode is on and the admin setting shows staff as pseudonyms (read once per run)."""
    if not meeting_mode():
        return False
    scope = run_scope()
    if "staff_display" not in scope:
        scope["staff_display"] = masking.meeting_staff_display(get_engine())
    return scope["staff_display"] == "pseudonyms"


def staff_label(name, kind: str = "Staff"):
    """A staff member's name as this screen may show it."""
    return pseudonym(name, kind) if staff_pseudonyms() and name else name


def mask_staff(df: pd.DataFrame) -> pd.DataFrame:
    """Staff names as role pseudonyms when ``staff_pseudonyms()`` says so (``masking.pseudonymize_staff``)."""
    if not any(c in df.columns for c in masking.STAFF_COLUMNS) or not staff_pseudonyms():
        return df
    return masking.pseudonymize_staff(df, cookie_key())


def pseudonymize(df: pd.DataFrame, id_cols: Iterable[str] = (), name_cols: Iterable[str] = ()) -> pd.DataFrame:
    """The frame masked with this server's key (``masking.pseudonymize``: pseudonyms for ids and names,
    claim pseudonyms, blanked MBI, date of birth, phone and name parts)."""
    return masking.pseudonymize(df, id_cols, name_cols, cookie_key())


def _view_signature(df: pd.DataFrame, page: str, id_col: str | None) -> tuple:
    ids = tuple(pd.util.hash_pandas_object(df[id_col], index=False).tolist()) if id_col else ()
    return (page, tuple(df.columns), len(df), hash(ids))


def _log_view_once(
    df: pd.DataFrame,
    user: CurrentUser,
    page: str,
    id_col: str | None,
    masked: bool,
    action: str = "view",
    detail: str = "",
) -> None:
    """One access-log row per distinct patient-level view in a session (not one per rerun)."""
    seen = st.session_state.setdefault(_LOGGED_KEY, set())
    sig = (action,) + _view_signature(df, page, id_col) + (masked,)
    if sig in seen:
        return
    seen.add(sig)
    patients = int(df[id_col].nunique()) if id_col else None
    log_access(
        get_engine(),
        username=user.username,
        role=user.role,
        action=action,
        page=page,
        detail=detail or f"{len(df)} rows, {'pseudonymised' if masked else 'identified'}",
        patient_count=patients,
    )


def present(
    df: pd.DataFrame | None,
    user: CurrentUser,
    page: str,
    id_cols: Iterable[str] = (),
    name_cols: Iterable[str] = (),
    *,
    table_key: str = "table",
    count_cols: Iterable[str] = (),
    share_cols: Iterable[str] = (),
    rate_cols: dict[str, tuple[str, float]] | None = None,
) -> pd.DataFrame | None:
    """The frame as this user may see it now, with the view logged; None when it must stay hidden.

    Frames with id or name columns are patient-level: pseudonymised for the
    viewer and in meeting mode, hidden in meeting mode until revealed.
    ``count_cols`` of aggregate frames get small-cell suppression in meeting mode (with complementary
    suppression, see ui/suppression.py), ``share_cols`` are blanked in the rows suppressed, and
    ``rate_cols`` ({rate: (denominator column, scale)}) are blanked where they would give back a small count.
    """
    if df is None:
        return None
    id_cols, name_cols = tuple(id_cols), tuple(name_cols)
    df = mask_staff(df)
    if count_cols and meeting_mode():  # small cells and the one cell a total would give back
        df = suppress_frame(df, count_cols, share_cols, rate_cols=rate_cols)
    if not id_cols and not name_cols:
        return df
    id_col = next((c for c in id_cols if c in df.columns), None)
    if meeting_mode():
        revealed = st.session_state.setdefault(_REVEALED_KEY, set())
        reveal_id = f"{page}:{table_key}"
        if reveal_id not in revealed:
            with st.container(border=True):
                st.markdown(
                    f":material/visibility_off: **Patient-level table hidden in meeting mode** "
                    f"({suppress_small(len(df))} rows)."
                )
                if can(user, "reveal_identifiers") and user.role != "viewer":
                    if st.button(
                        "Reveal for this meeting",
                        key=f"reveal_{page}_{table_key}",
                        help="Shows names and identifiers on the shared screen; the reveal is logged.",
                    ):
                        revealed.add(reveal_id)
                        _log_view_once(
                            df,
                            user,
                            page,
                            id_col,
                            masked=False,
                            action="reveal",
                            detail=f"revealed {table_key} in meeting mode ({len(df)} rows)",
                        )
                        st.rerun()
                else:
                    st.caption("Your role cannot reveal identifiers.")
            return None
        masked = user.role == "viewer"
    else:
        masked = masks_identifiers(user)
    out = pseudonymize(df, id_cols, name_cols) if masked else df
    _log_view_once(df, user, page, id_col, masked)
    return out
