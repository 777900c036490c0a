"""Downloads: built on click, for a live signed-in session only, written to the access log first.

An export is the most durable way data leaves the app.  So no file exists until
someone clicks: each button hands Streamlit a callable (a deferred download)
that, when the click reaches the server, checks that the Streamlit session that
drew the button is still connected and signed in as the same user, that the user
is still active and their role may export from this page, then builds the file,
writes the access-log row (who, page, file, rows, distinct patients) and only
then returns the bytes.  Streamlit stores the bytes under an unguessable
``/media/<content hash>`` URL for the browser to fetch; ``one_shot_downloads``
makes that URL serve the file for that one click and then forget it (and
forget it anyway after ``DOWNLOAD_TTL_S`` seconds), so a copied URL yields nothing to anyone
else, with or without a cookie, or after sign-out.  See docs/security.md.

Roles without the "export" action get no buttons at all.  In meeting mode, and
for the viewer role, identifier columns are pseudonymised in the file exactly
as on screen.
"""

from __future__ import annotations

import datetime as dt
import logging
import os
import re
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

import pandas as pd
import streamlit as st
from streamlit.runtime.scriptrunner_utils.script_run_context import get_script_run_ctx

from ccm_core.io import spreadsheet
from ccm_core.io.labels import with_headers
from ccm_core.security import auth
from ccm_core.security.access_log import log_access
from ui.cache import get_engine
from ui.meeting import masks_identifiers, pseudonymize
from ui.session import SESSION_ID_KEY, CurrentUser, can

log = logging.getLogger("ccm.ui.exports")
DOWNLOAD_TTL_S = 30.0  # a generated file is forgotten after this long even if it was not fetched
FETCHES_PER_DOWNLOAD = 2  # Streamlit's frontend checks the URL with a GET, then the browser downloads it
XLSX_MIME = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"


def _safe_name(basename: str) -> str:
    stem = re.sub(r"[^A-Za-z0-9._-]+", "_", basename).strip("_") or "export"
    return f"{stem}_{dt.date.today():%Y%m%d}"


def to_csv_bytes(df: pd.DataFrame) -> bytes:
    """CSV with a BOM (Excel opens UTF-8 correctly), formula-like text neutralised (ccm_core/io/spreadsheet.py)."""
    return spreadsheet.csv_bytes(df)


def to_excel_bytes(df: pd.DataFrame, sheet_name: str = "data") -> bytes:
    return spreadsheet.excel_bytes({sheet_name: df})


class ExportRefused(PermissionError):
    """The click did not come from a live session allowed to have this file: no bytes, no log row."""


def _streamlit_session_state(session_id: str | None):
    """The session state of a connected Streamlit session, or None (closed tab, unknown id, no server)."""
    from streamlit import runtime

    if not session_id or not runtime.exists():
        return None
    info = runtime.get_instance()._session_mgr.get_active_session_info(session_id)  # noqa: SLF001
    return None if info is None else info.session.session_state


def _state_get(state, key: str):
    try:
        return state[key]
    except (KeyError, AttributeError):
        return None


def live_user(
    engine, session_id: str | None, username: str, page: str, action: str | None = "export"
) -> CurrentUser | None:
    """Who may have a file now: the drawing Streamlit session still connected and signed in as ``username``
    with a live server-side login session (not signed out, expired, revoked by a password, role or
    lockout change), the account active with a role that may export and open ``page``; else None.

    Runs in Streamlit's worker thread (no script-run context), so it reads that session's state directly."""
    state = _streamlit_session_state(session_id)
    if state is None or _state_get(state, "authentication_status") is not True:
        return None
    if _state_get(state, "username") != username:
        return None
    record = auth.live_session_user(engine, _state_get(state, SESSION_ID_KEY))
    if (
        record is None
        or record.username != auth.normalize_username(username)
        or not record.active
        or (action is not None and not auth.role_can(record.role, action))
        or not auth.may_open(record.role, page)
    ):
        return None
    return CurrentUser(record.username, record.display_name, record.role, record.staff_id)


@dataclass(frozen=True)
class ExportTicket:
    """One download button's file: who may have it and how to build it; nothing is built until it is called."""

    engine: Any
    session_id: str | None
    username: str
    page: str
    file_name: str
    detail: str  # e.g. "12 rows, pseudonymised"
    patients: int | None
    build: Callable[[], bytes]
    action: str | None = "export"  # the role permission the file needs (None: whoever may open the page)

    def __call__(self) -> bytes:
        user = live_user(self.engine, self.session_id, self.username, self.page, self.action)
        if user is None:
            log.warning(
                "download of %s refused: session %s is not live for %s", self.file_name, self.session_id, self.username
            )
            raise ExportRefused(f"{self.file_name}: no live session of a role allowed to export")
        data = self.build()
        # The access-log row is committed before the bytes are returned to Streamlit (and so before they
        # can reach the browser); if the row cannot be written, nothing is served.
        log_access(
            self.engine,
            username=user.username,
            role=user.role,
            action="export",
            page=self.page,
            detail=f"{self.file_name}: {self.detail}",
            patient_count=self.patients,
        )
        return data


def one_shot_downloads() -> None:
    """Serve each generated download file for its one click only, then forget it.

    Streamlit (1.67) keeps a generated download in its in-memory media store until two later script runs
    of any session have passed, fetchable by anyone who has the URL.  Its frontend fetches the URL twice
    per click (a GET to check the source, then the browser's download), so a file is handed out
    ``FETCHES_PER_DOWNLOAD`` times and then removed, and removed after ``DOWNLOAD_TTL_S`` seconds in any
    case.  The store's ``get_file`` is what the ``/media`` route calls (``<id>.<ext>``) and what
    ``get_url`` calls (bare id) right after the file is stored; this wraps it on the running server's store.
    Media that pages show (images) are untouched.
    """
    from streamlit import runtime
    from streamlit.runtime.media_file_storage import MediaFileKind
    from streamlit.runtime.memory_media_file_storage import MemoryMediaFileStorage

    if not runtime.exists():
        return
    storage = runtime.get_instance().media_file_mgr._storage  # noqa: SLF001
    if not isinstance(storage, MemoryMediaFileStorage) or getattr(storage, "_ccm_one_shot", False):
        return
    original = storage.get_file
    lock = threading.Lock()
    remaining: dict[str, int] = {}

    def forget(file_id: str) -> None:
        with lock:
            remaining.pop(file_id, None)
            storage.delete_file(file_id)

    def get_file(filename: str):
        file_id, ext = os.path.splitext(filename)
        with lock:
            media = original(filename)
            if media.kind != MediaFileKind.DOWNLOADABLE:
                return media
            if ext:  # a fetch through the /media route
                left = remaining.get(file_id, 1) - 1
                if left <= 0:
                    remaining.pop(file_id, None)
                    storage.delete_file(file_id)
                else:
                    remaining[file_id] = left
            else:  # just generated (get_url): arm it for one click, and a timer in case nobody comes
                remaining[file_id] = FETCHES_PER_DOWNLOAD
                timer = threading.Timer(DOWNLOAD_TTL_S, forget, args=(file_id,))
                timer.daemon = True
                timer.start()
        return media

    storage.get_file = get_file
    storage._ccm_one_shot = True


def deferred_download(
    label: str,
    build: Callable[[], bytes],
    *,
    user: CurrentUser,
    page: str,
    file_name: str,
    mime: str,
    detail: str,
    patients: int | None,
    key: str,
    icon: str | None = None,
    help: str | None = None,
    action: str | None = "export",
) -> None:
    """A download button whose file is built on click by ``build`` for a live session, logged first.

    Every download in the app goes through here (``download_buttons``, the Audit exports, the Overview's
    meeting pack).  ``action``: the role permission the file needs; None for an aggregate file anyone who
    may open the page may have (still built on click, for a live session, and logged)."""
    if action is not None and not can(user, action):
        return
    one_shot_downloads()
    ctx = get_script_run_ctx()
    ticket = ExportTicket(
        engine=get_engine(),
        session_id=ctx.session_id if ctx else None,
        username=user.username,
        page=page,
        file_name=file_name,
        detail=detail,
        patients=patients,
        build=build,
        action=action,
    )
    st.download_button(label, ticket, file_name=file_name, mime=mime, key=key, icon=icon, help=help, on_click="ignore")


def download_buttons(
    df: pd.DataFrame,
    basename: str,
    user: CurrentUser,
    page: str,
    id_cols: Iterable[str] = (),
    name_cols: Iterable[str] = (),
    *,
    key: str | None = None,
) -> None:
    """CSV + Excel buttons for ``df``; each download is written to the access log."""
    if df is None or not can(user, "export"):
        return
    id_cols, name_cols = tuple(id_cols), tuple(name_cols)
    masked = bool(id_cols or name_cols) and masks_identifiers(user)
    data = pseudonymize(df, id_cols, name_cols) if masked else df
    data = with_headers(data)  # headers in words, no literal "None" (ccm_core.io.labels)
    id_col = next((c for c in id_cols if c in df.columns), None)
    patients = int(df[id_col].nunique()) if id_col else None
    stem = _safe_name(basename)
    key = key or re.sub(r"\W+", "_", f"{page}_{basename}")
    detail = f"{len(data)} rows, {'pseudonymised' if masked else 'identified'}"
    with st.container(horizontal=True, gap="small"):
        deferred_download(
            "CSV",
            lambda: to_csv_bytes(data),
            user=user,
            page=page,
            file_name=f"{stem}.csv",
            mime="text/csv",
            detail=detail,
            patients=patients,
            key=f"dl_csv_{key}",
            icon=":material/download:",
        )
        deferred_download(
            "Excel",
            lambda: to_excel_bytes(data, basename),
            user=user,
            page=page,
            file_name=f"{stem}.xlsx",
            mime=XLSX_MIME,
            detail=detail,
            patients=patients,
            key=f"dl_xlsx_{key}",
            icon=":material/download:",
        )
