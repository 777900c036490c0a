"""The Audit page through AppTest: pull a sample, walk a patient-month, record findings; role gates and the
access log (SQLite; the checklist itself is tested on both backends elsewhere)."""

from __future__ import annotations

import datetime as dt

import pytest
from sqlalchemy import select

from ccm_core.audit import checklist as audit
from ccm_core.storage import db
from ccm_core.storage import schema as s

from apptest_utils import app_env, ensure_role_users, login_as, open_page, screen_text
from builders import Builder

D = dt.date


@pytest.fixture(scope="module")
def audit_db(tmp_path_factory):
    """Five billed September 2025 patient-months; one has a vague note."""
    url = f"sqlite:///{tmp_path_factory.mktemp('auditpage') / 'audit.db'}"
    engine = db.make_engine(url)
    db.upgrade(engine)
    with engine.begin() as conn:
        b = Builder(conn)
        for i in range(5):
            p = b.enrolled_patient(consent_on=D(2025, 6, 2), first_name="Ada", last_name=f"Sample{i}")
            b.visit(p, on=D(2025, 5, 20))
            b.times(
                p,
                [12, 13],
                on=D(2025, 9, 3),
                note="LVM"
                if i == 0
                else "Called pt re lisinopril adherence; reviewed home BP log; next call in 2 weeks",
            )
            b.paid(b.claim(p, [("99490", 1)], dos=D(2025, 9, 30)))
        db.bump_data_version(conn)
    ensure_role_users(engine)
    yield engine, url
    engine.dispose()


@pytest.fixture
def app(audit_db, monkeypatch):
    engine, url = audit_db
    app_env(monkeypatch, url)
    monkeypatch.setenv("CCM_BCRYPT_ROUNDS", "4")
    return engine


def _log(engine, action):
    with engine.connect() as conn:
        return conn.execute(
            select(s.access_log.c.username, s.access_log.c.detail, s.access_log.c.patient_count)
            .where(s.access_log.c.action == action, s.access_log.c.page == "audit")
            .order_by(s.access_log.c.id)
        ).all()


def _button(at, label):
    return next(b for b in at.button if b.label == label)


def test_auditor_pulls_walks_and_records_findings(app):
    at = login_as("auditor")
    open_page(at, "audit")
    assert not at.exception
    assert [t.value for t in at.title] == ["Audit"]
    at.number_input[0].set_value(3)  # sample size
    at.number_input[1].set_value(5)  # seed
    _button(at, "Pull and save sample").click()
    at.run()
    assert not at.exception, at.exception
    with app.connect() as conn:
        sample = conn.execute(select(s.audit_sample)).mappings().one()
        items = conn.execute(select(s.audit_sample_item).order_by(s.audit_sample_item.c.position)).mappings().all()
    assert (sample["size"], sample["seed"], sample["created_by"]) == (3, 5, "t_auditor")
    assert len(items) == 3
    pulls = _log(app, "sample_pull")
    assert len(pulls) == 1 and pulls[0].username == "t_auditor" and pulls[0].patient_count == 3

    # the new sample is open on the Review tab: progress, the checklist, evidence and the findings form
    text = screen_text(at)
    assert "Reviewed 0 / 3" in text
    assert len(at.radio) == len(audit.ITEMS)
    assert any("Ada" in str(df.value.to_string()) or "Sample" in text for df in at.dataframe)
    views = _log(app, "view")
    assert any(f"audit sample #{sample['id']} item 1" in v.detail for v in views)

    # a disagreement without a comment saves nothing and says why
    at.radio[0].set_value("disagree")
    _button(at, "Save findings").click()
    at.run()
    assert "say why you disagree" in " ".join(e.value for e in at.error)
    with app.connect() as conn:
        assert conn.execute(select(s.audit_finding)).all() == []

    # agreeing with everything reviews the first patient-month
    at.radio[0].set_value("agree")
    _button(at, "Agree with all unanswered").click()
    at.run()
    assert not at.exception
    with app.connect() as conn:
        rows = conn.execute(
            select(
                s.audit_finding.c.item_key,
                s.audit_finding.c.verdict,
                s.audit_finding.c.auditor,
                s.audit_finding.c.sample_item_id,
            )
        ).all()
    assert len(rows) == len(audit.ITEMS)
    assert {r.verdict for r in rows} == {"agree"} and {r.auditor for r in rows} == {"t_auditor"}
    assert len({r.sample_item_id for r in rows}) == 1
    assert "Reviewed 1 / 3" in screen_text(at)
    # issue 15: the picker says so at once, saving moved on to the next item, and going back shows the
    # saved answers in the radios
    picker = [sb for sb in at.selectbox if sb.label.startswith("Patient-month")][0]
    assert sum("✔ reviewed" in str(o) for o in picker.options) == 1
    assert "to review" in str(picker.format_func(picker.value)) and all(r.value is None for r in at.radio)
    _button(at, "Previous").click()
    at.run()
    picker = [sb for sb in at.selectbox if sb.label.startswith("Patient-month")][0]
    assert "✔ reviewed" in str(picker.format_func(picker.value))
    assert [r.value for r in at.radio] == ["agree"] * len(audit.ITEMS)


def test_biller_reads_findings_but_cannot_record_them(app):
    at = login_as("biller")
    open_page(at, "audit")
    assert not at.exception
    with app.connect() as conn:
        has_sample = conn.execute(select(s.audit_sample.c.id)).first()
    if has_sample is None:  # run alone: pull one first (billers may pull samples)
        _button(at, "Pull and save sample").click()
        at.run()
    else:
        at.selectbox(key="audit_sample_pick").select(has_sample[0]).run()
    assert not at.exception
    labels = [b.label for b in at.button]
    assert "Save findings" not in labels and not at.radio
    assert "Findings are recorded by auditors" in screen_text(at)


def test_month_checklist_tab_lists_the_vague_note(app):
    at = login_as("admin", query={"from": "2025-09", "to": "2025-09"})
    open_page(at, "audit")
    assert not at.exception
    assert "Checklist for every billed patient-month" not in screen_text(at)  # computed only when opened
    at.session_state["audit_tab"] = "Month checklist"
    at.run()
    assert not at.exception
    text = screen_text(at)
    assert "Checklist for every billed patient-month of 2025-09" in text
    assert "2 of 2 notes vague or too short" in text  # the one 'LVM' month, listed with its evidence
    assert text.count("vague or too short") == 1
    # the pre-bill (prospective) checklist: every month here is billed already, so there is nothing before billing
    at.session_state["audit_month_population"] = "prebill"
    at.run()
    assert not at.exception
    assert "No not-yet-billed CCM patient-months in that month" in screen_text(at)


def test_roles_without_the_page_do_not_get_it(app):
    for role in ("viewer", "care_manager", "program_lead"):
        at = login_as(role)
        with pytest.raises(ValueError):
            open_page(at, "audit")


def test_meeting_mode_hides_the_patient_month_until_revealed(app):
    with app.begin() as conn:
        from ccm_core.audit import sampling

        smp = sampling.pull_sample(conn, sampling.SampleRequest(202509, 202509, 2, 1))
        sid = sampling.save_sample(conn, smp, "t_auditor", name="meeting check")
    at = login_as("auditor", query={"meeting": "1"})
    open_page(at, "audit")
    at.selectbox(key="audit_sample_pick").select(sid).run()
    assert not at.exception
    text = screen_text(at)
    assert "hidden in meeting mode" in text
    assert "Sample0" not in text and "Sample1" not in text and "MRN" not in text
    assert not at.radio  # no findings form for a hidden patient-month
    labels = " ".join(str(o) for sb in at.selectbox for o in sb.options)
    assert "Patient " in labels and "Ada" not in labels  # pseudonyms in the patient-month picker


def test_opening_a_sample_logs_every_patient_its_picker_sends(app):
    """Issue 13 item 8: the picker sends every sampled name and MRN, so the log row counts them all."""
    from ccm_core.audit import sampling

    with app.begin() as conn:
        smp = sampling.pull_sample(conn, sampling.SampleRequest(202509, 202509, 5, 7))
        sid = sampling.save_sample(conn, smp, "t_auditor", name="five")
    at = login_as("auditor")
    open_page(at, "audit")
    at.selectbox(key="audit_sample_pick").select(sid).run()
    assert not at.exception
    labels = " ".join(str(o) for sb in at.selectbox for o in sb.options)
    assert all(f"Sample{i}" in labels for i in range(5))  # five names reach the browser
    listed = [v for v in _log(app, "view") if v.detail.startswith(f"audit sample #{sid}: ")]
    assert [(v.username, v.patient_count) for v in listed] == [("t_auditor", 5)]
    assert "5 patient-months listed, identified" in listed[0].detail
    at.run()  # a rerun is not a new view
    assert len([v for v in _log(app, "view") if v.detail.startswith(f"audit sample #{sid}: ")]) == 1
