"""Audit exports: the sample and its findings as CSV and Excel, and a PDF evidence packet per sample.

Why here (not in the page): an auditor answers an ADR or an external reviewer
with these files, so they must be the same whether made from the page or a
script, and testable without a browser.  Identifiers are included only when
the caller says so (``identify=True``); the page decides that from the role
and meeting mode, and logs the export.

The PDF uses an embedded DejaVu Sans when the system has it (any script
prints); otherwise the core Helvetica font with text folded to Latin-1, so a
note in another alphabet never crashes the packet.
"""

from __future__ import annotations

import datetime as dt
import json
import unicodedata
from pathlib import Path

import pandas as pd
from sqlalchemy.engine import Connection

from ccm_core.audit import checklist as audit
from ccm_core.audit import sampling
from ccm_core.io import spreadsheet
from ccm_core.storage.db import format_month

FONT_DIRS = (
    Path("/usr/share/fonts/truetype/dejavu"),
    Path("/usr/share/fonts/dejavu"),
    Path("/usr/local/share/fonts"),
    Path("/Library/Fonts"),
)
FONT_FILES = {"": "DejaVuSans.ttf", "B": "DejaVuSans-Bold.ttf"}
RESULT_LABEL = {"pass": "PASS", "fail": "FAIL", "na": "n/a"}


# --------------------------------------------------------------------------- frames
def _masked(position) -> str:
    return f"Sample item {int(position)}"


class Scrubber:
    """Takes the sampled patients' identifiers out of free text for the masked files.

    Checklist evidence quotes claim numbers (which embed the patient id: CCM0000045202605 is patient 45),
    and notes or auditors' comments can name a patient.  Every claim number of the sampled patients reads
    "claim N" (N = its order among them), every MRN, MBI, date of birth and first or last name "[removed]".
    """

    def __init__(self, conn: Connection, patient_ids):
        from sqlalchemy import select

        from ccm_core.storage.schema import claim

        ids = sorted({int(p) for p in patient_ids})
        numbers = (
            [
                r[0]
                for r in conn.execute(
                    select(claim.c.claim_number).where(claim.c.patient_id.in_(ids)).order_by(claim.c.id)
                ).all()
                if r[0]
            ]
            if ids
            else []
        )
        self.claims = {n: f"claim {i}" for i, n in enumerate(dict.fromkeys(numbers), start=1)}
        heads = audit.patient_headers(conn, ids) if ids else pd.DataFrame()
        words: set[str] = set()
        for col in ("mrn", "mbi", "first_name", "last_name"):
            if col in heads:
                words |= {str(v) for v in heads[col].dropna() if len(str(v).strip()) >= 2}
        if "birth_date" in heads:
            words |= {v.isoformat() if hasattr(v, "isoformat") else str(v) for v in heads["birth_date"].dropna()}
        self.words = sorted(words, key=len, reverse=True)
        import re

        self._claim_re = (
            re.compile("|".join(re.escape(n) for n in sorted(self.claims, key=len, reverse=True)))
            if self.claims
            else None
        )
        self._word_re = (
            re.compile(r"(?<![\w])(" + "|".join(re.escape(w) for w in self.words) + r")(?![\w])", re.IGNORECASE)
            if self.words
            else None
        )

    def claim(self, number) -> str:
        if number is None or (isinstance(number, float) and pd.isna(number)):
            return ""
        return self.claims.get(str(number), "claim")

    def text(self, value):
        if value is None or (isinstance(value, float) and pd.isna(value)) or not isinstance(value, str):
            return value
        if self._claim_re is not None:
            value = self._claim_re.sub(lambda m: self.claims[m.group(0)], value)
        if self._word_re is not None:
            value = self._word_re.sub("[removed]", value)
        return value


def sample_findings_frame(conn: Connection, sample_id: int, identify: bool = True) -> pd.DataFrame:
    """One row per sampled patient-month and checklist item: result, evidence and the auditor's finding."""
    sample = sampling.load_sample(conn, sample_id)
    df = sampling.sample_checklist(conn, sample)
    heads = audit.patient_headers(conn, sample.items["patient_id"].tolist())[["patient_id", "mrn", "patient_name"]]
    df = df.merge(heads, on="patient_id", how="left")
    if identify:
        df["patient"] = df["patient_name"]
    else:
        df["mrn"] = [_masked(p) for p in df["position"]]
        df["patient"] = df["mrn"]
        scrub = Scrubber(conn, sample.items["patient_id"])
        for col in ("evidence", "comment"):
            df[col] = df[col].map(scrub.text)
    df["month"] = df["service_month"].map(format_month)
    cols = [
        "position",
        "mrn",
        "patient",
        "month",
        "stratum",
        "item_key",
        "item",
        "result",
        "evidence",
        "verdict",
        "final_result",
        "comment",
        "auditor",
        "recorded_at",
    ]
    return df[cols].reset_index(drop=True)


def patient_month_summary(findings: pd.DataFrame) -> pd.DataFrame:
    """One row per sampled patient-month from ``sample_findings_frame`` output."""
    if findings.empty:
        return pd.DataFrame(
            columns=["position", "mrn", "patient", "month", "stratum", "failed_items", "reviewed", "audited_result"]
        )
    g = findings.groupby(["position", "mrn", "patient", "month", "stratum"], dropna=False, sort=True)
    out = g.agg(
        passed=("result", lambda r: int((r == "pass").sum())),
        failed=("result", lambda r: int((r == "fail").sum())),
        na=("result", lambda r: int((r == "na").sum())),
        failed_items=("item_key", lambda k: ", ".join(k[findings.loc[k.index, "result"] == "fail"])),
        reviewed=("verdict", lambda v: bool(v.notna().all())),
        final_fail=("final_result", lambda r: bool((r == "fail").any())),
    ).reset_index()
    out["audited_result"] = [
        "fail" if ff else "pass" if rv else "not reviewed" for rv, ff in zip(out["reviewed"], out["final_fail"])
    ]
    return out.drop(columns="final_fail")


def sample_inputs(sample: sampling.Sample) -> list[tuple[str, str]]:
    """The pull's inputs as label/value pairs (cover page and the Excel 'Sample' sheet)."""
    r = sample.request
    f = r.filters
    narrowing = "none"
    if f is not None:
        bits = [
            f"{k}={list(v)}"
            for k, v in (
                ("clinics", f.clinic_ids),
                ("practitioners", f.practitioner_ids),
                ("care managers", f.care_manager_ids),
                ("payers", f.payers),
            )
            if v
        ]
        narrowing = "; ".join(bits) or "none"
    rows = [
        ("Sample", f"#{sample.id} {sample.name or ''}".strip()),
        ("Pulled by", f"{sample.created_by or ''} at {sample.created_at or ''}"),
        ("Period", f"{format_month(r.month_from)} to {format_month(r.month_to)}"),
        (
            "Population",
            f"{sample.population_size} billed CCM patient-months"
            + (" with an engine finding" if r.flagged_only else ""),
        ),
        ("Requested size", str(r.size)),
        ("Sampled", str(len(sample.items))),
        ("Seed", str(r.seed)),
        ("Strata", ", ".join(f"{k} ({sampling.STRATA[k]})" for k in r.strata) or "none (simple random sample)"),
        ("Population filters", narrowing),
        (
            "Method",
            "Population sorted by (service month, patient id); numpy default_rng(seed).choice per stratum "
            "in stratum-label order; proportional allocation by largest remainder, minimum 1 per "
            "non-empty stratum.",
        ),
    ]
    if sample.outlier_threshold is not None:
        rows.append(("High-minutes threshold", f"> {sample.outlier_threshold:g} counted minutes (Q3 + 1.5 x IQR)"))
    if sample.allocation:
        rows.append(
            ("Allocation", "; ".join(f"{k}: {v['sampled']} of {v['population']}" for k, v in sample.allocation.items()))
        )
    return rows


# --------------------------------------------------------------------------- CSV / Excel
def findings_csv_bytes(conn: Connection, sample_id: int, identify: bool = True) -> bytes:
    """Every checklist row of the sample as CSV (formula-like text neutralised, see ccm_core/io/spreadsheet.py)."""
    return spreadsheet.csv_bytes(sample_findings_frame(conn, sample_id, identify), bom=False)


def findings_excel_bytes(conn: Connection, sample_id: int, identify: bool = True) -> bytes:
    """An .xlsx workbook: the pull's inputs, one row per patient-month, and every checklist row."""
    sample = sampling.load_sample(conn, sample_id)
    findings = sample_findings_frame(conn, sample_id, identify)
    summary = patient_month_summary(findings)
    inputs = pd.DataFrame(sample_inputs(sample), columns=["input", "value"])
    return spreadsheet.excel_bytes({"Sample": inputs, "Patient-months": summary, "Checklist": findings}, max_width=80)


# --------------------------------------------------------------------------- PDF
def find_unicode_font() -> dict[str, Path] | None:
    """DejaVu Sans regular + bold from the system, or None (then the core Helvetica font is used)."""
    for d in FONT_DIRS:
        paths = {style: d / name for style, name in FONT_FILES.items()}
        if all(p.is_file() for p in paths.values()):
            return paths
    return None


_FOLD = str.maketrans(
    {
        "\u2013": "-",
        "\u2014": "-",
        "\u2018": "'",
        "\u2019": "'",
        "\u201c": '"',
        "\u201d": '"',
        "\u2026": "...",
        "\u2022": "*",
        "\u00a0": " ",
        "\u2264": "<=",
        "\u2265": ">=",
    }
)


def to_latin1(text: str) -> str:
    """Fold text to what the core PDF fonts can print: accents kept where Latin-1 has them, else '?'."""
    text = str(text).translate(_FOLD)
    out = []
    for ch in text:
        try:
            ch.encode("latin-1")
            out.append(ch)
        except UnicodeEncodeError:
            base = unicodedata.normalize("NFKD", ch).encode("latin-1", "ignore").decode("latin-1")
            out.append(base if base.strip() else "?")
    return "".join(out)


class _Packet:
    """A thin wrapper over FPDF: one font decision, text cleaning, and simple tables."""

    def __init__(self, unicode_font: bool | None = None):
        from fpdf import FPDF

        packet = self

        class _PacketPDF(FPDF):
            """Every page after the cover: the patient-month it belongs to on top, "Page n of N" below."""

            def header(self):
                if packet.running_header and self.page_no() > 1:
                    packet.font(7.5)
                    self.set_text_color(90, 90, 90)
                    self.cell(0, 4, packet.t(packet.running_header), new_x="LMARGIN", new_y="NEXT")
                    self.set_text_color(0, 0, 0)
                    self.ln(1)

            def footer(self):
                self.set_y(-10)
                packet.font(7.5)
                self.set_text_color(90, 90, 90)
                self.cell(0, 4, f"Page {self.page_no()} of {{nb}}", align="C")
                self.set_text_color(0, 0, 0)

        self.running_header = ""
        self.pdf = _PacketPDF(orientation="P", unit="mm", format="Letter")
        self.pdf.set_auto_page_break(auto=True, margin=14)
        self.pdf.set_margins(14, 14, 14)
        fonts = find_unicode_font() if unicode_font in (None, True) else None
        if unicode_font is True and fonts is None:
            raise FileNotFoundError("No DejaVu Sans font found on this system for the PDF packet.")
        if fonts:
            for style, path in fonts.items():
                self.pdf.add_font("DejaVu", style, str(path))
            self.family, self.unicode = "DejaVu", True
        else:
            self.family, self.unicode = "Helvetica", False
        self.pdf.set_title("CCM audit evidence packet")
        self.pdf.set_creator("ccm_core.io.exports")

    def t(self, text) -> str:
        if text is None or (isinstance(text, float) and pd.isna(text)):
            return ""
        if isinstance(text, dt.datetime):
            text = text.strftime("%Y-%m-%d %H:%M")
        elif isinstance(text, dt.date):
            text = text.isoformat()
        text = str(text)
        return text if self.unicode else to_latin1(text)

    def font(self, size: float = 9, bold: bool = False):
        self.pdf.set_font(self.family, "B" if bold else "", size)

    def heading(self, text: str, size: float = 13):
        self.font(size, bold=True)
        self.pdf.multi_cell(0, size * 0.55, self.t(text), new_x="LMARGIN", new_y="NEXT")
        self.pdf.ln(1)

    def subheading(self, text: str):
        self.pdf.ln(1.5)
        self.font(10, bold=True)
        self.pdf.multi_cell(0, 5, self.t(text), new_x="LMARGIN", new_y="NEXT")

    def para(self, text: str, size: float = 9):
        self.font(size)
        self.pdf.multi_cell(0, size * 0.5, self.t(text), new_x="LMARGIN", new_y="NEXT")

    def pairs(self, rows: list[tuple[str, str]]):
        for label, value in rows:
            self.font(9, bold=True)
            self.pdf.cell(42, 5, self.t(label))
            self.font(9)
            self.pdf.multi_cell(0, 5, self.t(value), new_x="LMARGIN", new_y="NEXT")

    def table(self, headers: list[str], rows: list[list], widths: list[float], empty: str = "None on file."):
        if not rows:
            self.font(8)
            self.pdf.multi_cell(0, 4.5, self.t(empty), new_x="LMARGIN", new_y="NEXT")
            return
        self.font(7.5)
        with self.pdf.table(
            col_widths=tuple(widths),
            text_align="LEFT",
            line_height=3.8,
            padding=0.8,
            headings_style=self._heading_style(),
            first_row_as_headings=True,
        ) as tbl:
            head = tbl.row()
            for h in headers:
                head.cell(self.t(h))
            for r in rows:
                row = tbl.row()
                for v in r:
                    row.cell(self.t(v))

    def _heading_style(self):
        from fpdf.fonts import FontFace

        return FontFace(family=self.family, emphasis="BOLD", fill_color=(226, 232, 240))

    def output(self) -> bytes:
        return bytes(self.pdf.output())


def _yn(v) -> str:
    if v is None or (isinstance(v, float) and pd.isna(v)):
        return ""
    return "yes" if bool(v) else "no"


def evidence_packet_pdf(
    conn: Connection, sample_id: int, identify: bool = True, generated_by: str = "", unicode_font: bool | None = None
) -> bytes:
    """The PDF evidence packet: a cover page with the pull's inputs and seed, then one section per sampled
    patient-month with conditions, consent, care plan, time log, claims and remittances, the checklist
    results and the auditor's notes."""
    sample = sampling.load_sample(conn, sample_id)
    cl = sampling.sample_checklist(conn, sample)
    progress = sampling.sample_progress(cl)
    ev = audit.evidence(conn, sample.pairs())
    scrub = None if identify else Scrubber(conn, sample.items["patient_id"])

    def txt(v):  # free text as this packet may print it
        return v if scrub is None else scrub.text(v)

    def claim_no(v):
        return v if scrub is None else scrub.claim(v)

    pk = _Packet(unicode_font)
    pdf = pk.pdf

    # ---- cover
    pdf.add_page()
    pk.heading("CCM audit evidence packet", 18)
    pk.para(
        f"Generated {dt.datetime.now():%Y-%m-%d %H:%M}"
        + (f" by {generated_by}" if generated_by else "")
        + (". Identifiers masked." if not identify else ".")
    )
    pdf.ln(3)
    pk.pairs([(label, txt(value)) for label, value in sample_inputs(sample)])
    pdf.ln(2)
    rate = "n/a" if progress["pass_rate"] is None else f"{progress['pass_rate']:.0%}"
    eng = "n/a" if progress["engine_pass_rate"] is None else f"{progress['engine_pass_rate']:.0%}"
    pk.pairs(
        [
            ("Reviewed", f"{progress['reviewed']} of {progress['items']} patient-months"),
            ("Audited pass rate", f"{rate} of reviewed patient-months pass every item"),
            ("Checklist pass rate", f"{eng} of sampled patient-months pass every item before review"),
        ]
    )
    pk.subheading("Sampled patient-months")
    heads = ev["patients"].set_index("patient_id")
    fails = cl[cl["result"] == "fail"].groupby("position")["item"].agg(", ".join)
    rows = []
    for r in sample.items.itertuples():
        who = (
            f"{heads.at[r.patient_id, 'mrn']} {heads.at[r.patient_id, 'patient_name']}"
            if identify and r.patient_id in heads.index
            else _masked(r.position)
        )
        rows.append([r.position, who, format_month(r.service_month), r.stratum, fails.get(r.position, "")])
    pk.table(["#", "Patient", "Month", "Stratum", "Checklist fails"], rows, [8, 48, 16, 50, 66])
    pk.subheading("Checklist items")
    pk.table(["Item", "Rule", "Source"], [[i.title, i.rule, i.source] for i in audit.ITEMS], [32, 110, 46])

    # ---- one section per patient-month
    for r in sample.items.itertuples():
        pid, month = int(r.patient_id), int(r.service_month)
        e = audit.evidence_for(ev, pid, month)
        pk.running_header = (
            f"Sample #{sample.id} · {r.position}. "
            + (
                f"{heads.at[pid, 'patient_name']} (MRN {heads.at[pid, 'mrn']})"
                if identify and pid in heads.index
                else _masked(r.position)
            )
            + f" · {format_month(month)}"
        )
        pdf.add_page()
        if identify and pid in heads.index:
            h = heads.loc[pid]
            pk.heading(f"{r.position}. {h['patient_name']} (MRN {h['mrn']}), {format_month(month)}")
            pk.pairs(
                [
                    ("MBI", h["mbi"] or ""),
                    ("Born", h["birth_date"]),
                    ("Payer", h["payer"]),
                    ("Clinic", h["clinic"] or ""),
                    ("Billing practitioner", h["billing_practitioner"] or ""),
                    ("Care manager", h["care_manager"] or ""),
                    ("Stratum", r.stratum),
                ]
            )
        else:
            pk.heading(f"{_masked(r.position)}, {format_month(month)}")
            pk.pairs([("Stratum", r.stratum)])

        pk.subheading("Checklist")
        items = cl[cl["position"] == r.position]
        pk.table(
            ["Item", "Result", "Evidence", "Auditor"],
            [
                [
                    i.item,
                    RESULT_LABEL.get(i.result, i.result),
                    txt(i.evidence),
                    ""
                    if pd.isna(i.verdict) or i.verdict is None
                    else f"{i.verdict} ({i.auditor}): {'' if pd.isna(i.comment) or i.comment is None else txt(i.comment)}",
                ]
                for i in items.itertuples()
            ],
            [30, 13, 100, 45],
        )

        pk.subheading("Conditions")
        pk.table(
            ["ICD-10", "Chronic condition", "Onset", "Resolved", "Problem list"],
            [
                [c.icd10, c.chronic_condition, c.onset_date, c.resolved_date, _yn(c.on_problem_list)]
                for c in e["conditions"].itertuples()
            ],
            [20, 78, 28, 28, 34],
        )
        pk.subheading("Consent")
        pk.table(
            [
                "Program",
                "Decision",
                "Date",
                "Method",
                "Practitioner",
                "Cost-sharing",
                "One practitioner",
                "Right to stop",
                "Revoked",
            ],
            [
                [
                    c.program,
                    c.decision,
                    c.consent_date or "UNDATED",
                    c.method,
                    f"#{c.practitioner_id}",
                    _yn(c.disclosed_cost_sharing),
                    _yn(c.disclosed_one_practitioner),
                    _yn(c.disclosed_right_to_stop),
                    c.revoked_date,
                ]
                for c in e["consents"].itertuples()
            ],
            [16, 18, 22, 17, 22, 22, 26, 22, 23],
        )
        pk.subheading("Care plan")
        pk.table(
            [
                "Version",
                "Established",
                "Reviewed",
                "Shared with patient",
                "Signed by",
                "All conditions",
                "Measurable goals",
                "Electronic",
            ],
            [
                [
                    c.version,
                    c.established_date,
                    c.reviewed_date,
                    c.shared_with_patient_date,
                    f"#{c.signed_by_practitioner_id}" if pd.notna(c.signed_by_practitioner_id) else "",
                    _yn(c.covers_all_conditions),
                    _yn(c.has_measurable_goals),
                    _yn(c.electronic_access),
                ]
                for c in e["care_plans"].itertuples()
            ],
            [16, 24, 24, 26, 20, 26, 28, 24],
        )
        pk.subheading("Time log")
        pk.table(
            ["Date", "Start", "Min", "Program", "Staff", "Activity", "Note", "Entered"],
            [
                [
                    t.service_date,
                    t.started_at.strftime("%H:%M") if pd.notna(t.started_at) else "",
                    t.minutes,
                    t.program,
                    f"{t.staff} ({t.credential}{'' if t.is_clinical else ', non-clinical'})",
                    str(t.activity or "").replace("_", " "),  # wraps between words, never inside one
                    txt(t.note),
                    f"{t.entered_at:%Y-%m-%d %H:%M} {t.entry_method}" if pd.notna(t.entered_at) else t.entry_method,
                ]
                for t in e["time_log"].itertuples()
            ],
            [18, 10, 8, 16, 30, 24, 55, 27],
            empty="No time logged in the month.",
        )
        if not e["stays"].empty:
            pk.subheading("Inpatient / SNF stays")
            pk.table(
                ["Kind", "Admitted", "Discharged", "Facility"],
                [
                    [x.kind, x.admit_date, x.discharge_date or "still in", x.facility_name]
                    for x in e["stays"].itertuples()
                ],
                [25, 30, 30, 103],
            )
        pk.subheading("Claims")
        pk.table(
            ["Claim", "Practitioner", "Submitted", "DOS", "Code", "Units", "Charge", "Note"],
            [
                [
                    claim_no(c.claim_number),
                    c.practitioner,
                    c.submitted_date,
                    c.service_date,
                    c.cpt_code,
                    c.units,
                    f"${c.charge:,.2f}",
                    "replaced" if c.replaced else "",
                ]
                for c in e["claims"].itertuples()
            ],
            [38, 38, 20, 20, 14, 11, 20, 27],
            empty="No claim lines in the month.",
        )
        pk.subheading("Remittances")
        rem = e["remittances"]
        pk.table(
            ["Claim", "Received", "Status", "Seq", "Paid", "Adjustments and remarks"],
            [
                [
                    claim_no(x.claim_number),
                    x.received_date,
                    {"1": "paid", "2": "paid (secondary)", "4": "denied", "22": "reversal"}.get(
                        x.status_code, x.status_code
                    ),
                    x.adjudication_seq,
                    f"${x.paid:,.2f}",
                    x.reason_texts or x.adjustments or "",
                ]
                for x in rem.itertuples()
            ]
            if not rem.empty
            else [],
            [34, 20, 20, 9, 17, 88],
            empty="No remittance received.",
        )
    return pk.output()


def packet_filename(sample_id: int) -> str:
    return f"ccm-audit-sample-{int(sample_id)}-evidence.pdf"


def findings_json(conn: Connection, sample_id: int, identify: bool = True) -> str:
    """The findings as JSON records (for scripts)."""
    df = sample_findings_frame(conn, sample_id, identify)
    return json.dumps(df.astype(object).where(df.notna(), None).to_dict(orient="records"), default=str, indent=2)
