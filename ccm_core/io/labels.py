"""Plain words for what a person reads: column headers of tables and downloads, and coded values.

A column or code without an entry here is turned into words the same way ("failed_logins" ->
"Failed logins", "phone_call" -> "Phone call"), so no snake_case header and no literal "None" reaches a
screen or a file.
"""

from __future__ import annotations

import pandas as pd

COLUMN_WORDS = {
    "patient_id": "Patient ID",
    "mrn": "MRN",
    "patient_name": "Patient",
    "claim_number": "Claim number",
    "claim_id": "Claim ID",
    "claim_line_id": "Claim line ID",
    "item_key": "Item",
    "failed_logins": "Failed sign-ins",
    "last_login": "Last sign-in",
    "display_name": "Name",
    "staff_id": "Staff ID",
    "cpt_code": "Code",
    "dos": "Date of service",
    "service_date": "Date of service",
    "service_month": "Month of service",
    "counted_minutes": "Counted minutes",
    "minutes_needed": "Minutes needed",
    "days_left": "Days left",
    "last_contact_date": "Last contact",
    "days_since_contact": "Days since contact",
    "expected_at_stake": "Expected $ at stake",
    "care_manager": "Care manager",
    "care_manager_id": "Care manager ID",
    "billing_practitioner_id": "Billing practitioner ID",
    "clinic_id": "Clinic ID",
    "carcs": "CARC codes",
    "rarcs": "RARC codes",
    "carc": "CARC",
    "rarc": "RARC",
    "billable_patient_months": "Billable patient-months",
    "expected_per_enrolled": "Expected per enrolled patient",
    "paid_per_enrolled": "Paid per enrolled patient",
    "billed_per_enrolled": "Billed per enrolled patient",
    "rate_by_count": "Rate (claims)",
    "rate_by_dollars": "Rate (dollars)",
    "lagged_avg_submitted": "Average submitted (3 months before)",
    "initial_denials": "Initial denials",
    "denied_charges": "Denied charges",
    "icd10_codes": "ICD-10 codes",
    "npi": "NPI",
    "at": "When",
    "patient_count": "Patients",
}
ACTIVITY_WORDS = {
    "phone_call": "Phone call",
    "med_reconciliation": "Medication reconciliation",
    "care_plan_update": "Care plan update",
    "coordination": "Care coordination",
    "lab_review": "Lab review",
    "transition_followup": "Transition-of-care follow-up",
}


def header(column: str) -> str:
    """A column name in words."""
    name = str(column)
    if name in COLUMN_WORDS:
        return COLUMN_WORDS[name]
    words = name.replace("_", " ").strip()
    return words[:1].upper() + words[1:] if words else name


def with_headers(df: pd.DataFrame) -> pd.DataFrame:
    """A copy whose headers are words and whose missing values are empty (never the text "None")."""
    out = df.rename(columns={c: header(c) for c in df.columns})
    for col in out.columns:
        if out[col].dtype == object:
            out[col] = out[col].map(
                lambda v: (
                    "" if v is None or (isinstance(v, float) and v != v) or (isinstance(v, str) and v == "None") else v
                )
            )
    out.attrs = dict(df.attrs)
    return out


def activity_words(code) -> str:
    """'phone_call' -> 'Phone call' (unknown codes the same way; empty stays empty)."""
    if code is None or (isinstance(code, float) and code != code):
        return ""
    return ACTIVITY_WORDS.get(str(code), header(str(code)))
