"""Rule data: shipped values match docs/reference/ccm-rules.md, overrides work, UNVERIFIED items are labelled."""

from __future__ import annotations

import datetime as dt
import json

import pytest

from ccm_core import rules

from builders import Builder


@pytest.mark.parametrize(
    "code, year, amount",
    [
        ("99490", 2025, 60.49),
        ("99439", 2025, 45.93),
        ("99487", 2025, 131.65),
        ("99489", 2025, 70.52),
        ("99491", 2025, 82.16),
        ("99437", 2025, 57.58),
        ("99424", 2025, 80.87),
        ("99426", 2025, 61.78),
        ("G0557", 2025, 48.84),
        ("99490", 2026, 66.13),
        ("99439", 2026, 50.44),
        ("99487", 2026, 144.29),
        ("99489", 2026, 78.16),
        ("G0557", 2026, 53.78),
    ],
)
def test_national_fee_per_code_and_year(code, year, amount):
    assert rules.fee(code, year) == pytest.approx(amount)


def test_fee_accepts_month_and_date_and_honours_effective_dates():
    assert rules.fee("99490", 202512) == pytest.approx(60.49)
    assert rules.fee("99490", dt.date(2026, 1, 1)) == pytest.approx(66.13)
    # G0511 is not payable from 1 Oct 2025 (docs/reference/ccm-rules.md §1)
    assert rules.fee("G0511", 202509) == pytest.approx(54.67)
    assert rules.fee("G0511", 202510) == 0.0


def test_max_non_complex_month_matches_the_reference():
    # docs/reference/ccm-rules.md derived figures: 99490 + 2 x 99439 = $152.35 (2025) / $167.01 (2026)
    for year, total in ((2025, 152.35), (2026, 167.01)):
        assert rules.fee("99490", year) + 2 * rules.fee("99439", year) == pytest.approx(total)


def test_unverified_2026_amount_is_carried_forward_and_labelled():
    rs = rules.load()
    e = rs.fee_entry("99491", 2026)
    assert e.amount == pytest.approx(82.16)
    assert e.status.startswith("UNVERIFIED") and "2025" in e.status
    items = {u["item"] for u in rs.unverified()}
    assert {"rules.fee.99491.2026", "rules.unit_cap.99489", "rules.unit_cap.99437"} <= items
    # a year before the table is labelled too, not silently priced
    assert rs.fee_entry("99490", 2024).status.startswith("UNVERIFIED")


def test_codes_thresholds_caps_and_performers():
    assert rules.code("99490").threshold_minutes == 20
    assert rules.code("99439").increment_minutes == 20 and rules.unit_cap("99439") == 2
    assert rules.code("99487").threshold_minutes == 60 and rules.code("99489").increment_minutes == 30
    assert rules.code("99491").threshold_minutes == 30 and rules.code("99491").performer == "practitioner"
    assert rules.code("99437").base_code == "99491"
    assert rules.code("99489").cap_status == "UNVERIFIED"
    rs = rules.load()
    for c in rs.codes.values():
        if c.is_addon:
            assert c.base_code in rs.codes and rs.codes[c.base_code].role == "base"
        assert c.status in ("V", "S", "UNVERIFIED")


def test_fee_rows_never_overlap_for_a_code():
    rs = rules.load()
    for code, rows in rs.fees.items():
        for a, b in zip(rows, rows[1:]):
            assert a.effective_to < b.effective_from, code


def test_conflict_matrix():
    rs = rules.load()
    pcm = rs.conflict("ccm_with_pcm")
    assert pcm.same_practitioner_allowed == "no" and pcm.different_practitioner_allowed == "yes"
    assert "99424" in pcm.codes_b and "99490" in pcm.codes_a
    assert rs.conflict("ccm_with_tcm").same_practitioner_allowed == "yes"
    assert rs.conflict("ccm_with_apcm").same_practitioner_allowed == "no"
    esrd = rs.conflict("ccm_with_esrd")
    assert {"90951", "90960", "90970"} <= esrd.codes_b and esrd.status == "UNVERIFIED"


def test_carc_and_rarc_official_texts():
    assert rules.carc_text("18").startswith("Exact duplicate claim/service")
    assert rules.carc_text("97").startswith("The benefit for this service is included")
    assert rules.carc_text("B15").startswith("This service/procedure requires that a qualifying service")
    assert rules.rarc_text("N122") == "Add-on code cannot be billed by itself."
    assert rules.rarc_text("M15").startswith("Separately billed services/tests have been bundled")
    assert "not in the shipped" in rules.carc_text("ZZ9")


def test_icd10_to_chronic_condition():
    assert rules.normalize_icd10(" e11.9 ") == "E119"
    assert rules.ccw_condition("E11.9") == rules.ccw_condition("E1165")  # both diabetes: one condition
    assert rules.condition_key("E119") != rules.condition_key("I10")
    assert rules.is_chronic("I10") and not rules.is_chronic("A000")  # cholera is acute
    assert rules.condition_key("A000") is None
    assert len(rules.ccw_conditions()) == 30
    # an AHRQ-chronic code outside the CCW list counts by its 3-character category
    assert rules.ccw_condition("Q211") is None and rules.is_chronic("Q211")
    assert rules.condition_key("Q211") == "CCI:Q21"


def test_setting_overrides_fee_and_cap(engine):
    with engine.begin() as conn:
        b = Builder(conn)
        b.setting("rules.fee.99491.2026", "94.00")
        b.setting("rules.unit_cap.99489", "2")
        b.setting("rules.eligible_payers", "Medicare Part B, Medicare Advantage")
    with engine.connect() as conn:
        rs = rules.load(conn)
    assert rs.fee("99491", 2026) == pytest.approx(94.0) and rs.fee_entry("99491", 2026).status == "override"
    assert rs.fee("99491", 2025) == pytest.approx(82.16)
    assert rs.unit_cap("99489") == 2
    assert rs.eligible_payers == ("Medicare Part B", "Medicare Advantage")
    assert rules.load().unit_cap("99489") is None  # shipped default untouched


def test_bad_override_is_a_clear_error(engine):
    with engine.begin() as conn:
        Builder(conn).setting("rules.fee.99490.2026", "sixty")
    with engine.connect() as conn, pytest.raises(ValueError, match="rules.fee.99490.2026"):
        rules.load(conn)


def test_rules_file_override(tmp_path, monkeypatch):
    path = tmp_path / "rules.json"
    path.write_text(json.dumps({"rules.unit_cap.99437": "none", "rules.fee.99437.2026": 60}))
    monkeypatch.setenv("CCM_RULES_FILE", str(path))
    rs = rules.load()
    assert rs.unit_cap("99437") is None and rs.fee("99437", 2026) == pytest.approx(60.0)
    path.write_text("{not json")
    with pytest.raises(ValueError, match="CCM_RULES_FILE"):
        rules.load()
