"""Issue 13 item 11: meeting mode is a guarantee.

Every page and tab is rendered in meeting mode (AppTest, admin: every page) and everything that reaches
the browser is scanned: text, metric values and help, captions, tables, select-box options and the
charts' specs and data (tooltips and labels are drawn from the data).  No MRN, MBI, name, date of birth
or claim number may appear, and no count of 1-10: not in a chart's count fields, not as a count tile,
not in a sentence.  The masked files (audit findings CSV/Excel, the PDF packet and the page downloads)
carry none of those identifiers either.  Suppression rules: ui/suppression.py.
"""

from __future__ import annotations

import datetime as dt
import io
import json
import re

import pandas as pd
import pytest
from pypdf import PdfReader
from sqlalchemy import select
from streamlit.dataframe_util import convert_arrow_bytes_to_pandas_df

from ccm_core.audit import sampling
from ccm_core.io import exports
from ccm_core.security import auth
from ccm_core.storage import db
from ccm_core.storage import schema as s
from ui import suppression

from apptest_utils import app_env, ensure_role_users, login_as, open_page
from builders import Builder
from conftest import DEMO_KW

D = dt.date
TABS = {
    "enrollment": (
        "enrollment_tab",
        ["Funnel", "Declines & disenrollments", "Consent completeness", "Retention", "Outreach list"],
    ),
    "minutes": ("minutes_tab", ["Worklist", "Distribution & trend", "Care managers", "Time flags"]),
    "billing": (
        "billing_tab",
        ["Supported vs billed", "Findings & conflicts", "Denial trend", "Denial reasons", "Claim lines"],
    ),
    "revenue": ("revenue_tab", ["By month", "Leakage", "Projection"]),
    "audit": ("audit_tab", ["Review", "Samples & trend", "Month checklist", "Export"]),
}
MEETING_PAGES = ("overview", "enrollment", "minutes", "billing", "revenue", "audit")
COUNT_WORDS = (
    r"patients?|patient-months?|consented|offered|enrolled|claims?|denials?|initial denials|time entries|"
    r"staff members|rows|eligible|billable|deceased|declined|failing|consents|accepted|reached"
)
SMALL_IN_TEXT = re.compile(r"(?<![\w.,$#:/+-])([1-9]|10)(?![\w.,%:/+-])\s+(?:" + COUNT_WORDS + r")\b")
COUNTISH_COLUMNS = (
    "patient",
    "enrolled",
    "consent",
    "complete",
    "denial",
    "claims",
    "panel",
    "entries",
    "adjudicated",
    "units",
    "count",
    "fail",
)


# --------------------------------------------------------------------------- the rules themselves
def test_small_cells_and_their_complement_are_suppressed():
    df = pd.DataFrame(
        {
            "band": ["0-9", "10-19", "20-39", "40+"],
            "patients": [40, 3, 25, 60],
            "share": [40 / 128, 3 / 128, 25 / 128, 60 / 128],
        }
    )
    out = suppression.suppress_frame(df, ["patients"], ["share"])
    # 3 is small; with the total known the next smallest part (25) would give it back: both go
    assert list(out["patients"]) == [40, "<11", "<11", 60]
    assert out["share"].isna().tolist() == [False, True, True, False]
    two_small = suppression.suppress_frame(pd.DataFrame({"n": [4, 7, 30]}), ["n"])
    assert list(two_small["n"]) == ["<11", "<11", 30]  # two unknowns already: nothing more to hide
    assert list(suppression.suppress_frame(pd.DataFrame({"n": [0, 11, 30]}), ["n"])["n"]) == [0, 11, 30]


@pytest.mark.parametrize(
    "num, den, hidden",
    [
        (6, 12, True),
        (11, 12, True),
        (12, 12, False),
        (15, 40, False),
        (0, 5, True),
        (0, 0, False),
        (31, 41, True),
        (30, 41, False),
    ],
)
def test_a_rate_hides_when_either_side_or_the_complement_is_small(num, den, hidden):
    assert suppression.rate_reveals_small(num, den) is hidden


def test_chart_specs_lose_small_counts_in_bars_labels_tooltips_and_shares():
    import altair as alt

    from ui import charts

    df = pd.DataFrame(
        {
            "item": ["Consent", "Care plan", "Notes", "Time"],
            "fail": [1, 40, 3, 25],
            "fail_rate": [0.01, 0.4, 0.03, 0.25],
        }
    )
    chart = charts.horizontal_bars(
        df,
        "item",
        "fail",
        x_title="Patient-months failing",
        tooltip_cols=[("fail_rate:Q", "Share of billed months", ".1%")],
    )
    spec, n = suppression.suppress_chart_spec(chart.to_dict())
    rows = next(iter(spec["datasets"].values()))
    assert n >= 2 and [r["fail"] for r in rows] == [None, 40, None, 25]
    # shares of suppressed rows go; so does a share that times its row's count gives 1-10 (0.25 x 25 = 6):
    # over-cautious when the share has another denominator, never too lax
    assert [r["fail_rate"] for r in rows] == [None, 0.4, None, None]
    assert type(chart).from_dict(spec, validate=False).to_dict()["datasets"] == spec["datasets"]
    funnel = charts.funnel(pd.DataFrame({"stage": ["eligible", "reached", "enrolled"], "patients": [120, 40, 4]}))
    spec, _ = suppression.suppress_chart_spec(funnel.to_dict())
    rows = next(iter(spec["datasets"].values()))
    assert [r["label"] for r in rows] == ["120  (100%)", "<11", "<11"]  # and the 33% share of the 40 is gone
    dollars = (
        alt.Chart(pd.DataFrame({"m": ["a"], "v": [5.0]}))
        .mark_bar()
        .encode(x="m:N", y=alt.Y("v:Q", axis=alt.Axis(format="$,.0f")))
    )
    assert suppression.suppress_chart_spec(dollars.to_dict())[1] == 0  # $5 is not a count


# --------------------------------------------------------------------------- every page, every tab
@pytest.fixture(scope="module")
def meeting_db(tmp_path_factory):
    from ccm_core.io import demo

    url = f"sqlite:///{tmp_path_factory.mktemp('meeting') / 'meeting.db'}"
    engine = db.make_engine(url)
    db.upgrade(engine)
    demo.generate(engine, **DEMO_KW)
    ensure_role_users(engine)
    with engine.begin() as conn:
        smp = sampling.pull_sample(conn, sampling.SampleRequest(202505, 202509, size=12, seed=3))
        sampling.save_sample(conn, smp, "t_auditor", name="meeting scan")
    yield engine, url
    engine.dispose()


def _identifiers(engine) -> list[str]:
    p, c = s.patient, s.claim
    with engine.connect() as conn:
        people = conn.execute(select(p.c.mrn, p.c.mbi, p.c.first_name, p.c.last_name, p.c.birth_date)).all()
        claims = [r[0] for r in conn.execute(select(c.c.claim_number)).all()]
    out = set(claims)
    for r in people:
        out |= {r.mrn, f"{r.first_name} {r.last_name}", f"{r.last_name}, {r.first_name}", r.birth_date.isoformat()}
        if r.mbi:
            out.add(r.mbi)
    return sorted(x for x in out if x)


def _charts(at) -> list[tuple[dict, list[pd.DataFrame]]]:
    out = []
    for el in at.get("vega_lite_chart"):
        spec = json.loads(el.proto.spec)
        out.append((spec, [convert_arrow_bytes_to_pandas_df(d.data.data) for d in el.proto.datasets]))
    return out


def _texts(at) -> list[str]:
    parts: list[str] = []
    for kind in (
        "title",
        "header",
        "subheader",
        "markdown",
        "caption",
        "text",
        "error",
        "warning",
        "info",
        "success",
        "toast",
    ):
        parts.extend(str(e.value) for e in getattr(at, kind))
    for m in at.metric:
        parts += [f"{m.label} {m.value}", str(m.proto.help)]
    for w in list(at.selectbox) + list(at.multiselect) + list(at.radio):
        parts += [str(o) for o in w.options] + [str(w.label), str(getattr(w.proto, "help", ""))]
    for e in at.expander:
        parts.append(str(e.label))
    return parts


def _scan(at, where: str, ids: list[str], problems: list[str], small_counts: bool) -> int:
    """Record what must not be there; returns how many "<11" cells were seen (the scan is not vacuous)."""
    texts = _texts(at)
    frames = [d.value for d in at.dataframe]
    charts = _charts(at)
    blob = "\n".join(
        texts
        + [f.to_string() for f in frames]
        + [json.dumps(sp) + "".join(d.to_string() for d in data) for sp, data in charts]
    )
    hits = [i for i in ids if i in blob]
    if hits:
        problems.append(f"{where}: identifiers {hits[:3]}")
    if not small_counts:
        return 0
    for t in texts:
        for m in SMALL_IN_TEXT.finditer(t):
            problems.append(f"{where}: small count in text: ...{t[max(0, m.start() - 40) : m.end() + 10]}...")
    for m in at.metric:
        if re.fullmatch(r"([1-9]|10)", str(m.value).strip()):
            problems.append(f"{where}: count tile {m.label} = {m.value}")
    for spec, data in charts:
        counts, _, _ = suppression.chart_fields(spec)
        for d in data:
            for col in counts & set(d.columns):
                vals = pd.to_numeric(d[col], errors="coerce")
                bad = vals[(vals > 0) & (vals < 11)]
                if len(bad):
                    problems.append(f"{where}: chart count field {col} has {list(bad)[:3]}")
    for f in frames:
        for col in f.columns:
            if any(k in str(col).lower() for k in COUNTISH_COLUMNS) and not str(col).lower().endswith(
                ("rate", "share", "id", "_at", "date", "dollars", "amount", "name", "number")
            ):
                vals = pd.to_numeric(f[col], errors="coerce")
                if vals.notna().any() and f[col].dtype != bool:
                    bad = vals[(vals > 0) & (vals < 11) & (vals == vals.round())]
                    if len(bad):
                        problems.append(f"{where}: table column {col} has {list(bad)[:3]}")
    return blob.count("<11")


def test_meeting_mode_every_page_and_tab_shows_no_identifier_and_no_small_count(meeting_db, monkeypatch):
    engine, url = meeting_db
    app_env(monkeypatch, url)
    monkeypatch.setenv("CCM_BCRYPT_ROUNDS", "4")
    ids = _identifiers(engine)
    at = login_as("admin", query={"meeting": "1"})
    assert at.session_state["meeting_mode"] is True
    problems: list[str] = []
    suppressed = 0
    views = 0
    for page in auth.PAGES:
        open_page(at, page)
        assert not at.exception, page
        if page == "audit":  # open the saved sample: its picker and review are the patient-level part
            with engine.connect() as conn:
                sid = conn.execute(select(s.audit_sample.c.id)).scalar_one()
            at.selectbox(key="audit_sample_pick").select(sid).run()
        tabs = TABS.get(page)
        for tab in tabs[1] if tabs else [None]:
            if tab is not None:
                at.session_state[tabs[0]] = tab
                at.run()
            assert not at.exception, (page, tab)
            suppressed += _scan(at, f"{page}/{tab}", ids, problems, small_counts=page in MEETING_PAGES)
            views += 1
    assert views == len(auth.PAGES) - len(TABS) + sum(len(t[1]) for t in TABS.values())
    assert not problems, "\n".join(problems[:30])
    assert suppressed > 0  # the demo practice has small cells: the scan saw them suppressed


# --------------------------------------------------------------------------- masked files
@pytest.fixture
def claim_sample(engine):
    """Two billed patient-months with claims and remittances; a note and a comment that name the patient."""
    with engine.begin() as conn:
        b = Builder(conn)
        pids = []
        for i, (first, last) in enumerate((("Zelda", "Quintero"), ("Yusuf", "Okonkwo"))):
            p = b.enrolled_patient(
                consent_on=D(2025, 1, 2),
                first_name=first,
                last_name=last,
                mrn=f"MRN-MM-{i}",
                mbi=f"1EG4TE5MK7{i}",
                birth_date=D(1941, 2, 3 + i),
            )
            b.visit(p, on=D(2024, 12, 1))
            b.times(p, [12, 13], on=D(2025, 3, 3), note=f"Spoke with {first} {last} about refills")
            b.paid(b.claim(p, [("99490", 1)], dos=D(2025, 3, 31)))
            pids.append(p)
        smp = sampling.pull_sample(conn, sampling.SampleRequest(202503, 202503, size=2, seed=1))
        sid = sampling.save_sample(conn, smp, "auditor1")
        item = int(sampling.load_sample(conn, sid).items["item_id"][0])
        sampling.record_finding(conn, item, "consent", "disagree", "auditor1", "Quintero signed late", "pass")
        claims = [r[0] for r in conn.execute(select(s.claim.c.claim_number)).all()]
    return engine, sid, claims


def test_masked_findings_and_packet_carry_no_claim_number_mrn_mbi_dob_or_name(claim_sample):
    engine, sid, claims = claim_sample
    forbidden = claims + [
        "MRN-MM-0",
        "MRN-MM-1",
        "1EG4TE5MK70",
        "1EG4TE5MK71",
        "1941-02-03",
        "1941-02-04",
        "Quintero",
        "Okonkwo",
        "Zelda",
        "Yusuf",
    ]
    with engine.connect() as conn:
        named = exports.findings_csv_bytes(conn, sid).decode()
        csv_text = exports.findings_csv_bytes(conn, sid, identify=False).decode()
        xlsx = exports.findings_excel_bytes(conn, sid, identify=False)
        pdf = exports.evidence_packet_pdf(conn, sid, identify=False, unicode_font=False)
        pdf_named = exports.evidence_packet_pdf(conn, sid, identify=True, unicode_font=False)
    assert any(c in named for c in claims)  # the identified file does carry them: the check can fail
    xlsx_text = "\n".join(
        pd.read_excel(io.BytesIO(xlsx), sheet_name=None)[k].to_string()
        for k in ("Sample", "Patient-months", "Checklist")
    )
    pdf_text = " ".join((p.extract_text() or "") for p in PdfReader(io.BytesIO(pdf)).pages)
    named_pdf_text = " ".join((p.extract_text() or "") for p in PdfReader(io.BytesIO(pdf_named)).pages)
    assert any(c in named_pdf_text.replace("\n", "") for c in claims)
    for label, text in (("csv", csv_text), ("xlsx", xlsx_text), ("pdf", pdf_text.replace("\n", ""))):
        leaked = [f for f in forbidden if f in text]
        assert not leaked, (label, leaked)
    assert "claim 1" in csv_text and "claim 1" in pdf_text  # claim numbers become their order in the sample
    assert "[removed] signed late" in csv_text


def test_masked_page_download_frame_has_no_claim_number_mbi_or_birth_date(monkeypatch):
    from ui import meeting

    monkeypatch.setattr(meeting, "cookie_key", lambda: "k" * 40)
    df = pd.DataFrame(
        {
            "patient_id": [45],
            "mrn": ["1000045"],
            "patient_name": ["Quintero, Zelda"],
            "claim_number": ["CCM0000045202605"],
            "mbi": ["1EG4TE5MK70"],
            "birth_date": [D(1941, 2, 3)],
            "charge": [62.0],
        }
    )
    out = meeting.pseudonymize(df, ("patient_id", "mrn"), ("patient_name",))
    text = out.to_csv(index=False)
    for value in ("1000045", "Quintero", "CCM0000045202605", "1EG4TE5MK70", "1941-02-03"):
        assert value not in text
    assert out["claim_number"][0].startswith("Claim ") and out["charge"][0] == 62.0


def test_staff_read_as_role_pseudonyms_when_the_admin_setting_says_so(meeting_db, monkeypatch):
    from ccm_core.security.masking import set_meeting_staff_display

    engine, url = meeting_db
    app_env(monkeypatch, url)
    monkeypatch.setenv("CCM_BCRYPT_ROUNDS", "4")
    with engine.connect() as conn:
        staff_names = [
            f"{r.last_name}, {r.first_name}"
            for r in conn.execute(
                select(s.staff.c.last_name, s.staff.c.first_name).where(s.staff.c.role == "care_manager")
            ).all()
        ]
    at = login_as("admin", query={"meeting": "1"})
    open_page(at, "minutes")
    at.session_state["minutes_tab"] = "Care managers"
    at.run()
    named = "\n".join(
        _texts(at)
        + [json.dumps(sp) + "".join(d.to_string() for d in data) for sp, data in _charts(at)]
        + [d.value.to_string() for d in at.dataframe]
    )
    assert any(n in named for n in staff_names)  # by default meeting mode shows staff names
    set_meeting_staff_display(engine, "pseudonyms", "t_admin")
    try:
        at.run()
        assert not at.exception
        shown = "\n".join(
            _texts(at)
            + [json.dumps(sp) + "".join(d.to_string() for d in data) for sp, data in _charts(at)]
            + [d.value.to_string() for d in at.dataframe]
        )
        assert not [n for n in staff_names if n in shown]
        assert "Care manager " in shown  # role and pseudonym, in the chart, the table and the filter
    finally:
        set_meeting_staff_display(engine, "names", "t_admin")
