"""CSV and Excel downloads that respect the role and land in the access log.

An export is the most durable way data leaves the app, so each click is
logged (who, page, file, rows, patients) and roles without the "export"
action get no buttons at all.  In meeting mode, and for the viewer role,
identifier columns are pseudonymised in the file exactly as on screen.
"""
from __future__ import annotations

import datetime as dt
import re
from typing import Iterable

import pandas as pd
import streamlit as st

from ccm_core import spreadsheet
from ccm_core.access import log_access

from .data import get_engine
from .meeting import masks_identifiers, pseudonymize
from .session import CurrentUser, can

XLSX_MIME = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"


def _safe_name(basename: str) -> str:
    stem = re.sub(r"[^A-Za-z0-9._-]+", "_", basename).strip("_") or "export"
    return f"{stem}_{dt.date.today():%Y%m%d}"


def to_csv_bytes(df: pd.DataFrame) -> bytes:
    """CSV with a BOM (Excel opens UTF-8 correctly), formula-like text neutralised (ccm_core/spreadsheet.py)."""
    return spreadsheet.csv_bytes(df)


def to_excel_bytes(df: pd.DataFrame, sheet_name: str = "data") -> bytes:
    return spreadsheet.excel_bytes({sheet_name: df})


def _log_export(user: CurrentUser, page: str, file_name: str, rows: int, patients: int | None, masked: bool) -> None:
    log_access(get_engine(), username=user.username, role=user.role, action="export", page=page,
               detail=f"{file_name}: {rows} rows, {'pseudonymised' if masked else 'identified'}",
               patient_count=patients)


def download_buttons(df: pd.DataFrame, basename: str, user: CurrentUser, page: str,
                     id_cols: Iterable[str] = (), name_cols: Iterable[str] = (), *, key: str | None = None) -> None:
    """CSV + Excel buttons for ``df``; each download is written to the access log."""
    if df is None or not can(user, "export"):
        return
    id_cols, name_cols = tuple(id_cols), tuple(name_cols)
    masked = bool(id_cols or name_cols) and masks_identifiers(user)
    data = pseudonymize(df, id_cols, name_cols) if masked else df
    id_col = next((c for c in id_cols if c in df.columns), None)
    patients = int(df[id_col].nunique()) if id_col else None
    stem = _safe_name(basename)
    key = key or re.sub(r"\W+", "_", f"{page}_{basename}")
    with st.container(horizontal=True, gap="small"):
        st.download_button("CSV", to_csv_bytes(data), file_name=f"{stem}.csv", mime="text/csv",
                           key=f"dl_csv_{key}", icon=":material/download:", on_click=_log_export,
                           args=(user, page, f"{stem}.csv", len(data), patients, masked))
        st.download_button("Excel", lambda: to_excel_bytes(data, basename), file_name=f"{stem}.xlsx",
                           mime=XLSX_MIME, key=f"dl_xlsx_{key}", icon=":material/download:",
                           on_click=_log_export, args=(user, page, f"{stem}.xlsx", len(data), patients, masked))
