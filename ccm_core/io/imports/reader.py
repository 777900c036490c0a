"""Turn an uploaded file (CSV or Excel) into a table of strings, or a clear reason why not.

Everything arrives as text first so the validator sees exactly what the user
typed (an Excel date becomes ``2025-11-03``, a whole-number float ``5``), and
so row numbers are the ones a spreadsheet user sees: the header is row 1.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import re
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from ccm_core.io.imports.specs import KINDS, header_key, kind_from_file_name

csv.field_size_limit(10_000_000)


class ImportFileError(ValueError):
    """The file as a whole cannot be read (encoding, format, header): nothing in it can be imported."""


@dataclass
class RawTable:
    source: str  # file name, plus [sheet] for workbooks
    headers: list[str]
    data: pd.DataFrame  # one object column per header position, values str ("" when empty)
    row_numbers: np.ndarray  # spreadsheet row number of each data row
    problems: list[tuple[int, str, str]] = field(default_factory=list)  # (data index, column, problem)
    warnings: list[str] = field(default_factory=list)
    sheet_kind: str | None = None  # kind named by the sheet title, for workbooks


def decode_text(raw: bytes, source: str) -> tuple[str, list[str]]:
    """Bytes to text: UTF-8 (with or without BOM), UTF-16 with BOM, else Windows-1252 with a warning."""
    warnings: list[str] = []
    if raw.startswith(b"\xff\xfe") or raw.startswith(b"\xfe\xff"):
        try:
            return raw.decode("utf-16"), warnings
        except UnicodeDecodeError as exc:
            raise ImportFileError(
                f"{source}: the file says UTF-16 but is not readable as UTF-16 ({exc.reason})."
            ) from None
    if raw.startswith(b"\xef\xbb\xbf"):
        raw = raw[3:]
    if b"\x00" in raw[:4096]:
        raise ImportFileError(f"{source}: this looks like a binary file, not a CSV text file.")
    try:
        return raw.decode("utf-8"), warnings
    except UnicodeDecodeError as exc:
        line = raw[: exc.start].count(b"\n") + 1
        bad = raw[exc.start : exc.start + 1]
    try:
        text = raw.decode("cp1252")
    except UnicodeDecodeError:
        raise ImportFileError(
            f"{source}: the file is not UTF-8 text (byte 0x{bad.hex()} on line {line}) and not Windows-1252 either; "
            "save it as 'CSV UTF-8' and upload again."
        ) from None
    warnings.append(
        f"{source}: not UTF-8 (byte 0x{bad.hex()} on line {line}); read as Windows-1252 (Excel's 'CSV' format). "
        "Check accented names; saving as 'CSV UTF-8' avoids this."
    )
    return text, warnings


def _known_header_keys(kind: str | None) -> set[str]:
    kinds = [KINDS[kind]] if kind in KINDS else list(KINDS.values())
    return {header_key(a) for k in kinds for c in k.columns for a in (c.name, *c.aliases)}


def sniff_delimiter(first_line: str, kind: str | None) -> str:
    """The delimiter that splits the header into the most known column names (comma wins ties)."""
    known = _known_header_keys(kind)
    best, best_score = ",", (-1, -1)
    for delim in (",", ";", "\t", "|"):
        try:
            fields = next(csv.reader([first_line], delimiter=delim))
        except (csv.Error, StopIteration):
            continue
        score = (sum(header_key(f) in known for f in fields), len(fields))
        if score > best_score:
            best, best_score = delim, score
    return best


def read_csv_bytes(raw: bytes, source: str, kind: str | None = None) -> RawTable:
    text, warnings = decode_text(raw, source)
    text = text.lstrip("\ufeff")
    first = next((ln for ln in text.splitlines() if ln.strip()), None)
    if first is None:
        raise ImportFileError(f"{source}: the file is empty.")
    delim = sniff_delimiter(first, kind)
    if delim != ",":
        warnings.append(
            f"{source}: columns are separated by {'TAB' if delim == chr(9) else repr(delim)}, not commas; "
            "read that way."
        )
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delim, strict=True)
    records: list[list[str]] = []
    try:
        for rec in reader:
            records.append(rec)
    except csv.Error as exc:
        raise ImportFileError(
            f"{source}: broken CSV near line {reader.line_num}: {exc} "
            "(often an opening quote without its closing quote)."
        ) from None
    return _table_from_records(records, list(range(1, len(records) + 1)), source, warnings)


def _table_from_records(records: list[list[str]], numbers: list[int], source: str, warnings: list[str]) -> RawTable:
    """Header = first non-empty record; data = the rest, blank rows skipped, ragged rows reported."""
    start = next((i for i, r in enumerate(records) if any(str(v).strip() for v in r)), None)
    if start is None:
        raise ImportFileError(f"{source}: the file is empty.")
    headers = [str(h).strip().lstrip("\ufeff") for h in records[start]]
    while headers and headers[-1] == "":  # trailing delimiters after the last header
        headers.pop()
    if not headers:
        raise ImportFileError(f"{source}: the header row is empty.")
    width = len(headers)
    rows, nums, problems = [], [], []
    skipped = 0
    for rec, num in zip(records[start + 1 :], numbers[start + 1 :]):
        if not any(str(v).strip() for v in rec):
            skipped += 1 if rec else 0
            continue
        if len(rec) > width and not any(str(v).strip() for v in rec[width:]):
            rec = rec[:width]
        idx = len(rows)
        if len(rec) != width:
            problems.append(
                (
                    idx,
                    "",
                    f"row has {len(rec)} values but the header has {width} columns "
                    "(a stray delimiter, or a line break inside an unquoted value?)",
                )
            )
            rec = (list(rec) + [""] * width)[:width]
        rows.append(rec)
        nums.append(num)
    if skipped:
        warnings.append(f"{source}: {skipped} empty row(s) skipped.")
    frame = (
        pd.DataFrame(rows, columns=range(width), dtype=object)
        if rows
        else pd.DataFrame({i: pd.Series([], dtype=object) for i in range(width)})
    )
    return RawTable(source, headers, frame, np.asarray(nums, dtype=np.int64), problems, warnings)


def _cell_text(v) -> str:
    if v is None:
        return ""
    if isinstance(v, dt.datetime):
        if v.time() == dt.time(0, 0):
            return v.date().isoformat()
        return v.isoformat(sep=" ", timespec="minutes" if v.second == 0 else "seconds")
    if isinstance(v, dt.date):
        return v.isoformat()
    if isinstance(v, dt.time):
        return v.strftime("%H:%M")
    if isinstance(v, bool):
        return "yes" if v else "no"
    if isinstance(v, float):
        if v.is_integer() and abs(v) < 1e15:
            return str(int(v))
        return repr(v)
    return str(v)


def read_xlsx_bytes(raw: bytes, source: str, kind: str | None = None) -> list[RawTable]:
    """One RawTable per sheet to import: sheets named after a kind, else the first sheet."""
    import zipfile

    from openpyxl import load_workbook

    if raw[:4] == b"\xd0\xcf\x11\xe0":
        raise ImportFileError(f"{source}: this is an old Excel .xls file; save it as .xlsx or CSV UTF-8.")
    try:
        wb = load_workbook(io.BytesIO(raw), read_only=True, data_only=True)
    except (zipfile.BadZipFile, KeyError, OSError, ValueError, TypeError) as exc:
        raise ImportFileError(f"{source}: not a readable Excel .xlsx workbook ({type(exc).__name__}).") from None
    try:
        sheets = wb.worksheets
        named = [(ws, kind_from_file_name(ws.title)) for ws in sheets]
        chosen = [(ws, k) for ws, k in named if k and k in KINDS] if kind is None else []
        if not chosen:
            chosen = [(sheets[0], kind)] if sheets else []
        if not chosen:
            raise ImportFileError(f"{source}: the workbook has no sheets.")
        tables = []
        for ws, sheet_kind in chosen:
            records, numbers = [], []
            for i, row in enumerate(ws.iter_rows(values_only=True), 1):
                records.append([_cell_text(v) for v in row])
                numbers.append(i)
            label = source if len(sheets) == 1 else f"{source}[{ws.title}]"
            t = _table_from_records(records, numbers, label, [])
            t.sheet_kind = sheet_kind
            tables.append(t)
        return tables
    except ImportFileError:
        raise
    except Exception as exc:  # openpyxl raises many types on damaged workbooks
        raise ImportFileError(f"{source}: the workbook could not be read ({type(exc).__name__}: {exc}).") from None
    finally:
        wb.close()


def looks_like_x12(raw: bytes) -> bool:
    head = raw[:600].lstrip(b"\xef\xbb\xbf").lstrip()
    return head[:3] == b"ISA" or bool(re.match(rb"^(GS|ST)[*|^~]", head))


def looks_like_xlsx(raw: bytes, file_name: str) -> bool:
    return raw[:2] == b"PK" or file_name.lower().endswith((".xlsx", ".xlsm", ".xls"))
