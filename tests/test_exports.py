"""Audit exports: CSV, Excel and the PDF evidence packet open and carry the sampled patient-months
(both backends)."""

from __future__ import annotations

import datetime as dt
import io

import openpyxl
import pandas as pd
import pytest
from pypdf import PdfReader

from ccm_core.audit import checklist as audit
from ccm_core.audit import sampling
from ccm_core.io import exports

from builders import Builder

D = dt.date
UNICODE_NOTE = "Llamó a la señora Nguyễn; 日本語の説明 ✓ — BP 150/90 reviewed"


@pytest.fixture
def saved_sample(engine):
    """Three billed March 2025 patient-months, all sampled; one has a note in several scripts."""
    with engine.begin() as conn:
        b = Builder(conn)
        pids = []
        for i, last in enumerate(("Álvarez", "Brown", "Chen")):
            p = b.enrolled_patient(consent_on=D(2025, 1, 2), last_name=last, mrn=f"MRN-EXP-{i}")
            b.visit(p, on=D(2024, 12, 1))
            b.times(
                p,
                [12, 13],
                on=D(2025, 3, 3),
                note=UNICODE_NOTE
                if i == 0
                else "Called pt re metformin adherence; reviewed glucose log and hypoglycemia plan",
            )
            cid = b.claim(p, [("99490", 1)], dos=D(2025, 3, 31))
            b.paid(cid)
            pids.append(p)
        b.denied(b.claim(pids[2], [("99439", 1)], dos=D(2025, 3, 31)), carc="B15", rarc="N122")
        smp = sampling.pull_sample(conn, sampling.SampleRequest(202503, 202503, size=3, seed=1))
        sid = sampling.save_sample(conn, smp, "auditor1")
        first = int(sampling.load_sample(conn, sid).items["item_id"][0])
        sampling.record_finding(
            conn, first, "consent", "disagree", "auditor1", "Signature illegible — re-check", "pass"
        )
    return engine, sid, pids


def test_findings_frame_and_csv(saved_sample):
    engine, sid, pids = saved_sample
    with engine.connect() as conn:
        df = exports.sample_findings_frame(conn, sid)
        csv = exports.findings_csv_bytes(conn, sid)
        masked = exports.sample_findings_frame(conn, sid, identify=False)
    assert len(df) == 3 * len(audit.ITEMS)
    assert set(df["mrn"]) == {"MRN-EXP-0", "MRN-EXP-1", "MRN-EXP-2"}
    back = pd.read_csv(io.BytesIO(csv))
    assert len(back) == len(df) and set(back["mrn"]) == set(df["mrn"])
    row = back[(back["item_key"] == "consent") & (back["position"] == 1)].iloc[0]
    assert (row["verdict"], row["final_result"]) == ("disagree", "fail")
    assert "MRN-EXP" not in masked.to_csv() and "Álvarez" not in masked.to_csv()
    assert set(masked["mrn"]) == {"Sample item 1", "Sample item 2", "Sample item 3"}


def test_excel_opens_with_the_sampled_rows(saved_sample):
    engine, sid, _ = saved_sample
    with engine.connect() as conn:
        data = exports.findings_excel_bytes(conn, sid)
    wb = openpyxl.load_workbook(io.BytesIO(data), read_only=True)
    assert wb.sheetnames == ["Sample", "Patient-months", "Checklist"]
    inputs = {r[0]: r[1] for r in wb["Sample"].iter_rows(min_row=2, values_only=True)}
    assert inputs["Seed"] == "1" and inputs["Sampled"] == "3"
    pm = list(wb["Patient-months"].iter_rows(values_only=True))
    header = pm[0]
    assert len(pm) == 1 + 3
    mrns = {r[header.index("mrn")] for r in pm[1:]}
    assert mrns == {"MRN-EXP-0", "MRN-EXP-1", "MRN-EXP-2"}
    audited = {r[header.index("mrn")]: r[header.index("audited_result")] for r in pm[1:]}
    assert audited["MRN-EXP-1"] == "not reviewed"
    checklist = list(wb["Checklist"].iter_rows(values_only=True))
    assert len(checklist) == 1 + 3 * len(audit.ITEMS)


def _pdf_text(data: bytes) -> tuple[int, str]:
    reader = PdfReader(io.BytesIO(data))
    text = " ".join(page.extract_text() or "" for page in reader.pages)
    return len(reader.pages), " ".join(text.split())  # table cells wrap: compare on single spaces


@pytest.mark.parametrize("unicode_font", [None, False])
def test_pdf_packet_opens_and_names_the_sampled_patients(saved_sample, unicode_font):
    engine, sid, pids = saved_sample
    with engine.connect() as conn:
        data = exports.evidence_packet_pdf(conn, sid, generated_by="auditor1", unicode_font=unicode_font)
    assert data.startswith(b"%PDF")
    pages, text = _pdf_text(data)
    assert pages >= 1 + 3  # a cover, then a section per patient-month
    for mrn in ("MRN-EXP-0", "MRN-EXP-1", "MRN-EXP-2"):
        assert mrn in text
    assert "Seed" in text and "auditor1" in text
    assert "N122" in text  # the denial's remark code with its text
    assert "Signature illegible" in text


def test_pdf_masked_packet_has_no_identifiers(saved_sample):
    engine, sid, _ = saved_sample
    with engine.connect() as conn:
        data = exports.evidence_packet_pdf(conn, sid, identify=False, unicode_font=False)
    _, text = _pdf_text(data)
    assert "MRN-EXP" not in text and "Brown" not in text
    assert "Sample item 2" in text


def test_latin1_folding_keeps_accents_and_replaces_the_rest():
    assert exports.to_latin1("Álvarez – “ok” …") == 'Álvarez - "ok" ...'
    folded = exports.to_latin1("Nguyễn 日本 ✓")
    folded.encode("latin-1")  # never raises
    assert folded.startswith("Nguyen ") and "?" in folded


def test_pdf_packet_numbers_pages_runs_the_patient_header_and_splits_no_word(saved_sample):
    """Issue 15: "Page n of N" on every page, the patient-month on top of each of its pages, and table
    headers / activities that wrap between words, never inside one ("Progra m")."""
    engine, sid, _ = saved_sample
    with engine.connect() as conn:
        data = exports.evidence_packet_pdf(conn, sid, unicode_font=False)
    reader = PdfReader(io.BytesIO(data))
    n = len(reader.pages)
    texts = [" ".join((p.extract_text() or "").split()) for p in reader.pages]
    for i, t in enumerate(texts, start=1):
        assert f"Page {i} of {n}" in t
    sections = [t for t in texts[1:] if "Time log" in t]
    assert sections and all(f"Sample #{sid} · " in t and "(MRN MRN-EXP-" in t for t in sections)
    joined = " ".join(texts)
    assert "Program" in joined and "Progra m" not in joined and "phone call" in joined.lower()
